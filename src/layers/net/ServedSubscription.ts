/**
 * A subscription a broker serves, once its handshake is over (SubscriptionServer.ts), over its
 * state record (`Served`): the rounds that send batches while there is credit (corked writes of
 * DATA headers and payloads from where they lie, then the check that none was reclaimed while
 * the kernel took it), the CREDIT and COMMIT frames the client sends, and the idle watch.
 */
import { Effect } from "effect"
import type { Socket } from "node:net"
import { ConsumerCutOff, type ConsumerLease } from "../../services/log/Consumers.js"
import { type LogBatchView, type LogCursor, LogOutOfRange, type LogReaderShape } from "../../services/log/LogReader.js"
import { WireViolation } from "./Control.js"
import { type Frame, FRAME_HEADER_BYTES, FrameType } from "./Frame.js"
import { MAX_CREDIT, writeDataHeader } from "./SubscribeFrames.js"

export const EMPTY = Buffer.alloc(0)
/** Batches written per round (one corked write of their headers and payloads). */
export const ROUND_BATCHES = 64
/** Batches whose first offsets a subscription keeps (a power of two above the most in flight: credit and a round). */
const SENT_RING = 8192
/** One wait for the log to move; its end only re-checks (a commit wakes it at once). */
export const WAIT_SLICE_MS = 60_000

export interface Served {
  readonly socket: Socket
  readonly topic: string
  readonly reader: LogReaderShape
  readonly cursor: LogCursor
  /** The named consumer's lease; undefined for an anonymous subscription. */
  readonly lease: ConsumerLease | undefined
  committed: number
  /** DATA frames the client may still be sent. */
  credit: number
  /** Wakes the send loop waiting for credit. */
  creditArrived: (() => void) | undefined
  /**
   * The first offset of each batch sent lately, by global seq (a topic's are consecutive): a
   * COMMIT names the batch its offset lies in from here, not by a search of the log's window
   * (which walked the GOI from its oldest slot).
   */
  readonly firstOffsets: Float64Array
  readonly sentFrom: number
  /** One view per header slot, made once: the next round rewrites a slot only after the kernel took this round's. */
  readonly headerSlots: ReadonlyArray<Buffer>
  /**
   * The bytes batches lie in (the region's, or a disk batch's copy), as a Buffer made once per
   * source: a Uint8Array written to the socket is wrapped in a Buffer per write by the stream.
   */
  source: Uint8Array | undefined
  sourceBuffer: Buffer
  /** Global seq, first and end offset of each batch of the round, checked once the kernel has them. */
  readonly sent: Float64Array
  /** Batches in this round. */
  frames: number
  /**
   * Rounds whose writes the kernel has not taken yet (the callback of each round's last write
   * has not run): a write below the socket's high-water mark can stay pending without any
   * 'drain' to follow.
   */
  unwritten: number
  allWritten: (() => void) | undefined
}

export const newServed = (
  socket: Socket,
  reader: LogReaderShape,
  topic: string,
  cursor: LogCursor,
  lease: ConsumerLease | undefined,
  credit: number
): Served => {
  const headers = Buffer.allocUnsafe(ROUND_BATCHES * FRAME_HEADER_BYTES)
  return {
    socket,
    topic,
    reader,
    cursor,
    lease,
    committed: cursor.position(),
    credit,
    creditArrived: undefined,
    firstOffsets: new Float64Array(SENT_RING),
    sentFrom: cursor.nextBatch(),
    headerSlots: Array.from(
      { length: ROUND_BATCHES },
      (_, i) => headers.subarray(i * FRAME_HEADER_BYTES, (i + 1) * FRAME_HEADER_BYTES)
    ),
    source: undefined,
    sourceBuffer: Buffer.alloc(0),
    sent: new Float64Array(ROUND_BATCHES * 3),
    frames: 0,
    unwritten: 0,
    allWritten: undefined
  }
}

export const cutOff = (s: Served, l: ConsumerLease) =>
  Effect.flatMap(
    s.reader.bounds(s.topic).pipe(Effect.orDie),
    ({ earliest }) =>
      Effect.fail(new ConsumerCutOff({ topic: s.topic, name: l.name, committed: l.committed(), earliest }))
  )

