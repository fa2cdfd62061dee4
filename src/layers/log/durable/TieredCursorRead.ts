/**
 * A tiered cursor's `poll` and `pollBatches` (TieredCursorState.ts): from the region once it
 * holds the position (the first batch after a switch from the disk must be the one the disk said
 * comes next), else the batches read from disk, each checked against its publisher's crc32c.
 */
import { Effect } from "effect"
import { crc32c } from "../../../native/Crc32c.js"
import type { LogBatchView, LogCursor, LogMessageView } from "../../../services/log/LogReader.js"
import { LogCorrupt, TopicDeleted } from "../../../services/log/Topics.js"
import { visitMessages } from "../ReadViews.js"
import {
  DISK_BATCHES,
  fetch,
  lost,
  outOfRange,
  problemError,
  regionHolds,
  type TieredCursorState,
  toDisk,
  toHot
} from "./TieredCursorState.js"

type OnBatch = ((b: LogBatchView) => void) | undefined
type OnMessage = ((m: LogMessageView) => void) | undefined

/** Delivers up to `max` batches to `onBatch` (resolving to the batches) or their messages to `onMessage` (to the messages). */
export const readTiered = (s: TieredCursorState, onBatch: OnBatch, onMessage: OnMessage, max: number) =>
  Effect.gen(function*() {
    if (s.failure !== undefined) return yield* s.failure
    // Read from disk, a deleted topic is learnt here: its copy on disk goes with it, and its name may be another topic's.
    if (s.hotCursor === undefined && (yield* s.deleted)) return yield* new TopicDeleted({ name: s.topic })
    // Caught up: carry on from the region (cheaper; zero copies) once it holds the position.
    if (s.hotCursor === undefined && (yield* regionHolds(s)) && (yield* toHot(s, s.position)) === undefined) {
      s.joinAt = s.next
    }
    if (s.hotCursor !== undefined) {
      const polled = yield* readHot(s, s.hotCursor, onBatch, onMessage, max)
      if (polled !== undefined) return polled
    }
    return yield* readDisk(s, onBatch, onMessage, max)
  })

/**
 * Polls the region's cursor; resolves to undefined when it fell behind the region before it was
 * shown the batch that went, having moved onto the disk (which has it).
 */
const readHot = (s: TieredCursorState, cursor: LogCursor, onBatch: OnBatch, onMessage: OnMessage, max: number) =>
  Effect.gen(function*() {
    /** The last batch a callback was given: if the region recycled that one, the callback saw what may be torn. */
    let shown = -1
    /** Set when the region's first batch after the disk's last is not where the disk said the next one is. */
    let mismatch: { readonly globalSeq: number; readonly offset: number; readonly startIndex: number } | undefined
    /** Whether `b` may be shown: the first batch after a switch from disk must be batch `joinAt`, starting at its first message. */
    const fits = (b: LogBatchView) => {
      if (mismatch !== undefined) return false
      if (s.joinAt === undefined) return true
      if (b.globalSeq !== s.joinAt || b.startIndex !== 0) {
        mismatch = { globalSeq: b.globalSeq, offset: b.totalOrder + b.startIndex, startIndex: b.startIndex }
        return false
      }
      s.joinAt = undefined
      return true
    }
    const polled = yield* Effect.either(
      onBatch !== undefined
        ? cursor.pollBatches((b) => {
          if (!fits(b)) return
          shown = b.globalSeq
          onBatch(b)
        }, max)
        : cursor.poll((m) => {
          if (!fits(m.batch)) return
          shown = m.batch.globalSeq
          onMessage!(m)
        }, max)
    )
    if (mismatch !== undefined) {
      // One log numbers and cuts its batches alike on disk and in the region: this copy is another log's.
      const b = mismatch
      return yield* new LogCorrupt({
        reason:
          `topic ${s.topic}: the copy on disk in ${s.directory} does not match the region at offset ${b.offset} ` +
          `(batch ${s.next} next on disk; the region has batch ${b.globalSeq} there, from its message ${b.startIndex}): is it this head's data directory?`
      })
    }
    if (polled._tag === "Right") return polled.right
    const e = polled.left
    if (e._tag !== "LogOutOfRange" || shown === cursor.nextBatch() || e.requested >= e.earliest) return yield* e
    // Fell behind the region before it was shown the batch: the disk has it.
    s.position = cursor.position()
    yield* toDisk(s, s.position)
    return undefined
  })

/** Delivers the batches read from disk (copies: `retained` holds for them), fetching more when none is left. */
const readDisk = (s: TieredCursorState, onBatch: OnBatch, onMessage: OnMessage, max: number) =>
  Effect.gen(function*() {
    const { batch, message, topic } = s
    if (s.prefetched.length === 0) yield* fetch(s, Math.max(1, Math.min(max, DISK_BATCHES)))
    let batches = 0
    let messages = 0
    while (batches < max && s.prefetched.length > 0) {
      const b = s.prefetched[0]!
      if (b.totalOrder > s.position) return yield* outOfRange(s, s.position, b.totalOrder)
      if (b.payload.length % 8 !== 0) {
        return yield* new LogCorrupt({
          reason:
            `topic ${topic}: batch ${b.globalSeq} on disk has ${b.payload.length} payload bytes, not whole messages`
        })
      }
      // The record's own checksum held; the publisher's covers the payload as it was received.
      if (crc32c(b.payload, 0, b.payload.length) !== b.crc32c) {
        return yield* new LogCorrupt({
          reason: `topic ${topic}: batch ${b.globalSeq} (offset ${b.totalOrder}) on disk fails its publisher's crc32c`
        })
      }
      batch.describe(
        b.globalSeq,
        b.totalOrder,
        b.messageCount,
        b.clientId,
        b.sessionEpoch,
        b.batchSeq,
        b.brokerId,
        b.crc32c
      )
      batch.bytes = b.payload
      batch.words = new Uint32Array(b.payload.buffer, b.payload.byteOffset, b.payload.length / 4)
      batch.offset = 0
      batch.length = b.payload.length
      batch.startIndex = s.position - b.totalOrder
      if (onBatch !== undefined) onBatch(batch)
      if (onMessage !== undefined && !visitMessages(batch, message, onMessage)) {
        return yield* new LogCorrupt({ reason: `topic ${topic}: batch ${b.globalSeq} on disk has malformed messages` })
      }
      s.prefetched.shift()
      messages += b.messageCount - batch.startIndex
      s.position = b.totalOrder + b.messageCount
      s.next = b.globalSeq + 1
      s.diskHi = s.next
      batches++
    }
    if (batches === 0 && s.problem !== undefined) return yield* problemError(s, s.problem)
    if (batches > 0) s.missingSince = undefined
    else if (lost(s)) return yield* outOfRange(s, s.position)
    return onBatch !== undefined ? batches : messages
  })
