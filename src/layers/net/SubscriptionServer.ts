/**
 * A broker's side of a subscriber connection (docs/protocol.md, "Subscribing"): after the
 * client's SUBSCRIBE, the broker reads the topic's total order from the region through its
 * `LogReader` (any broker serves any topic: the region holds them all) and sends each batch as
 * a DATA frame — a 32-byte header, then the stored payload written to the socket from where it
 * lies, with no copy per message or per batch — as long as the client has credit. The client
 * grants more with CREDIT frames as it consumes, so a slow subscriber slows only its own
 * connection, and the broker queues at most its credit's worth of frames for it.
 *
 * Subscribers hold no retention. The bytes a DATA frame names stay the region's while the
 * kernel takes them: a batch reclaimed before the kernel had all of it may arrive torn, so
 * after each round's writes are flushed the broker checks that every batch it sent is still
 * held, and if one is not it sends `out-of-range` (naming the oldest offset held) and closes.
 * The client checks each DATA frame's crc32c (the publisher's) and reads a mismatch followed by
 * that error as out-of-range: torn data is never delivered.
 *
 * A connection whose client holds the broker up — no credit left, or bytes the kernel does not
 * take — with no byte moving either way for the broker's idle timeout is closed with
 * `idle-timeout`, releasing its named consumer. A subscriber waiting for new messages (credit
 * held, nothing to send) is never idle; a host that vanished there is found by TCP keepalive.
 *
 * A named consumer cut off for holding publishers too long (services/log/Consumers.ts) gets
 * `consumer-cut-off` (its committed offset, the oldest offset held) when the broker next sends,
 * waits or commits for it; the client maps it back to `ConsumerCutOff`.
 */
import { Effect, Either, type Scope } from "effect"
import type { Socket } from "node:net"
import { ConsumerCutOff, type ConsumerLease, type ConsumersShape } from "../../services/log/Consumers.js"
import { type LogBatchView, type LogCursor, LogOutOfRange, type LogReaderShape } from "../../services/log/LogReader.js"
import { authenticate, type AuthServer, authorize, type UserRecord } from "./Auth.js"
import { decodeControl, errorFrame, KEEPALIVE_DELAY_MS, PROTOCOL_VERSION, WireViolation } from "./Control.js"
import { type Frame, FRAME_HEADER_BYTES, FrameType } from "./Frame.js"
import { MAX_CREDIT, Subscribe, Subscribed, subscribedFrame, writeDataHeader } from "./SubscribeFrames.js"

const EMPTY = Buffer.alloc(0)
/** Batches written per round (one corked write of their headers and payloads). */
const ROUND_BATCHES = 64
/** Batches whose first offsets a subscription keeps (a power of two above the most in flight: credit and a round). */
const SENT_RING = 8192
/** One wait for the log to move; its end only re-checks (a commit wakes it at once). */
const WAIT_SLICE_MS = 60_000
/** How long a refused subscriber may take to read its error frame before its socket is destroyed. */
const REJECT_GRACE_MS = 1_000

export interface SubscriptionServerOptions {
  readonly brokerId: number
  /** The broker's reader of the region; without one, subscriptions are refused. */
  readonly reader: LogReaderShape | undefined
  /** The region's named consumers; without them, subscriptions naming one are refused. */
  readonly consumers: ConsumersShape | undefined
  /** The broker's authentication, when it authenticates its clients: a subscriber needs the right to read the topic. */
  readonly auth: AuthServer | undefined
  /** Counts the connection against its user's limit for the scope's life (the broker's, shared with its publishers); refused past it. */
  readonly holdConnection: (user: UserRecord) => Effect.Effect<unknown, WireViolation, Scope.Scope>
  /** A connection whose client holds the broker up this long with nothing moving is closed (`idle-timeout`); 0 never. */
  readonly idleTimeoutMs: number
}

