/**
 * The broker's frame decoder, which chooses where each read goes, so a batch is received
 * straight into the log's space (see `InPlaceFrameReader`).
 */
import { crc32c } from "../../native/Crc32c.js"
import { WireViolation } from "./Control.js"
import { type Frame, FRAME_HEADER_BYTES, type FrameHeader, FrameType } from "./Frame.js"
import { acceptedTypes, checkedHeader, crcViolation, EMPTY, type HeaderRules, withPayload } from "./FrameCheck.js"

export interface InPlaceFrameReaderOptions extends HeaderRules {
  /** Frame types this side accepts; anything else is `bad-frame-type`. */
  readonly accept: ReadonlyArray<FrameType>
  /**
   * Where the payload of an admitted BATCH frame should be read to: a view of at least
   * `payloadBytes` bytes (the log's space for it), or undefined to read it into the reader's
   * own buffer. Bytes past the payload, up to the view's end (at most `FRAME_HEADER_BYTES`),
   * may be read into too: the next header's first bytes land there and are copied out at once.
   * Called once per frame, from `next`, before any of its payload is read. A view longer than
   * `payloadBytes + FRAME_HEADER_BYTES` is not used.
   */
  readonly place?: (header: FrameHeader) => Uint8Array | undefined
}

/**
 * A frame decoder that tells its input where to go instead of taking chunks: every read of
 * the stream goes to `buffer()` — the next header's 32 bytes, or the payload's destination
 * (for a BATCH, where `place` put it: the log's own space), so a payload is copied once, by
 * the kernel, into where it will live. A read into a payload may run up to 32 bytes past it
 * (the view's slack), so a busy stream costs one read per frame; those bytes, the start of
 * the next header, are the only ones copied. Every header is checked (and a BATCH admitted)
 * before any of its payload is read, and every payload's crc32c before the frame is handed out.
 *
 * The consumer calls `buffer()` for each read and `filled(n)` after it, then `next()` until it
 * returns undefined before reading more; a frame's payload stays valid until the next read.
 * A read that lands in a buffer handed out earlier than the last state change (say, reading
 * resumed after `next()` ran on its own), or while a complete header waits for `next()`, goes
 * to the stash, and `next()` moves it on from there (a copy, off the busy path).
 */
