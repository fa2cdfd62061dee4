/**
 * The batch payload format the publisher builds and the broker copies verbatim into the
 * region (protocol 6, docs/protocol.md "Messages"): records `u32 length, u32 flags, body`,
 * each padded to 8 bytes, little-endian. `length` is the body's, so the log walks records
 * without knowing what a body holds. The flags' low byte says which parts precede the value
 * in the body, in this order:
 *
 * - `BASE_TIME`: f64, the batch's base timestamp (ms since the epoch) — on the first record
 *   of every batch and only there;
 * - `KEY`: u32 key length, the key;
 * - `HEADERS`: u32 bytes of the entries that follow, then entries `u32 name length, u32 value
 *   length, name (UTF-8), value`;
 *
 * and the value is the rest. Bits 8–31 are the message's timestamp as ms after the base, so a
 * plain message costs its 8-byte record header and nothing more.
 */
import type { HeadersInit, InvalidMessage } from "../../services/net/Publisher.js"
import type { MessageHeader } from "../../services/net/Subscriber.js"
import { BASE_TIME_FLAG, RECORD_HEADER_BYTES, TIME_SHIFT } from "../log/MessageTime.js"
import { headerNotAPair, headersNotAList, isStringOrBytes, keyNotBytes } from "./MessageCheck.js"

export const MESSAGE_HEADER_BYTES = RECORD_HEADER_BYTES

/** Bits of a record's flags word: which parts its body carries before the value. */
export const MessageFlags = {
  BASE_TIME: BASE_TIME_FLAG,
  KEY: 2,
  HEADERS: 4
} as const
/** The flags' low byte (the parts); bits 3–7 are reserved and must be 0. */
const PART_BITS = 0xff
const KNOWN_PARTS = MessageFlags.BASE_TIME | MessageFlags.KEY | MessageFlags.HEADERS
/** The largest timestamp a record can carry past its batch's base (about 4.6 hours). */
export const MAX_TIME_DELTA_MS = 2 ** 24 - 1
export const BASE_TIME_BYTES = 8

/** Bytes a record whose body is `length` bytes occupies in a batch. */
export const messageRecordBytes = (length: number): number => MESSAGE_HEADER_BYTES + ((length + 7) & ~7)

/** Bytes of a batch's first record (which carries the base timestamp) whose value, key and headers take `bytes`. */
export const firstRecordBytes = (bytes: number): number => messageRecordBytes(BASE_TIME_BYTES + bytes)

/** The most bytes of value, key and headers whose first record fits in `batchBytes` (`firstRecordBytes`'s inverse). */
export const largestFirstMessage = (batchBytes: number): number =>
  Math.floor((batchBytes - MESSAGE_HEADER_BYTES) / 8) * 8 - BASE_TIME_BYTES

/** A message's optional parts, encoded (see `encodeParts`). */
export interface MessageParts {
  readonly key: Uint8Array | undefined
  readonly headers: ReadonlyArray<{ readonly name: Uint8Array; readonly value: Uint8Array }> | undefined
  /** Body bytes they take: the key's and the headers' lengths and bytes. */
  readonly bytes: number
}

const encoder = new TextEncoder()
const bytesOf = (value: string | Uint8Array): Uint8Array => (typeof value === "string" ? encoder.encode(value) : value)

/**
 * Encodes a key and headers once, at publish; `undefined` when there are neither (a plain
 * message), `InvalidMessage` when one is not what it must be (what a JavaScript caller may pass).
 */
