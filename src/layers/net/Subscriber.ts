/**
 * The Subscriber over a `LogReader` (`subscriberOver`): the local layer reads the region in
 * place (`layer`, in a process that maps it), the fake reads the in-memory log
 * (SubscriberMemory.ts); both run this code. Each pull delivers one batch as a view of where
 * it is stored, after confirming that the batch handed out before is still held (see
 * services/net/Subscriber.ts): a reader that fell behind retention fails with `LogOutOfRange`.
 *
 * A named consumer joins through `Consumers` (one member at a time) and reads from its
 * committed offset; a commit finds the batch holding the offset (the reader's `locate`) so
 * retention is released up to it. A consumer cut off for holding publishers too long fails its
 * member's next pull or commit with `ConsumerCutOff`; the next member resumes it (taking its hold
 * again) when its committed offset is still held, else gets `LogOutOfRange`.
 */
import { Effect, Layer, Option, Stream } from "effect"
import { ConsumerCutOff, type ConsumerLease, Consumers, type ConsumersShape } from "../../services/log/Consumers.js"
import {
  type LogBatchView,
  type LogCursor,
  LogOutOfRange,
  LogReader,
  type LogReaderShape
} from "../../services/log/LogReader.js"
import { LogCorrupt } from "../../services/log/Topics.js"
import {
  CommitRejected,
  type SubscribeOptions,
  Subscriber,
  type SubscriberShape,
  type Subscription,
  type SubscriptionError
} from "../../services/net/Subscriber.js"
import { BatchView } from "./SubscriberBatch.js"

/** One wait for the next batch; it only re-checks when it ends (the head's liveness is watched inside it). */
const WAIT_SLICE_MS = 60_000
export const DEFAULT_AUTO_COMMIT_MS = 100

/** When a named consumer commits by itself (see `SubscribeOptions.autoCommit`). */
export const autoCommitPolicy = (option: SubscribeOptions["autoCommit"]) =>
  option === "off"
    ? { everyMessages: Infinity, intervalMs: Infinity }
    : { everyMessages: option?.everyMessages ?? Infinity, intervalMs: option?.intervalMs ?? DEFAULT_AUTO_COMMIT_MS }

