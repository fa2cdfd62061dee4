/**
 * `cxlog broker`: attaches the region, owns a broker slot, and serves publishers over TCP.
 * Everything a broker does waits on the head (joining its coordinator, the ordering its ACKs
 * follow), so the broker watches it: once the head is gone past `CXLOG_HEAD_LOST_MS` the
 * broker stops with `HeadUnavailable` instead of serving silently.
 */
import { Effect, Layer } from "effect"
import { awaitHead, failWhenHeadLost, headWatch } from "../layers/log/HeadWatch.js"
import { BrokerLine, SequencerLine } from "../layers/log/Records.js"
import { RegionLayout } from "../layers/RegionLayout.js"
import { attachRegion, brokerLog, brokerServer, controlTransport, coordinatorClient, processSlot, type RegionAccess } from "../layers/Roles.js"
import { listTopics } from "../layers/log/Topics.js"
import { Broker, type BrokerOptions } from "../services/net/Broker.js"
import { CxlMemory } from "../services/region/CxlMemory.js"
import { report, reportFailure } from "./Report.js"

export interface BrokerMainOptions {
  readonly region: RegionAccess
  readonly brokerId: number
  readonly server: BrokerOptions
  readonly statsEveryMs: number
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
      yield* Effect.logInfo(`broker ${server.brokerId}: listening on ${server.host}:${server.port}, region ${options.region.name}`)
      report({ event: "listening", brokerId: server.brokerId, host: server.host, port: server.port })
      return yield* failWhenHeadLost(watch, waitingFor)
    }).pipe(
      Effect.provide(
        brokerServer(options.server).pipe(
          Layer.provideMerge(brokerLog(options.brokerId)),
          Layer.provideMerge(coordinatorClient()),
          Layer.provideMerge(controlTransport),
          Layer.provideMerge(processSlot("broker"))
        )
      )
    )
    // Join only a head that is there; joining itself is bounded by the coordinator client's timeout.
    yield* awaitHead(watch, waitingFor)
    return yield* serve.pipe(
      Effect.catchTag("CoordinatorUnavailable", (unavailable) => Effect.fail(watch.check(waitingFor) ?? unavailable))
    )
  }).pipe(
    Effect.provide(attachRegion(options.region)),
    Effect.tapError((error) => Effect.sync(() => reportFailure(error)))
  )
