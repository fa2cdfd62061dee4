/**
 * Appends: a record is copied into the pending chunk and its index returned at once, the writer
 * woken (SegmentWriter.ts); a record that would take the open segment past `segmentBytes` first
 * queues a roll. And the waits on the stream: for room, and for the durable frontier.
 */
import { Deferred, Effect } from "effect"
import { SegmentIoError, SegmentWaitTimeout, type SegmentWriteError } from "../../../services/log/Segments.js"
import { indexRecord, newIndex, sealIndex } from "./SegmentIndex.js"
import { encodeRecord, MAX_RECORD_BYTES, payloadLength, recordBytes } from "./SegmentRecord.js"
import { CHUNK_BYTES, type StreamState, wakeWriter } from "./SegmentStream.js"

/** `SegmentLog.tryAppend`: the record's index, `"full"` while `maxPendingBytes` wait for the disk, or why it cannot be taken. */
export const tryAppend = (
  s: StreamState,
  record: Uint8Array | ReadonlyArray<Uint8Array>
): number | "full" | SegmentWriteError => {
  if (s.failure !== undefined) return s.failure
  // The writer is gone (its scope closed): nothing appended now would reach the disk.
  if (s.closing) {
    return new SegmentIoError({ path: s.dir, operation: "append", code: "ECLOSED", reason: "the stream is closed" })
  }
  const length = payloadLength(record)
  const size = recordBytes(length)
  if (length > MAX_RECORD_BYTES) {
    return new SegmentIoError({
      path: s.dir,
      operation: "append",
      code: "EMSGSIZE",
      reason: `a record of ${length} bytes exceeds ${MAX_RECORD_BYTES}`
    })
  }
  if (s.pendingBytes > 0 && s.pendingBytes + size > s.maxPendingBytes) return "full"
  if (s.tailBytes > 0 && s.tailBytes + size > s.segmentBytes) {
    s.pending.push({
      kind: "roll",
      base: s.appended,
      index: s.filling === undefined ? undefined : sealIndex(s.filling, s.indexBytes)
    })
    s.filling = s.indexBytes > 0 ? newIndex() : undefined
    s.tailBytes = 0
  }
  if (s.filling !== undefined && !indexRecord(s.filling, s.indexBytes, record, length)) s.filling = undefined
  if (s.chunk.length - s.chunkFill < size) {
    s.chunk = (size <= CHUNK_BYTES ? s.freeChunks.pop() : undefined) ?? new Uint8Array(Math.max(CHUNK_BYTES, size))
    s.chunkFill = 0
  }
  const start = s.chunkFill
  s.chunkFill = encodeRecord(s.chunk, start, record, length)
  s.appended++
  const last = s.pending[s.pending.length - 1]
  if (last !== undefined && last.kind === "bytes" && last.chunk === s.chunk && last.end === start) {
    last.end = s.chunkFill
    last.recordsAfter = s.appended
  } else {
    s.pending.push({ kind: "bytes", chunk: s.chunk, start, end: s.chunkFill, recordsAfter: s.appended })
  }
  s.tailBytes += size
  s.pendingBytes += size
  wakeWriter(s)
  return s.appended - 1
}

/** Waits until `ready()` or the writer stops, at most `timeoutMs`. */
export const waitFor = <A>(s: StreamState, ready: () => A | undefined, timeoutMs: number, waitingFor: string) =>
  Effect.gen(function*() {
    const started = Date.now()
    for (;;) {
      const value = ready()
      if (value !== undefined) return value
      if (s.failure !== undefined) return yield* s.failure
      const left = timeoutMs - (Date.now() - started)
      const moved = left > 0 ? yield* Deferred.await(s.changed).pipe(Effect.timeoutOption(left)) : undefined
      if (moved === undefined || moved._tag === "None") {
        const value = ready()
        if (value !== undefined) return value
        return yield* new SegmentWaitTimeout({ stream: s.stream, waitingFor, waitedMs: Date.now() - started })
      }
    }
  })

/** `SegmentLog.append`: `tryAppend` that waits (at most `timeoutMs`) while the stream is full. */
export const append = (s: StreamState, record: Uint8Array | ReadonlyArray<Uint8Array>, timeoutMs: number) =>
  Effect.flatMap(
    waitFor(
      s,
      () => {
        const r = tryAppend(s, record)
        return r === "full" ? undefined : r
      },
      timeoutMs,
      `room for a record (${s.pendingBytes} bytes pending, at most ${s.maxPendingBytes})`
    ),
    (r) => (typeof r === "number" ? Effect.succeed(r) : Effect.fail(r))
  )

/** `SegmentLog.awaitDurable`: waits until records 0..count-1 are durable. */
export const awaitDurable = (s: StreamState, count: number, timeoutMs: number) =>
  waitFor(s, () => (s.durable >= count ? s.durable : undefined), timeoutMs, `records 0..${count - 1} to be durable`)
