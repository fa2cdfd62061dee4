/**
 * LogReader: reads a topic's global order in the process that maps the region — strictly
 * contiguous, from a message offset, with zero-copy views of each payload. A durable
 * (registered) cursor holds retention: brokers do not reuse what it has not read. A reader
 * behind the retained window gets `LogOutOfRange`, never skipped or torn data.
 */
import { Context, Data, type Effect, Schema, type Scope } from "effect"
import type { HeadUnavailable } from "./HeadWatch.js"
import type { LogCorrupt, TopicDeleted, TopicInfo, TopicNotFound } from "./Topics.js"

/** One batch of the total order; valid only during the callback it is passed to. */
export interface LogBatchView {
  readonly globalSeq: number
  /** Total order (message offset) of the batch's first message. */
  readonly totalOrder: number
  readonly messageCount: number
  readonly clientId: number
  readonly sessionEpoch: number
  readonly batchSeq: number
  readonly brokerId: number
  readonly crc32c: number
  /** The bytes holding the payload (the region for the live layer) and where it is. */
  readonly bytes: Uint8Array
  readonly offset: number
  readonly length: number
  /** Messages of this batch before the cursor's position (only on the first batch read). */
  readonly startIndex: number
}

/** One message; the same object is reused for every message, valid only during the callback. */
export interface LogMessageView {
  readonly batch: LogBatchView
  readonly totalOrder: number
  /** Index within its batch. */
  readonly index: number
  readonly flags: number
  /**
   * The record's body is bytes[offset, offset + length): the log does not look inside it. A
   * key, headers and (on a batch's first record) the batch's base timestamp precede the value
   * (docs/protocol.md, "Messages"); the Subscriber and `MessageRecord` decode them.
   */
  readonly bytes: Uint8Array
  readonly offset: number
  readonly length: number
  /** A zero-copy view of the body. */
  readonly payload: Uint8Array
}

export interface LogCursor {
  readonly topic: TopicInfo
  /** Total order of the next message to read. */
  readonly position: () => number
  /** Global seq of the next batch to read. */
  readonly nextBatch: () => number
  /** Delivers every message available now, up to `maxBatches` batches; returns how many messages. TopicDeleted once the topic is. */
  readonly poll: (
    onMessage: (message: LogMessageView) => void,
    maxBatches?: number
  ) => Effect.Effect<number, LogOutOfRange | LogCorrupt | TopicDeleted>
  /** Delivers whole batches available now; returns how many batches. */
  readonly pollBatches: (
    onBatch: (batch: LogBatchView) => void,
    maxBatches?: number
  ) => Effect.Effect<number, LogOutOfRange | LogCorrupt | TopicDeleted>
  /**
   * True once there is something to read, false after `timeoutMs`. Fails with `HeadUnavailable`
   * once the head has been unavailable past its bound (nothing more would be ordered).
   */
  readonly awaitMore: (timeoutMs: number) => Effect.Effect<boolean, HeadUnavailable>
  /**
   * Whether batch `globalSeq` (its GOI entry and payload) is still held: what was read of a batch
   * after its callback returned (a view kept, bytes still being sent) is intact only while this holds.
   */
  readonly retained: (globalSeq: number) => boolean
  /**
   * Whether message `offset` of batch `globalSeq` is still the reader's: the batch is held
   * (`retained`) and no trim cut past the message. A trim cuts inside the batch holding its cut,
   * whose earlier messages are dropped for every reader though their bytes stay.
   */
  readonly holds: (globalSeq: number, offset: number) => boolean
}

export interface SubscribeOptions {
  /** A message offset (total order), "earliest" retained, or "latest" (only what comes next). Default "earliest". */
  readonly from?: number | "earliest" | "latest"
  /**
   * Start at the first retained message whose timestamp (its publisher's clock, ms since the
   * epoch) is at or after this; in place of `from`. A time before every retained message starts
   * at the earliest, one after them all at the end.
   */
  readonly fromTime?: number
  /** Register the cursor so retention waits for it (lossless; publishers get backpressure). */
  readonly durable?: boolean
  /**
   * Read only what the region holds, never a copy on disk (layers/log/durable/TieredReader.ts): a named
   * consumer's hold lives in the region, so it must not start below the region's window.
   */
  readonly regionOnly?: boolean
}

export interface LogReaderShape {
  readonly subscribe: (
    topic: string,
    options?: SubscribeOptions
  ) => Effect.Effect<LogCursor, TopicNotFound | LogOutOfRange | SubscriberTableFull, Scope.Scope>
  /** Message offsets: the earliest retained and the end (the next to be ordered). */
  readonly bounds: (topic: string) => Effect.Effect<{ readonly earliest: number; readonly end: number }, TopicNotFound>
}

export class LogReader extends Context.Tag("cxlog/LogReader")<LogReader, LogReaderShape>() {}

export class LogOutOfRange extends Schema.TaggedError<LogOutOfRange>()("LogOutOfRange", {
  topic: Schema.String,
  /** The message offset asked for (or being read). */
  requested: Schema.Number,
  earliest: Schema.Number,
  end: Schema.Number,
  /** The named consumer whose subscription asked for it: the message says how to move or remove it. */
  consumer: Schema.optional(Schema.String)
}) {
  override get message() {
    const window = `[${this.earliest}, ${this.end})`
    if (this.consumer === undefined) {
      return `topic ${this.topic}: offset ${this.requested} is outside the retained window ${window}`
    }
    const name = JSON.stringify(this.consumer)
    return `topic ${this.topic}: consumer ${name} resumes at offset ${this.requested}, outside the retained window ` +
      `${window}: move it (cxlog consumers reset ${name} --topic ${this.topic} --to earliest) or remove it ` +
      `(cxlog consumers --topic ${this.topic} --remove ${name})`
  }
}

/** `e` as the named consumer `consumer`'s: its message says how to move or remove the consumer. */
export const outOfRangeFor = (e: LogOutOfRange, consumer: string): LogOutOfRange =>
  new LogOutOfRange({ topic: e.topic, requested: e.requested, earliest: e.earliest, end: e.end, consumer })

export class SubscriberTableFull
  extends Data.TaggedError("SubscriberTableFull")<{ readonly topic: string; readonly slots: number }>
{
  override get message() {
    return `topic ${this.topic}: all ${this.slots} durable subscriber slots are taken (raise CXLOG_LOG_SUBSCRIBER_SLOTS)`
  }
}
