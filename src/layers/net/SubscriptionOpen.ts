/**
 * What opening a subscriber connection's topic takes (`openTopic`: its cursor from where it starts,
 * joined as the named consumer when one is named) and how a broker refuses a subscription with the
 * window or topic its ERROR names; shared by the one-topic (SubscriptionServer.ts) and the
 * multi-topic (ServedTopics.ts) subscription.
 */
import { Effect } from "effect"
import type { Socket } from "node:net"
import type { ConsumerCutOff, ConsumerLease, ConsumersShape } from "../../services/log/Consumers.js"
import { type LogCursor, type LogOutOfRange, type LogReaderShape, outOfRangeFor } from "../../services/log/LogReader.js"
import { errorFrame, WireViolation } from "./Control.js"
import type { Subscribe } from "./SubscribeFrames.js"

/** How long a refused subscriber may take to read its error frame before its socket is destroyed. */
const REJECT_GRACE_MS = 1_000

/** Where a topic's reading starts: an offset or end of it, or a time. */
export interface TopicStart {
  readonly from: Subscribe["from"]
  readonly fromTime?: number | undefined
}

/** A topic's cursor from `start`, joined as named consumer `consumer` when given (resuming at its committed offset). */
export const openTopic = (
  reader: LogReaderShape,
  consumers: ConsumersShape | undefined,
  topic: string,
  start: TopicStart,
  consumer: string | undefined
) =>
  Effect.gen(function*() {
    const subscribe = (from: Subscribe["from"], fromTime?: number) =>
      reader.subscribe(topic, {
        from,
        ...(fromTime === undefined ? {} : { fromTime }),
        ...(consumer === undefined ? {} : { regionOnly: true })
      }).pipe(
        Effect.catchTags({
          TopicNotFound: (e) => Effect.fail(new WireViolation({ code: "unknown-topic", detail: e.message })),
          SubscriberTableFull: (e) => Effect.die(e)
        })
      )
    const cursor: LogCursor = yield* subscribe(start.from, start.fromTime)
    if (consumer === undefined) return { cursor, lease: undefined }
    if (consumers === undefined) {
      return yield* new WireViolation({ code: "bad-subscribe", detail: "this broker keeps no named consumers" })
    }
    const lease: ConsumerLease = yield* consumers.join(topic, consumer, {
      offset: cursor.position(),
      globalSeq: cursor.nextBatch()
    }).pipe(
      Effect.mapError((e) =>
        new WireViolation({
          code: e._tag === "ConsumerBusy"
            ? "consumer-busy"
            : e._tag === "ConsumerTableFull"
            ? "consumer-table-full"
            : e._tag === "TopicNotFound"
            ? "unknown-topic"
            : "bad-subscribe",
          detail: e.message
        })
      )
    )
    if (lease.created) return { cursor, lease }
    // A cut-off consumer whose committed offset left the log stays cut off (out-of-range names the oldest offset held).
    const resumed = yield* subscribe(lease.committed()).pipe(
      Effect.catchTag("LogOutOfRange", (e) => Effect.fail(outOfRangeFor(e, consumer)))
    )
    if (lease.cutOff()) lease.resume()
    return { cursor: resumed, lease }
  })

/** Sends an ERROR naming the topic it is about (a multi-topic subscription's), then closes the connection. */
export const refuse = (socket: Socket, code: WireViolation["code"], detail: string, topic: string): void => {
  if (socket.destroyed || socket.writableEnded) return
  socket.end(errorFrame(code, detail, { topic }))
  setTimeout(() => socket.destroy(), REJECT_GRACE_MS).unref()
}

/** Sends `out-of-range` with the window held (and, on a multi-topic subscription, the topic), then closes the connection. */
export const refuseOutOfRange = (socket: Socket, e: LogOutOfRange, topic?: string): void => {
  if (socket.destroyed || socket.writableEnded) return
  socket.end(
    errorFrame("out-of-range", e.message, {
      requested: e.requested,
      earliest: e.earliest,
      end: e.end,
      ...(topic === undefined ? {} : { topic })
    })
  )
  setTimeout(() => socket.destroy(), REJECT_GRACE_MS).unref()
}

/** Sends `consumer-cut-off` with the committed offset and the oldest held, then closes the connection. */
export const refuseCutOff = (socket: Socket, e: ConsumerCutOff, topic?: string): void => {
  if (socket.destroyed || socket.writableEnded) return
  socket.end(
    errorFrame("consumer-cut-off", e.message, {
      committed: e.committed,
      earliest: e.earliest,
      ...(topic === undefined ? {} : { topic })
    })
  )
  setTimeout(() => socket.destroy(), REJECT_GRACE_MS).unref()
}
