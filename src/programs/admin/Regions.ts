/**
 * The cxlog regions under /dev/shm (a file whose superblock carries the cxlog magic): each one's
 * size, owner and whether it still runs, and removing one nobody uses (`cxlog regions`:
 * RegionsCommand.ts; what is removed unasked: RegionPrune.ts).
 *
 * Owners: a `cxlog run` names its region `cxlog-run-<its pid>` and owns it, as a bench owns its
 * own `cxlog-run-<its pid>-<what>`; any other region belongs to its head (the sequencer lease's
 * pid, else process slot 0's). A pid counts as the owner only if that process started before the
 * region was created (a reused pid does not). A run region is orphaned when its run is gone and
 * no process in its process table or lease is alive. A region its creator never wrote
 * (UnfinishedRegion.ts) holds nothing. A region's default credential files go with it
 * (RegionCredentials.ts).
 */
import { Data, Effect } from "effect"
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync } from "node:fs"
import { LeaseLine, OrderLine } from "../../layers/log/Records.js"
import { listTopics } from "../../layers/log/TopicDescriptors.js"
import { removeMirrorStatuses } from "../../layers/mirror/MirrorStatusFile.js"
import { removeDefaultCredentials } from "../../layers/net/Auth.js"
import * as CxlMemoryLayers from "../../layers/region/CxlMemory.js"
import { removeWakeFifos } from "../../layers/region/Doorbell.js"
import { isPidAlive, isPidStopped, procStat, USER_HZ } from "../../layers/region/ProcessInfo.js"
import { isOwnerAlive, readLabel, readSlot } from "../../layers/region/ProcessSlot.js"
import { LAYOUT_VERSION, MAGIC, Offsets, SUPERBLOCK_BYTES } from "../../layers/region/Superblock.js"
import { configFromParams, resolve } from "../../layers/RegionLayout.js"
import { unfinishedRegion } from "./UnfinishedRegion.js"

export const SHM_DIR = "/dev/shm"
const RUN_REGION = /^cxlog-run-(\d+)(?:-[a-z][a-z0-9-]*)?$/

/**
 * The region name `cxlog run` uses (its owner is the run's process); with `part`, one of the
 * regions of a bench (`group-0`, `topics`), owned by the bench's process alike.
 */
export const runRegionName = (pid: number, part?: string): string =>
  part === undefined ? `cxlog-run-${pid}` : `cxlog-run-${pid}-${part}`

/** The pid in a run region's name; undefined for any other region. */
const runPid = (name: string): number | undefined => {
  const found = RUN_REGION.exec(name)
  return found === null ? undefined : Number(found[1])
}

export interface RegionProcess {
  readonly slot: number
  readonly pid: number
  readonly role: string
  readonly alive: boolean
  /** Alive but stopped (SIGSTOP, a debugger): it holds its slot and whatever it holds until it runs again. */
  readonly stopped?: true
  /** The name, supervisor pid and restarts its slot carries, when a supervisor started it. */
  readonly name?: string
  readonly supervisor?: number
  readonly restarts?: number
}

export interface RegionInfo {
  readonly name: string
  /** Bytes the file spans, and bytes of memory it holds now. */
  readonly bytes: number
  readonly residentBytes: number
  readonly kind: "run" | "head"
  readonly createdAtMs: number
  readonly layoutVersion: number
  readonly owner: { readonly pid: number; readonly alive: boolean }
  /** Processes in its process table (live or not), when this build can read its layout. */
  readonly processes: ReadonlyArray<RegionProcess>
  /** Messages ordered per topic, when this build can read its layout. */
  readonly topics: ReadonlyArray<{ readonly name: string; readonly ordered: number }>
  readonly orderedMessages: number
  /** Why the details are missing (another layout version, still initialising, unreadable). */
  readonly note?: string
  /** Whether any process known to use it (owner, lease holder, process table) is alive. */
  readonly inUse: boolean
  /** A region its creator has not written (still making it, or killed before it did: UnfinishedRegion.ts). */
  readonly unfinished?: boolean
  /** An unfinished region's file: when it last changed (ms since the epoch). */
  readonly changedAtMs?: number
}

export class RegionNotFound extends Data.TaggedError("RegionNotFound")<{ readonly region: string }> {
  override get message() {
    return `there is no cxlog region named ${this.region} in ${SHM_DIR} (cxlog regions lists them)`
  }
}

