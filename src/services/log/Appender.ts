/**
 * Appender: the broker side of the log, in the process that owns a broker slot. It copies a
 * batch into the topic's Blog for this broker, writes the 128-byte batch header into the
 * next PBR slot, publishes its commit word last and rings the sequencer. A full PBR or Blog
 * is backpressure: it waits, then fails with `AppendTimeout`; nothing is dropped.
 */
import { Context, Data, type Effect, Schema } from "effect"
import type { TopicDeleted, TopicNotFound } from "./Topics.js"

const U32 = Schema.Int.pipe(Schema.between(0, 0xffffffff))

/** What a publisher's batch header says; the payload (messages `u32 length, u32 flags, payload`, each padded to 8) travels next to it. */
export const BatchHeader = Schema.Struct({
  clientId: U32,
  sessionEpoch: U32,
  /** Per session (client id, session epoch): 0, 1, 2, … contiguous across all brokers. */
  batchSeq: Schema.Int.pipe(Schema.between(0, Number.MAX_SAFE_INTEGER)),
  messageCount: Schema.Int.pipe(Schema.positive()),
  payloadBytes: Schema.Int.pipe(Schema.positive()),
  /** crc32c (Castagnoli) of the payload; the broker checks it before appending. */
  crc32c: U32
})
export type BatchHeader = typeof BatchHeader.Type

/** Where an appended batch went. */
export interface AppendReceipt {
  readonly brokerId: number
  /** Absolute position in this broker's PBR for the topic. */
  readonly pbrSeq: number
  /** Absolute byte position of the payload in this broker's Blog for the topic. */
  readonly blogPosition: number
}

/** TopicDeleted: the topic this broker appended to was deleted (its name may since name another). */
export type AppendError = TopicNotFound | TopicDeleted | AppendTimeout | BatchRejected

export interface AppenderShape {
  /** The broker slot this process owns. */
  readonly brokerId: number
  /** Copies `payload` (e.g. a view of a socket chunk; not retained) into the log and commits the batch. */
  readonly append: (
    topic: string,
    header: BatchHeader,
    payload: Uint8Array
  ) => Effect.Effect<AppendReceipt, AppendError>
  /**
   * Zero-copy: reserves `header.payloadBytes` in the Blog and lets `fill` write the payload
   * there in place before the batch is committed. `fill` must not keep `dst`.
   */
  readonly appendWith: (
    topic: string,
    header: BatchHeader,
    fill: (dst: Uint8Array) => void
  ) => Effect.Effect<AppendReceipt, AppendError>
  /**
   * `appendWith` without an Effect and without waiting, for hot receive paths: the receipt,
   * or `"wait"` when it cannot append right now (no room, or the topic's state is not set
   * up in this process yet) — then call `appendWith`, which waits — or the error.
   */
  readonly tryAppendWith: (
    topic: string,
    header: BatchHeader,
    fill: (dst: Uint8Array) => void
  ) => AppendReceipt | "wait" | TopicNotFound | TopicDeleted | BatchRejected
  /**
   * Receiving in place: the Blog space where the topic's next batch of `payloadBytes` will
   * go, as a view the caller may fill before it appends (a socket reading straight into it),
   * with up to `slackBytes` of free space past the payload it may write too. The next append
   * to the topic on this broker goes there: where the log keeps payloads in that space, its
   * `fill` gets a `dst` over the view's own bytes (nothing to copy). Any append, or another
   * `tryReserve`, first calls `revoked` (at once, before writing): the view is then no longer
   * the caller's, who copies out what it still needs.
   * `"wait"` when there is no room now or the topic is not set up in this process yet.
   */
  readonly tryReserve: (
    topic: string,
    payloadBytes: number,
    slackBytes: number,
    revoked: () => void
  ) => Uint8Array | "wait" | TopicNotFound
  /**
   * The largest batch payload the topic takes (half of a writer's lane: its memory / writers) and
   * its largest message (value, key and headers), its target set up here if it was not: what a
   * publisher seals its batches of the topic at, and the messages it refuses before sending.
   */
  readonly limits: (topic: string) => Effect.Effect<TopicLimits, TopicNotFound | TopicDeleted | BatchRejected>
  /**
   * Registers a new publisher session of `clientId` on the topic and returns its epoch,
   * handed out by the log (never chosen by the client), so a restarted publisher or a
   * stranger reusing the client id can never have its batches taken for resends.
   */
  readonly registerSession: (
    topic: string,
    clientId: number
  ) => Effect.Effect<number, TopicNotFound | TopicDeleted | BatchRejected | SessionTableFull>
  /**
   * Appends the session's close marker: it sent batches 0..batches-1. The sequencer releases
   * the session once they are all ordered (at once if they are), freeing its table line.
   */
  readonly closeSession: (
    topic: string,
    clientId: number,
    sessionEpoch: number,
    batches: number
  ) => Effect.Effect<AppendReceipt, AppendError>
}

