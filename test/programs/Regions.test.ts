/**
 * `cxlog regions` and the reclaiming of orphaned run regions: a `cxlog run` owns the region
 * it names after its pid; once that run is gone and nothing uses the region, the next run
 * removes it. A live run's region and any head's region are never touched.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { spawn } from "node:child_process"
import { existsSync, unlinkSync } from "node:fs"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { defaultControlConfig, type RegionConfig, regionBytes, regionParams } from "../../src/layers/RegionLayout.js"
import { runRegionName } from "../../src/programs/Regions.js"
import { smallConfig } from "../fixtures/log-harness.js"
import { runCli } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

const config: RegionConfig = { control: { ...defaultControlConfig, maxProcesses: 4 }, log: smallConfig }

/** Creates region `name` (left in /dev/shm, as a crashed run leaves it) and unlinks it when the test's scope closes. */
const leftRegion = (name: string) =>
  Effect.gen(function*() {
    yield* Effect.addFinalizer(() => Effect.sync(() => existsSync(`/dev/shm/${name}`) && unlinkSync(`/dev/shm/${name}`)))
    yield* CxlMemoryLayers.make({ name, size: regionBytes(config), mode: "create", params: regionParams(config), keep: true }).pipe(Effect.scoped)
  })

/** The pid of a process that ran and is gone. */
const exitedPid = Effect.async<number>((resume) => {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" })
  child.once("exit", () => resume(Effect.succeed(child.pid!)))
})

/** A process that runs until the test's scope closes. */
const runningProcess = Effect.acquireRelease(
  Effect.sync(() => spawn(process.execPath, ["-e", "setInterval(() => {}, 1e6)"], { stdio: "ignore" })),
  (child) => Effect.sync(() => child.kill("SIGKILL"))
)

interface Listed {
  readonly name: string
  readonly kind: string
  readonly owner: { readonly pid: number; readonly alive: boolean }
  readonly inUse: boolean
}

describe("cxlog regions (bundled CLI)", () => {
  it.scopedLive("an orphaned run region is listed and reclaimed by the next cxlog run; a live run's region and a head's region are left alone", () =>
    Effect.gen(function*() {
      const deadPid = yield* exitedPid
      const owner = yield* runningProcess
      const started = yield* Deferred.make<void>()
      owner.once("spawn", () => Deferred.unsafeDone(started, Effect.void))
      yield* Deferred.await(started)
      const orphan = runRegionName(deadPid)
      const live = runRegionName(owner.pid!)
      const head = yield* uniqueRegion("regions-head")
      for (const name of [orphan, live, head]) yield* leftRegion(name)

      const listing = yield* runCli(["regions", "--json"])
      expect(listing.code, listing.stderr).toBe(0)
      const listed = JSON.parse(listing.stdout.trim().split("\n").at(-1)!) as Array<Listed>
      const find = (name: string) => listed.find((r) => r.name === name)
      expect(find(orphan)).toMatchObject({ kind: "run", owner: { pid: deadPid, alive: false }, inUse: false })
      expect(find(live)).toMatchObject({ kind: "run", owner: { pid: owner.pid, alive: true }, inUse: true })
      expect(find(head)).toMatchObject({ kind: "head", inUse: false })

      const refused = yield* runCli(["regions", "--remove", live])
      expect(refused.code).toBe(1)
      expect(refused.stdout + refused.stderr).toContain(`cxlog regions: region ${live} is in use by live process ${owner.pid}`)
      expect(existsSync(`/dev/shm/${live}`)).toBe(true)

      const run = yield* runCli(["run", "--bytes", "1MiB", "--broker-count", "1", "--json"])
      expect(run.code, run.stdout + run.stderr).toBe(0)
      const summary = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { reclaimedRegions: Array<string> }
      // Test files run in parallel, so another file's `cxlog run` may reclaim the orphan first: what must hold is that it is gone (below).
      expect(summary.reclaimedRegions).not.toContain(live)
      expect(summary.reclaimedRegions).not.toContain(head)
      expect(existsSync(`/dev/shm/${orphan}`)).toBe(false)
      expect(existsSync(`/dev/shm/${live}`)).toBe(true)
      expect(existsSync(`/dev/shm/${head}`)).toBe(true)
    }), 120_000)
})