export const encodeParts = (
  options: { readonly key?: string | Uint8Array | undefined; readonly headers?: HeadersInit | undefined } | undefined
): MessageParts | InvalidMessage | undefined => {
  if (options === undefined || (options.key === undefined && options.headers === undefined)) return undefined
  if (options.key !== undefined && !isStringOrBytes(options.key)) return keyNotBytes(options.key)
  const key = options.key === undefined ? undefined : bytesOf(options.key)
  const given: unknown = options.headers
  const pairs: ReadonlyArray<unknown> | undefined = given === undefined
    ? undefined
    : Array.isArray(given)
    ? given
    : typeof given === "object" && given !== null
    ? Object.entries(given)
    : undefined
  if (given !== undefined && pairs === undefined) return headersNotAList(given)
  let headers: Array<{ readonly name: Uint8Array; readonly value: Uint8Array }> | undefined
  for (const pair of pairs ?? []) {
    if (!Array.isArray(pair) || typeof pair[0] !== "string" || !isStringOrBytes(pair[1])) return headerNotAPair(pair)
    ;(headers ??= []).push({ name: encoder.encode(pair[0]), value: bytesOf(pair[1]) })
  }
  if (key === undefined && headers === undefined) return undefined
  let bytes = key === undefined ? 0 : 4 + key.length
  if (headers !== undefined) bytes += headers.reduce((n, h) => n + 8 + h.name.length + h.value.length, 4)
  return { key, headers, bytes }
}

/**
 * Checks that `payload` is exactly `messageCount` well-formed records: every length inside
 * the payload and its record, the parts each record's flags announce inside its body, the
 * base timestamp on the first record only, and the last record ending at the payload's end.
 * A payload cut from a batch after its first `firstIndex` records is checked as those records
 * are in their batch (none carries the base timestamp). Returns why not, or `undefined`.
 */
export const checkBatchPayload = (payload: Uint8Array, messageCount: number, firstIndex = 0): string | undefined => {
  const problem = checkBatchWithin(payload, messageCount, Infinity, firstIndex)
  return typeof problem === "string" ? problem : undefined
}

/** A well-formed batch holding a message larger than its topic takes (value, key and headers). */
export interface OverLimitMessage {
  readonly index: number
  readonly bytes: number
}

/**
 * `checkBatchPayload`, and each message (value, key and headers) at most `maxMessageBytes`: the
 * first message over it, once the framing held.
 */
export const checkBatchWithin = (
  payload: Uint8Array,
  messageCount: number,
  maxMessageBytes: number,
  firstIndex = 0
): string | OverLimitMessage | undefined => {
  if (payload.length % 8 !== 0) return `payload of ${payload.length} bytes is not a multiple of 8`
  if (messageCount < 1 || messageCount * MESSAGE_HEADER_BYTES > payload.length) {
    return `message count ${messageCount} does not fit a ${payload.length}-byte payload`
  }
  const view = wholeViewOf(payload)
  // Offsets in `view` (the whole buffer): the payload spans start..end.
  const start = payload.byteOffset
  const end = start + payload.length
  let at = start
  let over: OverLimitMessage | undefined
  for (let i = firstIndex; i < firstIndex + messageCount; i++) {
    if (at + MESSAGE_HEADER_BYTES > end) return `message ${i} starts past the payload end`
    const length = view.getUint32(at, true)
    if (length > end - at - MESSAGE_HEADER_BYTES) return `message ${i} of ${length} bytes overruns the payload`
    const parts = view.getUint32(at + 4, true) & PART_BITS
    // Plain records past the first (the busy case) need nothing more.
    if (i === 0 || parts !== 0) {
      const bad = checkParts(view, at, length, parts, i)
      if (bad !== undefined) return `message ${i}: ${bad}`
    }
    // A record's length counts its batch's base time too (the first's): not the message's.
    const bytes = (parts & MessageFlags.BASE_TIME) === 0 ? length : length - BASE_TIME_BYTES
    if (bytes > maxMessageBytes && over === undefined) over = { index: i, bytes }
    at += messageRecordBytes(length)
  }
  return at === end ? over : `${end - at} bytes follow the last of ${messageCount} messages`
}

/**
 * A DataView over the whole buffer behind `bytes`, made once per buffer: the broker checks
 * every batch where it was received, in the region, so one view serves them all (a DataView
 * per batch is a call into V8's C++ while the checker is not yet optimized). The last buffer
 * checked stays referenced until another is (at most one batch's copy, elsewhere than a broker).
 */
