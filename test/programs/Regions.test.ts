/**
 * `cxlog regions` and the reclaiming of orphaned run regions: a `cxlog run` owns the region
 * it names after its pid; once that run is gone and nothing uses the region, the next run
 * removes it. A live run's region and any head's region are never touched. A region removed
 * takes its mirrors' status files with it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readdirSync, unlinkSync, utimesSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { LAYOUT_VERSION } from "../../src/layers/region/Superblock.js"
import {
  defaultControlConfig,
  regionBytes,
  type RegionConfig,
  regionParams,
  resolve
} from "../../src/layers/RegionLayout.js"
import { loadAddonSync } from "../../src/native/Native.js"
import { ABANDONED_AFTER_MS } from "../../src/programs/admin/RegionPrune.js"
import { runRegionName } from "../../src/programs/admin/Regions.js"
import { smallConfig } from "../fixtures/log-harness.js"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { fixtureEntry } from "../helpers/FixtureBuild.js"
import { exitedPid, tempDir, uniqueRegion } from "../helpers/Processes.js"
import { unreapedProcess } from "../helpers/Unreaped.js"

const config: RegionConfig = {
  control: { ...defaultControlConfig, maxProcesses: 4 },
  log: smallConfig,
  directory: { entrySlots: 16, holderLines: 4, heapBytes: 1 << 20 }
}

/** Creates region `name` (left in /dev/shm, as a crashed run leaves it; of `layoutVersion`, this build's unless given) and unlinks it when the test's scope closes. */
const leftRegion = (name: string, layoutVersion = LAYOUT_VERSION) =>
  Effect.gen(function*() {
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => existsSync(`/dev/shm/${name}`) && unlinkSync(`/dev/shm/${name}`))
    )
    yield* CxlMemoryLayers.make({
      name,
      size: regionBytes(config),
      mode: "create",
      params: regionParams(config),
      keep: true,
      layoutVersion
    }).pipe(Effect.scoped)
  })

/** A process that runs until the test's scope closes, once it has started (its pid known). */
const runningProcess = Effect.acquireRelease(
  Effect.async<ChildProcess>((resume) => {
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1e6)"], { stdio: "ignore" })
    child.once("spawn", () => resume(Effect.succeed(child)))
  }),
  (child) => Effect.sync(() => child.kill("SIGKILL"))
)

interface Listed {
  readonly name: string
  readonly kind: string
  readonly owner: { readonly pid: number; readonly alive: boolean }
  readonly processes: ReadonlyArray<{ readonly pid: number; readonly alive: boolean }>
  readonly inUse: boolean
}

/** A file of region `name`'s size in zeros, as a creator killed before it wrote the region leaves it; unlinked when the test's scope closes. */
const neverMade = (name: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const path = `/dev/shm/${name.replace(/^\//, "")}`
      writeFileSync(path, new Uint8Array(1 << 20))
      return path
    }),
    (path) => Effect.sync(() => existsSync(path) && unlinkSync(path))
  )

interface Pruned {
  readonly removed: ReadonlyArray<{ readonly name: string }>
  readonly neverMadeKept: ReadonlyArray<string>
}

const prune = Effect.map(runCli(["regions", "--prune", "--json"]), (pruned) => {
  expect(pruned.code, pruned.stderr).toBe(0)
  return JSON.parse(pruned.stdout.trim().split("\n").at(-1)!) as Pruned
})

const listRegions = Effect.map(runCli(["regions", "--json"]), (listing) => {
  expect(listing.code, listing.stderr).toBe(0)
  return JSON.parse(listing.stdout.trim().split("\n").at(-1)!) as Array<Listed>
})

