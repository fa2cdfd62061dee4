/**
 * Builds batch payloads in the format BatchPayload.ts describes, into reusable buffers of one
 * size: what a publisher gathers a topic's messages in, sealed with its crc32c when it goes.
 */
import { crc32c } from "../../native/Crc32c.js"
import {
  BASE_TIME_BYTES,
  MAX_TIME_DELTA_MS,
  MESSAGE_HEADER_BYTES,
  MessageFlags,
  type MessageParts,
  messageRecordBytes
} from "./BatchPayload.js"

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
