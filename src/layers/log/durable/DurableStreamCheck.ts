/**
 * Whether a data directory's stream of a topic belongs to the log in the region, checked before a
 * writer appends to it: a stream that holds batches past the region's end belongs to an earlier
 * log (`DurableStreamAhead`), and one whose last batch is not the region's batch at that offset
 * belongs to another log altogether (`DurableStreamMismatch`: a head given another region's data
 * directory). Appending the region's batches to either would make a stream no recovery can read,
 * losing what was on it and what was acknowledged at level 2 into it.
 */
import { Data, Effect } from "effect"
import { type LogBatchView, LogReader } from "../../../services/log/LogReader.js"

/** The topic's stream holds batches past the end of the log in the region: it belongs to an earlier log (recover from it, or use another data directory). */
export class DurableStreamAhead extends Data.TaggedError("DurableStreamAhead")<{
  readonly topic: string
  readonly stream: string
  readonly streamEnd: number
  readonly logEnd: number
}> {
  override get message() {
    return `topic ${this.topic}: the data directory's stream ${this.stream} holds messages up to offset ${this.streamEnd}, ` +
      `but the log in the region ends at ${this.logEnd}: it belongs to an earlier log. Recover from it, or give the head another data directory`
  }
}

/** The stream's last batch is not the region's batch at its offset: the stream is another log's. */
export class DurableStreamMismatch extends Data.TaggedError("DurableStreamMismatch")<{
  readonly topic: string
  readonly stream: string
  /** The stream's last batch: its first offset. */
  readonly offset: number
}> {
  override get message() {
    return `topic ${this.topic}: the data directory's stream ${this.stream} ends with a batch at offset ${this.offset} ` +
      `that is not the region's batch there: it belongs to another log (another region's data directory?). ` +
      `Give the head this region's data directory, or a new one; recover the other log from its own`
  }
}

/** What the stream's last record says of its batch. */
export interface LastBatch {
  readonly totalOrder: number
  readonly messageCount: number
  readonly crc32c: number
}

/**
 * Fails unless the stream whose last batch is `last` (undefined: empty) continues the log in the
 * region: not past its end, and its last batch the region's own where the region still holds it.
 */
export const checkStreamContinues = (topic: string, stream: string, last: LastBatch | undefined) =>
  Effect.gen(function*() {
    if (last === undefined) return
    const reader = yield* LogReader
    const bounds = yield* reader.bounds(topic)
    const streamEnd = last.totalOrder + last.messageCount
    if (streamEnd > bounds.end) {
      return yield* new DurableStreamAhead({ topic, stream, streamEnd, logEnd: bounds.end })
    }
    // The region no longer holds it: nothing to compare (a gap the writer reports on its own).
    if (last.totalOrder < bounds.earliest) return
    const regionBatch = yield* Effect.scoped(Effect.gen(function*() {
      const cursor = yield* reader.subscribe(topic, { from: last.totalOrder, regionOnly: true })
      let found: Pick<LogBatchView, "totalOrder" | "messageCount" | "crc32c"> | undefined
      yield* cursor.pollBatches((b) => {
        found = { totalOrder: b.totalOrder, messageCount: b.messageCount, crc32c: b.crc32c }
      }, 1)
      return found
    })).pipe(Effect.catchTag("LogOutOfRange", () => Effect.succeed(undefined)))
    if (regionBatch === undefined) return
    if (
      regionBatch.totalOrder !== last.totalOrder || regionBatch.messageCount !== last.messageCount ||
      regionBatch.crc32c !== last.crc32c
    ) {
      return yield* new DurableStreamMismatch({ topic, stream, offset: last.totalOrder })
    }
  })