export const subscriberOver = (reader: LogReaderShape, consumers?: ConsumersShape): SubscriberShape => {
  /** The next global seq from offset `offset` on (the batch holding it). */
  const batchAt = (topic: string, offset: number) =>
    Effect.scoped(Effect.map(reader.subscribe(topic, { from: offset }), (c) => c.nextBatch())).pipe(Effect.orDie)

  /** A cursor at `from`, joined as consumer `name` when given (resuming at its committed offset). */
  const open = (topic: string, options: SubscribeOptions) =>
    Effect.gen(function*() {
      // Not durable, so it cannot fail with SubscriberTableFull.
      const subscribe = (from: SubscribeOptions["from"], fromTime?: number) =>
        reader.subscribe(topic, {
          from: from ?? "earliest",
          ...(fromTime === undefined ? {} : { fromTime }),
          ...(options.consumer === undefined ? {} : { regionOnly: true })
        }).pipe(
          Effect.catchTag("SubscriberTableFull", (e) => Effect.die(e))
        )
      const cursor = yield* subscribe(options.from, options.fromTime)
      if (options.consumer === undefined) return { cursor, lease: undefined }
      if (consumers === undefined) {
        return yield* Effect.dieMessage("this Subscriber has no Consumers service for named consumers")
      }
      const lease: ConsumerLease = yield* consumers.join(topic, options.consumer, {
        offset: cursor.position(),
        globalSeq: cursor.nextBatch()
      })
      if (lease.created) return { cursor, lease }
      if (!lease.cutOff()) return { cursor: yield* subscribe(lease.committed()), lease }
      // A cut-off consumer takes its hold back first, so nothing from its committed offset on is reclaimed while
      // its cursor opens; if that offset left the log already, it stays cut off (LogOutOfRange names the oldest held).
      lease.resume()
      const resumed = yield* subscribe(lease.committed()).pipe(Effect.tapError(() => Effect.sync(lease.relinquish)))
      return { cursor: resumed, lease }
    })

  const subscribe: SubscriberShape["subscribe"] = (topic, options = {}) =>
    Effect.gen(function*() {
      const { cursor, lease }: { cursor: LogCursor; lease: ConsumerLease | undefined } = yield* open(topic, options)
      const start = cursor.position()
      const view = new BatchView(topic)
      /** The batch handed out last (its global seq and first offset), confirmed at the next pull. */
      let handedOut: { g: number; offset: number } | undefined
      let malformed: string | undefined
      const onBatch = (b: LogBatchView) => {
        const payload = b.bytes.subarray(b.offset, b.offset + b.length)
        malformed = view.aim(
          payload,
          b.messageCount,
          b.totalOrder,
          b.totalOrder + b.startIndex,
          b.clientId,
          b.sessionEpoch
        )
        handedOut = { g: b.globalSeq, offset: view.offset }
      }
      const outOfRange = (requested: number) =>
        Effect.flatMap(reader.bounds(topic).pipe(Effect.orDie), ({ earliest, end }) =>
          Effect.fail(new LogOutOfRange({ topic, requested, earliest, end })))
      const cutOff = (l: ConsumerLease) =>
        Effect.flatMap(reader.bounds(topic).pipe(Effect.orDie), ({ earliest }) =>
          Effect.fail(new ConsumerCutOff({ topic, name: l.name, committed: l.committed(), earliest })))

      const policy = autoCommitPolicy(options.autoCommit)
      let committedAt = performance.now()
      let committed = start
      const commitAt = (offset: number) =>
        Effect.gen(function*() {
          if (lease === undefined) {
            return yield* new CommitRejected({
              topic,
              reason: "an anonymous subscription has nothing to commit (subscribe with a consumer name)"
            })
          }
          if (!Number.isSafeInteger(offset) || offset < committed || offset > cursor.position()) {
            return yield* new CommitRejected({
              topic,
              reason: `offset ${offset} is outside [${committed}, ${cursor.position()}] (committed, delivered)`
            })
          }
          // A cut-off consumer's batches may be gone already.
          if (lease.cutOff() || !lease.commit(offset, yield* batchAt(topic, offset))) {
            return yield* cutOff(lease)
          }
          committed = offset
          committedAt = performance.now()
          // Committed past the batch in hand: it is done with, and retention may take it now.
          if (offset === cursor.position()) {
            handedOut = undefined
          }
        })
      /** A pull means what was handed out before is processed: committed once the policy says so (also while the pull waits). */
      let delivered = start
      const autoCommit = Effect.suspend(() => {
        if (lease === undefined || delivered === committed) {
          return Effect.void
        }
        const due = delivered - committed >= policy.everyMessages ||
          performance.now() - committedAt >= policy.intervalMs
        return due ? commitAt(delivered).pipe(Effect.catchTag("CommitRejected", Effect.die)) : Effect.void
      })
      /** How long a waiting pull may sleep before an auto-commit is due. */
      const waitMs = () =>
        lease === undefined || delivered === committed
          ? WAIT_SLICE_MS
          : Math.max(0, Math.min(WAIT_SLICE_MS, committedAt + policy.intervalMs - performance.now()))

      const pull: Effect.Effect<BatchView, SubscriptionError> = Effect.gen(function*() {
        if (lease?.cutOff()) {
          return yield* cutOff(lease)
        }
        if (handedOut !== undefined) {
          if (!cursor.retained(handedOut.g)) {
            return yield* outOfRange(handedOut.offset)
          }
          delivered = cursor.position()
          yield* autoCommit
          handedOut = undefined
        }
        for (;;) {
          const n = yield* cursor.pollBatches(onBatch, 1)
          if (malformed !== undefined) {
            return yield* new LogCorrupt({ reason: `topic ${topic}: batch at offset ${view.offset}: ${malformed}` })
          }
          if (n === 1) {
            return view
          }
          yield* cursor.awaitMore(waitMs())
          if (lease?.cutOff()) {
            return yield* cutOff(lease)
          }
          yield* autoCommit
        }
      })
      const subscription: Subscription = {
        topic,
        start,
        consumer: options.consumer,
        batches: Stream.repeatEffectOption(Effect.mapError(pull, Option.some)),
        pull,
        poll: (onBatch) =>
          Effect.map(pull, (batch) => (onBatch(batch), 1)),
        position: cursor.position,
        lag: Effect.map(reader.bounds(topic).pipe(Effect.orDie), ({ end }) =>
          Math.max(0, end - cursor.position())),
        commit: (offset) =>
          Effect.suspend(() => commitAt(offset ?? cursor.position()))
      }
      return subscription
    })

  return { subscribe, bounds: (topic) => reader.bounds(topic) }
}

/** The local Subscriber: reads the region this process maps (needs its `LogReader` and `Consumers`, e.g. `Roles.reader`). */
export const layer: Layer.Layer<Subscriber, never, LogReader | Consumers> = Layer.effect(
  Subscriber,
  Effect.map(Effect.all([LogReader, Consumers]), ([reader, consumers]) => subscriberOver(reader, consumers))
)