export class Appender extends Context.Tag("cxlog/Appender")<Appender, AppenderShape>() {}

export class AppendTimeout extends Schema.TaggedError<AppendTimeout>()("AppendTimeout", {
  topic: Schema.String,
  brokerId: Schema.Int,
  waitedMs: Schema.Number,
  /** What was full: "pbr" (batch headers) or "blog" (payload bytes). */
  full: Schema.Literal("pbr", "blog")
}) {
  override get message() {
    return `topic ${this.topic}, broker ${this.brokerId}: the ${
      this.full === "pbr" ? "PBR" : "Blog"
    } stayed full for ${this.waitedMs} ms (is the sequencer running? is a registered subscriber stuck?)`
  }
}

/** What one batch and one message of a topic may hold. */
export interface TopicLimits {
  readonly maxBatchBytes: number
  readonly maxMessageBytes: number
}

export class BatchRejected extends Schema.TaggedError<BatchRejected>()("BatchRejected", {
  topic: Schema.String,
  reason: Schema.String,
  /** Set when the batch is larger than the topic takes: its limit (the session ends `oversized`, the connection goes on). */
  maxBatchBytes: Schema.optionalWith(Schema.Int, { exact: true }),
  /** Set when the writer has no lane in the topic for want of heap (the session ends `region-full`, the connection goes on). */
  regionFull: Schema.optionalWith(Schema.Literal(true), { exact: true })
}) {
  override get message() {
    return `topic ${this.topic}: batch rejected: ${this.reason}`
  }
}

/** Every session line of the topic is in use (live sessions fill at most 7/8 of the table). */
export class SessionTableFull
  extends Schema.TaggedError<SessionTableFull>()("SessionTableFull", { topic: Schema.String, capacity: Schema.Int })
{
  override get message() {
    return `topic ${this.topic}: all ${this.capacity} publisher sessions are in use (sessions are released when a publisher closes, or after CXLOG_SESSION_IDLE_MS without a batch; raise CXLOG_LOG_SESSION_SLOTS for more)`
  }
}

/** A local publisher (or any appender asking for a free slot) found every broker slot owned by a live process. */
export class NoBrokerSlotFree extends Data.TaggedError("NoBrokerSlotFree")<{ readonly maxBrokers: number }> {
  override get message() {
    return `all ${this.maxBrokers} broker slots of the region are owned by live processes (brokers and local publishers each take one): ` +
      `create the region with more (CXLOG_LOG_MAX_BROKERS)`
  }
}

/** Another live process owns the broker slot: most often a broker started with the same id (0 unless given). */
export class BrokerSlotTaken
  extends Data.TaggedError("BrokerSlotTaken")<{ readonly brokerId: number; readonly pid: number }>
{
  override get message() {
    return `broker slot ${this.brokerId} is owned by live process ${this.pid} (another broker with id ${this.brokerId}, or a local publisher): ` +
      `give this broker another id (--broker-id, CXLOG_BROKER_ID, BrokerOptions.brokerId), each broker of a region its own`
  }
}
