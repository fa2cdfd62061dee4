/**
 * A head and one broker on this process's run region, for the benches that need a region's
 * coordinator and no log traffic of their own (services, supervision): the region's name and the
 * environment a member of it takes. Both go with the scope.
 */
import { Effect } from "effect"
import { startHeadAndBrokers } from "../run/Cluster.js"
import { logEnv } from "../run/Run.js"
import { benchRegion } from "./BenchRegion.js"

export const benchHead = (role: string) =>
  Effect.gen(function*() {
    const region = yield* benchRegion()
    const env = {
      ...logEnv({ brokers: 1, batchBytes: 64 << 10, local: false, localPublishers: 0 }),
      CXLOG_REGION: region
    }
    yield* startHeadAndBrokers(role, 0, env)
    return { region, env }
  })