export class RegionInUse
  extends Data.TaggedError("RegionInUse")<{ readonly region: string; readonly pids: ReadonlyArray<number> }>
{
  override get message() {
    return `region ${this.region} is in use by live process${this.pids.length === 1 ? "" : "es"} ${
      this.pids.join(", ")
    }: stop ${this.pids.length === 1 ? "it" : "them"} first`
  }
}

/** Milliseconds since the epoch at which `pid` started, from /proc; undefined off Linux or once it is gone. */
const processStartMs = (() => {
  let bootMs: number | undefined
  return (pid: number): number | undefined => {
    try {
      bootMs ??= Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1]) * 1000
      const ticks = procStat(pid)?.startTicks
      return Number.isFinite(bootMs) && ticks !== undefined && Number.isFinite(ticks)
        ? bootMs + (ticks * 1000) / USER_HZ
        : undefined
    } catch {
      return undefined
    }
  }
})()

/** Boot time has a one-second resolution: a process up to this long after the region still counts as before it. */
const START_SLACK_MS = 2_000

/** Whether `pid` runs and started before the region was created: a run's own process, not a reused pid. */
const runOwnerAlive = (pid: number, createdAtMs: number): boolean => {
  if (!isPidAlive(pid)) return false
  const started = processStartMs(pid)
  return started === undefined || started <= createdAtMs + START_SLACK_MS
}

