/** The test setup's sweep: what a killed run left is removed by the next, and nothing of a live run. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { recordRunOwner, sweepDeadRuns } from "../helpers/DeadRuns.js"
import { tempDir } from "../helpers/Processes.js"

describe("sweepDeadRuns", () => {
  it.scoped("removes the regions and runtime directory of a run whose owner is gone; leaves a live run's and an ownerless one's", () =>
    Effect.gen(function*() {
      const temporary = yield* tempDir("cxlog-deadruns-tmp-")
      const shm = yield* tempDir("cxlog-deadruns-shm-")
      const runtime = (run: string) => {
        const dir = join(temporary, `cxlog-test-${run}-runtime-x`)
        mkdirSync(dir)
        writeFileSync(join(shm, `cxlog-test-${run}-log-1-ab`), "")
        return dir
      }
      const dead = runtime("aaaaaa")
      // A process that has exited: its pid names no one now.
      const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]).stdout.toString()
      writeFileSync(join(dead, "owner.pid"), gone)
      const live = runtime("bbbbbb")
      recordRunOwner(live)
      const ownerless = runtime("cccccc")
      writeFileSync(join(shm, "cxlog-test-adhoc-x-1-ab"), "")

      expect(sweepDeadRuns(temporary, shm)).toEqual(["aaaaaa"])
      expect(existsSync(dead)).toBe(false)
      expect(existsSync(join(shm, "cxlog-test-aaaaaa-log-1-ab"))).toBe(false)
      expect(existsSync(live)).toBe(true)
      expect(existsSync(join(shm, "cxlog-test-bbbbbb-log-1-ab"))).toBe(true)
      expect(existsSync(ownerless)).toBe(true)
      expect(existsSync(join(shm, "cxlog-test-cccccc-log-1-ab"))).toBe(true)
      expect(existsSync(join(shm, "cxlog-test-adhoc-x-1-ab"))).toBe(true)
    }))
})