/** The global seq of the batch holding `offset` (or of the next one, at the end of what was sent); undefined if not sent lately. */
const sentBatchAt = (s: Served, offset: number): number | undefined => {
  const next = s.cursor.nextBatch()
  const oldest = Math.max(s.sentFrom, next - SENT_RING)
  if (offset === s.cursor.position()) return next
  if (oldest >= next || offset < s.firstOffsets[oldest % SENT_RING]!) return undefined
  let lo = oldest
  let hi = next - 1
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if (s.firstOffsets[mid % SENT_RING]! <= offset) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** A COMMIT: the offset must lie between the committed one and what was sent. */
export const commit = (s: Served, offset: number) =>
  Effect.gen(function*() {
    const lease = s.lease
    if (lease === undefined) {
      return yield* new WireViolation({ code: "bad-commit", detail: "COMMIT on an anonymous subscription" })
    }
    if (offset < s.committed || offset > s.cursor.position()) {
      return yield* new WireViolation({
        code: "bad-commit",
        detail: `offset ${offset} is outside [${s.committed}, ${s.cursor.position()}] (committed, sent)`
      })
    }
    // A cut-off consumer's batches may be gone already.
    if (lease.cutOff()) {
      return yield* cutOff(s, lease)
    }
    const g = sentBatchAt(s, offset) ??
      (yield* Effect.scoped(Effect.map(s.reader.subscribe(s.topic, { from: offset }), (c) => c.nextBatch())).pipe(
        Effect.orDie
      ))
    if (!lease.commit(offset, g)) return yield* cutOff(s, lease)
    s.committed = offset
  })

/** Reads CREDIT and COMMIT frames until the client closes its side. */
export const readCredits = (s: Served, nextFrame: Effect.Effect<Frame | undefined, WireViolation>) =>
  Effect.gen(function*() {
    for (;;) {
      const frame = yield* nextFrame
      if (frame === undefined) return
      if (frame.type === FrameType.COMMIT) {
        yield* commit(s, frame.seq)
        continue
      }
      s.credit = Math.min(MAX_CREDIT, s.credit + frame.seq)
      const wake = s.creditArrived
      s.creditArrived = undefined
      wake?.()
    }
  })

const asBuffer = (s: Served, bytes: Uint8Array): Buffer => {
  if (bytes !== s.source) {
    s.source = bytes
    s.sourceBuffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  return s.sourceBuffer
}

export const sendBatch = (s: Served, b: LogBatchView): void => {
  const header = s.headerSlots[s.frames]!
  writeDataHeader(header, b.clientId, b.sessionEpoch, b.totalOrder, b.messageCount, b.length, b.crc32c)
  // Header and payload go out in one writev when the round uncorks: the payload from where it lies in the log.
  s.socket.write(header)
  s.socket.write(asBuffer(s, b.bytes).subarray(b.offset, b.offset + b.length))
  s.firstOffsets[b.globalSeq % SENT_RING] = b.totalOrder
  const at = 3 * s.frames
  s.sent[at] = b.globalSeq
  s.sent[at + 1] = b.totalOrder
  s.sent[at + 2] = b.totalOrder + b.messageCount
  s.frames++
}

/** A round's last write was taken by the kernel: wakes `flushed` once every round's was. */
export const roundWritten = (s: Served): void => {
  if (--s.unwritten > 0) return
  const wake = s.allWritten
  s.allWritten = undefined
  wake?.()
}

/**
 * The offset of the round's first batch that left the window (its bytes may have gone out
 * torn), or -1. A named consumer's client may have committed past some already (it had them
 * intact, checked): those may be gone by now.
 */
export const reclaimed = (s: Served): number => {
  for (let i = 0; i < 3 * s.frames; i += 3) {
    if (s.sent[i + 2]! <= s.committed || s.cursor.retained(s.sent[i]!)) continue
    return s.sent[i + 1]!
  }
  return -1
}

export const outOfRange = (s: Served, requested: number) =>
  Effect.flatMap(
    s.reader.bounds(s.topic).pipe(Effect.orDie),
    ({ earliest, end }) => Effect.fail(new LogOutOfRange({ topic: s.topic, requested, earliest, end }))
  )

/** Resumes once credit arrived (at once if there is some). */
const awaitCreditOf = (s: Served) =>
  Effect.async<void>((resume) => {
    if (s.credit > 0) return resume(Effect.void)
    s.creditArrived = () => resume(Effect.void)
    return Effect.sync(() => {
      s.creditArrived = undefined
    })
  })

/** Resumes once every round written so far was handed to the kernel, or the socket is gone. */
export const flushedOf = (s: Served) =>
  Effect.async<void>((resume) => {
    const socket = s.socket
    if (s.unwritten === 0 || socket.writableLength === 0 || socket.destroyed) return resume(Effect.void)
    // Either way out takes the other's hook with it: a close listener left per round would pile up on the socket.
    const done = () => {
      s.allWritten = undefined
      socket.off("close", done)
      resume(Effect.void)
    }
    s.allWritten = done
    socket.once("close", done)
    return Effect.sync(() => {
      s.allWritten = undefined
      socket.off("close", done)
    })
  })

/**
 * Sends batches while there is credit, waiting for the log or for credit when there is none.
 * Its callbacks and effects are made here, once per subscription: a round makes none.
 */
export const sendRounds = (s: Served) => {
  const socket = s.socket
  const send = (b: LogBatchView) => sendBatch(s, b)
  const written = () => roundWritten(s)
  /** One callback per round, on its last write: the kernel took the round once it runs. */
  const endRound = Effect.sync(() => {
    if (s.frames > 0) {
      s.unwritten++
      socket.write(EMPTY, written)
    }
    socket.uncork()
  })
  const awaitCredit = awaitCreditOf(s)
  const flushed = flushedOf(s)
  return Effect.gen(function*() {
    for (;;) {
      if (socket.destroyed || socket.writableEnded) return
      if (s.lease?.cutOff()) return yield* cutOff(s, s.lease)
      if (s.credit === 0) {
        yield* awaitCredit
        continue
      }
      s.frames = 0
      socket.cork()
      const n = yield* s.cursor.pollBatches(send, Math.min(s.credit, ROUND_BATCHES)).pipe(Effect.ensuring(endRound))
      if (n === 0) {
        yield* s.cursor.awaitMore(WAIT_SLICE_MS)
        continue
      }
      s.credit -= n
      // Until the kernel has them, the writes still point into the log's space (most rounds it took them at once).
      if (socket.writableLength > 0) yield* flushed
      const gone = reclaimed(s)
      if (gone >= 0) return yield* outOfRange(s, gone)
    }
  })
}

/**
 * Fails with `idle-timeout` once the client held the broker up (no credit, or writes the
 * kernel does not take) with no byte moving either way for `timeoutMs`: checked every
 * quarter timeout from the socket's counts (no cost per frame), so it closes between 1 and
 * 1¼ timeouts after the last byte moved.
 */
export const idleWatch = (socket: Socket, credit: () => number, timeoutMs: number) =>
  Effect.async<never, WireViolation>((resume) => {
    if (timeoutMs <= 0) return
    let timer: ReturnType<typeof setTimeout> | undefined
    let moved = -1
    let quietChecks = 0
    const check = () => {
      const now = socket.bytesRead + socket.bytesWritten - socket.writableLength
      const heldUp = credit() === 0 || socket.writableLength > 0
      quietChecks = now !== moved || !heldUp ? 0 : quietChecks + 1
      moved = now
      if (quietChecks < 4) return void (timer = setTimeout(check, timeoutMs / 4).unref())
      resume(
        Effect.fail(
          new WireViolation({
            code: "idle-timeout",
            detail: `the subscriber granted no credit and took nothing for ${timeoutMs} ms`
          })
        )
      )
    }
    check()
    return Effect.sync(() => clearTimeout(timer))
  })
