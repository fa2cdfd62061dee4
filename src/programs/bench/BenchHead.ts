/**
 * A head and one broker on this process's run region, for the benches that need a region's
 * coordinator and no log traffic of their own (services, supervision): the region's name and the
 * environment a member of it takes. Both go with the scope.
 */
import { Effect } from "effect"
import { pruneRunRegions } from "../admin/RegionPrune.js"
import { runRegionName } from "../admin/Regions.js"
import { regionGuard, startHeadAndBrokers } from "../run/Cluster.js"
import { logEnv } from "../run/Run.js"

export const benchHead = (role: string) =>
  Effect.gen(function*() {
    yield* pruneRunRegions
    const region = runRegionName(process.pid)
    const env = {
      ...logEnv({ brokers: 1, batchBytes: 64 << 10, local: false, localPublishers: 0 }),
      CXLOG_REGION: region
    }
    yield* regionGuard(region)
    yield* startHeadAndBrokers(role, 0, env)
    return { region, env }
  })
