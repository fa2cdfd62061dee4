/**
 * The segment engine, over any `SegmentFiles` (the live disk or the fake): a stream's recovery
 * when it opens, its group-commit writer, reads, and retention.
 *
 * Files: `DIR/STREAM/<first record, 20 digits>.seg`, and beside a closed one its header index
 * `.idx` when the stream keeps them (`indexBytes`). Appends copy the record into a pending
 * chunk and return at once; one writer fiber per stream takes everything pending, writes it
 * with one call per segment touched and one fdatasync at the end, and only then moves the
 * durable frontier (group commit: the more appends arrive while a sync runs, the more the next
 * one covers). A segment is synced before the next one gets any byte, so only the last segment
 * can hold a torn tail after a crash.
 */
import { Clock, Deferred, Effect, Exit, Fiber, FiberId, Metric } from "effect"
import { join } from "node:path"
import { segmentRetentionFailures } from "../../Metrics.js"
import {
  DiskFull,
  InvalidStreamName,
  type SegmentLog,
  type SegmentLogOptions,
  SegmentCorrupt,
  SegmentIoError,
  SegmentOutOfRange,
  type RecordPosition,
  type SegmentRecovery,
  type SegmentsShape,
  SegmentWaitTimeout,
  type SegmentWriteError,
  StreamLocked
} from "../../services/log/Segments.js"
import { readFully, type SegmentFile, type SegmentFiles } from "./SegmentFiles.js"
import { crc32c } from "../net/Crc32c.js"
import { checkRecord, encodeRecord, MAX_RECORD_BYTES, payloadLength, RECORD_HEADER_BYTES, recordBytes } from "./SegmentRecord.js"

export const defaultSegmentBytes = 64 << 20
export const defaultMaxPendingBytes = 64 << 20
/** Pending chunks are at least this large (a record larger gets a chunk of its own size). */
const CHUNK_BYTES = 256 << 10
/** Written chunks kept for reuse per stream. */
const FREE_CHUNKS = 64
/** Reads fetch this much at a time. */
const READ_BYTES = 4 << 20
/** How long closing a stream waits for its writer to write and sync what is pending. */
const CLOSE_DRAIN_MS = 30_000
/** How often a retention failure that keeps coming back is logged again. */
const RETENTION_WARNING_MS = 60_000

const STREAM_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/
/** A segment file's name: its first record's index, 20 digits. */
export const SEGMENT_NAME = /^(\d{20})\.seg$/

const fileName = (base: number, extension: string): string => `${String(base).padStart(20, "0")}.${extension}`
export const segmentFileName = (base: number): string => fileName(base, "seg")
const indexFileName = (base: number): string => fileName(base, "idx")

/**
 * A closed segment's header index (`indexBytes`): `u32 magic, u32 header bytes K, u32 records`,
 * then per record `u32 length` and its first K bytes (zero-padded), then a crc32c of all of it.
 * Written unsynced after the segment is closed: one lost or damaged is read around (scanned).
 */
const INDEX_MAGIC = 0x58494358
const INDEX_HEAD = 12
/** An index that would grow past this is dropped (its segment's records are small: scanning reads them in large windows). */
const INDEX_MAX_BYTES = 4 << 20

interface Segment {
  readonly base: number
  readonly path: string
  /** Bytes in the file (written ones; for the open segment, durable ones are `durableBytes`). */
  bytes: number
  /** Records in it. */
  records: number
  modifiedAt: number
  /** False for a closed segment opening did not scan (`verifyClosedSegments: false`): its count comes from the next segment's name, and reads check it. */
  readonly verified: boolean
}

type Pending =
  | { readonly kind: "bytes"; readonly chunk: Uint8Array<ArrayBuffer>; readonly start: number; end: number; recordsAfter: number }
  /** `index`: the closed segment's header index, when the writer filled it from its start (written after it is closed). */
  | { readonly kind: "roll"; readonly base: number; readonly index: Uint8Array | undefined }

const errnoOf = (e: unknown): { code: string; reason: string } => {
  const err = e as NodeJS.ErrnoException
  return { code: typeof err?.code === "string" ? err.code : "EIO", reason: err instanceof Error ? err.message : String(e) }
}

/** A file operation's failure, naming the path and the operation; ENOSPC/EDQUOT is `DiskFull`. */
const errorOf = (directory: string, path: string, operation: string, e: unknown): SegmentWriteError => {
  const { code, reason } = errnoOf(e)
  return code === "ENOSPC" || code === "EDQUOT" ? new DiskFull({ directory, path }) : new SegmentIoError({ path, operation, code, reason })
}

/** A promise of a file operation as an Effect whose failure is `errorOf`. */
const io = <A>(directory: string, path: string, operation: string, run: () => Promise<A>): Effect.Effect<A, SegmentWriteError> =>
  Effect.tryPromise({ try: run, catch: (e) => errorOf(directory, path, operation, e) })

