/**
 * The live BrokerLog: a thin adapter from the TCP broker's view of the log onto the log
 * core in the region (Topics, Appender, AckTracker).
 */
import { Effect, Layer } from "effect"
import { AckTracker } from "../services/AckTracker.js"
import { Appender } from "../services/Appender.js"
import { AppendTimeout, BrokerLog, type BrokerLogShape, LogCorrupt, UnknownTopic } from "../services/BrokerLog.js"
import { Topics } from "../services/Topics.js"

export const make: Effect.Effect<BrokerLogShape, never, Appender | AckTracker | Topics> = Effect.gen(function*() {
  const appender = yield* Appender
  const acks = yield* AckTracker
  const topics = yield* Topics
  const unknown = (topic: string) => () => new UnknownTopic({ topic })
  return {
    brokerId: appender.brokerId,
    topic: (name) =>
      topics.lookup(name).pipe(
        Effect.map((t) => ({ name: t.name, order: t.order, ackLevel: t.ackLevel })),
        Effect.mapError(unknown(name))
      ),
    append: (topic, header, payload) =>
      appender.append(topic, header, payload).pipe(
        Effect.asVoid,
        Effect.catchTags({
          TopicNotFound: () => Effect.fail(new UnknownTopic({ topic })),
          AppendTimeout: (e) => Effect.fail(new AppendTimeout({ topic, waitedMs: e.waitedMs })),
          BatchRejected: (e) => Effect.fail(new LogCorrupt({ reason: e.reason }))
        })
      ),
    sessionAcks: (topic, clientId, sessionEpoch) =>
      acks.sessionAcks(topic, clientId, sessionEpoch).pipe(
        Effect.map(({ fenced, ordered, replicated }) => ({ ordered, replicated, fenced })),
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
