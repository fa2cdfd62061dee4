/**
 * Reading a segment file's records in order, each checked against its checksum (opening's
 * recovery scan and `read`), and telling a torn tail from damage with intact records after it.
 */
import { readFully, type SegmentFile } from "./SegmentFiles.js"
import { checkRecord, MAX_RECORD_BYTES, RECORD_HEADER_BYTES } from "./SegmentRecord.js"

/** Reads fetch this much at a time. */
const READ_BYTES = 4 << 20

/** How a segment file ended when it was scanned. */
export interface Scanned {
  readonly records: number
  /** The end of its last intact record. */
  readonly end: number
  readonly size: number
  /** The first record that was not intact, if one was. */
  readonly bad?: { readonly offset: number; readonly reason: string }
}

/** Room before each read-ahead chunk for the part of a record the previous chunk ended with (a larger one is copied). */
const CARRY_BYTES = 1 << 20

/**
 * Reads a segment's records in order, from byte `start` (a record boundary; default its start)
 * up to `limit` bytes, calling `onRecord` with each and the offset after it (false stops).
 * Stops at the first record that is not intact. The next chunk is read while this one is
 * checked (two buffers; a record cut by a chunk's end is carried into the room before the next).
 * Full-sized buffers come from `pool` and go back to it at the end.
 */
export const scanFile = async (
  file: SegmentFile,
  limit: number,
  onRecord: (view: Uint8Array, next: number) => boolean | void,
  start = 0,
  pool: Array<Uint8Array> = []
): Promise<Scanned> => {
  const chunkBytes = Math.min(READ_BYTES, Math.max(limit - start, RECORD_HEADER_BYTES))
  const carry = Math.min(CARRY_BYTES, chunkBytes)
  const pooled = carry + chunkBytes === CARRY_BYTES + READ_BYTES
  const spare: Array<Uint8Array> = pooled ? pool.splice(0, 2) : []
  /** The file offset the next chunk is read from. */
  let ahead = start
  const fetch = ():
    | Promise<{ readonly buf: Uint8Array; readonly position: number; readonly want: number; readonly got: number }>
    | undefined =>
  {
    if (ahead >= limit) return undefined
    const buf = spare.pop() ?? new Uint8Array(carry + chunkBytes)
    const position = ahead
    const want = Math.min(chunkBytes, limit - position)
    ahead += want
    return file.read(buf.subarray(carry, carry + want), position).then((got) => ({ buf, position, want, got }))
  }
  let pending = fetch()
  let buf: Uint8Array = new Uint8Array(0)
  /** The file offset of buf[0], and how many bytes of buf hold the file's. */
  let base = start
  let filled = 0
  let at = 0
  let records = 0
  /** Lets a read still in flight finish before the caller closes the file; the buffers go back to the pool. */
  const done = async (scanned: Scanned): Promise<Scanned> => {
    const inFlight = pending === undefined ? undefined : await pending.catch(() => undefined)
    if (pooled) {
      for (const b of [buf, ...spare, ...(inFlight === undefined ? [] : [inFlight.buf])]) {
        if (b.length === carry + chunkBytes && pool.length < 2) pool.push(b)
      }
    }
    return scanned
  }
  for (;;) {
    const check = checkRecord(buf, at, filled)
    if (check.kind === "ok") {
      records++
      if (
        onRecord(buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + check.length), base + check.next) ===
          false
      ) {
        return done({ records, end: base + check.next, size: limit })
      }
      at = check.next
      continue
    }
    if (check.kind === "bad") {
      return done({ records, end: base + at, size: limit, bad: { offset: base + at, reason: check.reason } })
    }
    // short: take the next chunk, if there is more
    if (pending === undefined) {
      if (base + at === limit) return done({ records, end: limit, size: limit })
      const reason = check.length < 0
        ? `${limit - base - at} bytes, less than a record header`
        : `a record of ${check.length} bytes runs past the end of the file`
      return done({ records, end: base + at, size: limit, bad: { offset: base + at, reason } })
    }
    const fetched = await pending
    pending = undefined
    if (fetched.got <= 0) {
      spare.push(fetched.buf)
      return done({
        records,
        end: base + at,
        size: base + filled,
        bad: { offset: base + at, reason: "the file is shorter than its size" }
      })
    }
    // A short read: the rest of that chunk is read next.
    if (fetched.got < fetched.want) ahead = fetched.position + fetched.got
    const left = filled - at
    const reusable = buf.length === carry + chunkBytes ? buf : undefined
    if (left <= carry) {
      fetched.buf.set(buf.subarray(at, filled), carry - left)
      buf = fetched.buf
      base = fetched.position - carry
      at = carry - left
      filled = carry + fetched.got
    } else {
      const joined = new Uint8Array(left + fetched.got)
      joined.set(buf.subarray(at, filled))
      joined.set(fetched.buf.subarray(carry, carry + fetched.got), left)
      spare.push(fetched.buf)
      buf = joined
      base += at
      at = 0
      filled = joined.length
    }
    if (reusable !== undefined) spare.push(reusable)
    pending = fetch()
  }
}

/** Whether an intact record starts at any 8-byte boundary after `from`: then the damage at `from` is not a torn tail. */
export const intactRecordAfter = async (file: SegmentFile, from: number, size: number): Promise<number | undefined> => {
  if (size - from > MAX_RECORD_BYTES * 2) return from + RECORD_HEADER_BYTES
  const rest = new Uint8Array(size - from)
  const got = await readFully(file, rest, from)
  for (let at = RECORD_HEADER_BYTES; at + RECORD_HEADER_BYTES <= got; at += 8) {
    if (checkRecord(rest, at, got).kind === "ok") return from + at
  }
  return undefined
}