export const wholeViewOf = (bytes: Uint8Array): DataView => {
  const buffer = bytes.buffer
  if (buffer !== viewedBuffer) {
    viewedBuffer = buffer
    wholeView = new DataView(buffer)
  }
  return wholeView
}
let viewedBuffer: ArrayBufferLike | undefined
let wholeView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0))

/** The parts of record `i` at `at` of `view` (its body `length` bytes, inside the payload) lie inside its body. */
const checkParts = (view: DataView, at: number, length: number, parts: number, i: number): string | undefined => {
  if ((parts & ~KNOWN_PARTS) !== 0) return `unknown flag bits 0x${parts.toString(16)}`
  if ((i === 0) !== ((parts & MessageFlags.BASE_TIME) !== 0)) {
    return i === 0
      ? "the first record lacks the batch's base timestamp"
      : "only the first record may carry a base timestamp"
  }
  const end = at + MESSAGE_HEADER_BYTES + length
  let p = at + MESSAGE_HEADER_BYTES
  if ((parts & MessageFlags.BASE_TIME) !== 0) {
    if (p + BASE_TIME_BYTES > end) return "its base timestamp overruns its body"
    const base = view.getFloat64(p, true)
    if (!Number.isSafeInteger(base) || base < 0) return `base timestamp ${base} is not a time in ms`
    p += BASE_TIME_BYTES
  }
  if ((parts & MessageFlags.KEY) !== 0) {
    if (p + 4 > end) return "its key length overruns its body"
    const keyLength = view.getUint32(p, true)
    if (keyLength > end - p - 4) return `its ${keyLength}-byte key overruns its body`
    p += 4 + keyLength
  }
  if ((parts & MessageFlags.HEADERS) !== 0) {
    if (p + 4 > end) return "its headers length overruns its body"
    const block = view.getUint32(p, true)
    if (block > end - p - 4) return `its ${block} bytes of headers overrun its body`
    p += 4
    const blockEnd = p + block
    if (block === 0) return "a headers part with no header"
    for (let h = 0; p < blockEnd; h++) {
      if (p + 8 > blockEnd) return `header ${h} overruns the headers`
      const nameLength = view.getUint32(p, true)
      const valueLength = view.getUint32(p + 4, true)
      if (nameLength > blockEnd - p - 8 || valueLength > blockEnd - p - 8 - nameLength) {
        return `header ${h} overruns the headers`
      }
      p += 8 + nameLength + valueLength
    }
  }
  return undefined
}

const headerNames = new TextDecoder("utf-8", { ignoreBOM: true })

/**
 * One message of a checked payload as readers see it: a reused object whose views (`payload`,
 * `key`, each header's `value`) point into the payload. `load` aims it at a record.
 */
export class MessageRecord {
  /** The record's parts (`MessageFlags`: BASE_TIME, KEY, HEADERS). */
  flags = 0
  /** When it was published: ms since the epoch. */
  timestamp = 0
  key: Uint8Array | undefined = undefined
  /**
   * The value where it lies: `bytes[valueOffset, valueOffset + valueLength)` of the batch payload,
   * for loops that take no view per message (`payload` makes one when first asked for).
   */
  bytes: Uint8Array = new Uint8Array(0)
  valueOffset = 0
  valueLength = 0
  private value: Uint8Array | undefined = undefined
  private headersAt = -1
  private headersEnd = 0
  private decoded: ReadonlyArray<MessageHeader> | undefined = undefined

  /** The value: the body after the key and headers (a view, made when first asked for). */
  get payload(): Uint8Array {
    return (this.value ??= this.bytes.subarray(this.valueOffset, this.valueOffset + this.valueLength))
  }