export class InPlaceFrameReader {
  private readonly accepted: ReadonlyArray<boolean>
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES)
  private headerFill = 0
  /** The frame whose payload is being read, its destination (payload + slack) and the payload bytes in it. */
  private pending: Frame | undefined = undefined
  private destination: Uint8Array = EMPTY
  private destinationFill = 0
  /** The destination when `place` gave it (undefined once evicted, or for the reader's own buffer). */
  private placed: Uint8Array | undefined = undefined
  /** The reader's own payload buffer, for frames `place` leaves to it (32 bytes of slack past the largest payload). */
  private own = new Uint8Array(0)
  /** Input received before the reader knew where it goes: bytes stashStart..stashEnd. */
  private stash = new Uint8Array(0)
  private stashStart = 0
  private stashEnd = 0
  /** The buffer `buffer()` handed out last: where the next `filled` bytes are; it starts at `installedAt` of `installedIn` (the header, the destination or the stash). */
  private installed: Uint8Array = EMPTY
  private installedIn: Uint8Array = EMPTY
  private installedAt = 0
  /** Payload bytes of the frame last returned: still the consumer's until the next `next()`. */
  private returnedBytes = 0
  private failure: WireViolation | undefined = undefined

  constructor(private readonly options: InPlaceFrameReaderOptions) {
    this.accepted = acceptedTypes(options.accept)
  }

  /** Where the next read should go (never empty); the next `filled` counts bytes read into it. */
  buffer(): Uint8Array {
    if (this.stashEnd === this.stashStart) {
      if (this.pending !== undefined) return this.install(this.destination, this.destinationFill)
      if (this.headerFill < FRAME_HEADER_BYTES) return this.install(this.header, this.headerFill)
    }
    // Input that must wait for `next()`: after what already waits.
    if (this.stashStart === this.stashEnd) this.stashStart = this.stashEnd = 0
    if (this.stash.length - this.stashEnd < STASH_BYTES) this.growStash(STASH_BYTES)
    return this.install(this.stash, this.stashEnd)
  }

  /** Hands out `buffer` from `at` and remembers where that is, so `filled` checks it without a view per read. */
  private install(buffer: Uint8Array, at: number): Uint8Array {
    this.installedIn = buffer
    this.installedAt = at
    this.installed = at === 0 ? buffer : buffer.subarray(at)
    return this.installed
  }

  private growStash(room: number): void {
    const grown = new Uint8Array(Math.max(2 * this.stash.length, this.stashEnd - this.stashStart + room))
    grown.set(this.stash.subarray(this.stashStart, this.stashEnd), 0)
    this.stashEnd -= this.stashStart
    this.stashStart = 0
    this.stash = grown
  }

  /** `n` bytes were read into the last `buffer()`. */
  filled(n: number): void {
    const into = this.installedIn
    const at = this.installedAt
    if (into === this.stash && at === this.stashEnd && into.length > 0) {
      this.stashEnd += n
      return
    }
    // Still where `buffer()` would send this read now? (Nothing changed since it was handed out.)
    const current = this.stashEnd === this.stashStart &&
      (this.pending !== undefined
        ? into === this.destination && at === this.destinationFill
        : into === this.header && at === this.headerFill && at < FRAME_HEADER_BYTES)
    if (!current) {
      // Read into a buffer the reader has moved on from (it is the reader's own): it waits in the stash.
      if (this.stash.length - this.stashEnd < n) this.growStash(n)
      this.stash.set(this.installed.subarray(0, n), this.stashEnd)
      this.stashEnd += n
      return
    }
    const pending = this.pending
    if (pending === undefined) {
      this.headerFill += n
      return
    }
    const end = this.destinationFill + n
    if (end <= pending.payloadBytes) {
      this.destinationFill = end
      return
    }
    // Read past the payload: the next header's first bytes.
    this.header.set(this.destination.subarray(pending.payloadBytes, end), 0)
    this.headerFill = end - pending.payloadBytes
    this.destinationFill = pending.payloadBytes
  }

  /** True while a frame is partly received (what an end of stream now would truncate). */
  get midFrame(): boolean {
    return this.headerFill > 0 || this.pending !== undefined || this.stashEnd > this.stashStart
  }

  /** Received bytes this reader holds for its consumer: a partial header, the payload read so far, the stash, the frame last returned. */
  get heldBytes(): number {
    return this.headerFill + (this.pending === undefined ? 0 : this.destinationFill) + this.stashEnd - this.stashStart +
      this.returnedBytes
  }

  /**
   * Moves the payload being read out of `view` (a destination `place` gave, which its owner
   * takes back) into the reader's own buffer, where the rest of it goes. False (nothing done)
   * unless `view` is the current destination; then the next read must go to a new `buffer()`.
   */
  evict(view: Uint8Array): boolean {
    if (this.pending === undefined || this.placed !== view) return false
    const own = this.ownBuffer(this.pending.payloadBytes)
    own.set(view.subarray(0, this.destinationFill), 0)
    this.destination = own
    this.placed = undefined
    return true
  }

  /** Whether the payload being read, or the one last handed out, is in a view `place` gave (not evicted). */
  get inPlace(): boolean {
    return this.placed !== undefined
  }

  /**
   * The next complete frame, `undefined` when input is wanted, or the violation that poisons
   * this reader (returned again on every later call).
   */
  next(): Frame | undefined | WireViolation {
    if (this.failure !== undefined) return this.failure
    this.returnedBytes = 0
    for (;;) {
      this.drainStash()
      const pending = this.pending
      if (pending !== undefined) {
        if (this.destinationFill < pending.payloadBytes) return undefined
        this.pending = undefined
        return this.complete(pending, this.destination.subarray(0, pending.payloadBytes))
      }
      if (this.headerFill < FRAME_HEADER_BYTES) return undefined
      const frame = this.startFrame()
      if (frame !== undefined) return frame
    }
  }

  /** Moves stashed input to where it goes now: the header, or the payload being read. */
  private drainStash(): void {
    const available = this.stashEnd - this.stashStart
    if (available === 0) return
    const from = this.stashStart
    if (this.pending !== undefined) {
      const take = Math.min(available, this.pending.payloadBytes - this.destinationFill)
      this.destination.set(this.stash.subarray(from, from + take), this.destinationFill)
      this.destinationFill += take
      this.stashStart += take
    } else if (this.headerFill < FRAME_HEADER_BYTES) {
      const take = Math.min(available, FRAME_HEADER_BYTES - this.headerFill)
      this.header.set(this.stash.subarray(from, from + take), this.headerFill)
      this.headerFill += take
      this.stashStart += take
    }
  }

  /** A complete header: checked, then its payload placed (a frame without payload is complete at once). */
  private startFrame(): Frame | WireViolation | undefined {
    this.headerFill = 0
    const header = checkedHeader(this.header, 0, this.accepted, this.options)
    if (header instanceof WireViolation) {
      this.failure = header
      return header
    }
    this.placed = undefined
    if (header.payloadBytes === 0) return this.complete(header, EMPTY)
    const placed = header.type === FrameType.BATCH ? this.options.place?.(header) : undefined
    const fits = placed !== undefined && placed.length >= header.payloadBytes &&
      placed.length <= header.payloadBytes + FRAME_HEADER_BYTES
    this.placed = fits ? placed : undefined
    this.destination = fits ? placed : this.ownBuffer(header.payloadBytes)
    this.destinationFill = 0
    this.pending = header
    return undefined
  }

  private ownBuffer(payloadBytes: number): Uint8Array {
    if (this.own.length < payloadBytes + FRAME_HEADER_BYTES) {
      this.own = new Uint8Array(payloadBytes + FRAME_HEADER_BYTES)
    }
    return this.own.subarray(0, payloadBytes + FRAME_HEADER_BYTES)
  }

  private complete(header: Frame, payload: Uint8Array): Frame | WireViolation {
    const wrong = crcViolation(header, crc32c(payload, 0, payload.length))
    if (wrong === undefined) {
      this.returnedBytes = payload.length
      return withPayload(header, payload)
    }
    this.failure = wrong
    return wrong
  }
}

/** Free stash space offered for one read. */
const STASH_BYTES = 16 << 10
