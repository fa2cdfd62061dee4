/**
 * The head's consumer-group metrics: every group of the region, read from its object when the
 * metrics endpoint is scraped (members, pending, the oldest pending message's age, lag, and the
 * group's own counters of acks, redeliveries and dead letters), each series tagged with the
 * group's name. A group deleted since the last scrape has no series any more (it is left out of
 * the scrape: Effect's registry keeps every series it ever had).
 */
import { Context, Effect, Exit, Layer, Metric, type MetricKey } from "effect"
import * as ConsumerGroupsLayers from "../../layers/groups/ConsumerGroups.js"
import * as ConsumersLayers from "../../layers/log/Consumers.js"
import * as LogReaderLayers from "../../layers/log/LogReader.js"
import * as DirectoryLayers from "../../layers/region/Directory.js"
import { RegionLayout } from "../../layers/RegionLayout.js"
import {
  groupAcked,
  groupDeadLetters,
  groupHoldCutOff,
  groupLag,
  groupMembers,
  groupOldestPendingAge,
  groupPending,
  groupRedeliveries,
  sampleOnScrape,
  showOnScrape
} from "../../Metrics.js"
import { ConsumerGroups, type GroupInfo } from "../../services/groups/ConsumerGroups.js"

const FIGURES: ReadonlyArray<readonly [Metric.Metric.Gauge<number>, (info: GroupInfo) => number]> = [
  [groupMembers, (info) => info.members.length],
  [groupPending, (info) => info.pending],
  [groupOldestPendingAge, (info) => info.oldestPendingAgeMs ?? 0],
  [groupLag, (info) => info.lag],
  [groupAcked, (info) => info.acked],
  [groupRedeliveries, (info) => info.redeliveries],
  [groupDeadLetters, (info) => info.deadLetters],
  [groupHoldCutOff, (info) => (info.holdCutOff ? 1 : 0)]
]

/** Samples every group at each scrape while the scope is open. */
export const sampleGroupMetrics = Effect.gen(function*() {
  const layout = yield* RegionLayout
  const services = yield* Layer.build(
    ConsumerGroupsLayers.layer().pipe(
      Layer.provide(
        Layer.mergeAll(
          LogReaderLayers.layer(layout.log),
          DirectoryLayers.layer(layout.directory),
          ConsumersLayers.layer(layout.log)
        )
      )
    )
  )
  const list = Context.get(services, ConsumerGroups).list
  /** The groups the last sample listed: a group's series is served while its group is one of them. */
  let listedNames: ReadonlySet<string> = new Set()
  const shown = (key: MetricKey.MetricKey.Untyped) => {
    if (!key.name.startsWith("cxlog_group_")) return true
    const group = key.tags.find((tag) => tag.key === "group")
    return group === undefined || listedNames.has(group.value)
  }
  const sample = () => {
    // Reading the groups is synchronous (the region, in place); a scrape never waits on it.
    const listed = Effect.runSyncExit(list)
    if (Exit.isFailure(listed)) return
    listedNames = new Set(listed.value.map((info) => info.name))
    for (const info of listed.value) {
      for (const [gauge, figure] of FIGURES) Metric.tagged(gauge, "group", info.name).unsafeUpdate(figure(info), [])
    }
  }
  yield* Effect.acquireRelease(Effect.sync(() => showOnScrape(shown)), (stop) => Effect.sync(stop))
  yield* Effect.acquireRelease(Effect.sync(() => sampleOnScrape(sample)), (stop) => Effect.sync(stop))
})
