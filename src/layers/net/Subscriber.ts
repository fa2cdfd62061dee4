/**
 * The Subscriber over a `LogReader` (`subscriberOver`): the local layer reads the region in
 * place (`layer`, in a process that maps it), the fake reads the in-memory log
 * (SubscriberMemory.ts); both run this code. Each pull delivers one batch as a view of where
 * it is stored, after confirming that the batch handed out before is still held (see
 * services/net/Subscriber.ts): a reader that fell behind retention fails with `LogOutOfRange`.
 */
import { Effect, Layer, Option, Stream } from "effect"
import { type LogBatchView, LogOutOfRange, LogReader, type LogReaderShape } from "../../services/log/LogReader.js"
import { LogCorrupt } from "../../services/log/Topics.js"
import { Subscriber, type SubscriberShape, type Subscription, type SubscriptionError } from "../../services/net/Subscriber.js"
import { BatchView } from "./SubscriberBatch.js"

/** One wait for the next batch; it only re-checks when it ends (the head's liveness is watched inside it). */
const WAIT_SLICE_MS = 60_000

export const subscriberOver = (reader: LogReaderShape): SubscriberShape => ({
  subscribe: (topic, options = {}) =>
    Effect.gen(function*() {
      // Not durable, so it cannot fail with SubscriberTableFull.
      const cursor = yield* reader.subscribe(topic, { from: options.from ?? "earliest" }).pipe(
        Effect.catchTag("SubscriberTableFull", (e) => Effect.die(e))
      )
      const start = cursor.position()
      const view = new BatchView(topic)
      /** The batch handed out last (its global seq and first offset), confirmed at the next pull. */
      let handedOut: { g: number; offset: number } | undefined
      let malformed: string | undefined
      const onBatch = (b: LogBatchView) => {
        const payload = b.bytes.subarray(b.offset, b.offset + b.length)
        malformed = view.aim(payload, b.messageCount, b.totalOrder, b.totalOrder + b.startIndex, b.clientId, b.sessionEpoch)
        handedOut = { g: b.globalSeq, offset: view.offset }
      }
      const outOfRange = (requested: number) =>
        Effect.flatMap(reader.bounds(topic).pipe(Effect.orDie), ({ earliest, end }) => Effect.fail(new LogOutOfRange({ topic, requested, earliest, end })))
      const pull: Effect.Effect<BatchView, SubscriptionError> = Effect.gen(function*() {
        if (handedOut !== undefined) {
          if (!cursor.retained(handedOut.g)) return yield* outOfRange(handedOut.offset)
          handedOut = undefined
        }
        for (;;) {
          const n = yield* cursor.pollBatches(onBatch, 1)
          if (malformed !== undefined) return yield* new LogCorrupt({ reason: `topic ${topic}: batch at offset ${view.offset}: ${malformed}` })
          if (n === 1) return view
          yield* cursor.awaitMore(WAIT_SLICE_MS)
        }
      })
      const subscription: Subscription = {
        topic,
        start,
        batches: Stream.repeatEffectOption(Effect.mapError(pull, Option.some)),
        position: cursor.position,
        lag: Effect.map(reader.bounds(topic).pipe(Effect.orDie), ({ end }) => Math.max(0, end - cursor.position()))
      }
      return subscription
    }),
  bounds: (topic) => reader.bounds(topic)
})

/** The local Subscriber: reads the region this process maps (needs its `LogReader`, e.g. `Roles.reader`). */
export const layer: Layer.Layer<Subscriber, never, LogReader> = Layer.effect(Subscriber, Effect.map(LogReader, subscriberOver))