/** The superblock as bytes, read without mapping the region; undefined if it is not a cxlog region. */
const readSuperblockBytes = (path: string): DataView | undefined => {
  let fd: number | undefined
  try {
    fd = openSync(path, "r")
    const buffer = new Uint8Array(SUPERBLOCK_BYTES)
    if (readSync(fd, buffer, 0, SUPERBLOCK_BYTES, 0) < SUPERBLOCK_BYTES) return undefined
    const view = new DataView(buffer.buffer)
    return view.getUint32(Offsets.magic, true) === MAGIC[0] && view.getUint32(Offsets.magic + 4, true) === MAGIC[1]
      ? view
      : undefined
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** When region `name` in /dev/shm was created (its superblock's time); undefined if there is no cxlog region of that name. */
export const regionCreatedAtMs = (name: string): number | undefined =>
  readSuperblockBytes(`${SHM_DIR}/${name.replace(/^\//, "")}`)?.getFloat64(Offsets.createdAtMs, true)

/** Process table and topics, read by attaching the region (only for this build's layout version). */
const readDetails = (name: string) =>
  Effect.gen(function*() {
    const region = yield* CxlMemoryLayers.make({ name, mode: "attach", readyTimeoutMs: 100 })
    const layout = yield* resolve(configFromParams(region.params), region.size)
    const processes: Array<RegionProcess> = []
    for (let s = 0; s < layout.processTable.slots; s++) {
      const info = readSlot(region, layout.processTable, s)
      if (info.pid === 0) continue
      const label = info.state === 2 ? readLabel(region, layout.processTable, s) : undefined
      const alive = isOwnerAlive(info)
      const stopped = alive && isPidStopped(info.pid) ? { stopped: true as const } : {}
      processes.push({ slot: s, pid: info.pid, role: info.role, alive, ...stopped, ...label })
    }
    const topics = listTopics(region, layout.log).map((t) => ({
      name: t.name,
      ordered: region.f64[(layout.log.orderLine(t.id) + OrderLine.totalOrder) / 8]!
    }))
    return { processes, topics }
  }).pipe(Effect.scoped)

/** What is known about region `name` in /dev/shm; undefined if there is no cxlog region of that name. */
export const inspectRegion = (name: string): Effect.Effect<RegionInfo | undefined> =>
  Effect.gen(function*() {
    const shmName = name.replace(/^\//, "")
    const path = `${SHM_DIR}/${shmName}`
    const superblock = readSuperblockBytes(path)
    if (superblock === undefined) return unfinished(shmName, path)
    const stat = yield* Effect.try(() => statSync(path)).pipe(Effect.option)
    if (stat._tag === "None") return undefined
    const layoutVersion = superblock.getUint32(Offsets.layoutVersion, true)
    const createdAtMs = superblock.getFloat64(Offsets.createdAtMs, true)
    const leasePid = superblock.getInt32(Offsets.sequencerLease + LeaseLine.pid, true)
    const details = layoutVersion === LAYOUT_VERSION
      ? yield* readDetails(shmName).pipe(Effect.either)
      : undefined
    const processes = details?._tag === "Right" ? details.right.processes : []
    const topics = details?._tag === "Right" ? details.right.topics : []
    const note = details === undefined
      ? `layout version ${layoutVersion} (this build reads ${LAYOUT_VERSION})`
      : details._tag === "Left"
      ? details.left.message
      : undefined
    const run = runPid(shmName)
    const headPid = leasePid > 0 ? leasePid : processes.find((p) => p.slot === 0)?.pid ?? 0
    // A head may attach to a region long after it was created: only a run's pid is checked against the creation time.
    const owner = run !== undefined
      ? { pid: run, alive: runOwnerAlive(run, createdAtMs) }
      : { pid: headPid, alive: isPidAlive(headPid) }
    const inUse = owner.alive || isPidAlive(leasePid) || processes.some((p) => p.alive) ||
      (details?._tag === "Left" && details.left._tag === "RegionNotReady")
    return {
      name: shmName,
      bytes: stat.value.size,
      residentBytes: stat.value.blocks * 512,
      kind: run !== undefined ? "run" : "head",
      createdAtMs,
      layoutVersion,
      owner,
      processes,
      topics,
      orderedMessages: topics.reduce((n, t) => n + t.ordered, 0),
      ...(note === undefined ? {} : { note }),
      inUse
    } satisfies RegionInfo
  })

/**
 * `name` as a region its creator has not written yet, or never will (it was killed); undefined
 * when it is neither. A run's region is the run's while its process lives (the run's head may
 * not have mapped it yet); any other is in use while a process maps it.
 */
const unfinished = (name: string, path: string): RegionInfo | undefined => {
  const found = unfinishedRegion(path)
  if (found === undefined) return undefined
  const creator = found.mappedBy[0] ?? 0
  const run = runPid(name)
  // The run's process started before its region's file was sized, as it started before a made one was created.
  const owner = run === undefined
    ? { pid: creator, alive: creator !== 0 }
    : { pid: run, alive: runOwnerAlive(run, found.changedAtMs) }
  const inUse = creator !== 0 || owner.alive
  return {
    name,
    bytes: found.bytes,
    residentBytes: found.residentBytes,
    kind: run === undefined ? "head" : "run",
    createdAtMs: 0,
    layoutVersion: 0,
    owner,
    processes: [],
    topics: [],
    orderedMessages: 0,
    note: creator !== 0
      ? `being made by pid ${creator}`
      : inUse
      ? `to be made by run pid ${owner.pid}`
      : "never made: its creator stopped first; holds nothing",
    inUse,
    unfinished: true,
    changedAtMs: found.changedAtMs
  }
}

/** Every cxlog region in /dev/shm. */
export const listRegions: Effect.Effect<ReadonlyArray<RegionInfo>> = Effect.gen(function*() {
  const names = yield* Effect.try(() => readdirSync(SHM_DIR)).pipe(Effect.orElseSucceed(() => [] as Array<string>))
  const found: Array<RegionInfo> = []
  for (const name of names.sort()) {
    const info = yield* inspectRegion(name)
    if (info !== undefined) found.push(info)
  }
  return found
})

/**
 * Removes the region and the wake FIFOs its processes left (those killed could not remove theirs),
 * whoever still uses it: for its last head, as it stops (the mappings stay valid until unmapped).
 */
export const unlink = (name: string): Effect.Effect<boolean> =>
  Effect.try(() => {
    const createdAtMs = regionCreatedAtMs(name)
    unlinkSync(`${SHM_DIR}/${name}`)
    removeWakeFifos(name)
    // Its credential files are its own: a region made again under the name gets new ones.
    removeDefaultCredentials(name)
    // Its mirrors' status files name its id, which no region has again: nothing would read them.
    if (createdAtMs !== undefined) removeMirrorStatuses(String(createdAtMs))
  }).pipe(
    Effect.as(true),
    // Someone else removed it meanwhile: it is gone either way.
    Effect.orElseSucceed(() => false)
  )

/** Removes region `name` unless a live process uses it. */
export const removeRegion = (name: string): Effect.Effect<RegionInfo, RegionNotFound | RegionInUse> =>
  Effect.gen(function*() {
    const info = yield* inspectRegion(name)
    if (info === undefined) return yield* new RegionNotFound({ region: name })
    if (info.inUse) {
      const pids = [
        ...new Set([
          ...(info.owner.alive ? [info.owner.pid] : []),
          ...info.processes.filter((p) => p.alive).map((p) => p.pid)
        ])
      ]
      return yield* new RegionInUse({ region: info.name, pids })
    }
    yield* unlink(info.name)
    return info
  })
