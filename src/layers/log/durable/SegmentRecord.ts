/**
 * The record format of segment files: `u32 length, u32 crc32c, payload`, padded with zeros to
 * 8 bytes. The checksum covers the length field and the payload, so a damaged length is caught
 * like damaged data.
 */
import { crc32c } from "../../../native/Crc32c.js"

export const RECORD_HEADER_BYTES = 8
/** The largest record a segment takes (a broker's batch is far smaller). */
export const MAX_RECORD_BYTES = 256 << 20

/** Bytes a record of `length` payload bytes takes in a file. */
export const recordBytes = (length: number): number => (RECORD_HEADER_BYTES + length + 7) & ~7

const partsLength = (parts: ReadonlyArray<Uint8Array>): number => {
  let n = 0
  for (const p of parts) n += p.length
  return n
}

/** The payload length of a record made of `record`'s parts. */
export const payloadLength = (record: Uint8Array | ReadonlyArray<Uint8Array>): number =>
  record instanceof Uint8Array ? record.length : partsLength(record)

/** Writes the record (header, parts, zero padding) at `at` of `dst`, which must have `recordBytes(length)` room; returns the end. */
export const encodeRecord = (
  dst: Uint8Array,
  at: number,
  record: Uint8Array | ReadonlyArray<Uint8Array>,
  length: number
): number => {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength)
  view.setUint32(at, length, true)
  let crc = crc32c(dst, at, 4)
  let pos = at + RECORD_HEADER_BYTES
  const parts = record instanceof Uint8Array ? [record] : record
  for (const part of parts) {
    dst.set(part, pos)
    pos += part.length
  }
  crc = crc32c(dst, at + RECORD_HEADER_BYTES, length, crc)
  view.setUint32(at + 4, crc, true)
  const end = at + recordBytes(length)
  dst.fill(0, pos, end)
  return end
}

/** What lies at an offset of a buffer holding a file's bytes. */
export type RecordCheck =
  | { readonly kind: "ok"; readonly length: number; readonly next: number }
  /** The header or the payload runs past the bytes available. */
  | { readonly kind: "short"; readonly length: number }
  | { readonly kind: "bad"; readonly length: number; readonly reason: string }

/** Checks the record at `at` of `buf`, whose bytes `at..end-1` are the file's. */
export const checkRecord = (buf: Uint8Array, at: number, end: number): RecordCheck => {
  if (end - at < RECORD_HEADER_BYTES) return { kind: "short", length: -1 }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const length = view.getUint32(at, true)
  if (length > MAX_RECORD_BYTES) {
    return { kind: "bad", length, reason: `length ${length} exceeds the largest record (${MAX_RECORD_BYTES})` }
  }
  if (end - at < recordBytes(length)) return { kind: "short", length }
  const crc = crc32c(buf, at + RECORD_HEADER_BYTES, length, crc32c(buf, at, 4))
  const stored = view.getUint32(at + 4, true)
  if (crc !== stored) {
    return {
      kind: "bad",
      length,
      reason: `checksum ${stored.toString(16)} but the record's bytes give ${crc.toString(16)}`
    }
  }
  return { kind: "ok", length, next: at + recordBytes(length) }
}
