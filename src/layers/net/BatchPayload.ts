/**
 * The batch payload format the publisher builds and the broker copies verbatim into the
 * region: messages `u32 length, u32 flags, payload`, each padded to 8 bytes, little-endian.
 */
import { crc32c } from "./Crc32c.js"

export const MESSAGE_HEADER_BYTES = 8

/** Bytes a message of `length` payload bytes occupies in a batch. */
export const messageRecordBytes = (length: number): number => MESSAGE_HEADER_BYTES + ((length + 7) & ~7)

/**
 * Checks that `payload` is exactly `messageCount` well-formed messages: every length inside
 * the payload and the last record ending at its end. Returns why not, or `undefined`.
 */
export const checkBatchPayload = (payload: Uint8Array, messageCount: number): string | undefined => {
  if (payload.length % 8 !== 0) return `payload of ${payload.length} bytes is not a multiple of 8`
  if (messageCount < 1 || messageCount * MESSAGE_HEADER_BYTES > payload.length) {
    return `message count ${messageCount} does not fit a ${payload.length}-byte payload`
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length)
  let at = 0
  for (let i = 0; i < messageCount; i++) {
    if (at + MESSAGE_HEADER_BYTES > payload.length) return `message ${i} starts past the payload end`
    const length = view.getUint32(at, true)
    if (length > payload.length - at - MESSAGE_HEADER_BYTES) return `message ${i} of ${length} bytes overruns the payload`
    at += messageRecordBytes(length)
  }
  return at === payload.length ? undefined : `${payload.length - at} bytes follow the last of ${messageCount} messages`
}

/**
 * Calls `visit` with a zero-copy view of each message of a well-formed payload (check it
 * first with `checkBatchPayload`); one loop, no allocation besides the views.
 */
export const forEachMessage = (
  payload: Uint8Array,
  messageCount: number,
  visit: (message: Uint8Array, flags: number, index: number) => void
): void => {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length)
  let at = 0
  for (let i = 0; i < messageCount; i++) {
    const length = view.getUint32(at, true)
    visit(payload.subarray(at + MESSAGE_HEADER_BYTES, at + MESSAGE_HEADER_BYTES + length), view.getUint32(at + 4, true), i)
    at += messageRecordBytes(length)
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
 * of it is pending, so a steady stream allocates nothing per batch.
 */
export class BufferPool {
  private readonly free: Array<Uint8Array> = []

  constructor(readonly size: number, private readonly keep: number) {}

  take(): Uint8Array {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)
  }

  give(buffer: Uint8Array): void {
    if (buffer.length === this.size && this.free.length < this.keep) this.free.push(buffer)
  }
}

export interface SealedBatch extends SealedPayload {
  /** The whole buffer the payload is a view of (give it back to the pool when done). */
  readonly buffer: Uint8Array
}

/**
 * Accumulates messages into one batch payload of `pool.size` bytes; a single message larger
 * than that gets a batch of its own, sized to it.
 */
export class BatchBuilder {
  private bytes: Uint8Array
  private view: DataView
  private used = 0
  private count = 0

  constructor(private readonly pool: BufferPool) {
    this.bytes = pool.take()
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length)
  }

  get messageCount(): number {
    return this.count
  }

  get byteLength(): number {
    return this.used
  }

  /** Whether a message of `length` bytes can be added now (always true for an empty batch). */
  fits(length: number): boolean {
    return this.count === 0 || this.used + messageRecordBytes(length) <= this.bytes.length
  }

  /** Appends a message; the caller has checked `fits`. */
  add(message: Uint8Array, flags = 0): void {
    const record = messageRecordBytes(message.length)
    if (this.count === 0 && record > this.bytes.length) {
      this.pool.give(this.bytes)
      this.use(new Uint8Array(record))
    }
    const at = this.used
    // Zero the record's last 8 bytes first: the message overwrites all but its padding.
    this.view.setFloat64(at + record - 8, 0)
    this.view.setUint32(at, message.length, true)
    this.view.setUint32(at + 4, flags, true)
    this.bytes.set(message, at + MESSAGE_HEADER_BYTES)
    this.used = at + record
    this.count++
  }

  /** Hands out the batch (a view of its buffer) and starts on a fresh buffer from the pool. */
  seal(): SealedBatch {
    const payload = this.bytes.subarray(0, this.used)
    const sealed = { payload, buffer: this.bytes, messageCount: this.count, crc32c: crc32c(payload, 0, payload.length) }
    this.use(this.pool.take())
    return sealed
  }

  private use(bytes: Uint8Array): void {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
    this.used = 0
    this.count = 0
  }
}
