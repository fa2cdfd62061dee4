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
import { crc32c } from "../../native/Crc32c.js"
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
const BASE_TIME_BYTES = 8

/** Bytes a record whose body is `length` bytes occupies in a batch. */
export const messageRecordBytes = (length: number): number => MESSAGE_HEADER_BYTES + ((length + 7) & ~7)

/** Bytes of a batch's first record (which carries the base timestamp) whose value, key and headers take `bytes`. */
export const firstRecordBytes = (bytes: number): number => messageRecordBytes(BASE_TIME_BYTES + bytes)

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
  if (payload.length % 8 !== 0) return `payload of ${payload.length} bytes is not a multiple of 8`
  if (messageCount < 1 || messageCount * MESSAGE_HEADER_BYTES > payload.length) {
    return `message count ${messageCount} does not fit a ${payload.length}-byte payload`
  }
  const view = wholeViewOf(payload)
  // Offsets in `view` (the whole buffer): the payload spans start..end.
  const start = payload.byteOffset
  const end = start + payload.length
  let at = start
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
    at += messageRecordBytes(length)
  }
  return at === end ? undefined : `${end - at} bytes follow the last of ${messageCount} messages`
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

const headerNames = new TextDecoder()

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

export interface SealedPayload {
  readonly payload: Uint8Array
  readonly messageCount: number
  readonly crc32c: number
}

/**
 * Reusable batch buffers of one size. Buffers are not zeroed (the builder writes every byte
 * of a record, padding included); they come back once a batch is acknowledged and no write
 * of it is pending, so a steady stream allocates nothing per batch. With `headroom`, each
 * buffer starts that many bytes into its own memory (a frame header is written there, so
 * header and payload go to the socket as one write).
 */
export class BufferPool {
  private readonly free: Array<Uint8Array> = []

  constructor(readonly size: number, private keep: number, readonly headroom = 0) {}

  /**
   * Keeps `buffers` more once they come back: a publisher keeps one for each topic it publishes
   * to (its open batch) besides those of its window, or spreading over many topics would drop
   * and allocate again a buffer per topic whenever its batches all come back at once (a flush).
   */
  keepMore(buffers: number): void {
    this.keep += buffers
  }

  take(): Uint8Array {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.headroom + this.size).subarray(this.headroom)
  }

  give(buffer: Uint8Array): void {
    if (buffer.length === this.size && this.free.length < this.keep) this.free.push(buffer)
  }

  /** Whether `buffer` is one of this pool's, with its headroom in front of it (not a buffer made elsewhere). */
  hasHeadroom(buffer: Uint8Array): boolean {
    return this.headroom > 0 && buffer.length === this.size && buffer.byteOffset === this.headroom &&
      buffer.buffer.byteLength === this.headroom + this.size
  }
}

const NO_BYTES = new Uint8Array(0)
const NO_VIEW = new DataView(NO_BYTES.buffer)

export interface SealedBatch extends SealedPayload {
  /** The whole buffer the payload is a view of (give it back to the pool when done). */
  readonly buffer: Uint8Array
}

/**
 * Accumulates messages into one batch payload of `pool.size` bytes; a single message larger
 * than that gets a batch of its own, sized to it. The first message's timestamp is the
 * batch's base; a message more than `MAX_TIME_DELTA_MS` after it does not fit (it starts the
 * next batch), and one stamped before it (the clock stepped back) is recorded at the base.
 */
export class BatchBuilder {
  private bytes: Uint8Array
  private view: DataView
  private used = 0
  private count = 0
  private base = 0
  /** Most bytes a batch of several messages takes (its topic's limit); a lone larger message still gets one. */
  limit = Infinity

  /** No buffer until the first message: a publisher of many topics keeps one only per topic whose messages gather. */
  constructor(private readonly pool: BufferPool) {
    this.bytes = NO_BYTES
    this.view = NO_VIEW
  }

  get messageCount(): number {
    return this.count
  }

  get byteLength(): number {
    return this.used
  }

  /**
   * Whether a message of `length` value bytes and `partsBytes` of key and headers, published
   * at `timestamp`, can be added now (always true for an empty batch).
   */
  fits(length: number, partsBytes = 0, timestamp = this.base): boolean {
    return this.count === 0 ||
      (this.used + messageRecordBytes(partsBytes + length) <= Math.min(this.bytes.length, this.limit) &&
        timestamp - this.base <= MAX_TIME_DELTA_MS)
  }

  /** Appends a message published at `timestamp` (ms since the epoch); the caller has checked `fits`. */
  add(message: Uint8Array, timestamp: number = Date.now(), parts?: MessageParts): void {
    const first = this.count === 0
    const length = (first ? BASE_TIME_BYTES : 0) + (parts === undefined ? 0 : parts.bytes) + message.length
    const record = messageRecordBytes(length)
    if (first) this.use(record > this.pool.size ? new Uint8Array(record) : this.pool.take())
    const view = this.view
    const at = this.used
    // Zero the record's last 8 bytes first: the body overwrites all but its padding.
    view.setFloat64(at + record - 8, 0)
    view.setUint32(at, length, true)
    let p = at + MESSAGE_HEADER_BYTES
    let flags = 0
    if (first) {
      this.base = timestamp
      view.setFloat64(p, timestamp, true)
      p += BASE_TIME_BYTES
      flags = MessageFlags.BASE_TIME
    }
    if (parts !== undefined) {
      const { key, headers } = parts
      if (key !== undefined) {
        view.setUint32(p, key.length, true)
        this.bytes.set(key, p + 4)
        p += 4 + key.length
        flags |= MessageFlags.KEY
      }
      if (headers !== undefined) {
        const block = p
        p += 4
        for (const { name, value } of headers) {
          view.setUint32(p, name.length, true)
          view.setUint32(p + 4, value.length, true)
          this.bytes.set(name, p + 8)
          this.bytes.set(value, p + 8 + name.length)
          p += 8 + name.length + value.length
        }
        view.setUint32(block, p - block - 4, true)
        flags |= MessageFlags.HEADERS
      }
    }
    const delta = Math.min(MAX_TIME_DELTA_MS, Math.max(0, timestamp - this.base))
    view.setUint32(at + 4, (delta * 256 + flags) >>> 0, true)
    this.bytes.set(message, p)
    this.used = at + record
    this.count++
  }

  /** Hands out the batch (a view of its buffer); the next message takes a fresh buffer from the pool. */
  seal(): SealedBatch {
    const payload = this.bytes.subarray(0, this.used)
    const sealed = { payload, buffer: this.bytes, messageCount: this.count, crc32c: crc32c(payload, 0, payload.length) }
    this.use(NO_BYTES)
    return sealed
  }

  private use(bytes: Uint8Array): void {
    this.bytes = bytes
    this.view = bytes === NO_BYTES ? NO_VIEW : new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
    this.used = 0
    this.count = 0
  }
}
