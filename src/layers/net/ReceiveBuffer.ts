/**
 * A subscriber connection's receive buffer: the socket reads straight into it (`net`'s
 * `onread`, with `target()` choosing where each read goes) and frames are parsed where they
 * landed, so a DATA payload handed out is a view of the bytes the kernel copied in — no Buffer
 * per chunk, no copy per frame. Input that arrives elsewhere (a TLS socket's chunks, a read that
 * landed in the spill buffer) is copied in with `land`.
 *
 * Frames handed out (`next`) stay valid until `release()`: only then may the bytes under them
 * move. The bytes not handed out yet — at most one partial frame once the complete ones are
 * taken — are moved to the front of a buffer when the tail runs short: in place when nothing
 * is handed out, else into the spare buffer (the one the consumer released last), so a frame
 * straddling two reads costs one copy of its first part. A frame larger than the buffer gets a
 * buffer of its own size (its length is checked against `maxBatchBytes` first).
 */
import { WireViolation } from "./Control.js"
import { type Frame, FRAME_HEADER_BYTES, type FrameType } from "./Frame.js"
import { acceptedTypes, checkedHeader, withPayload } from "./FrameReader.js"

/** A tail shorter than this is worth moving the unread bytes for (when they can move). */
const MIN_READ_BYTES = 64 << 10
/**
 * The most one read takes: its bytes are checked and read soon after the kernel wrote them, so
 * they should still be in the CPU's cache (reads of megabytes made the crc32c and the audit of
 * a batch several times slower than the read itself saved).
 */
const MAX_READ_BYTES = 256 << 10
/** Where a read goes when the buffers have no room (reading is paused then); copied in by `land`. */
const SPILL_BYTES = 64 << 10

export interface ReceiveBufferOptions {
  /** Frame types this side accepts; anything else is `bad-frame-type`. */
  readonly accept: ReadonlyArray<FrameType>
  /** Upper bound of a DATA payload. */
  readonly maxBatchBytes: number
  /** Size of each of the two buffers; received bytes not handed out beyond it pause reading (`full`). */
  readonly bufferBytes: number
}

export class ReceiveBuffer {
  private readonly accepted: ReadonlyArray<boolean>
  private buffer: Uint8Array
  /** The other buffer, free once nothing handed out lies in it (`spareHeld` false). */
  private spare: Uint8Array | undefined
  private spareHeld = false
  /** Bytes [start, end) are received and not handed out; [kept, start) were handed out and are held until `release`. */
  private start = 0
  private end = 0
  private kept = 0
  private readonly spill = new Uint8Array(SPILL_BYTES)
  /** The view `target` gave last: a read reported into it is already in place. */
  private targeted: Uint8Array | undefined
  private failure: WireViolation | undefined

  constructor(private readonly options: ReceiveBufferOptions) {
    this.accepted = acceptedTypes(options.accept)
    this.buffer = new Uint8Array(options.bufferBytes)
  }

  /** True while a frame is partly received (what an end of stream now would truncate). */
  get midFrame(): boolean {
    return this.end > this.start
  }

  /** True when a whole frame (or a violation) is waiting for `next`. */
  get frameReady(): boolean {
    return this.failure !== undefined ||
      (this.end - this.start >= FRAME_HEADER_BYTES && this.end - this.start >= this.pendingFrameBytes())
  }

  /** True when the bytes not handed out fill a buffer: stop reading until the consumer takes some. */
  get full(): boolean {
    return this.end - this.start >= this.options.bufferBytes
  }

