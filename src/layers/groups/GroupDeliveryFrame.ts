/**
 * GROUP_DELIVERY frames (GroupProtocol.ts): the messages a member the connection joined was
 * handed, many in one frame — what the member took in one wake goes in one write and one read.
 * Header: client id = the member, seq = the id of the frame's first delivery (the others follow
 * it: seq + 1, seq + 2, …), message count = how many. Payload, per delivery (little-endian):
 * f64 offset, f64 timestamp, u32 delivery count, u32 key length (NONE: no key) then the key,
 * u32 header count (NONE: no headers) then per header u32 name length, the name (UTF-8), u32
 * value length, the value; then u32 value length and the value.
 */
import { crc32c } from "../../native/Crc32c.js"
import type { Delivery } from "../../services/groups/ConsumerGroups.js"
import type { MessageHeader } from "../../services/net/Subscriber.js"
import { FRAME_HEADER_BYTES, FrameType, writeFrameHeader } from "../net/Frame.js"

const NONE = 0xffff_ffff
/** offset, timestamp, delivery count, key length, header count, value length. */
const FIXED_BYTES = 8 + 8 + 4 + 4 + 4 + 4
/** A frame stops taking deliveries past this many payload bytes: a chunk of big messages goes as several frames. */
export const DELIVERY_FRAME_BYTES = 1 << 20

const bytesOf = (d: Delivery): number => {
  let bytes = FIXED_BYTES + d.value.length + (d.key?.length ?? 0)
  if (d.headers !== undefined) {
    for (const h of d.headers) bytes += 8 + Buffer.byteLength(h.name) + h.value.length
  }
  return bytes
}

/** Writes `d` at `at` of `out`; where it ends. */
const write = (out: Buffer, at: number, d: Delivery): number => {
  out.writeDoubleLE(d.offset, at)
  out.writeDoubleLE(d.timestamp, at + 8)
  out.writeUInt32LE(d.deliveryCount, at + 16)
  let p = at + 20
  if (d.key === undefined) {
    out.writeUInt32LE(NONE, p)
    p += 4
  } else {
    out.writeUInt32LE(d.key.length, p)
    out.set(d.key, p + 4)
    p += 4 + d.key.length
  }
  if (d.headers === undefined) {
    out.writeUInt32LE(NONE, p)
    p += 4
  } else {
    out.writeUInt32LE(d.headers.length, p)
    p += 4
    for (const h of d.headers) {
      const nameBytes = out.write(h.name, p + 4, "utf8")
      out.writeUInt32LE(nameBytes, p)
      p += 4 + nameBytes
      out.writeUInt32LE(h.value.length, p)
      out.set(h.value, p + 4)
      p += 4 + h.value.length
    }
  }
  out.writeUInt32LE(d.value.length, p)
  out.set(d.value, p + 4)
  return p + 4 + d.value.length
}

const frameOf = (member: number, firstId: number, deliveries: ReadonlyArray<Delivery>, payloadBytes: number) => {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes)
  let at = FRAME_HEADER_BYTES
  for (const d of deliveries) at = write(out, at, d)
  const crc = crc32c(out, FRAME_HEADER_BYTES, payloadBytes)
  writeFrameHeader(out, FrameType.GROUP_DELIVERY, member, 0, firstId, deliveries.length, payloadBytes, crc)
  return out
}

/**
 * The frames carrying `deliveries` of member `member`, whose ids run from `firstId` in order:
 * as few as DELIVERY_FRAME_BYTES allows (one unless the messages are big).
 */
export const deliveryFrames = (member: number, firstId: number, deliveries: ReadonlyArray<Delivery>): Array<Buffer> => {
  const frames: Array<Buffer> = []
  let start = 0
  let bytes = 0
  for (let i = 0; i < deliveries.length; i++) {
    const size = bytesOf(deliveries[i]!)
    if (i > start && bytes + size > DELIVERY_FRAME_BYTES) {
      frames.push(frameOf(member, firstId + start, deliveries.slice(start, i), bytes))
      start = i
      bytes = 0
    }
    bytes += size
  }
  if (deliveries.length > start) frames.push(frameOf(member, firstId + start, deliveries.slice(start), bytes))
  return frames
}

/** What a GROUP_DELIVERY carries of one message (its bytes copied out of the frame: the reader reuses its buffers). */
export interface DeliveredMessage {
  readonly offset: number
  readonly timestamp: number
  readonly deliveryCount: number
  readonly key: Uint8Array | undefined
  readonly headers: ReadonlyArray<MessageHeader> | undefined
  readonly value: Uint8Array
}

const names = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** A GROUP_DELIVERY's `count` messages read back, or why they cannot be. */
export const readDeliveries = (payload: Uint8Array, count: number): Array<DeliveredMessage> | string => {
  // One copy of the whole payload, which the messages' views keep: the frame's bytes are the reader's, reused after this.
  const own = new Uint8Array(payload)
  const view = new DataView(own.buffer, own.byteOffset, own.byteLength)
  const out: Array<DeliveredMessage> = []
  let p = 0
  /** `length` bytes at `p` (undefined for NONE), or a string when they run past the payload. */
  const part = (length: number): Uint8Array | string => {
    if (p + length > own.length) return `a GROUP_DELIVERY's delivery ${out.length} runs past its payload`
    const bytes = own.subarray(p, p + length)
    p += length
    return bytes
  }
  const u32 = (): number | string => {
    if (p + 4 > own.length) return `a GROUP_DELIVERY's delivery ${out.length} runs past its payload`
    p += 4
    return view.getUint32(p - 4, true)
  }
  for (let i = 0; i < count; i++) {
    if (p + 20 > own.length) return `a GROUP_DELIVERY of ${count} deliveries holds ${i}`
    const offset = view.getFloat64(p, true)
    const timestamp = view.getFloat64(p + 8, true)
    const deliveryCount = view.getUint32(p + 16, true)
    p += 20
    const keyLength = u32()
    if (typeof keyLength === "string") return keyLength
    const key = keyLength === NONE ? undefined : part(keyLength)
    if (typeof key === "string") return key
    const headerCount = u32()
    if (typeof headerCount === "string") return headerCount
    let headers: Array<MessageHeader> | undefined
    if (headerCount !== NONE) {
      headers = []
      for (let h = 0; h < headerCount; h++) {
        const nameLength = u32()
        if (typeof nameLength === "string") return nameLength
        const name = part(nameLength)
        if (typeof name === "string") return name
        const valueLength = u32()
        if (typeof valueLength === "string") return valueLength
        const value = part(valueLength)
        if (typeof value === "string") return value
        try {
          headers.push({ name: names.decode(name), value })
        } catch {
          return `a GROUP_DELIVERY header name that is not UTF-8`
        }
      }
    }
    const valueLength = u32()
    if (typeof valueLength === "string") return valueLength
    const value = part(valueLength)
    if (typeof value === "string") return value
    out.push({ offset, timestamp, deliveryCount, key, headers, value })
  }
  if (p !== own.length) return `a GROUP_DELIVERY of ${count} deliveries has ${own.length - p} bytes past them`
  return out
}
