/** The live BrokerLog: this broker's Appender, the AckTracker and the topic table, as they are. */
import { Effect, Layer } from "effect"
import { AckTracker } from "../../services/log/AckTracker.js"
import { Appender } from "../../services/log/Appender.js"
import { Topics } from "../../services/log/Topics.js"
import { BrokerLog, type BrokerLogShape } from "../../services/net/BrokerLog.js"

export const make: Effect.Effect<BrokerLogShape, never, Appender | AckTracker | Topics> = Effect.gen(function*() {
  const { append, appendWith, brokerId, closeSession, registerSession, tryAppendWith } = yield* Appender
  const { awaitProgress, progress, sessionAcks } = yield* AckTracker
  const topics = yield* Topics
  return { brokerId, append, appendWith, tryAppendWith, registerSession, closeSession, sessionAcks, progress, awaitProgress, topic: topics.lookup }
})

export const layer: Layer.Layer<BrokerLog, never, Appender | AckTracker | Topics> = Layer.effect(BrokerLog, make)
