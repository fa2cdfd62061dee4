/**
 * The publisher's frame decoder, `FrameReader`, over socket chunks: headers are parsed in
 * place; a payload that lies wholly inside one chunk is returned as a view of that chunk (no
 * copy); a frame that straddles chunks is reassembled into one reusable buffer. Every length
 * is checked against its bound before anything is allocated, so a reader holds at most
 * 32 + maxBatchBytes bytes of its own. `admit` refuses a frame from its header, before any of
 * its payload is taken. The broker's reader, which chooses where each read goes so a batch is
 * received straight into the log's space, is InPlaceFrameReader.ts; the checks both run, FrameCheck.ts.
 */
import { crc32c } from "../../native/Crc32c.js"
import { WireViolation } from "./Control.js"
import { type Frame, FRAME_HEADER_BYTES, type FrameHeader, FrameType } from "./Frame.js"
import { acceptedTypes, checkedHeader, crcViolation, EMPTY, type HeaderRules, withPayload } from "./FrameCheck.js"

// What the other readers' users import from here.
export { acceptedTypes, checkedHeader, withPayload } from "./FrameCheck.js"
export { InPlaceFrameReader, type InPlaceFrameReaderOptions } from "./InPlaceFrameReader.js"

export interface FrameReaderOptions extends HeaderRules {
  /** Frame types this side accepts; anything else is `bad-frame-type`. */
  readonly accept: ReadonlyArray<FrameType>
}

export class FrameReader {
  private readonly accepted: ReadonlyArray<boolean>
  private chunk: Uint8Array = new Uint8Array(0)
  private position = 0
  private readonly headerBytes = new Uint8Array(FRAME_HEADER_BYTES)
  private headerFill = 0
  private pending: Frame | undefined = undefined
  private reassembly = new Uint8Array(0)
  private reassemblyFill = 0
  private failure: WireViolation | undefined = undefined
  /** Payload bytes of the frame last returned: still the consumer's until the next call. */
  private returnedBytes = 0

  constructor(private readonly options: FrameReaderOptions) {
    this.accepted = acceptedTypes(options.accept)
  }

  /** Hands over the next chunk; call only once `next()` has returned `undefined`. */
  push(chunk: Uint8Array): void {
    this.chunk = chunk
    this.position = 0
  }

  /** True while a frame is partly received (what an end of stream now would truncate). */
  get midFrame(): boolean {
    return this.headerFill > 0 || this.pending !== undefined
  }

  /** Bytes of the current chunk not consumed yet. */
  get buffered(): number {
    return this.chunk.length - this.position
  }

  /**
   * Received bytes this reader holds for its consumer: the rest of the current chunk, the
   * part of a frame received so far, and the payload of the frame last returned (valid until
   * the next call).
   */
  get heldBytes(): number {
    return this.chunk.length - this.position + this.headerFill +
      (this.pending === undefined ? 0 : this.reassemblyFill) + this.returnedBytes
  }

  /**
   * The next complete frame, `undefined` when the chunk is used up, or the violation that
   * poisons this reader (returned again on every later call).
   */
  next(): Frame | undefined | WireViolation {
    if (this.failure !== undefined) return this.failure
    this.returnedBytes = 0
    const available = this.chunk.length - this.position
    if (this.pending !== undefined) return this.continuePayload()
    if (this.headerFill > 0) {
      const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, available)
      this.headerBytes.set(this.chunk.subarray(this.position, this.position + take), this.headerFill)
      this.headerFill += take
      this.position += take
      if (this.headerFill < FRAME_HEADER_BYTES) return undefined
      this.headerFill = 0
      return this.startPayload(this.headerBytes, 0)
    }
    if (available === 0) {
      // Let go of a used-up chunk: an idle connection should not keep its last 64 KiB alive.
      this.chunk = EMPTY
      this.position = 0
      return undefined
    }
    if (available < FRAME_HEADER_BYTES) {
      this.headerBytes.set(this.chunk.subarray(this.position), 0)
      this.headerFill = available
      this.position = this.chunk.length
      return undefined
    }
    const at = this.position
    this.position += FRAME_HEADER_BYTES
    return this.startPayload(this.chunk, at)
  }

  private startPayload(source: Uint8Array, at: number): Frame | undefined | WireViolation {
    const header = checkedHeader(source, at, this.accepted, this.options)
    if (header instanceof WireViolation) {
      this.failure = header
      return header
    }
    const available = this.chunk.length - this.position
    if (available >= header.payloadBytes) {
      const payload = this.chunk.subarray(this.position, this.position + header.payloadBytes)
      this.position += header.payloadBytes
      return this.complete(header, payload)
    }
    if (this.reassembly.length < header.payloadBytes) this.reassembly = new Uint8Array(header.payloadBytes)
    this.reassembly.set(this.chunk.subarray(this.position), 0)
    this.reassemblyFill = available
    this.position = this.chunk.length
    this.pending = header
    return undefined
  }

  private continuePayload(): Frame | undefined | WireViolation {
    const header = this.pending!
    const take = Math.min(header.payloadBytes - this.reassemblyFill, this.chunk.length - this.position)
    this.reassembly.set(this.chunk.subarray(this.position, this.position + take), this.reassemblyFill)
    this.reassemblyFill += take
    this.position += take
    if (this.reassemblyFill < header.payloadBytes) return undefined
    this.pending = undefined
    return this.complete(header, this.reassembly.subarray(0, header.payloadBytes))
  }

  private checkCrc(header: FrameHeader, crc: number): WireViolation | undefined {
    const wrong = crcViolation(header, crc)
    if (wrong !== undefined) this.failure = wrong
    return wrong
  }

  private complete(header: Frame, payload: Uint8Array): Frame | WireViolation {
    this.returnedBytes = header.payloadBytes
    // A DATA frame's crc is its batch's, checked by the subscriber: a mismatch there is a batch
    // retention reclaimed while it was being sent (the broker's out-of-range ERROR follows), not a broken stream.
    if (header.type === FrameType.DATA) return withPayload(header, payload)
    return this.checkCrc(header, crc32c(payload, 0, payload.length)) ?? withPayload(header, payload)
  }
}
