/** `cxlog head`: creates the region, owns process slot 0, writes the topic table and runs the sequencer. */
import { Duration, Effect, Layer, Schedule } from "effect"
import { controlTransport, coordinatorClient, coordinatorServer, createRegion, headLog, processSlot, type RegionAccess } from "../layers/Roles.js"
import type { RegionConfig } from "../layers/RegionLayout.js"
import { LogReader } from "../services/LogReader.js"
import { Sequencer, type SequencerOptions } from "../services/Sequencer.js"
import { Topics, type TopicSpec } from "../services/Topics.js"
import * as LogReaderLayers from "../layers/LogReader.js"
import { RegionLayout } from "../layers/RegionLayout.js"
import { report } from "./Report.js"

export interface HeadOptions {
  readonly region: RegionAccess
  readonly config: RegionConfig
  readonly topics: ReadonlyArray<TopicSpec>
  readonly keep: boolean
  readonly sequencer: SequencerOptions
  /** How often to report each topic's ordered count to an orchestrator. */
  readonly reportEveryMs: number
}

const reportOrdered = (topics: ReadonlyArray<TopicSpec>) =>
  Effect.gen(function*() {
    const reader = yield* LogReader
    const ordered: Record<string, number> = {}
    for (const topic of topics) ordered[topic.name] = (yield* reader.bounds(topic.name).pipe(Effect.orDie)).end
    report({ event: "ordered", ordered })
  })

export const head = (options: HeadOptions) =>
  Effect.gen(function*() {
    const topics = yield* Topics
    for (const spec of options.topics) yield* topics.create(spec)
    const sequencer = yield* Sequencer
    const layout = yield* RegionLayout
    yield* Effect.logInfo(
      `head: region ${options.region.name} (${(layout.totalBytes / 2 ** 20).toFixed(1)} MiB), sequencer epoch ${sequencer.epoch}, topics: ${
        options.topics.map((t) => `${t.name} (order ${t.order}, ack ${t.ackLevel})`).join(", ") || "none"
      }`
    )
    report({ event: "ready", region: options.region.name, epoch: sequencer.epoch })
    yield* reportOrdered(options.topics).pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(options.reportEveryMs))),
      Effect.provide(Layer.unwrapEffect(Effect.map(RegionLayout, (l) => LogReaderLayers.layer(l.log)))),
      Effect.forkScoped
    )
    return yield* sequencer.run
  }).pipe(
    Effect.scoped,
    Effect.provide(
      coordinatorClient().pipe(
        Layer.provideMerge(coordinatorServer()),
        Layer.provideMerge(headLog(options.sequencer)),
        Layer.provideMerge(controlTransport),
        Layer.provideMerge(processSlot("head", 0)),
        Layer.provideMerge(createRegion(options.region, options.config, options.keep))
      )
    )
  )
