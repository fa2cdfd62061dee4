/**
 * `cxlog broker`: attaches the region, owns a broker slot, and serves publishers, subscribers and
 * consumer groups' members over TCP.
 * Everything a broker does waits on the head (joining its coordinator, the ordering its ACKs
 * follow), so the broker watches it: once the head is gone past `CXLOG_HEAD_LOST_MS` the
 * broker stops with `HeadUnavailable` instead of serving silently.
 */
import { Effect, Layer } from "effect"
import { awaitHead, failWhenHeadLost, headWatch } from "../../layers/log/HeadWatch.js"
import { BrokerLine, SequencerLine } from "../../layers/log/Records.js"
import { listTopics } from "../../layers/log/TopicDescriptors.js"
import { readLane } from "../../layers/log/TopicLanes.js"
import { everyTick } from "../../layers/region/Cadence.js"
import {
  attachRegion,
  brokerGroups,
  brokerLog,
  brokerServer,
  controlTransport,
  coordinatorClient,
  processSlot,
  type RegionAccess
} from "../../layers/Roles.js"
import { brokerUnordered, sampleOnScrape } from "../../Metrics.js"
import { Broker, BrokerListenFailed, type BrokerOptions, type BrokerShape } from "../../services/net/Broker.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { RegionLayout } from "../../services/RegionLayout.js"
import { report, reportFailure } from "./Report.js"

export interface BrokerMainOptions {
  readonly region: RegionAccess
  readonly brokerId: number
  readonly server: BrokerOptions
  /** Log a stats line (connections, batches, MB/s, unordered backlog) this often while anything moves; 0 = never. */
  readonly statsEveryMs: number
  /** How long appends may wait for room a named consumer holds before it is cut off (0: never). */
  readonly consumerHoldMs?: number
  /** The head's data directory: offsets the region recycled are read from its copy on disk (TieredReader.ts). */
  readonly dataDir?: string
}

/** A refusal to listen beyond loopback in `cxlog broker`'s words: its flags, where the library names its options. */
const inFlagWords = (failed: BrokerListenFailed): BrokerListenFailed =>
  failed.beyondLoopback === undefined ? failed : new BrokerListenFailed({
    host: failed.host,
    port: failed.port,
    reason: `refusing to serve beyond loopback without ${failed.beyondLoopback}: ` +
      "give --tls-cert and --tls-key with authentication on (a credential file), or --insecure (docs/security.md)",
    beyondLoopback: failed.beyondLoopback
  })

/** Logs the broker's counters every `everyMs`, skipping ticks where nothing changed (an idle broker stays quiet). */
const logStats = (server: BrokerShape, everyMs: number, unordered: () => number) => {
  let last = server.stats()
  let lastAt = Date.now()
  return everyTick(
    () => everyMs,
    Effect.suspend(() => {
      const now = server.stats()
      const at = Date.now()
      const moved = now.batches !== last.batches || now.connections !== last.connections ||
        now.accepted !== last.accepted
      const mbps = ((now.bytes - last.bytes) / 1e6) / Math.max((at - lastAt) / 1000, 1e-3)
      last = now
      lastAt = at
      if (!moved) return Effect.void
      return Effect.logInfo(`broker ${server.brokerId}: stats`).pipe(
        Effect.annotateLogs({
          connections: now.connections,
          batches: now.batches,
          messages: now.messages,
          bytes: now.bytes,
          mbps: Math.round(mbps * 10) / 10,
          ackFrames: now.ackFrames,
          unorderedBatches: unordered()
        })
      )
    })
  )
}

export const broker = (options: BrokerMainOptions) =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const { log } = yield* RegionLayout
    const watch = yield* headWatch(region)
    let serving = false
    /** Batches this broker appended that the sequencer has not consumed yet, over every topic. */
    const unordered = () => {
      let batches = 0
      if (options.brokerId < 0 || options.brokerId >= log.config.maxBrokers) return 0
      for (const topic of listTopics(region, log)) {
        // A topic this broker never wrote has no lane of its: nothing of it to order.
        if (readLane(region, log, topic.id, options.brokerId) <= 0) continue
        batches += region.f64[(log.brokerLine(topic.id, options.brokerId) + BrokerLine.pbrHead) / 8]! -
          region.f64[(log.sequencerLine(topic.id, options.brokerId) + SequencerLine.consumedThrough) / 8]!
      }
      return batches
    }
    const waitingFor = () =>
      serving
        ? `broker ${options.brokerId}: the head to order its batches (${unordered()} appended, not yet ordered) and to answer its coordinator calls`
        : `broker ${options.brokerId}: the head's coordinator to accept it`
    const serve = Effect.gen(function*() {
      const server = yield* Broker
      serving = true
      yield* Effect.logInfo(
        `broker ${server.brokerId}: listening on ${server.host}:${server.port}, region ${options.region.name}`
      )
      report({ event: "listening", brokerId: server.brokerId, host: server.host, port: server.port })
      yield* Effect.acquireRelease(
        Effect.sync(() => sampleOnScrape(() => brokerUnordered.unsafeUpdate(unordered(), []))),
        (stop) => Effect.sync(stop)
      )
      if (options.statsEveryMs > 0) yield* Effect.forkScoped(logStats(server, options.statsEveryMs, unordered))
      return yield* failWhenHeadLost(watch, waitingFor)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        brokerServer(options.server).pipe(
          // Members of the region's consumer groups join through it (docs/consumers.md, "Remote members").
          Layer.provide(brokerGroups(options.region)),
          Layer.provideMerge(
            brokerLog(
              options.brokerId,
              options.consumerHoldMs === undefined ? {} : { consumerHoldMs: options.consumerHoldMs },
              options.dataDir
            )
          ),
          Layer.provideMerge(coordinatorClient()),
          Layer.provideMerge(controlTransport),
          Layer.provideMerge(processSlot("broker"))
        )
      )
    )
    // Join only a head that is there; joining itself is bounded by the coordinator client's timeout.
    yield* awaitHead(watch, waitingFor)
    return yield* serve.pipe(
      Effect.catchTags({
        CoordinatorUnavailable: (unavailable) => Effect.fail(watch.check(waitingFor) ?? unavailable),
        BrokerListenFailed: (failed) => Effect.fail(inFlagWords(failed))
      })
    )
  }).pipe(
    Effect.provide(attachRegion(options.region)),
    Effect.tapError((error) => Effect.sync(() => reportFailure(error)))
  )
