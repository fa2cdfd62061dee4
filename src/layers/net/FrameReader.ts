/**
 * Incremental frame decoder over socket chunks. Headers are parsed in place; a payload that
 * lies wholly inside one chunk is returned as a view of that chunk (no copy); a frame that
 * straddles chunks is reassembled into one reusable buffer — or, for BATCH frames with
 * `gatherBatches`, handed out as views of the chunks it arrived in (no copy either; the
 * consumer gathers them where they go). Every length is checked against its bound before
 * anything is allocated, so a reader holds at most 32 + maxBatchBytes bytes of its own
 * (gathering, it keeps the chunks of one batch alive instead: maxBatchBytes plus two
 * chunks' slack). `admit` refuses a frame from its header, before any of its payload is
 * taken (a broker before the handshake takes a HELLO only: at most 32 + 4 KiB).
 */
import { WireViolation } from "./Control.js"
import { crc32c } from "./Crc32c.js"
import {
  type Frame,
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  FrameType,
  frameTypeName,
  MAX_ACK_PAYLOAD_BYTES,
  MAX_CONTROL_PAYLOAD_BYTES,
  readRawHeader,
  sequenceOf,
  WIRE_VERSION
} from "./Frame.js"

const MAX_SEQ_HIGH = 2 ** 21 - 1
const EMPTY = new Uint8Array(0)

export interface FrameReaderOptions {
  /** Frame types this side accepts; anything else is `bad-frame-type`. */
  readonly accept: ReadonlyArray<FrameType>
  /** Upper bound of a BATCH payload. */
  readonly maxBatchBytes: number
  /**
   * Hand out a BATCH payload that straddles chunks as views of the chunks (`Frame.pieces`)
   * instead of copying it together. Only for chunks that are never reused after they are
   * pushed (Node's socket chunks are fresh buffers).
   */
  readonly gatherBatches?: boolean
  /**
   * Looked at with the type of each accepted header before any of its payload is taken: a
   * violation returned refuses the frame right there (and poisons the reader), so a payload
   * the consumer would refuse anyway is never buffered.
   */
  readonly admit?: (type: FrameType) => WireViolation | undefined
}

type PendingHeader = Omit<Frame, "payload">

export class FrameReader {
  private readonly accepted: ReadonlyArray<boolean>
  private chunk: Uint8Array = new Uint8Array(0)
  private position = 0
  private readonly headerBytes = new Uint8Array(FRAME_HEADER_BYTES)
  private headerFill = 0
  private pending: PendingHeader | undefined = undefined
  private reassembly = new Uint8Array(0)
  private reassemblyFill = 0
  /** The pieces of the BATCH payload being gathered, or undefined while reassembling (or between frames). */
  private gathered: Array<Uint8Array> | undefined = undefined
  private failure: WireViolation | undefined = undefined
  /** Payload bytes of the frame last returned: still the consumer's until the next call. */
  private returnedBytes = 0

  constructor(private readonly options: FrameReaderOptions) {
    const accepted: Array<boolean> = []
    for (const type of options.accept) accepted[type] = true
    this.accepted = accepted
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
    return this.chunk.length - this.position + this.headerFill + (this.pending === undefined ? 0 : this.reassemblyFill) + this.returnedBytes
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

  private fail(code: WireViolation["code"], detail: string): WireViolation {
    this.failure = new WireViolation({ code, detail })
    return this.failure
  }

  private startPayload(source: Uint8Array, at: number): Frame | undefined | WireViolation {
    const raw = readRawHeader(source, at)
    if (raw.magic !== FRAME_MAGIC) return this.fail("bad-magic", `frame magic 0x${raw.magic.toString(16)} is not 0x${FRAME_MAGIC.toString(16)}`)
    if (raw.version !== WIRE_VERSION) return this.fail("version-mismatch", `wire version ${raw.version}, this side speaks ${WIRE_VERSION}`)
    if (this.accepted[raw.type] !== true) return this.fail("bad-frame-type", `frame type ${frameTypeName(raw.type)} is not accepted here`)
    const refused = this.options.admit?.(raw.type as FrameType)
    if (refused !== undefined) {
      this.failure = refused
      return refused
    }
    if (raw.seqHigh > MAX_SEQ_HIGH) return this.fail("oversized", "sequence is not below 2^53")
    const limit = raw.type === FrameType.BATCH
      ? this.options.maxBatchBytes
      : raw.type === FrameType.ACK
      ? MAX_ACK_PAYLOAD_BYTES
      : raw.type === FrameType.SESSION_FENCED
      ? 0
      : MAX_CONTROL_PAYLOAD_BYTES
    if (raw.payloadBytes > limit) {
      return this.fail("oversized", `${frameTypeName(raw.type)} payload of ${raw.payloadBytes} bytes exceeds ${limit}`)
    }
    const header: PendingHeader = {
      type: raw.type as FrameType,
      clientId: raw.clientId,
      sessionEpoch: raw.sessionEpoch,
      seq: sequenceOf(raw.seqLow, raw.seqHigh),
      messageCount: raw.messageCount,
      payloadBytes: raw.payloadBytes,
      crc32c: raw.crc32c
    }
    const available = this.chunk.length - this.position
    if (available >= header.payloadBytes) {
      const payload = this.chunk.subarray(this.position, this.position + header.payloadBytes)
      this.position += header.payloadBytes
      return this.complete(header, payload)
    }
    if (this.options.gatherBatches === true && header.type === FrameType.BATCH) {
      this.gathered = available > 0 ? [this.chunk.subarray(this.position)] : []
    } else {
      if (this.reassembly.length < header.payloadBytes) this.reassembly = new Uint8Array(header.payloadBytes)
      this.reassembly.set(this.chunk.subarray(this.position), 0)
    }
    this.reassemblyFill = available
    this.position = this.chunk.length
    this.pending = header
    return undefined
  }

  private continuePayload(): Frame | undefined | WireViolation {
    const header = this.pending!
    const take = Math.min(header.payloadBytes - this.reassemblyFill, this.chunk.length - this.position)
    const piece = this.chunk.subarray(this.position, this.position + take)
    if (this.gathered !== undefined) {
      if (take > 0) this.gathered.push(piece)
    } else {
      this.reassembly.set(piece, this.reassemblyFill)
    }
    this.reassemblyFill += take
    this.position += take
    if (this.reassemblyFill < header.payloadBytes) return undefined
    this.pending = undefined
    const pieces = this.gathered
    this.gathered = undefined
    return pieces === undefined ? this.complete(header, this.reassembly.subarray(0, header.payloadBytes)) : this.completeGathered(header, pieces)
  }

  private checkCrc(header: PendingHeader, crc: number): WireViolation | undefined {
    if (crc === header.crc32c) return undefined
    return this.fail("bad-crc", `${frameTypeName(header.type)} crc32c 0x${crc.toString(16)} does not match the header's 0x${header.crc32c.toString(16)}`)
  }

  private complete(header: PendingHeader, payload: Uint8Array): Frame | WireViolation {
    this.returnedBytes = header.payloadBytes
    return this.checkCrc(header, crc32c(payload, 0, payload.length)) ?? { ...header, payload }
  }

  private completeGathered(header: PendingHeader, pieces: ReadonlyArray<Uint8Array>): Frame | WireViolation {
    let crc = 0
    for (const piece of pieces) crc = crc32c(piece, 0, piece.length, crc)
    this.returnedBytes = header.payloadBytes
    return this.checkCrc(header, crc) ?? { ...header, payload: EMPTY, pieces }
  }
}
