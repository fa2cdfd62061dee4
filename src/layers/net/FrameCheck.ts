/**
 * The checks every frame reader runs (FrameReader, InPlaceFrameReader, ReceiveBuffer): a header
 * checked in place — magic, version, type, admission, bounds — before any of its payload is
 * taken, each type's payload bound, the payload's crc32c, and the frame handed out once its
 * payload is in.
 */
import { WireViolation } from "./Control.js"
import {
  type Frame,
  FRAME_MAGIC,
  type FrameHeader,
  FrameType,
  frameTypeName,
  MAX_ACK_PAYLOAD_BYTES,
  MAX_ADMIN_REPLY_BYTES,
  MAX_CONTROL_PAYLOAD_BYTES,
  sequenceOf,
  WIRE_VERSION
} from "./Frame.js"

const MAX_SEQ_HIGH = 2 ** 21 - 1
export const EMPTY = new Uint8Array(0)

/** What a reader checks a header against besides its accepted types. */
export interface HeaderRules {
  /** Upper bound of a BATCH payload. */
  readonly maxBatchBytes: number
  /**
   * Looked at with the type of each accepted header before any of its payload is taken: a
   * violation returned refuses the frame right there (and poisons the reader), so a payload
   * the consumer would refuse anyway is never buffered.
   */
  readonly admit?: (type: FrameType) => WireViolation | undefined
}

/** The payload bound of a frame type. */
const payloadLimit = (type: number, maxBatchBytes: number): number =>
  type === FrameType.BATCH || type === FrameType.DATA
    ? maxBatchBytes
    : type === FrameType.ACK
    ? MAX_ACK_PAYLOAD_BYTES
    : type === FrameType.SESSION_FENCED
    ? 0
    : type === FrameType.ADMIN_REPLY || type === FrameType.ADMIN_FAILURE || type === FrameType.GROUP_REPLY ||
        type === FrameType.GROUP_FAILURE || type === FrameType.GROUP_DELIVERY
    ? MAX_ADMIN_REPLY_BYTES
    : MAX_CONTROL_PAYLOAD_BYTES

const fail = (code: WireViolation["code"], detail: string) => new WireViolation({ code, detail })

/** Little-endian u32 at `at` of `b`. */
const u32 = (b: Uint8Array, at: number): number =>
  (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0

/** A frame as the readers build it: its payload is set once received (`withPayload`). */
type ReceivedFrame = { -readonly [K in keyof Frame]: Frame[K] }

/** Sets the payload of a frame `checkedHeader` made (readers only, before handing it out). */
export const withPayload = (frame: Frame, payload: Uint8Array): Frame => {
  ;(frame as ReceivedFrame).payload = payload
  return frame
}

/**
 * The header at `at` of `source`, checked — magic, version, type, admission, bounds — before
 * any of its payload is taken, or why it is refused. Decoded straight from the bytes into the
 * frame the reader hands out (its payload still empty): one object per frame, no DataView.
 */
export const checkedHeader = (
  source: Uint8Array,
  at: number,
  accepted: ReadonlyArray<boolean>,
  options: HeaderRules
): Frame | WireViolation => {
  const type = source[at]
  const magic = source[at + 2] | (source[at + 3] << 8)
  if (magic !== FRAME_MAGIC) {
    return fail("bad-magic", `frame magic 0x${magic.toString(16)} is not 0x${FRAME_MAGIC.toString(16)}`)
  }
  if (source[at + 1] !== WIRE_VERSION) {
    return fail("version-mismatch", `wire version ${source[at + 1]}, this side speaks ${WIRE_VERSION}`)
  }
  if (accepted[type] !== true) return fail("bad-frame-type", `frame type ${frameTypeName(type)} is not accepted here`)
  const refused = options.admit?.(type as FrameType)
  if (refused !== undefined) return refused
  const seqHigh = u32(source, at + 16)
  if (seqHigh > MAX_SEQ_HIGH) return fail("oversized", "sequence is not below 2^53")
  const payloadBytes = u32(source, at + 24)
  const limit = payloadLimit(type, options.maxBatchBytes)
  if (payloadBytes > limit) {
    return fail("oversized", `${frameTypeName(type)} payload of ${payloadBytes} bytes exceeds ${limit}`)
  }
  return {
    type: type as FrameType,
    clientId: u32(source, at + 4),
    sessionEpoch: u32(source, at + 8),
    seq: sequenceOf(u32(source, at + 12), seqHigh),
    messageCount: u32(source, at + 20),
    payloadBytes,
    crc32c: u32(source, at + 28),
    payload: EMPTY
  }
}

export const crcViolation = (header: FrameHeader, crc: number): WireViolation | undefined =>
  crc === header.crc32c
    ? undefined
    : new WireViolation({
      code: "bad-crc",
      detail: `${frameTypeName(header.type)} crc32c 0x${crc.toString(16)} does not match the header's 0x${
        header.crc32c.toString(16)
      }`
    })

export const acceptedTypes = (accept: ReadonlyArray<FrameType>): ReadonlyArray<boolean> => {
  const accepted: Array<boolean> = []
  for (const type of accept) accepted[type] = true
  return accepted
}
