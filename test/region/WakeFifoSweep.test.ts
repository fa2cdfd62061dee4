/**
 * Wake FIFOs nobody reads any more (their owners gone after the region's cleanup) are swept by
 * `cxlog run`/`regions --prune`; a FIFO its owner holds open, or one just made, stays.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { closeSync, constants, existsSync, openSync } from "node:fs"
import { join } from "node:path"
import { removeOrphanedWakeFifos } from "../../src/layers/region/Doorbell.js"
import { tempDir } from "../helpers/Processes.js"

describe("removeOrphanedWakeFifos", () => {
  it.scoped("removes FIFOs without a reader past the age bound, keeps those with one and the young ones", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-wake-sweep-")
      const [live, orphan] = ["r.64", "r.128"].map((name) => join(dir, name)) as [string, string]
      execFileSync("mkfifo", [live, orphan])
      const reader = yield* Effect.acquireRelease(
        Effect.sync(() => openSync(live, constants.O_RDONLY | constants.O_NONBLOCK)),
        (fd) => Effect.sync(() => closeSync(fd))
      )
      expect(reader).toBeGreaterThan(0)
      // Both are younger than the default bound: nothing goes.
      expect(removeOrphanedWakeFifos(60_000, dir)).toBe(0)
      expect(removeOrphanedWakeFifos(0, dir)).toBe(1)
      expect(existsSync(live)).toBe(true)
      expect(existsSync(orphan)).toBe(false)
    }))
})