  /** The headers, decoded when first asked for (values are views of the payload); undefined without any. */
  get headers(): ReadonlyArray<MessageHeader> | undefined {
    if (this.headersAt < 0) return undefined
    if (this.decoded !== undefined) return this.decoded
    const source = this.bytes
    const view = new DataView(source.buffer, source.byteOffset, source.length)
    const out: Array<MessageHeader> = []
    for (let p = this.headersAt; p < this.headersEnd;) {
      const nameLength = view.getUint32(p, true)
      const valueLength = view.getUint32(p + 4, true)
      const name = headerNames.decode(source.subarray(p + 8, p + 8 + nameLength))
      out.push({ name, value: source.subarray(p + 8 + nameLength, p + 8 + nameLength + valueLength) })
      p += 8 + nameLength + valueLength
    }
    return (this.decoded = out)
  }

  /**
   * Aims at the record at `at` of `payload` (checked with `checkBatchPayload`), in a batch whose
   * base timestamp is `base`; returns the record's bytes.
   */
  load(payload: Uint8Array, view: DataView, at: number, base: number): number {
    const length = view.getUint32(at, true)
    const flags = view.getUint32(at + 4, true)
    const parts = flags & PART_BITS
    let p = at + MESSAGE_HEADER_BYTES
    this.flags = parts
    this.timestamp = base + (flags >>> TIME_SHIFT)
    if (parts === 0) {
      this.key = undefined
      this.headersAt = -1
    } else {
      if ((parts & MessageFlags.BASE_TIME) !== 0) p += BASE_TIME_BYTES
      if ((parts & MessageFlags.KEY) !== 0) {
        const keyLength = view.getUint32(p, true)
        this.key = payload.subarray(p + 4, p + 4 + keyLength)
        p += 4 + keyLength
      } else {
        this.key = undefined
      }
      if ((parts & MessageFlags.HEADERS) !== 0) {
        this.headersAt = p + 4
        this.headersEnd = p + 4 + view.getUint32(p, true)
        this.decoded = undefined
        p = this.headersEnd
      } else {
        this.headersAt = -1
      }
    }
    this.bytes = payload
    this.valueOffset = p
    this.valueLength = at + MESSAGE_HEADER_BYTES + length - p
    this.value = undefined
    return messageRecordBytes(length)
  }
}

/** The base timestamp of a checked payload starting at `at` of `view` (its first record carries it). */
export const baseTimestamp = (view: DataView, at = 0): number => view.getFloat64(at + MESSAGE_HEADER_BYTES, true)

/**
 * Where the value of the record at `at` starts in `bytes` (a record whose framing is checked
 * but whose parts may not be: anything running past its body gives -1). For readers of raw
 * records such as the audit: a plain record's value starts right after its 8-byte header.
 */
export const valueStart = (bytes: Uint8Array, at: number, flags: number, length: number): number => {
  const parts = flags & PART_BITS
  let p = at + MESSAGE_HEADER_BYTES
  if (parts === 0) return p
  const end = p + length
  const u32 = (o: number) => (bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24)) >>> 0
  if ((parts & MessageFlags.BASE_TIME) !== 0) p += BASE_TIME_BYTES
  if ((parts & MessageFlags.KEY) !== 0) p = p + 4 > end ? end + 1 : p + 4 + u32(p)
  if ((parts & MessageFlags.HEADERS) !== 0) p = p + 4 > end ? end + 1 : p + 4 + u32(p)
  return p > end ? -1 : p
}

/**
 * Calls `visit` with each message of a well-formed payload (check it first with
 * `checkBatchPayload`): one reused `MessageRecord`, no allocation besides its views.
 */
export const forEachMessage = (
  payload: Uint8Array,
  messageCount: number,
  visit: (message: MessageRecord, index: number) => void
): void => {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length)
  const base = baseTimestamp(view)
  const message = new MessageRecord()
  let at = 0
  for (let i = 0; i < messageCount; i++) {
    const bytes = message.load(payload, view, at, base)
    visit(message, i)
    at += bytes
  }
}