  /** The whole frame starting at `start` (header and payload), once its header is in: else 0. */
  private pendingFrameBytes(): number {
    if (this.end - this.start < FRAME_HEADER_BYTES) return FRAME_HEADER_BYTES
    const b = this.buffer
    const at = this.start + 24
    // The header's payload length (little-endian u32), read without a DataView per call.
    const payloadBytes = (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0
    // An oversized payload fails at `next` (before anything is allocated for it): room for a header is enough here.
    return payloadBytes > this.options.maxBatchBytes ? FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + payloadBytes
  }

  /**
   * Where the next read should go (never empty). Moves the unread bytes to the front of a buffer
   * when the tail is short and they may move; the spill buffer when they fill the buffer or no
   * buffer may take them.
   */
  target(): Uint8Array {
    // Full, reading pauses: the read in flight (or the first after resuming) is copied in.
    if (this.full) return (this.targeted = this.spill)
    const frame = this.pendingFrameBytes()
    const room = this.buffer.length - this.end
    if (room >= MIN_READ_BYTES && this.buffer.length - this.start >= frame) return this.tail()
    const moved = this.makeRoom(frame)
    if (moved || this.buffer.length > this.end) return this.tail()
    return (this.targeted = this.spill)
  }

  private tail(): Uint8Array {
    this.targeted = this.buffer.subarray(this.end, Math.min(this.buffer.length, this.end + MAX_READ_BYTES))
    return this.targeted
  }

  /**
   * Moves the unread bytes to the front of a buffer with room for a `frame`-byte frame and more: this
   * one when nothing handed out lies in it, else the spare when free (or a new one for a
   * larger frame). False when neither may be written now.
   */
  private makeRoom(frame: number): boolean {
    const unread = this.end - this.start
    // Room for the whole frame, and for at least one more byte than is unread (frames not taken yet may fill a buffer).
    const size = Math.max(this.options.bufferBytes, frame, unread + 1)
    const handedOut = this.kept < this.start
    if (!handedOut && this.buffer.length >= size) {
      if (this.start === 0) return false
      this.buffer.copyWithin(0, this.start, this.end)
      this.start = this.kept = 0
      this.end = unread
      return true
    }
    if (handedOut && this.spareHeld) return false
    const spare = this.spare !== undefined && this.spare.length >= size ? this.spare : undefined
    const into = spare ?? new Uint8Array(size)
    into.set(this.buffer.subarray(this.start, this.end), 0)
    // The old buffer, when of the usual size, is the next spare: held while what was handed out of it is (until `release`).
    if (this.buffer.length === this.options.bufferBytes) {
      this.spare = this.buffer
      this.spareHeld = handedOut
    } else if (spare !== undefined) {
      this.spare = undefined
    }
    this.buffer = into
    this.start = this.kept = 0
    this.end = unread
    return true
  }

  /** `n` bytes were read into `into` (a `target()`): in place, or copied in when they landed elsewhere. */
  filled(into: Uint8Array, n: number): void {
    if (into === this.targeted && into !== this.spill) {
      this.end += n
      return
    }
    this.land(into.subarray(0, n))
  }

  /** Copies received bytes in (a chunk from a TLS socket, a read that landed in the spill). */
  land(bytes: Uint8Array): void {
    let at = 0
    while (at < bytes.length) {
      let room = this.buffer.length - this.end
      if (room === 0 && !this.makeRoom(this.pendingFrameBytes())) {
        // No buffer may take them without moving what is handed out: a larger one takes all.
        const grown = new Uint8Array(Math.max(2 * this.buffer.length, this.end - this.start + bytes.length - at))
        grown.set(this.buffer.subarray(this.start, this.end), 0)
        this.spare = undefined
        this.spareHeld = false
        this.end -= this.start
        this.start = this.kept = 0
        // The old buffer still backs the views handed out; it is simply not reused.
        this.buffer = grown
      }
      room = this.buffer.length - this.end
      const take = Math.min(room, bytes.length - at)
      this.buffer.set(bytes.subarray(at, at + take), this.end)
      this.end += take
      at += take
    }
    this.targeted = undefined
  }

  /**
   * The next complete frame — its payload a view valid until `release()` — or undefined when
   * more input is needed, or the violation that poisons this buffer (returned again after).
   */
  next(): Frame | undefined | WireViolation {
    if (this.failure !== undefined) return this.failure
    if (this.end - this.start < FRAME_HEADER_BYTES) return undefined
    const header = checkedHeader(this.buffer, this.start, this.accepted, this.options)
    if (header instanceof WireViolation) {
      this.failure = header
      return header
    }
    const at = this.start + FRAME_HEADER_BYTES
    if (this.end - at < header.payloadBytes) return undefined
    this.start = at + header.payloadBytes
    return withPayload(header, this.buffer.subarray(at, this.start))
  }

  /** The consumer is done with every frame handed out: their bytes may be reused. */
  release(): void {
    this.kept = this.start
    this.spareHeld = false
  }
}
