/**
 * A closed segment's header index (`indexBytes`): `u32 magic, u32 header bytes K, u32 records`,
 * then per record `u32 length` and its first K bytes (zero-padded), then a crc32c of all of it.
 * The writer fills it while appends fill the segment from its start, and writes it unsynced
 * after the segment is closed: one lost or damaged is read around (the segment is scanned).
 */
import { Effect } from "effect"
import { join } from "node:path"
import { crc32c } from "../../../native/Crc32c.js"
import { readFully, type SegmentFiles } from "./SegmentFiles.js"
import { indexFileName } from "./SegmentNames.js"
import { recordBytes } from "./SegmentRecord.js"

const INDEX_MAGIC = 0x58494358
const INDEX_HEAD = 12
/** An index that would grow past this is dropped (its segment's records are small: scanning reads them in large windows). */
const INDEX_MAX_BYTES = 4 << 20

/** An index being filled: `fill` bytes of `buf` hold its head's room and `records` entries. */
export interface IndexFill {
  buf: Uint8Array
  fill: number
  records: number
}

export const newIndex = (): IndexFill => ({ buf: new Uint8Array(64 << 10), fill: INDEX_HEAD, records: 0 })

/**
 * Adds a record's entry (its length and first `indexBytes` bytes); false when the index would
 * grow past INDEX_MAX_BYTES (the caller drops it).
 */
export const indexRecord = (
  filling: IndexFill,
  indexBytes: number,
  record: Uint8Array | ReadonlyArray<Uint8Array>,
  length: number
): boolean => {
  const entry = 4 + indexBytes
  if (filling.fill + entry + 4 > INDEX_MAX_BYTES) return false
  if (filling.fill + entry + 4 > filling.buf.length) {
    const grown = new Uint8Array(Math.min(INDEX_MAX_BYTES, Math.max(filling.fill + entry + 4, filling.buf.length * 2)))
    grown.set(filling.buf.subarray(0, filling.fill))
    filling.buf = grown
  }
  const at = filling.fill
  const buf = filling.buf
  // The record's length, little-endian, written byte by byte (no view made per record).
  buf[at] = length & 0xff
  buf[at + 1] = (length >>> 8) & 0xff
  buf[at + 2] = (length >>> 16) & 0xff
  buf[at + 3] = length >>> 24
  let put = 0
  const single = record instanceof Uint8Array
  for (let i = 0; i < (single ? 1 : record.length) && put < indexBytes; i++) {
    const part = single ? record : record[i]!
    const n = Math.min(part.length, indexBytes - put)
    buf.set(n === part.length ? part : part.subarray(0, n), at + 4 + put)
    put += n
  }
  filling.buf.fill(0, at + 4 + put, at + entry)
  filling.fill += entry
  filling.records++
  return true
}

/** The finished index's bytes (head and checksum written). */
export const sealIndex = (done: IndexFill, indexBytes: number): Uint8Array => {
  const v = new DataView(done.buf.buffer)
  v.setUint32(0, INDEX_MAGIC, true)
  v.setUint32(4, indexBytes, true)
  v.setUint32(8, done.records, true)
  v.setUint32(done.fill, crc32c(done.buf, 0, done.fill), true)
  return done.buf.subarray(0, done.fill + 4)
}

/** Writes a closed segment's index into the stream's directory `dir`; any failure leaves it to be scanned instead. */
export const writeIndex = (files: SegmentFiles, dir: string, base: number, bytes: Uint8Array) =>
  Effect.promise(async () => {
    const path = join(dir, indexFileName(base))
    try {
      const file = await files.create(path)
      try {
        await file.write([bytes], 0)
      } finally {
        await file.close()
      }
    } catch {
      await files.unlink(path).catch(() => undefined)
    }
  })

/** A sound index's entries: record `r`'s entry (its u32 length, then its first bytes) is at `at(r)` of `bytes`. */
export interface IndexEntries {
  readonly bytes: Uint8Array
  readonly view: DataView
  readonly records: number
  readonly at: (r: number) => number
}

/**
 * The index of the segment whose first record is `base` and which holds `segmentBytes` bytes, if
 * it has one that is sound: its checksum holds, it covers `records` records with at least
 * `headerBytes` of each, and their lengths add up to the segment's bytes.
 */
export const readIndex = async (
  files: SegmentFiles,
  dir: string,
  base: number,
  segmentBytes: number,
  records: number,
  headerBytes: number
): Promise<IndexEntries | undefined> => {
  const path = join(dir, indexFileName(base))
  try {
    const size = await files.size(path)
    if (size < INDEX_HEAD + 4 || size > INDEX_MAX_BYTES + 4) return undefined
    const bytes = new Uint8Array(size)
    const file = await files.open(path)
    let got = 0
    try {
      got = await readFully(file, bytes, 0)
    } finally {
      await file.close().catch(() => undefined)
    }
    const view = new DataView(bytes.buffer)
    const k = view.getUint32(4, true)
    const entry = 4 + k
    if (
      got !== size || view.getUint32(0, true) !== INDEX_MAGIC || k < headerBytes || view.getUint32(8, true) !== records
    ) return undefined
    if (size !== INDEX_HEAD + records * entry + 4 || crc32c(bytes, 0, size - 4) !== view.getUint32(size - 4, true)) {
      return undefined
    }
    let total = 0
    for (let r = 0; r < records; r++) total += recordBytes(view.getUint32(INDEX_HEAD + r * entry, true))
    if (total !== segmentBytes) return undefined
    return { bytes, view, records, at: (r: number) => INDEX_HEAD + r * entry }
  } catch {
    return undefined
  }
}
