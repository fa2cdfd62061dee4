/**
 * The region a bench runs on: a run region of the bench's own process (`cxlog-run-<pid>`, or
 * `cxlog-run-<pid>-<part>` for one of several), so that one left by a bench that died before its
 * end is removed by the next run or bench, or by `cxlog regions --prune` (RegionPrune.ts). Those
 * left by others go first; this one goes with the scope.
 */
import { Effect, type Scope } from "effect"
import { pruneRunRegions } from "../admin/RegionPrune.js"
import { runRegionName } from "../admin/Regions.js"
import { regionGuard } from "../run/Cluster.js"

export const benchRegion = (part?: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function*() {
    yield* pruneRunRegions
    const region = runRegionName(process.pid, part)
    yield* regionGuard(region)
    return region
  })