describe("cxlog regions (bundled CLI)", () => {
  it.scopedLive(
    "a region its creator stopped making (all zeros): in use while a process maps it; then listed as never made, removed by --remove, and made anew by a head of its name",
    () =>
      Effect.gen(function*() {
        const addon = loadAddonSync()
        const region = yield* uniqueRegion("unfinished")
        const unmade = () => addon.open("shm", region, "create", 8 << 20)
        // Being made: this process maps it and has not written it.
        const making = unmade()
        const inUse = (yield* listRegions).find((r) => r.name === region)
        expect(inUse).toMatchObject({ owner: { pid: process.pid, alive: true }, inUse: true })
        expect((yield* runCli(["regions", "--remove", region])).code).not.toBe(0)
        addon.close(making.buffer)
        expect((yield* listRegions).find((r) => r.name === region)).toMatchObject({
          inUse: false,
          note: "never made: its creator stopped first; holds nothing"
        })
        const removed = yield* runCli(["regions", "--remove", region])
        expect(removed.code, removed.stderr).toBe(0)
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
        addon.close(unmade().buffer)
        const head = yield* forkCli(["head", "--region", region, "--topic", "events"], smallRegionEnv)
        yield* head.event("ready")
        expect(head.output()).toContain(`region ${region} was never made`)
      }),
    120_000
  )

  it.scopedLive(
    "an empty file of a region's name (a creator killed before it sized the file) is listed as never made, removed by --remove, and made anew by a head",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("emptyfile")
        const path = `/dev/shm/${region.replace(/^\//, "")}`
        writeFileSync(path, "")
        expect((yield* listRegions).find((r) => r.name === region)).toMatchObject({
          inUse: false,
          note: "never made: its creator stopped first; holds nothing"
        })
        const removed = yield* runCli(["regions", "--remove", region])
        expect(removed.code, removed.stderr).toBe(0)
        expect(existsSync(path)).toBe(false)
        writeFileSync(path, "")
        const head = yield* forkCli(["head", "--region", region, "--topic", "events"], smallRegionEnv)
        yield* head.event("ready")
        expect(head.output()).toContain(`region ${region} was never made`)
      }),
    60_000
  )

  it.scopedLive(
    "removing a region removes its mirrors' status files (its id is never seen again), and no other region's",
    () =>
      Effect.gen(function*() {
        const statusDir = yield* tempDir("cxlog-mirror-status-")
        const region = yield* uniqueRegion("mirrorstatus")
        const env = { ...smallRegionEnv, CXLOG_REGION: region, CXLOG_MIRROR_STATUS_DIR: statusDir }
        const head = yield* forkCli(["head", "--topic", "events"], env)
        yield* head.event("ready")
        const listed = yield* runCli(["topics", "--json"], env)
        const regionId = (JSON.parse(listed.stdout) as { regionId: string }).regionId
        for (const id of [regionId, "12345"]) writeFileSync(join(statusDir, `${id}.events.S.json`), "{}")
        head.child.kill("SIGKILL")
        yield* head.exited
        const removed = yield* runCli(["regions", "--remove", region], env)
        expect(removed.code, removed.stderr).toBe(0)
        expect(readdirSync(statusDir)).toEqual(["12345.events.S.json"])
      }),
    60_000
  )

  it.scopedLive(
    "an orphaned run region is listed and reclaimed by the next cxlog run; a live run's region and a head's region are left alone",
    () =>
      Effect.gen(function*() {
        const deadPid = yield* exitedPid
        const owner = yield* runningProcess
        const orphan = runRegionName(deadPid)
        const live = runRegionName(owner.pid!)
        const head = yield* uniqueRegion("regions-head")
        for (const name of [orphan, live, head]) yield* leftRegion(name)

        const listing = yield* runCli(["regions", "--json"])
        expect(listing.code, listing.stderr).toBe(0)
        const listed = JSON.parse(listing.stdout.trim().split("\n").at(-1)!) as Array<Listed>
        const find = (name: string) => listed.find((r) => r.name === name)
        // Test files run in parallel: another file's `cxlog run` may have reclaimed the orphan already (then it is gone, as below).
        if (find(orphan) !== undefined || existsSync(`/dev/shm/${orphan}`)) {
          expect(find(orphan)).toMatchObject({ kind: "run", owner: { pid: deadPid, alive: false }, inUse: false })
        }
        expect(find(live)).toMatchObject({ kind: "run", owner: { pid: owner.pid, alive: true }, inUse: true })
        expect(find(head)).toMatchObject({ kind: "head", inUse: false })

        const refused = yield* runCli(["regions", "--remove", live])
        expect(refused.code).toBe(1)
        expect(refused.stdout + refused.stderr).toContain(
          `cxlog regions: region ${live} is in use by live process ${owner.pid}`
        )
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
      }),
    120_000
  )

  it.scopedLive(
    "a run region whose run and role were SIGKILLed and wait to be reaped (zombies) is not in use: listed so and pruned at once",
    () =>
      Effect.gen(function*() {
        // The run and a process in its region's table, each orphaned to a parent that does not reap it (as a killed run's roles wait for init).
        const run = yield* unreapedProcess("sleep 600")
        const region = runRegionName(run.pid)
        yield* leftRegion(region)
        const { processTable } = yield* resolve(config, regionBytes(config))
        const role = yield* unreapedProcess(
          `${process.execPath} ${fixtureEntry("slot-holder")} ${region} ${processTable.offset} ${processTable.slots}`
        )
        yield* Queue.take(role.lines).pipe(Effect.timeoutFail({
          duration: "90 seconds",
          onTimeout: () => new Error("the slot holder did not claim a slot")
        }))
        expect((yield* listRegions).find((r) => r.name === region)).toMatchObject({
          owner: { pid: run.pid, alive: true },
          inUse: true
        })

        yield* run.killToZombie
        yield* role.killToZombie
        // Another test file's `cxlog run` may reclaim it first: if it is listed, it is not in use.
        const listed = (yield* listRegions).find((r) => r.name === region)
        if (listed !== undefined) {
          expect(listed).toMatchObject({
            owner: { pid: run.pid, alive: false },
            processes: [{ pid: role.pid, alive: false }],
            inUse: false
          })
        }
        const pruned = yield* runCli(["regions", "--prune"])
        expect(pruned.code, pruned.stderr).toBe(0)
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
      }),
    180_000
  )

  it.scopedLive(
    "--prune leaves a region never made while its file is recent (a creator may be making it) and takes it once the file is a minute old; a made region nobody uses, and a file of a name not cxlog's, are left",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("abandoned")
        const path = yield* neverMade(region)
        const made = yield* uniqueRegion("made-idle")
        yield* leftRegion(made)

        const recent = yield* prune
        expect(recent.neverMadeKept).toContain(region)
        expect(recent.removed.map((r) => r.name)).not.toContain(region)
        expect(existsSync(path)).toBe(true)
        // Said as such to a reader: the listing names what takes it, --prune what it left and why.
        const listing = yield* runCli(["regions"])
        expect(listing.stdout.split("\n").find((line) => line.startsWith(`${region} `))).toContain(
          "no (never made: --prune)"
        )
        const said = yield* runCli(["regions", "--prune"])
        expect(said.stdout).toContain(`left ${region}: never made, but its file changed`)
        expect(said.stdout).not.toContain("no regions never made")

        // Zeros at the start of a file of another name could be another program's: never taken unasked.
        const foreign = yield* neverMade(`other-${region.replace(/^\//, "")}`)
        const old = (Date.now() - 2 * ABANDONED_AFTER_MS) / 1000
        for (const file of [path, foreign]) utimesSync(file, old, old)
        const pruned = yield* prune
        expect(pruned.removed.map((r) => r.name)).toContain(region)
        expect(existsSync(path)).toBe(false)
        expect(pruned.removed.map((r) => r.name)).not.toContain(made)
        expect(existsSync(`/dev/shm/${made}`)).toBe(true)
        expect(existsSync(foreign)).toBe(true)
      }),
    120_000
  )

  it.scopedLive(
    "a bench's region (cxlog-run-<pid>-<what>) is its process's: in use while it lives, even before it is made (unless its file is older than the process: a reused pid); pruned once it is gone",
    () =>
      Effect.gen(function*() {
        const bench = yield* runningProcess
        const unmade = runRegionName(bench.pid!, "group-0")
        const path = yield* neverMade(unmade)
        expect((yield* listRegions).find((r) => r.name === unmade)).toMatchObject({
          kind: "run",
          owner: { pid: bench.pid, alive: true },
          inUse: true
        })
        // One whose file is older than the process of its pid: that pid was reused, the region is not its.
        const reused = yield* neverMade(runRegionName(bench.pid!, "mirror"))
        const hourAgo = (Date.now() - 3_600_000) / 1000
        utimesSync(reused, hourAgo, hourAgo)
        const deadPid = yield* exitedPid
        const left = runRegionName(deadPid, "topics")
        yield* leftRegion(left)
        // Another test file's run or bench may reclaim it first: if it is listed, it is orphaned.
        const listed = (yield* listRegions).find((r) => r.name === left)
        if (listed !== undefined) {
          expect(listed).toMatchObject({ kind: "run", owner: { pid: deadPid, alive: false }, inUse: false })
        }

        yield* prune
        expect(existsSync(path)).toBe(true)
        expect(existsSync(reused)).toBe(false)
        expect(existsSync(`/dev/shm/${left}`)).toBe(false)

        bench.kill("SIGKILL")
        yield* Effect.async<void>((resume) => {
          if (bench.exitCode !== null || bench.signalCode !== null) resume(Effect.void)
          else bench.once("exit", () => resume(Effect.void))
        })
        yield* prune
        expect(existsSync(path)).toBe(false)
      }),
    120_000
  )

  it.scopedLive(
    "a region another build made (another layout version): every command that opens it refuses it in one line naming both versions; cxlog regions notes it",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("oldlayout")
        yield* leftRegion(region, LAYOUT_VERSION - 1)
        const refusal = `region ${region} has layout version ${
          LAYOUT_VERSION - 1
        }, this cxlog speaks ${LAYOUT_VERSION}: another cxlog build made it; stop its processes and remove it (cxlog regions --remove ${region}), then start the head again`
        // A head without --attach, and serve, too: "--attach to carry on with it" would be advice that cannot work.
        for (
          const command of [
            ["head"],
            ["serve"],
            ["head", "--attach"],
            ["broker", "--port", "0"],
            ["topics"],
            ["subscribe", "--topic", "t", "--limit", "1"]
          ]
        ) {
          // serve sizes its region from its own settings: it is given only the region's name.
          const env = command[0] === "serve" ? { CXLOG_REGION: region } : { ...smallRegionEnv, CXLOG_REGION: region }
          const run = yield* runCli(command, env)
          expect(run.code, command.join(" ")).toBe(1)
          expect(run.stderr, command.join(" ")).toBe(`cxlog ${command[0]}: ${refusal}\n`)
        }
        expect((yield* listRegions).find((r) => r.name === region)).toMatchObject({
          inUse: false,
          note: `layout version ${LAYOUT_VERSION - 1} (this build reads ${LAYOUT_VERSION})`
        })
      }),
    120_000
  )
})
