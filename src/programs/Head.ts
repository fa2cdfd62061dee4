/**
 * `cxlog head`: creates the region, owns process slot 0, writes the topic table and runs the
 * sequencer. With `--attach` it takes over an existing region whose head is gone instead: the
 * sequencer carries on from the region's state (epoch + 1), the coordinator from its rings, and
 * the region is left in place on exit (it holds data this process did not create).
 */
import { Data, Duration, Effect, Layer, Schedule } from "effect"
import {
  attachRegion,
  controlTransport,
  coordinatorClient,
  coordinatorServer,
  createRegion,
  headLog,
  processSlot,
  type RegionAccess
} from "../layers/Roles.js"
import type { RegionConfig } from "../layers/RegionLayout.js"
import { LogReader } from "../services/log/LogReader.js"
import type { RegionExists } from "../services/region/CxlMemory.js"
import { Sequencer, type SequencerOptions } from "../services/log/Sequencer.js"
import { TopicExists, Topics, type TopicSpec } from "../services/log/Topics.js"
import * as LogReaderLayers from "../layers/log/LogReader.js"
import { RegionLayout } from "../layers/RegionLayout.js"
import { inspectRegion } from "./Regions.js"
import { report } from "./Report.js"

export interface HeadOptions {
  readonly region: RegionAccess
  readonly config: RegionConfig
  readonly topics: ReadonlyArray<TopicSpec>
  readonly keep: boolean
  /** Take over the existing region (its head gone) instead of creating one. */
  readonly attach: boolean
  readonly sequencer: SequencerOptions
  /** How often to report each topic's ordered count to an orchestrator (only when there is one: an IPC parent). */
  readonly reportEveryMs: number
}

const reportOrdered = (topics: ReadonlyArray<TopicSpec>) =>
  Effect.gen(function*() {
    const reader = yield* LogReader
    const ordered: Record<string, number> = {}
    for (const topic of topics) ordered[topic.name] = (yield* reader.bounds(topic.name).pipe(Effect.orDie)).end
    report({ event: "ordered", ordered })
  })

/** `cxlog head` without `--attach` on a region that exists: what it holds and the safe ways on. */
export class HeadRegionExists extends Data.TaggedError("HeadRegionExists")<{
  readonly region: string
  /** Its head's pid (0 if none is known) and whether that process still runs. */
  readonly headPid: number
  readonly headAlive: boolean
  readonly orderedMessages: number
  readonly topics: ReadonlyArray<{ readonly name: string; readonly ordered: number }>
}> {
  override get message() {
    if (this.headAlive) {
      return `region ${this.region} is already served by a live head (pid ${this.headPid}); give this head another --region (--region / CXLOG_REGION)`
    }
    const held = this.topics.length === 0
      ? "no topics"
      : `${this.orderedMessages} ordered messages (${this.topics.map((t) => `${t.name}: ${t.ordered}`).join(", ")})`
    return `a region named ${this.region} already exists and holds ${held}; its head${this.headPid > 0 ? ` (pid ${this.headPid})` : ""} is gone. ` +
      `Start the head with --attach to carry on with it, or discard it with \`cxlog regions --remove ${this.region}\`` +
      (this.orderedMessages > 0 ? ` (that destroys those ${this.orderedMessages} messages)` : "")
  }
}

/** Creates each topic, or with `attach` keeps one that exists with the same spec. */
const ensureTopics = (specs: ReadonlyArray<TopicSpec>, attach: boolean) =>
  Effect.gen(function*() {
    const topics = yield* Topics
    const existing = attach ? yield* topics.list : []
    for (const spec of specs) {
      const found = existing.find((t) => t.name === spec.name)
      if (found === undefined) yield* topics.create(spec)
      else if (found.order !== spec.order || found.ackLevel !== spec.ackLevel || found.replicationFactor !== spec.replicationFactor) {
        return yield* new TopicExists({ name: spec.name })
      }
    }
  })

export const head = (options: HeadOptions) =>
  Effect.gen(function*() {
    yield* ensureTopics(options.topics, options.attach)
    const sequencer = yield* Sequencer
    const layout = yield* RegionLayout
    yield* Effect.logInfo(
      `head: region ${options.region.name} (${(layout.totalBytes / 2 ** 20).toFixed(1)} MiB), sequencer epoch ${sequencer.epoch}, topics: ${
        options.topics.map((t) => `${t.name} (order ${t.order}, ack ${t.ackLevel})`).join(", ") || "none"
      }`
    )
    report({ event: "ready", region: options.region.name, epoch: sequencer.epoch })
    // Progress reports are for an orchestrator (`cxlog run` / `bench`); a head started by hand has no one to tell, and no timer.
    if (process.send !== undefined) {
      yield* reportOrdered(options.topics).pipe(
        Effect.repeat(Schedule.spaced(Duration.millis(options.reportEveryMs))),
        Effect.provide(Layer.unwrapEffect(Effect.map(RegionLayout, (l) => LogReaderLayers.layer(l.log)))),
        Effect.forkScoped
      )
    }
    return yield* sequencer.run
  }).pipe(
    Effect.scoped,
    Effect.provide(
      coordinatorClient().pipe(
        Layer.provideMerge(coordinatorServer()),
        Layer.provideMerge(headLog(options.sequencer)),
        Layer.provideMerge(controlTransport),
        Layer.provideMerge(processSlot("head", 0)),
        Layer.provideMerge(options.attach ? attachRegion(options.region) : createRegion(options.region, options.config, options.keep))
      )
    ),
    Effect.catchTag("RegionExists", (exists) =>
      Effect.flatMap(inspectRegion(options.region.name), (info): Effect.Effect<never, RegionExists | HeadRegionExists> =>
        info === undefined
          ? Effect.fail(exists)
          : Effect.fail(
            new HeadRegionExists({
              region: info.name,
              headPid: info.kind === "head" ? info.owner.pid : info.processes.find((p) => p.slot === 0)?.pid ?? 0,
              headAlive: info.inUse,
              orderedMessages: info.orderedMessages,
              topics: info.topics
            })
          )))
  )
