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
 * Accumulates messages into one batch payload of `capacity` bytes; a single message larger
 * than that gets a batch of its own, sized to it.
 */
export class BatchBuilder {
  private bytes = new Uint8Array(0)
  private view = new DataView(this.bytes.buffer)
  private used = 0
  private count = 0

  constructor(private readonly capacity: number) {
    this.allocate(capacity)
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
    if (this.count === 0 && record > this.bytes.length) this.allocate(record)
    const at = this.used
    this.view.setUint32(at, message.length, true)
    this.view.setUint32(at + 4, flags, true)
    this.bytes.set(message, at + MESSAGE_HEADER_BYTES)
    this.used = at + record
    this.count++
  }

  /** Hands out the batch (a view of its buffer) and starts a fresh buffer. */
  seal(): SealedPayload {
    const payload = this.bytes.subarray(0, this.used)
    const sealed = { payload, messageCount: this.count, crc32c: crc32c(payload, 0, payload.length) }
    this.allocate(this.capacity)
    return sealed
  }

  private allocate(bytes: number): void {
    this.bytes = new Uint8Array(bytes)
    this.view = new DataView(this.bytes.buffer)
    this.used = 0
    this.count = 0
  }
}