/** `io` for reads and deletions, where a full disk cannot happen. */
const ioRead = <A>(path: string, operation: string, run: () => Promise<A>): Effect.Effect<A, SegmentIoError> =>
  Effect.tryPromise({ try: run, catch: (e) => new SegmentIoError({ path, operation, ...errnoOf(e) }) })

/** How a segment file ended when it was scanned. */
interface Scanned {
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
const scanFile = async (
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
  const fetch = (): Promise<{ readonly buf: Uint8Array; readonly position: number; readonly want: number; readonly got: number }> | undefined => {
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
      if (onRecord(buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + check.length), base + check.next) === false) {
        return done({ records, end: base + check.next, size: limit })
      }
      at = check.next
      continue
    }
    if (check.kind === "bad") return done({ records, end: base + at, size: limit, bad: { offset: base + at, reason: check.reason } })
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
      return done({ records, end: base + at, size: base + filled, bad: { offset: base + at, reason: "the file is shorter than its size" } })
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

/** A header read's size: it starts at HEADER_READ_MIN, doubles while reads hold many records and halves while they hold one. */
const HEADER_READ_MIN = 4 << 10
const HEADER_READ_MAX = 1 << 20
/** Header reads between two yields to the other fibers. */
const HEADER_READS_PER_SLICE = 512

/**
 * `scanHeaders`' reading of one segment after another: synchronous reads of a few KiB at each
 * record's start (a pool trip per record would cost more than the page-cache copy of the
 * whole record), in slices.
 */
class HeaderScanner {
  private buf: Uint8Array
  private view: DataView
  private window = HEADER_READ_MIN
  private file!: SegmentFile
  private segment = 0
  private limit = 0
  private end = 0
  private from = 0
  private onHeader!: (index: number, header: Uint8Array, length: number, position: RecordPosition) => boolean | void
  /** The file offset of buf[0] and how many bytes of buf hold the file's. */
  private bufStart = 0
  private filled = 0
  private position = 0
  /** Records found in the buffer since it was last read. */
  private inBuffer = 0
  /** Reads made (slices are counted in them). */
  private reads = 0
  /** The next record's index. */
  next = 0

  constructor(private readonly headerBytes: number) {
    this.buf = new Uint8Array(Math.max(HEADER_READ_MAX, RECORD_HEADER_BYTES + headerBytes))
    this.view = new DataView(this.buf.buffer)
  }

  /** Scans records `from`..`end - 1` of the segment whose first record is `segment`, in its bytes 0..limit-1. */
  begin(
    file: SegmentFile,
    segment: number,
    limit: number,
    end: number,
    from: number,
    onHeader: (index: number, header: Uint8Array, length: number, position: RecordPosition) => boolean | void
  ) {
    this.file = file
    this.segment = segment
    this.limit = limit
    this.end = end
    this.from = from
    this.onHeader = onHeader
    this.bufStart = 0
    this.filled = 0
    this.position = 0
    this.inBuffer = 0
    this.next = segment
  }

  /** Makes bytes [at, at + bytes) available in the buffer; false when the file ends before them. */
  private have(at: number, bytes: number): boolean {
    if (at >= this.bufStart && at + bytes <= this.bufStart + this.filled) return true
    if (this.inBuffer >= 8) this.window = Math.min(this.window * 2, HEADER_READ_MAX)
    else if (this.inBuffer <= 1) this.window = Math.max(this.window >> 1, HEADER_READ_MIN)
    this.inBuffer = 0
    this.reads++
    const want = Math.min(Math.max(this.window, bytes), this.limit - at)
    this.bufStart = at
    this.filled = 0
    while (this.filled < want) {
      const n = this.file.readSync(this.buf.subarray(this.filled, want), at + this.filled)
      if (n <= 0) break
      this.filled += n
    }
    return this.filled >= bytes
  }