/** The subscription's cursor, joined as the named consumer when the request names one (resuming at its committed offset). */
const open = (reader: LogReaderShape, request: Subscribe, consumers: ConsumersShape | undefined) =>
  Effect.gen(function*() {
    const subscribe = (from: Subscribe["from"]) =>
      reader.subscribe(request.topic, { from, ...(request.consumer === undefined ? {} : { regionOnly: true }) }).pipe(
        Effect.catchTags({
          TopicNotFound: (e) => Effect.fail(new WireViolation({ code: "unknown-topic", detail: e.message })),
          SubscriberTableFull: (e) => Effect.die(e)
        })
      )
    const cursor: LogCursor = yield* subscribe(request.from)
    if (request.consumer === undefined) return { cursor, lease: undefined }
    if (consumers === undefined) return yield* new WireViolation({ code: "bad-subscribe", detail: "this broker keeps no named consumers" })
    const lease: ConsumerLease = yield* consumers.join(request.topic, request.consumer, { offset: cursor.position(), globalSeq: cursor.nextBatch() }).pipe(
      Effect.mapError((e) =>
        new WireViolation({
          code: e._tag === "ConsumerBusy" ? "consumer-busy" : e._tag === "ConsumerTableFull" ? "consumer-table-full" : e._tag === "TopicNotFound" ? "unknown-topic" : "bad-subscribe",
          detail: e.message
        })
      )
    )
    if (lease.created) return { cursor, lease }
    // A cut-off consumer whose committed offset left the log stays cut off (out-of-range names the oldest offset held).
    const resumed = yield* subscribe(lease.committed())
    if (lease.cutOff()) lease.resume()
    return { cursor: resumed, lease }
  })

/** Sends `out-of-range` with the window held, then closes the connection. */
const refuseOutOfRange = (socket: Socket, e: LogOutOfRange): void => {
  if (socket.destroyed || socket.writableEnded) return
  socket.end(errorFrame("out-of-range", e.message, { requested: e.requested, earliest: e.earliest, end: e.end }))
  setTimeout(() => socket.destroy(), REJECT_GRACE_MS).unref()
}

/** Sends `consumer-cut-off` with the committed offset and the oldest held, then closes the connection. */
const refuseCutOff = (socket: Socket, e: ConsumerCutOff): void => {
  if (socket.destroyed || socket.writableEnded) return
  socket.end(errorFrame("consumer-cut-off", e.message, { committed: e.committed, earliest: e.earliest }))
  setTimeout(() => socket.destroy(), REJECT_GRACE_MS).unref()
}

/**
 * Serves one subscriber connection whose first frame, `first`, is its SUBSCRIBE; `nextFrame`
 * gives its later frames (the broker's reader admits only CREDIT frames after a SUBSCRIBE).
 * `subscribed` runs as the SUBSCRIBED goes out (the handshake is over: authenticated and
 * joined). Returns when the client closes; fails with the violation the broker should send.
 * The subscription's cursor lives in the scope (the connection's).
 */
