/**
 * Segments: the durable tier's append-only files. A data directory holds named streams (a
 * broker's batches, a topic's total order); each stream is a run of segment files of
 * checksummed records, numbered 0, 1, 2, … across the stream. Appends never wait for the disk:
 * a writer fiber writes what gathered and covers it with one fdatasync (group commit), and
 * only then moves the stream's durable frontier. Opening a stream recovers it: a torn tail
 * (a record half-written at a crash) is cut at the last good record, a damaged record with
 * good records after it is `SegmentCorrupt`.
 */
import { Context, Data, type Effect, type Scope } from "effect"

export interface SegmentLogOptions {
  /** A segment is closed (synced) and the next one begun before it would grow past this. Default 64 MiB. */
  readonly segmentBytes?: number
  /** Bytes appended and not yet written that make `tryAppend` answer `"full"` (and `append` wait). Default 64 MiB. */
  readonly maxPendingBytes?: number
  /** Whole old segments are deleted once the stream holds more than `maxBytes`, or once their last write is older than `maxAgeMs`. */
  readonly retention?: { readonly maxBytes?: number; readonly maxAgeMs?: number }
  /**
   * Whether opening checks every record of the closed segments (default true). False: only the
   * last segment (the one that can hold a torn tail) is scanned; a closed segment's damage is then
   * `SegmentCorrupt` from the read that reaches it (for a reader about to read the stream whole).
   */
  readonly verifyClosedSegments?: boolean
  /**
   * Keep, beside each segment the writer fills from its start, an index of its records' lengths
   * and first `indexBytes` bytes, written when the segment is closed; `scanHeaders` asking for
   * no more than that many bytes reads it instead of the segment (default 0: none).
   */
  readonly indexBytes?: number
}

/** What opening a stream found on disk. */
export interface SegmentRecovery {
  /** Records found intact (the stream's `appended` and `durable` start here). */
  readonly records: number
  /** Bytes of a torn tail cut from the last segment (0 when it ended cleanly). */
  readonly cutBytes: number
  readonly segments: number
}

export type SegmentWriteError = DiskFull | SegmentIoError

/** One stream of records. Record `i` is the i-th appended since the stream began (retention drops whole segments from the front). */
export interface SegmentLog {
  readonly stream: string
  readonly recovery: SegmentRecovery
  /** The first record still held (retention deletes older ones). */
  readonly first: () => number
  /** Records appended: 0..appended-1. */
  readonly appended: () => number
  /** Records 0..durable-1 were covered by an fdatasync that returned. */
  readonly durable: () => number
  /** Bytes appended and not yet durable. */
  readonly pendingBytes: () => number
  /** fdatasyncs that returned, and the bytes they covered, since the stream was opened. */
  readonly syncs: () => number
  readonly syncedBytes: () => number
  /** The error that stopped the writer, if one did: every later append and wait fails with it. */
  readonly failure: () => SegmentWriteError | undefined
  /**
   * Takes the record (copied; the caller may reuse its bytes) without waiting and returns its
   * index; `"full"` while `maxPendingBytes` wait for the disk; the writer's failure once it stopped.
   */
  readonly tryAppend: (record: Uint8Array | ReadonlyArray<Uint8Array>) => number | "full" | SegmentWriteError
  /** `tryAppend` that waits (at most `timeoutMs`) while the stream is full. */
  readonly append: (
    record: Uint8Array | ReadonlyArray<Uint8Array>,
    timeoutMs: number
  ) => Effect.Effect<number, SegmentWriteError | SegmentWaitTimeout>
  /** Calls `listener(durable)` after every fdatasync that moved the durable frontier; the returned function unregisters it. */
  readonly onDurable: (listener: (durable: number) => void) => () => void
  /** Waits until records 0..count-1 are durable. */
  readonly awaitDurable: (
    count: number,
    timeoutMs: number
  ) => Effect.Effect<number, SegmentWriteError | SegmentWaitTimeout>
  /**
   * Reads durable records `from`.. in order, each checked against its checksum; `onRecord` gets a
   * view valid during the call; returning false stops after that record. Resolves to the next
   * index not read. `start`, record `from`'s position as `scanHeaders` gave it, spares reading
   * (and checking) the records before it in its segment.
   */
  readonly read: (
    from: number,
    onRecord: (index: number, record: Uint8Array) => boolean | void,
    start?: RecordPosition
  ) => Effect.Effect<number, SegmentOutOfRange | SegmentCorrupt | SegmentIoError>
  /**
   * Reads only the first `headerBytes` bytes of durable records `from`.. (fewer when a record is
   * shorter), in order, with each record's length and position: for a reader that needs every
   * record's header but few records' bytes. Checksums are NOT checked (the rest of the record is
   * not read): a damaged header may be delivered. What is checked is the files' structure: each
   * record's length keeps it within its segment, and a closed segment's records end exactly at its
   * end and number what the next segment's name says (`SegmentCorrupt` otherwise). The reads are
   * small and synchronous, in slices between which other fibers run. Returning false stops after
   * that record; resolves to the next index not read.
   */
  readonly scanHeaders: (
    from: number,
    headerBytes: number,
    onHeader: (index: number, header: Uint8Array, length: number, position: RecordPosition) => boolean | void
  ) => Effect.Effect<number, SegmentOutOfRange | SegmentCorrupt | SegmentIoError>
  /** Applies the retention policy now; resolves to the segments deleted. (It also runs at every segment roll.) */
  readonly retain: () => Effect.Effect<number, SegmentIoError>
}