  /**
   * Reads on for a slice: "more" (call again), "done" (the segment's records are read),
   * "stopped" (`onHeader` returned false), or the damage found.
   */
  slice(): "more" | "done" | "stopped" | { readonly offset: number; readonly reason: string } {
    const until = this.reads + HEADER_READS_PER_SLICE
    while (this.reads < until) {
      const at = this.position
      if (this.next >= this.end) {
        if (at === this.limit) return "done"
        return { offset: at, reason: `it holds more than ${this.end - this.segment} records, but the next segment begins at record ${this.end}` }
      }
      if (at >= this.limit) {
        return { offset: at, reason: `it holds ${this.next - this.segment} records, but the next segment begins at record ${this.end}` }
      }
      if (at + RECORD_HEADER_BYTES > this.limit) return { offset: at, reason: `${this.limit - at} bytes, less than a record header` }
      if (!this.have(at, RECORD_HEADER_BYTES)) return { offset: at, reason: "the file is shorter than its size" }
      const length = this.view.getUint32(at - this.bufStart, true)
      if (length > MAX_RECORD_BYTES) return { offset: at, reason: `length ${length} exceeds the largest record (${MAX_RECORD_BYTES})` }
      const size = recordBytes(length)
      if (at + size > this.limit) return { offset: at, reason: `a record of ${length} bytes runs past the end of the segment` }
      const headerBytes = Math.min(this.headerBytes, length)
      if (!this.have(at, RECORD_HEADER_BYTES + headerBytes)) return { offset: at, reason: "the file is shorter than its size" }
      this.inBuffer++
      const index = this.next++
      this.position = at + size
      if (index < this.from) continue
      const header = this.buf.subarray(at - this.bufStart + RECORD_HEADER_BYTES, at - this.bufStart + RECORD_HEADER_BYTES + headerBytes)
      if (this.onHeader(index, header, length, { segment: this.segment, offset: at }) === false) return "stopped"
    }
    return "more"
  }
}

/** Whether an intact record starts at any 8-byte boundary after `from`: then the damage at `from` is not a torn tail. */
const intactRecordAfter = async (file: SegmentFile, from: number, size: number): Promise<number | undefined> => {
  if (size - from > MAX_RECORD_BYTES * 2) return from + RECORD_HEADER_BYTES
  const rest = new Uint8Array(size - from)
  const got = await readFully(file, rest, from)
  for (let at = RECORD_HEADER_BYTES; at + RECORD_HEADER_BYTES <= got; at += 8) {
    if (checkRecord(rest, at, got).kind === "ok") return from + at
  }
  return undefined
}

/** The segment engine over `files`, rooted at `directory`. */
export const segmentsOver = (files: SegmentFiles, directory: string): SegmentsShape => {
  const open = (stream: string, options: SegmentLogOptions = {}) =>
    Effect.gen(function*() {
      if (!STREAM_NAME.test(stream)) return yield* new InvalidStreamName({ stream })
      const dir = join(directory, stream)
      const segmentBytes = options.segmentBytes ?? defaultSegmentBytes
      const maxPendingBytes = options.maxPendingBytes ?? defaultMaxPendingBytes
      yield* io(directory, dir, "mkdir", () => files.mkdir(dir))
      const locked = yield* io(directory, dir, "lock", () => files.lock(dir))
      if (typeof locked === "number") return yield* new StreamLocked({ stream, directory, pid: locked })
      // Released last, after the writer drained and the files closed (finalizers run in reverse).
      yield* Effect.addFinalizer(() => Effect.promise(() => locked().catch(() => undefined)))

      // ---- recovery -------------------------------------------------------------------
      const names = yield* io(directory, dir, "readdir", () => files.list(dir))
      const bases = names.flatMap((n) => {
        const m = SEGMENT_NAME.exec(n)
        return m === null ? [] : [Number(m[1])]
      }).sort((a, b) => a - b)
      const segments: Array<Segment> = []
      /** Where the last read stopped (a record boundary), so reading on from there does not rescan the segment. */
      let lastRead: { readonly base: number; readonly index: number; readonly offset: number } | undefined
      /** Read-ahead buffers, reused by this stream's scans. */
      const readBuffers: Array<Uint8Array> = []
      let cutBytes = 0
      let current: SegmentFile | undefined
      yield* Effect.addFinalizer(() => current === undefined ? Effect.void : Effect.promise(() => current!.close().catch(() => undefined)))
      for (let i = 0; i < bases.length; i++) {
        const base = bases[i]!
        const path = join(dir, segmentFileName(base))
        const last = i === bases.length - 1
        const previous = segments[segments.length - 1]
        if (previous !== undefined && previous.base + previous.records !== base) {
          return yield* new SegmentCorrupt({
            file: path,
            offset: 0,
            reason: `it begins at record ${base}, but ${previous.path} ends at record ${previous.base + previous.records}`
          })
        }
        const size = yield* io(directory, path, "stat", () => files.size(path))
        const modifiedAt = yield* io(directory, path, "stat", () => files.modifiedAt(path))
        if (!last && options.verifyClosedSegments === false) {
          segments.push({ base, path, bytes: size, records: bases[i + 1]! - base, modifiedAt, verified: false })
          continue
        }
        const file = yield* io(directory, path, "open", () => files.open(path))
        if (last) current = file
        /** Where its last intact record starts: a read of the stream's last record (a writer resuming) starts there. */
        let lastStart = 0
        let recordEnd = 0
        const scanned = yield* io(directory, path, "read", () =>
          scanFile(file, size, (_, next) => {
            lastStart = recordEnd
            recordEnd = next
          }, 0, readBuffers))
        if (last && scanned.records > 0) lastRead = { base, index: base + scanned.records - 1, offset: lastStart }
        if (scanned.bad !== undefined) {
          const bad = scanned.bad
          const later = last ? yield* io(directory, path, "read", () => intactRecordAfter(file, bad.offset, size)) : bad.offset
          if (later !== undefined) {
            if (!last) yield* Effect.promise(() => file.close().catch(() => undefined))
            const where = last ? `an intact record follows at byte ${later}` : "a segment after it was begun, so this one was complete"
            return yield* new SegmentCorrupt({ file: path, offset: bad.offset, reason: `${bad.reason}; ${where}` })
          }
          // A torn tail: the crash came while these bytes were being written; none was acknowledged.
          yield* io(directory, path, "truncate", () => file.truncate(bad.offset))
          cutBytes = size - bad.offset
          yield* Effect.logWarning(
            `segments: cut a torn tail of ${cutBytes} bytes from ${path} at byte ${bad.offset} (${bad.reason}); ${scanned.records} intact records kept in that segment`
          )
        }
        if (!last) yield* io(directory, path, "close", () => file.close())
        segments.push({ base, path, bytes: scanned.end, records: scanned.records, modifiedAt, verified: true })
      }
      if (segments.length > 0) {
        // The last segment's bytes may be in the page cache only (the writer died before its
        // fdatasync returned): synced here, with the directory's entries, before any of them
        // counts as durable (level 2 given through them must survive a power cut). It also
        // makes a cut torn tail durable.
        const tail = segments[segments.length - 1]!
        yield* io(directory, tail.path, "fdatasync", () => current!.datasync())
        yield* io(directory, dir, "fsync", () => files.syncDirectory(dir))
      } else {
        const path = join(dir, segmentFileName(0))
        current = yield* io(directory, path, "create", () => files.create(path))
        yield* io(directory, dir, "fsync", () => files.syncDirectory(dir))
        segments.push({ base: 0, path, bytes: 0, records: 0, modifiedAt: files.now(), verified: true })
      }
      const tail = segments[segments.length - 1]!
      const recovered = tail.base + tail.records
      const recovery: SegmentRecovery = { records: recovered, cutBytes, segments: segments.length }

      // ---- state ----------------------------------------------------------------------
      let appended = recovered
      let durable = recovered
      /** Bytes of the open segment covered by the last fdatasync. */
      let durableBytes = tail.bytes
      /** Bytes the open segment will hold once everything pending is written (to decide rolls). */
      let tailBytes = tail.bytes
      let pending: Array<Pending> = []
      let pendingBytes = 0
      let chunk = new Uint8Array(0)
      let chunkFill = 0
      let syncs = 0
      let syncedBytes = 0
      let failure: SegmentWriteError | undefined
      let closing = false
      let wake = Deferred.unsafeMake<void>(FiberId.none)
      let changed = Deferred.unsafeMake<void>(FiberId.none)
      const listeners = new Set<(durable: number) => void>()

      const announce = () => {
        const done = changed
        changed = Deferred.unsafeMake<void>(FiberId.none)
        Deferred.unsafeDone(done, Exit.void)
        for (const listener of listeners) listener(durable)
      }

      /**
       * Retention is housekeeping: a segment it cannot delete (EACCES, EBUSY, EIO, a directory in
       * its place) is counted and logged — the first failure, then at most one line per
       * RETENTION_WARNING_MS with how many failed since — and tried again at the next pass (the
       * next roll, or the durable tier's periodic one). That never stops the writer; a failed
       * fsync of the directory after deletions does (`syncDeletions`).
       */
      const retentionFailuresOf = Metric.tagged(segmentRetentionFailures, "stream", stream)
      let retentionFailures = 0
      let retentionWarnedAt = -Infinity
      const retentionFailed = (e: SegmentIoError) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          retentionFailures++
          const counted = Metric.increment(retentionFailuresOf)
          if (now - retentionWarnedAt < RETENTION_WARNING_MS) return counted
          const since = retentionWarnedAt === -Infinity ? "" : ` (${retentionFailures} failed passes in the last ${Math.round((now - retentionWarnedAt) / 1000)} s)`
          retentionWarnedAt = now
          retentionFailures = 0
          return Effect.zipRight(counted, Effect.logWarning(`segments: stream ${stream}: retention failed: ${e.message}${since}; the writer goes on, retention tries again at its next pass`))
        })

      /**
       * One retention pass at a time (a roll's, in the writer, and the durable tier's periodic
       * one): two would both take the oldest segment before either drops it, and the second
       * unlink would fail.
       */
      const retaining = Effect.unsafeMakeSemaphore(1)
      /**
       * Makes the pass's deletions durable. A failed directory fsync is a storage error, not
       * housekeeping (after one report, a later fsync may not report the lost writeback again):
       * it stops the writer, as any failed fsync of the stream does.
       */
      const syncDeletions = ioRead(dir, "fsync", () => files.syncDirectory(dir)).pipe(
        Effect.tapError((e) =>
          Effect.sync(() => {
            failure ??= e
            wakeWriter()
          })
        )
      )
      const retainNow = retaining.withPermits(1)(Effect.gen(function*() {
        const { maxBytes, maxAgeMs } = options.retention ?? {}
        if (maxBytes === undefined && maxAgeMs === undefined) return 0
        let total = 0
        for (const s of segments) total += s.bytes
        const now = files.now()
        let deleted = 0
        // Just after a roll the open segment holds no durable record: a crash would leave it empty,
        // and the closed one before it is what shows where the stream ends. Kept until the open one's first sync.
        const keep = durable > segments[segments.length - 1]!.base ? 1 : 2
        while (segments.length > keep) {
          const oldest = segments[0]!
          const tooBig = maxBytes !== undefined && total > maxBytes
          const tooOld = maxAgeMs !== undefined && now - oldest.modifiedAt > maxAgeMs
          if (!tooBig && !tooOld) break
          // Already gone (removed by hand): it is deleted all the same.
          const unlinked = yield* ioRead(oldest.path, "unlink", () => files.unlink(oldest.path)).pipe(
            Effect.catchIf((e) => e.code === "ENOENT", () => Effect.void),
            Effect.either
          )
          // It stays the oldest (the stream's first record does not move past it); the deletions before it are still synced.
          if (unlinked._tag === "Left") {
            if (deleted > 0) yield* syncDeletions
            return yield* Effect.fail(unlinked.left)
          }
          yield* Effect.promise(() => files.unlink(join(dir, indexFileName(oldest.base))).catch(() => undefined))
          segments.shift()
          total -= oldest.bytes
          deleted++
        }
        if (deleted > 0) yield* syncDeletions
        return deleted
      }).pipe(Effect.tapError((e) => (e.operation === "unlink" ? retentionFailed(e) : Effect.void))))

      /** Records written to the files (durable ≤ written ≤ appended), and bytes written but not yet covered by a started fdatasync. */
      let written = recovered
      let unsynced = 0
      /** The fdatasync in flight (one at a time: a failed one must stop every later frontier move), settled when it returns. */
      let syncing: Promise<void> | undefined
      /** Written chunks, to be filled again (at most FREE_CHUNKS). */
      const freeChunks: Array<Uint8Array<ArrayBuffer>> = []
      const wakeWriter = () => Deferred.unsafeDone(wake, Exit.void)

      /** The header index of the segment appends fill, when they fill it from its start (`indexBytes`). */
      const indexBytes = options.indexBytes ?? 0
      const newIndex = () => {
        const buf = new Uint8Array(64 << 10)
        return { buf, fill: INDEX_HEAD, records: 0 }
      }
      let filling: { buf: Uint8Array; fill: number; records: number } | undefined = indexBytes > 0 && tail.records === 0 ? newIndex() : undefined
      const indexRecord = (record: Uint8Array | ReadonlyArray<Uint8Array>, length: number) => {
        if (filling === undefined) return
        const entry = 4 + indexBytes
        if (filling.fill + entry + 4 > INDEX_MAX_BYTES) {
          filling = undefined
          return
        }
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
      }
      /** The finished index's bytes (head and checksum written). */
      const sealIndex = (done: { buf: Uint8Array; fill: number; records: number }) => {
        const v = new DataView(done.buf.buffer)
        v.setUint32(0, INDEX_MAGIC, true)
        v.setUint32(4, indexBytes, true)
        v.setUint32(8, done.records, true)
        v.setUint32(done.fill, crc32c(done.buf, 0, done.fill), true)
        return done.buf.subarray(0, done.fill + 4)
      }
      /** Writes a closed segment's index; any failure leaves it to be scanned instead. */
      const writeIndex = (base: number, bytes: Uint8Array) =>
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

      /**
       * Starts the fdatasync covering everything written so far; when it returns, the frontier
       * moves there and the writer is woken. Writes go on meanwhile (group commit, pipelined: the
       * next sync covers them).
       */
      const startSync = () => {
        const open = segments[segments.length - 1]!
        const covers = written
        const coversBytes = open.bytes
        const bytes = unsynced
        unsynced = 0
        syncing = current!.datasync().then(
          () => {
            // Every sync before this one returned without error (a failed one stops the writer before the next starts).
            syncing = undefined
            pendingBytes -= bytes
            open.records = covers - open.base
            durableBytes = coversBytes
            durable = covers
            syncs++
            syncedBytes += bytes
            announce()
            wakeWriter()
          },
          (e) => {
            syncing = undefined
            failure ??= errorOf(directory, open.path, "fdatasync", e)
            wakeWriter()
          }
        )
      }
      const awaitSync = Effect.promise(() => syncing ?? Promise.resolve())

      /** Writes what was taken (one write per segment touched); a roll waits for the sync in flight, then syncs, closes and begins the next segment. */
      const writeItems = (items: ReadonlyArray<Pending>) =>
        Effect.gen(function*() {
          let records = written
          let batch: Array<Uint8Array> = []
          const flush = Effect.suspend(() => {
            if (batch.length === 0) return Effect.void
            const open = segments[segments.length - 1]!
            const buffers = batch
            batch = []
            let n = 0
            for (const b of buffers) n += b.length
            return Effect.map(io(directory, open.path, "write", () => current!.write(buffers, open.bytes)), () => {
              open.bytes += n
              open.modifiedAt = files.now()
              unsynced += n
              written = records
            })
          })
          for (const item of items) {
            if (item.kind === "bytes") {
              batch.push(item.chunk.subarray(item.start, item.end))
              records = item.recordsAfter
              continue
            }
            yield* flush
            yield* awaitSync
            if (failure !== undefined) return yield* Effect.fail(failure)
            const closed = segments[segments.length - 1]!
            yield* io(directory, closed.path, "fdatasync", () => current!.datasync())
            closed.records = records - closed.base
            yield* io(directory, closed.path, "close", () => current!.close())
            current = undefined
            if (item.index !== undefined) yield* writeIndex(closed.base, item.index)
            const path = join(dir, segmentFileName(item.base))
            current = yield* io(directory, path, "create", () => files.create(path))
            yield* io(directory, dir, "fsync", () => files.syncDirectory(dir))
            segments.push({ base: item.base, path, bytes: 0, records: 0, modifiedAt: files.now(), verified: true })
            syncs++
            syncedBytes += unsynced
            pendingBytes -= unsynced
            unsynced = 0
            durable = item.base
            durableBytes = 0
            announce()
            // A segment not deleted was counted and logged; the writer goes on (a failed fsync stops it).
            yield* retainNow.pipe(Effect.catchIf((e) => e.operation === "unlink", () => Effect.succeed(0)))
          }
          yield* flush
        })

      const writer = Effect.gen(function*() {
        for (;;) {
          if (failure === undefined && pending.length > 0) {
            const items = pending
            pending = []
            const result = yield* Effect.either(writeItems(items))
            if (result._tag === "Left") failure ??= result.left
            // Chunks written whole go back to be filled again (not the one being filled, nor one pending appends still use).
            for (const item of items) {
              const c = item.kind === "bytes" ? item.chunk : undefined
              if (c === undefined || c === chunk || c.length !== CHUNK_BYTES || freeChunks.length >= FREE_CHUNKS || freeChunks.includes(c)) continue
              if (!pending.some((p) => p.kind === "bytes" && p.chunk === c)) freeChunks.push(c)
            }
          }
          if (failure === undefined && syncing === undefined && unsynced > 0) startSync()
          if (failure !== undefined) {
            yield* awaitSync
            // Leave no partial record behind the durable bytes (recovery would cut it anyway).
            const open = segments[segments.length - 1]!
            if (current !== undefined) yield* Effect.promise(() => current!.truncate(durableBytes).catch(() => undefined))
            open.bytes = durableBytes
            yield* Effect.logError(`segments: stream ${stream} stopped: ${failure.message}`)
            announce()
            return
          }
          if (pending.length > 0) continue
          if (closing && syncing === undefined) return
          yield* Deferred.await(wake)
          wake = Deferred.unsafeMake<void>(FiberId.none)
        }
      })
      const writerFiber = yield* Effect.forkDaemon(writer.pipe(
        Effect.catchAllDefect((defect) =>
          Effect.sync(() => {
            failure = new SegmentIoError({ path: dir, operation: "write", code: "EFAULT", reason: `the writer failed: ${String(defect)}` })
            announce()
          })
        )
      ))
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          closing = true
          Deferred.unsafeDone(wake, Exit.void)
          const drained = yield* Fiber.await(writerFiber).pipe(Effect.timeoutOption(CLOSE_DRAIN_MS))
          if (drained._tag === "None") yield* Fiber.interrupt(writerFiber)
        })
      )

      // ---- appends --------------------------------------------------------------------
      const tryAppend = (record: Uint8Array | ReadonlyArray<Uint8Array>): number | "full" | SegmentWriteError => {
        if (failure !== undefined) return failure
        // The writer is gone (its scope closed): nothing appended now would reach the disk.
        if (closing) return new SegmentIoError({ path: dir, operation: "append", code: "ECLOSED", reason: "the stream is closed" })
        const length = payloadLength(record)
        const size = recordBytes(length)
        if (length > MAX_RECORD_BYTES) {
          return new SegmentIoError({ path: dir, operation: "append", code: "EMSGSIZE", reason: `a record of ${length} bytes exceeds ${MAX_RECORD_BYTES}` })
        }
        if (pendingBytes > 0 && pendingBytes + size > maxPendingBytes) return "full"
        if (tailBytes > 0 && tailBytes + size > segmentBytes) {
          pending.push({ kind: "roll", base: appended, index: filling === undefined ? undefined : sealIndex(filling) })
          filling = indexBytes > 0 ? newIndex() : undefined
          tailBytes = 0
        }
        indexRecord(record, length)
        if (chunk.length - chunkFill < size) {
          chunk = (size <= CHUNK_BYTES ? freeChunks.pop() : undefined) ?? new Uint8Array(Math.max(CHUNK_BYTES, size))
          chunkFill = 0
        }
        const start = chunkFill
        chunkFill = encodeRecord(chunk, start, record, length)
        appended++
        const last = pending[pending.length - 1]
        if (last !== undefined && last.kind === "bytes" && last.chunk === chunk && last.end === start) {
          last.end = chunkFill
          last.recordsAfter = appended
        } else {
          pending.push({ kind: "bytes", chunk, start, end: chunkFill, recordsAfter: appended })
        }
        tailBytes += size
        pendingBytes += size
        wakeWriter()
        return appended - 1
      }

      /** Waits until `ready()` or the writer stops, at most `timeoutMs`. */
      const waitFor = <A>(ready: () => A | undefined, timeoutMs: number, waitingFor: string) =>
        Effect.gen(function*() {
          const started = Date.now()
          for (;;) {
            const value = ready()
            if (value !== undefined) return value
            if (failure !== undefined) return yield* failure
            const left = timeoutMs - (Date.now() - started)
            const moved = left > 0 ? yield* Deferred.await(changed).pipe(Effect.timeoutOption(left)) : undefined
            if (moved === undefined || moved._tag === "None") {
              const value = ready()
              if (value !== undefined) return value
              return yield* new SegmentWaitTimeout({ stream, waitingFor, waitedMs: Date.now() - started })
            }
          }
        })

      const append = (record: Uint8Array | ReadonlyArray<Uint8Array>, timeoutMs: number) =>
        Effect.flatMap(
          waitFor(() => {
            const r = tryAppend(record)
            return r === "full" ? undefined : r
          }, timeoutMs, `room for a record (${pendingBytes} bytes pending, at most ${maxPendingBytes})`),
          (r) => (typeof r === "number" ? Effect.succeed(r) : Effect.fail(r))
        )

      // ---- reads ----------------------------------------------------------------------
      const read = (from: number, onRecord: (index: number, record: Uint8Array) => boolean | void, start?: RecordPosition) =>
        Effect.gen(function*() {
          const first = segments[0]!.base
          if (from < first || from > durable) return yield* new SegmentOutOfRange({ stream, from, first, durable })
          let index = from
          // A snapshot: retention may drop segments from the front meanwhile (an open fd still reads them).
          for (const segment of [...segments]) {
            const isOpen = segment === segments[segments.length - 1]
            const end = segment.base + (isOpen ? durable - segment.base : segment.records)
            if (end <= index) continue
            if (index >= durable) break
            const limit = isOpen ? durableBytes : segment.bytes
            const frontier = durable
            const file = yield* ioRead(segment.path, "open", () => files.open(segment.path)).pipe(
              Effect.catchTag("SegmentIoError", (e): Effect.Effect<never, SegmentIoError | SegmentOutOfRange> =>
                Effect.fail(e.code === "ENOENT" ? new SegmentOutOfRange({ stream, from: index, first: segments[0]!.base, durable }) : e)
              )
            )
            const resume = start !== undefined && start.segment === segment.base && index === from
              ? { index: from, offset: start.offset }
              : lastRead !== undefined && lastRead.base === segment.base && lastRead.index <= index
              ? lastRead
              : undefined
            let at = resume?.index ?? segment.base
            let stopped = false
            /** An unscanned closed segment holding more records than the next segment's name leaves it. */
            let overrun = false
            /** The byte after the last record delivered (-1: none). */
            let readTo = -1
            const scanned = yield* ioRead(segment.path, "read", () =>
              scanFile(file, limit, (view, next) => {
                const i = at++
                if (i >= end && !isOpen) {
                  overrun = true
                  return false
                }
                if (i < index) return
                if (i >= frontier) {
                  stopped = true
                  return false
                }
                const more = onRecord(i, view)
                index = i + 1
                readTo = next
                if (more === false) {
                  stopped = true
                  return false
                }
              }, resume?.offset ?? 0, readBuffers).finally(() => file.close().catch(() => undefined))
            )
            if (readTo >= 0) lastRead = { base: segment.base, index, offset: readTo }
            if (scanned.bad !== undefined) {
              return yield* new SegmentCorrupt({ file: segment.path, offset: scanned.bad.offset, reason: scanned.bad.reason })
            }
            if (overrun || (!stopped && !segment.verified && at !== end)) {
              return yield* new SegmentCorrupt({
                file: segment.path,
                offset: scanned.end,
                reason: `it holds ${overrun ? `more than ${end - segment.base}` : at - segment.base} records, but the next segment begins at record ${end}`
              })
            }
            if (stopped) break
          }
          return index
        })

      /**
       * The segment's index, if it has one that is sound: its checksum holds, it covers `records`
       * records with at least `headerBytes` of each, and their lengths add up to the segment's bytes.
       */
      const readIndex = async (segment: Segment, records: number, headerBytes: number) => {
        const path = join(dir, indexFileName(segment.base))
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
          if (got !== size || view.getUint32(0, true) !== INDEX_MAGIC || k < headerBytes || view.getUint32(8, true) !== records) return undefined
          if (size !== INDEX_HEAD + records * entry + 4 || crc32c(bytes, 0, size - 4) !== view.getUint32(size - 4, true)) return undefined
          let total = 0
          for (let r = 0; r < records; r++) total += recordBytes(view.getUint32(INDEX_HEAD + r * entry, true))
          if (total !== segment.bytes) return undefined
          return { bytes, view, records, at: (r: number) => INDEX_HEAD + r * entry }
        } catch {
          return undefined
        }
      }

      const scanHeaders = (
        from: number,
        headerBytes: number,
        onHeader: (index: number, header: Uint8Array, length: number, position: RecordPosition) => boolean | void
      ) =>
        Effect.gen(function*() {
          const first = segments[0]!.base
          if (from < first || from > durable) return yield* new SegmentOutOfRange({ stream, from, first, durable })
          let index = from
          const scanner = new HeaderScanner(headerBytes)
          for (const segment of [...segments]) {
            const isOpen = segment === segments[segments.length - 1]
            const end = segment.base + (isOpen ? durable - segment.base : segment.records)
            if (end <= index) continue
            if (index >= durable) break
            if (!isOpen) {
              // A closed segment's index, when it has a sound one, holds what is asked for.
              const entries = yield* Effect.promise(() => readIndex(segment, end - segment.base, headerBytes))
              if (entries !== undefined) {
                let stopped = false
                let offset = 0
                for (let k = 0; k < entries.records; k++) {
                  const length = entries.view.getUint32(entries.at(k), true)
                  const i = segment.base + k
                  if (i >= index) {
                    const header = entries.bytes.subarray(entries.at(k) + 4, entries.at(k) + 4 + Math.min(headerBytes, length))
                    if (onHeader(i, header, length, { segment: segment.base, offset }) === false) {
                      stopped = true
                      index = i + 1
                      break
                    }
                  }
                  offset += recordBytes(length)
                }
                if (stopped) break
                index = end
                yield* Effect.yieldNow()
                continue
              }
            }
            const file = yield* ioRead(segment.path, "open", () => files.open(segment.path)).pipe(
              Effect.catchTag("SegmentIoError", (e): Effect.Effect<never, SegmentIoError | SegmentOutOfRange> =>
                Effect.fail(e.code === "ENOENT" ? new SegmentOutOfRange({ stream, from: index, first: segments[0]!.base, durable }) : e)
              )
            )
            const scanned = yield* Effect.gen(function*() {
              scanner.begin(file, segment.base, isOpen ? durableBytes : segment.bytes, end, index, onHeader)
              for (;;) {
                const step = yield* Effect.try({
                  try: () => scanner.slice(),
                  catch: (e) => new SegmentIoError({ path: segment.path, operation: "read", ...errnoOf(e) })
                })
                if (step !== "more") return step
                // Other fibers run between slices: the reads are on this thread.
                yield* Effect.yieldNow()
              }
            }).pipe(Effect.ensuring(Effect.promise(() => file.close().catch(() => undefined))))
            index = scanner.next
            if (typeof scanned === "object") {
              return yield* new SegmentCorrupt({ file: segment.path, offset: scanned.offset, reason: scanned.reason })
            }
            if (scanned === "stopped") break
          }
          return index
        })

      const log: SegmentLog = {
        stream,
        recovery,
        first: () => segments[0]!.base,
        appended: () => appended,
        durable: () => durable,
        pendingBytes: () => pendingBytes,
        syncs: () => syncs,
        syncedBytes: () => syncedBytes,
        failure: () => failure,
        tryAppend,
        append,
        onDurable: (listener) => {
          listeners.add(listener)
          return () => listeners.delete(listener)
        },
        awaitDurable: (count, timeoutMs) => waitFor(() => (durable >= count ? durable : undefined), timeoutMs, `records 0..${count - 1} to be durable`),
        read,
        scanHeaders,
        retain: () => retainNow
      }
      return log
    })

  const streams = () =>
    Effect.map(ioRead(directory, "readdir", () => files.list(directory)), (names) => names.filter((n) => STREAM_NAME.test(n)).sort())

  return {
    directory,
    open: open as SegmentsShape["open"],
    streams
  }
}