export const subscriptionServer = (options: SubscriptionServerOptions) =>
(
  socket: Socket,
  first: Frame,
  nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
  subscribed: () => void
): Effect.Effect<void, WireViolation, Scope.Scope> =>
  Effect.gen(function*() {
    // A vanished host (power loss, partition: no FIN) would otherwise hold its named consumer until the broker restarts.
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS)
    const request = yield* decodeControl(Subscribe, first.payload, "bad-subscribe")
    if (request.protocol !== PROTOCOL_VERSION) {
      return yield* new WireViolation({ code: "version-mismatch", detail: `protocol ${request.protocol}, this broker speaks ${PROTOCOL_VERSION}` })
    }
    // Who it is comes first: an unauthenticated client learns nothing, not even which topics exist.
    const authenticated = options.auth === undefined
      ? undefined
      : yield* authenticate(options.auth, request, "read", request.topic, { send: (frame) => void socket.write(frame), next: nextFrame })
    if (authenticated === null) return
    if (authenticated !== undefined) {
      const denied = request.consumer === undefined ? undefined : authorize(authenticated.user, "consume", request.consumer)
      if (denied !== undefined) return yield* new WireViolation({ code: "forbidden", detail: denied })
      yield* options.holdConnection(authenticated.user)
    }
    const reader = options.reader
    if (reader === undefined) return yield* new WireViolation({ code: "internal", detail: `broker ${options.brokerId} serves no subscribers` })
    const { topic } = request
    const opened = yield* Effect.either(open(reader, request, options.consumers))
    if (Either.isLeft(opened)) {
      const e = opened.left
      if (e instanceof LogOutOfRange) return refuseOutOfRange(socket, e)
      return yield* e
    }
    const { cursor, lease } = opened.right
    let committed = cursor.position()
    const cutOff = (l: ConsumerLease) =>
      Effect.flatMap(reader.bounds(topic).pipe(Effect.orDie), ({ earliest }) =>
        Effect.fail(new ConsumerCutOff({ topic, name: l.name, committed: l.committed(), earliest })))
    /**
     * The first offset of each batch sent lately, by global seq (a topic's are consecutive): a
     * COMMIT names the batch its offset lies in from here, not by a search of the log's window
     * (which walked the GOI from its oldest slot).
     */
    const firstOffsets = new Float64Array(SENT_RING)
    const sentFrom = cursor.nextBatch()
    /** The global seq of the batch holding `offset` (or of the next one, at the end of what was sent); undefined if not sent lately. */
    const sentBatchAt = (offset: number): number | undefined => {
      const next = cursor.nextBatch()
      const oldest = Math.max(sentFrom, next - SENT_RING)
      if (offset === cursor.position()) return next
      if (oldest >= next || offset < firstOffsets[oldest % SENT_RING]!) return undefined
      let lo = oldest
      let hi = next - 1
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2)
        if (firstOffsets[mid % SENT_RING]! <= offset) lo = mid
        else hi = mid - 1
      }
      return lo
    }
    /** A COMMIT: the offset must lie between the committed one and what was sent. */
    const commit = (offset: number) =>
      Effect.gen(function*() {
        if (lease === undefined) return yield* new WireViolation({ code: "bad-commit", detail: "COMMIT on an anonymous subscription" })
        if (offset < committed || offset > cursor.position()) {
          return yield* new WireViolation({ code: "bad-commit", detail: `offset ${offset} is outside [${committed}, ${cursor.position()}] (committed, sent)` })
        }
        // A cut-off consumer's batches may be gone already.
        if (lease.cutOff()) return yield* cutOff(lease)
        const g = sentBatchAt(offset) ?? (yield* Effect.scoped(Effect.map(reader.subscribe(topic, { from: offset }), (c) => c.nextBatch())).pipe(Effect.orDie))
        if (!lease.commit(offset, g)) return yield* cutOff(lease)
        committed = offset
      })
    const held = yield* reader.bounds(topic).pipe(Effect.orDie)
    subscribed()
    socket.write(subscribedFrame(new Subscribed({ protocol: PROTOCOL_VERSION, brokerId: options.brokerId, start: cursor.position(), ...held, ...(authenticated === undefined ? {} : { serverSignature: authenticated.serverSignature }) })))

    let credit = request.credit
    let creditArrived: (() => void) | undefined
    /** Reads CREDIT frames until the client closes its side. */
    const credits = Effect.gen(function*() {
      for (;;) {
        const frame = yield* nextFrame
        if (frame === undefined) return
        if (frame.type === FrameType.COMMIT) {
          yield* commit(frame.seq)
          continue
        }
        credit = Math.min(MAX_CREDIT, credit + frame.seq)
        const wake = creditArrived
        creditArrived = undefined
        wake?.()
      }
    })
    const awaitCredit = Effect.async<void>((resume) => {
      if (credit > 0) return resume(Effect.void)
      creditArrived = () => resume(Effect.void)
      return Effect.sync(() => {
        creditArrived = undefined
      })
    })

    const headers = Buffer.allocUnsafe(ROUND_BATCHES * FRAME_HEADER_BYTES)
    /** One view per header slot, made once: the next round rewrites a slot only after the kernel took this round's. */
    const headerSlots = Array.from({ length: ROUND_BATCHES }, (_, i) => headers.subarray(i * FRAME_HEADER_BYTES, (i + 1) * FRAME_HEADER_BYTES))
    /**
     * The bytes batches lie in (the region's, or a disk batch's copy), as a Buffer made once per
     * source: a Uint8Array written to the socket is wrapped in a Buffer per write by the stream.
     */
    let source: Uint8Array | undefined
    let sourceBuffer: Buffer = Buffer.alloc(0)
    const asBuffer = (bytes: Uint8Array): Buffer => {
      if (bytes !== source) {
        source = bytes
        sourceBuffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      }
      return sourceBuffer
    }
    /** Global seq, first and end offset of each batch of the round, checked once the kernel has them. */
    const sent = new Float64Array(ROUND_BATCHES * 3)
    let frames = 0
    /**
     * Rounds whose writes the kernel has not taken yet (the callback of each round's last write
     * has not run): a write below the socket's high-water mark can stay pending without any
     * 'drain' to follow.
     */
    let unwritten = 0
    let allWritten: (() => void) | undefined
    const written = () => {
      if (--unwritten > 0) return
      const wake = allWritten
      allWritten = undefined
      wake?.()
    }
    /** Resumes once every round written so far was handed to the kernel, or the socket is gone. */
    const flushed = Effect.async<void>((resume) => {
      if (unwritten === 0 || socket.writableLength === 0 || socket.destroyed) return resume(Effect.void)
      // Either way out takes the other's hook with it: a close listener left per round would pile up on the socket.
      const done = () => {
        allWritten = undefined
        socket.off("close", done)
        resume(Effect.void)
      }
      allWritten = done
      socket.once("close", done)
      return Effect.sync(() => {
        allWritten = undefined
        socket.off("close", done)
      })
    })
    const sendBatch = (b: LogBatchView) => {
      writeDataHeader(headerSlots[frames]!, b.clientId, b.sessionEpoch, b.totalOrder, b.messageCount, b.length, b.crc32c)
      // Header and payload go out in one writev when the round uncorks: the payload from where it lies in the log.
      socket.write(headerSlots[frames]!)
      socket.write(asBuffer(b.bytes).subarray(b.offset, b.offset + b.length))
      firstOffsets[b.globalSeq % SENT_RING] = b.totalOrder
      sent[3 * frames] = b.globalSeq
      sent[3 * frames + 1] = b.totalOrder
      sent[3 * frames + 2] = b.totalOrder + b.messageCount
      frames++
    }
    /**
     * The offset of the round's first batch that left the window (its bytes may have gone out
     * torn), or -1. A named consumer's client may have committed past some already (it had them
     * intact, checked): those may be gone by now.
     */
    const reclaimed = (): number => {
      for (let i = 0; i < 3 * frames; i += 3) {
        if (sent[i + 2]! <= committed || cursor.retained(sent[i]!)) continue
        return sent[i + 1]!
      }
      return -1
    }
    const outOfRange = (requested: number) =>
      Effect.flatMap(reader.bounds(topic).pipe(Effect.orDie), ({ earliest, end }) => Effect.fail(new LogOutOfRange({ topic, requested, earliest, end })))

    /** Sends batches while there is credit, waiting for the log or for credit when there is none. */
    /** One callback per round, on its last write: the kernel took the round once it runs. */
    const endRound = Effect.sync(() => {
      if (frames > 0) {
        unwritten++
        socket.write(EMPTY, written)
      }
      socket.uncork()
    })
    const stream = Effect.gen(function*() {
      for (;;) {
        if (socket.destroyed || socket.writableEnded) return
        if (lease?.cutOff()) return yield* cutOff(lease)
        if (credit === 0) {
          yield* awaitCredit
          continue
        }
        frames = 0
        socket.cork()
        const n = yield* cursor.pollBatches(sendBatch, Math.min(credit, ROUND_BATCHES)).pipe(Effect.ensuring(endRound))
        if (n === 0) {
          yield* cursor.awaitMore(WAIT_SLICE_MS)
          continue
        }
        credit -= n
        // Until the kernel has them, the writes still point into the log's space (most rounds it took them at once).
        if (socket.writableLength > 0) yield* flushed
        const gone = reclaimed()
        if (gone >= 0) return yield* outOfRange(gone)
      }
    })

    /**
     * Fails with `idle-timeout` once the client held the broker up (no credit, or writes the
     * kernel does not take) with no byte moving either way for `idleTimeoutMs`: checked every
     * quarter timeout from the socket's counts (no cost per frame), so it closes between 1 and
     * 1¼ timeouts after the last byte moved.
     */
    const idle = Effect.async<never, WireViolation>((resume) => {
      const timeoutMs = options.idleTimeoutMs
      if (timeoutMs <= 0) return
      let timer: ReturnType<typeof setTimeout> | undefined
      let moved = -1
      let quietChecks = 0
      const check = () => {
        const now = socket.bytesRead + socket.bytesWritten - socket.writableLength
        const heldUp = credit === 0 || socket.writableLength > 0
        quietChecks = now !== moved || !heldUp ? 0 : quietChecks + 1
        moved = now
        if (quietChecks < 4) return void (timer = setTimeout(check, timeoutMs / 4).unref())
        resume(Effect.fail(new WireViolation({ code: "idle-timeout", detail: `the subscriber granted no credit and took nothing for ${timeoutMs} ms` })))
      }
      check()
      return Effect.sync(() => clearTimeout(timer))
    })

    const outcome = yield* Effect.either(Effect.raceFirst(credits, Effect.raceFirst(stream, idle)))
    if (Either.isLeft(outcome)) {
      const e = outcome.left
      if (e instanceof LogOutOfRange) return refuseOutOfRange(socket, e)
      if (e instanceof ConsumerCutOff) return refuseCutOff(socket, e)
      if (e instanceof WireViolation) return yield* e
      return yield* new WireViolation({ code: "internal", detail: e.message })
    }
  })
