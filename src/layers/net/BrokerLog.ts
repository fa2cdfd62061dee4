/**
 * The live BrokerLog: a thin adapter from the TCP broker's view of the log onto the log
 * core in the region (Topics, Appender, AckTracker).
 */
import { Effect, Layer } from "effect"
import { AckTracker } from "../../services/log/AckTracker.js"
import { Appender, type AppendError, BatchRejected } from "../../services/log/Appender.js"
import { AppendTimeout, type BatchHeader, BrokerLog, type BrokerLogShape, LogCorrupt, UnknownTopic } from "../../services/net/BrokerLog.js"
import { TopicNotFound, Topics } from "../../services/log/Topics.js"

export const make: Effect.Effect<BrokerLogShape, never, Appender | AckTracker | Topics> = Effect.gen(function*() {
  const appender = yield* Appender
  const acks = yield* AckTracker
  const topics = yield* Topics
  const unknown = (topic: string) => () => new UnknownTopic({ topic })
  /** The log core's append errors in BrokerLog's terms (a rejected batch is one the broker should have refused). */
  const refused = (topic: string, e: TopicNotFound | BatchRejected): UnknownTopic | LogCorrupt =>
    e instanceof TopicNotFound ? new UnknownTopic({ topic }) : new LogCorrupt({ reason: e.reason })
  const appendError = (topic: string, e: AppendError): UnknownTopic | AppendTimeout | LogCorrupt =>
    e._tag === "AppendTimeout" ? new AppendTimeout({ topic, waitedMs: e.waitedMs }) : refused(topic, e)
  const appendWith = (topic: string, header: BatchHeader, fill: (dst: Uint8Array) => void) =>
    appender.appendWith(topic, header, fill).pipe(Effect.asVoid, Effect.mapError((e) => appendError(topic, e)))
  return {
    brokerId: appender.brokerId,
    topic: (name) =>
      topics.lookup(name).pipe(
        Effect.map((t) => ({ name: t.name, order: t.order, ackLevel: t.ackLevel })),
        Effect.mapError(unknown(name))
      ),
    append: (topic, header, payload) =>
      payload.length === header.payloadBytes
        ? appendWith(topic, header, (dst) => dst.set(payload))
        : Effect.fail(new LogCorrupt({ reason: `payload is ${payload.length} bytes but the header says ${header.payloadBytes}` })),
    appendWith,
    registerSession: (topic, clientId) =>
      appender.registerSession(topic, clientId).pipe(Effect.catchTag("TopicNotFound", () => Effect.fail(new UnknownTopic({ topic })))),
    closeSession: (topic, clientId, sessionEpoch, batches) =>
      appender.closeSession(topic, clientId, sessionEpoch, batches).pipe(Effect.asVoid, Effect.mapError((e) => appendError(topic, e))),
    tryAppendWith: (topic, header, fill) => {
      const outcome = appender.tryAppendWith(topic, header, fill)
      if (outcome === "wait") return false
      return outcome instanceof BatchRejected || outcome instanceof TopicNotFound ? refused(topic, outcome) : true
    },
    sessionAcks: (topic, clientId, sessionEpoch) =>
      acks.sessionAcks(topic, clientId, sessionEpoch).pipe(
        Effect.map(({ fenced, known, ordered, replicated }) => ({ ordered, replicated, fenced, known })),
        Effect.catchTags({
          TopicNotFound: () => Effect.fail(new UnknownTopic({ topic })),
          LogCorrupt: (e) => Effect.fail(new LogCorrupt({ reason: e.reason }))
        })
      ),
    progress: (topic) => Effect.runSync(acks.progress(topic).pipe(Effect.orElseSucceed(() => 0))),
    awaitProgress: (topic, seen, timeoutMs) => acks.awaitProgress(topic, seen, timeoutMs).pipe(Effect.orElseSucceed(() => seen))
  }
})

export const layer: Layer.Layer<BrokerLog, never, Appender | AckTracker | Topics> = Layer.effect(BrokerLog, make)
