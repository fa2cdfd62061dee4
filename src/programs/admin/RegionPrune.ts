/**
 * What `cxlog regions --prune`, `cxlog run` and the benches remove unasked: orphaned run regions
 * (their run gone, no live process using them), regions never made that were abandoned, and the
 * default credential files of regions that are gone. Nothing else is removed without its name.
 */
import { Effect } from "effect"
import { removeDefaultCredentials } from "../../layers/net/Auth.js"
import { removeOrphanedWakeFifos } from "../../layers/region/Doorbell.js"
import { belongsToRegion, credentialBindings } from "./RegionCredentials.js"
import { inspectRegion, listRegions, regionCreatedAtMs, type RegionInfo, unlink } from "./Regions.js"

/** A run region whose run is gone and that no live process uses. */
export const isOrphanedRun = (info: RegionInfo): boolean => info.kind === "run" && !info.inUse

/**
 * How long a region never made must have been left as it is before `--prune` takes it: a creator
 * makes the file, sizes it and maps it within moments, and until it maps it nothing tells it
 * from one abandoned.
 */
export const ABANDONED_AFTER_MS = 60_000

/**
 * Whether `name` is one cxlog gives a region itself (the default `cxlog`, a run's or a bench's, a
 * test's): a file whose first bytes are zero could be any program's, so only these are taken unasked.
 */
const cxlogsOwnName = (name: string): boolean => name === "cxlog" || name.startsWith("cxlog-")

/** A region never made (not a run's: those are orphaned runs) under a name cxlog gives itself, that no process maps. */
export const isNeverMadeLeft = (info: RegionInfo): boolean =>
  info.kind === "head" && info.unfinished === true && !info.inUse && cxlogsOwnName(info.name)

/** A region never made and left (`isNeverMadeLeft`) whose file has not changed for ABANDONED_AFTER_MS. */
export const isAbandoned = (info: RegionInfo, nowMs: number): boolean =>
  isNeverMadeLeft(info) && nowMs - (info.changedAtMs ?? nowMs) >= ABANDONED_AFTER_MS

/**
 * Removes every orphaned run region and the wake FIFOs no process reads any more (`cxlog run`
 * and the benches do when they start: BenchRegion.ts); returns the regions it removed.
 */
export const pruneRunRegions: Effect.Effect<ReadonlyArray<RegionInfo>> = Effect.gen(function*() {
  const removed: Array<RegionInfo> = []
  for (const info of yield* listRegions) {
    if (isOrphanedRun(info) && (yield* unlink(info.name))) removed.push(info)
  }
  removeOrphanedWakeFifos()
  return removed
})

/**
 * Removes every abandoned region (`isAbandoned`), each looked at again just before (`--prune`);
 * returns those it removed, and the regions never made it left because their files changed lately.
 */
export const pruneAbandonedRegions = Effect.gen(function*() {
  const removed: Array<RegionInfo> = []
  const recent: Array<RegionInfo> = []
  for (const info of yield* listRegions) {
    if (!isNeverMadeLeft(info)) continue
    // Looked at again: a creator may have mapped it since the listing.
    const again = yield* inspectRegion(info.name)
    if (again === undefined || !isNeverMadeLeft(again)) continue
    if (!isAbandoned(again, Date.now())) recent.push(again)
    else if (yield* unlink(again.name)) removed.push(again)
  }
  return { removed, recent }
})

/** Removes the default credential files of every region that no longer exists (`--prune`); returns those regions' names. */
export const pruneStaleCredentials = (): ReadonlyArray<string> =>
  credentialBindings().flatMap((binding) => {
    if (belongsToRegion(binding, true, regionCreatedAtMs(binding.name))) return []
    removeDefaultCredentials(binding.name)
    return [binding.name]
  })