/** Where a record lies: its segment (that segment's first record) and the byte it starts at there. */
export interface RecordPosition {
  readonly segment: number
  readonly offset: number
}

export interface SegmentsShape {
  readonly directory: string
  /**
   * Opens (creating if new) and recovers a stream; the writer drains and the files close with
   * the scope. One opener per stream at a time: the stream's lock file names the live process
   * holding it (`StreamLocked`); a dead holder's lock is taken over.
   */
  readonly open: (
    stream: string,
    options?: SegmentLogOptions
  ) => Effect.Effect<SegmentLog, SegmentCorrupt | SegmentWriteError | InvalidStreamName | StreamLocked, Scope.Scope>
  /** Streams present in the directory. */
  readonly streams: () => Effect.Effect<ReadonlyArray<string>, SegmentIoError>
  /**
   * Removes a stream for good: its directory is renamed out of the streams' names (one atomic
   * rename, made durable by a sync of the data directory, so no later open or recovery finds it,
   * even after a crash); its files are deleted after the call returns. Whoever has it open reads
   * on into what is being deleted, and its writer stops at its next fdatasync (`SegmentIoError`:
   * the file is no longer in the data directory): stop it first. False when there was no such stream.
   */
  readonly remove: (stream: string) => Effect.Effect<boolean, SegmentIoError>
  /** Deletes what removals a crash interrupted left behind; resolves to how many. */
  readonly sweepRemoved: () => Effect.Effect<number, SegmentIoError>
}

export class Segments extends Context.Tag("cxlog/Segments")<Segments, SegmentsShape>() {}

/** A record that fails its checksum (or cannot be a record) with intact records after it, or in a closed segment. */
export class SegmentCorrupt extends Data.TaggedError("SegmentCorrupt")<{
  readonly file: string
  readonly offset: number
  readonly reason: string
}> {
  override get message() {
    return `segment ${this.file} is corrupt at byte ${this.offset}: ${this.reason}`
  }
}

/** The file system holding the data directory is full (ENOSPC / EDQUOT). */
export class DiskFull extends Data.TaggedError("DiskFull")<{ readonly directory: string; readonly path: string }> {
  override get message() {
    return `the disk holding ${this.directory} is full (writing ${this.path}); records not yet durable were not acknowledged`
  }
}

export class SegmentIoError extends Data.TaggedError("SegmentIoError")<{
  readonly path: string
  readonly operation: string
  readonly code: string
  readonly reason: string
}> {
  override get message() {
    return `${this.operation} ${this.path} failed: ${this.code} ${this.reason}`
  }
}

/** Another live process has the stream open (two writers would interleave their records). */
export class StreamLocked extends Data.TaggedError("StreamLocked")<
  { readonly stream: string; readonly directory: string; readonly pid: number }
> {
  override get message() {
    return `segment stream ${this.stream} in ${this.directory} is open in process ${this.pid} (a head or a recovery using this data directory; one process writes a stream at a time): stop it, or give this one a data directory of its own`
  }
}

export class InvalidStreamName extends Data.TaggedError("InvalidStreamName")<{ readonly stream: string }> {
  override get message() {
    return `segment stream name ${
      JSON.stringify(this.stream)
    } is not 1-100 characters of [A-Za-z0-9._-] (not starting with a dot)`
  }
}

/** A read of records retention already deleted, or not durable yet. */
export class SegmentOutOfRange extends Data.TaggedError("SegmentOutOfRange")<{
  readonly stream: string
  readonly from: number
  readonly first: number
  readonly durable: number
}> {
  override get message() {
    return `stream ${this.stream}: record ${this.from} is outside the records held on disk (${this.first}..${
      this.durable - 1
    })`
  }
}

export class SegmentWaitTimeout extends Data.TaggedError("SegmentWaitTimeout")<{
  readonly stream: string
  readonly waitingFor: string
  readonly waitedMs: number
}> {
  override get message() {
    return `stream ${this.stream}: gave up after ${this.waitedMs} ms waiting for ${this.waitingFor}`
  }
}
