/**
 * One topic being read in a process that maps the log (`openTopicReader`): its cursor, its named
 * consumer's lease, the batch it handed out and its commits. A subscription to one topic pulls
 * from one (Subscriber.ts); a subscription to several takes turns over many (SubscriberTopics.ts).
 */
import { Effect } from "effect"
import { ConsumerCutOff, type ConsumerLease, type ConsumersShape } from "../../services/log/Consumers.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import {
  type LogBatchView,
  type LogCursor,
  LogOutOfRange,
  type LogReaderShape,
  outOfRangeFor
} from "../../services/log/LogReader.js"
import { LogCorrupt, TopicDeleted } from "../../services/log/Topics.js"
import {
  CommitRejected,
  type SubscribeError,
  type SubscribeOptions,
  type SubscriptionError
} from "../../services/net/Subscriber.js"
import { BatchView } from "./SubscriberBatch.js"

/** One wait for the next batch; it only re-checks when it ends (the head's liveness is watched inside it). */
export const WAIT_SLICE_MS = 60_000
export const DEFAULT_AUTO_COMMIT_MS = 100

/** When a named consumer commits by itself (see `SubscribeOptions.autoCommit`). */
export const autoCommitPolicy = (option: SubscribeOptions["autoCommit"]) =>
  option === "off"
    ? { everyMessages: Infinity, intervalMs: Infinity }
    : { everyMessages: option?.everyMessages ?? Infinity, intervalMs: option?.intervalMs ?? DEFAULT_AUTO_COMMIT_MS }

/** One topic being read: its cursor, its named consumer's lease, the batch handed out, its commits. */
export interface TopicReader {
  readonly topic: string
  /** Where it started (its first offset). */
  readonly start: number
  readonly position: () => number
  /** The batch handed out before is done with: checked still held, committed when the policy says so. */
  readonly settle: Effect.Effect<void, SubscriptionError>
  /** The next batch now (the view, re-aimed), or undefined when none is there yet. */
  readonly take: Effect.Effect<BatchView | undefined, SubscriptionError>
  /** True once there is something to read, false after `timeoutMs`. */
  readonly awaitMore: (timeoutMs: number) => Effect.Effect<boolean, HeadUnavailable>
  /** How long a wait may last before an auto-commit falls due. */
  readonly waitMs: () => number
  /** After a wait: a consumer cut off meanwhile fails; an auto-commit due is made. */
  readonly afterWait: Effect.Effect<void, SubscriptionError>
  readonly commit: (offset?: number) => Effect.Effect<void, CommitRejected | SubscriptionError>
  /** Messages in the order past its position. */
  readonly lag: Effect.Effect<number, SubscribeError>
}

/**
 * A reader of `topic` from where `options` say, joined as consumer `options.consumer` when
 * given (resuming at its committed offset); the cursor and lease live in the scope.
 */
export const openTopicReader = (
  reader: LogReaderShape,
  consumers: ConsumersShape | undefined,
  topic: string,
  options: SubscribeOptions
) =>
  Effect.gen(function*() {
    const { cursor, lease }: { cursor: LogCursor; lease: ConsumerLease | undefined } = yield* open(
      reader,
      consumers,
      topic,
      options
    )
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
    // A topic gone since it was read: what was handed out of it is not out of range, its topic is deleted.
    const bounds = reader.bounds(topic).pipe(
      Effect.catchTag("TopicNotFound", () => Effect.fail(new TopicDeleted({ name: topic })))
    )
    const outOfRange = (requested: number) =>
      Effect.flatMap(bounds, ({ earliest, end }) => Effect.fail(new LogOutOfRange({ topic, requested, earliest, end })))
    const cutOff = (l: ConsumerLease) =>
      Effect.flatMap(
        bounds,
        ({ earliest }) => Effect.fail(new ConsumerCutOff({ topic, name: l.name, committed: l.committed(), earliest }))
      )
    /** The next global seq from offset `offset` on (the batch holding it). */
    const batchAt = (offset: number) =>
      Effect.scoped(Effect.map(reader.subscribe(topic, { from: offset }), (c) => c.nextBatch())).pipe(Effect.orDie)

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
        if (lease.cutOff() || !lease.commit(offset, yield* batchAt(offset))) return yield* cutOff(lease)
        committed = offset
        committedAt = performance.now()
        // Committed past the batch in hand: it is done with, and retention may take it now.
        if (offset === cursor.position()) handedOut = undefined
      })
    /** A pull means what was handed out before is processed: committed once the policy says so (also while the pull waits). */
    let delivered = start
    const autoCommit = Effect.suspend((): Effect.Effect<void, SubscriptionError> => {
      if (lease === undefined || delivered === committed) return Effect.void
      const due = delivered - committed >= policy.everyMessages || performance.now() - committedAt >= policy.intervalMs
      return due ? commitAt(delivered).pipe(Effect.catchTag("CommitRejected", Effect.die)) : Effect.void
    })
    const topicReader: TopicReader = {
      topic,
      start,
      position: cursor.position,
      settle: Effect.suspend((): Effect.Effect<void, SubscriptionError> => {
        if (lease?.cutOff()) return cutOff(lease)
        if (handedOut === undefined) return Effect.void
        if (!cursor.retained(handedOut.g)) return outOfRange(handedOut.offset)
        delivered = cursor.position()
        handedOut = undefined
        return autoCommit
      }),
      take: Effect.flatMap(cursor.pollBatches(onBatch, 1), (n) => {
        if (malformed !== undefined) {
          return Effect.fail(new LogCorrupt({ reason: `topic ${topic}: batch at offset ${view.offset}: ${malformed}` }))
        }
        return Effect.succeed(n === 1 ? view : undefined)
      }),
      awaitMore: cursor.awaitMore,
      waitMs: () =>
        lease === undefined || delivered === committed
          ? WAIT_SLICE_MS
          : Math.max(0, Math.min(WAIT_SLICE_MS, committedAt + policy.intervalMs - performance.now())),
      afterWait: Effect.suspend(() => (lease?.cutOff() ? cutOff(lease) : autoCommit)),
      commit: (offset) => Effect.suspend(() => commitAt(offset ?? cursor.position())),
      lag: Effect.map(bounds, ({ end }) => Math.max(0, end - cursor.position()))
    }
    return topicReader
  })

/** A cursor at `from`, joined as consumer `name` when given (resuming at its committed offset). */
const open = (
  reader: LogReaderShape,
  consumers: ConsumersShape | undefined,
  topic: string,
  options: SubscribeOptions
) =>
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
    const consumer = options.consumer
    const resume = subscribe(lease.committed()).pipe(
      Effect.catchTag("LogOutOfRange", (e) => Effect.fail(outOfRangeFor(e, consumer)))
    )
    if (!lease.cutOff()) return { cursor: yield* resume, lease }
    // A cut-off consumer takes its hold back first, so nothing from its committed offset on is reclaimed while
    // its cursor opens; if that offset left the log already, it stays cut off (LogOutOfRange names the oldest held).
    lease.resume()
    const resumed = yield* resume.pipe(Effect.tapError(() => Effect.sync(lease.relinquish)))
    return { cursor: resumed, lease }
  })
