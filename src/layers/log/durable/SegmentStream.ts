/**
 * One open stream's state, shared by the segment engine's parts (SegmentLog.ts wires them): its
 * segments, the appends' pending chunks, the writer's and the durable frontier's counters, and
 * the signals between appenders, the writer and waiters. Only the stream's own fibers touch it.
 */
import { Deferred, Effect, Exit, FiberId, Metric } from "effect"
import { join } from "node:path"
import { segmentRetentionFailures } from "../../../Metrics.js"
import type { SegmentLogOptions, SegmentWriteError } from "../../../services/log/Segments.js"
import type { SegmentFile, SegmentFiles } from "./SegmentFiles.js"
import { type IndexFill, newIndex } from "./SegmentIndex.js"

export const defaultSegmentBytes = 64 << 20
export const defaultMaxPendingBytes = 64 << 20
/** Pending chunks are at least this large (a record larger gets a chunk of its own size). */
export const CHUNK_BYTES = 256 << 10
/** Written chunks kept for reuse per stream. */
export const FREE_CHUNKS = 64

export interface Segment {
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

export type Pending =
  | {
    readonly kind: "bytes"
    readonly chunk: Uint8Array<ArrayBuffer>
    readonly start: number
    end: number
    recordsAfter: number
  }
  /** `index`: the closed segment's header index, when the writer filled it from its start (written after it is closed). */
  | { readonly kind: "roll"; readonly base: number; readonly index: Uint8Array | undefined }

export interface StreamState {
  readonly files: SegmentFiles
  /** The data directory (named by `DiskFull`), and the stream's own directory in it. */
  readonly directory: string
  readonly stream: string
  readonly dir: string
  readonly segmentBytes: number
  readonly maxPendingBytes: number
  /** Header bytes kept per record in each segment's index (0: no index). */
  readonly indexBytes: number
  readonly retention: SegmentLogOptions["retention"]
  /** Oldest first; the last is the open one, which appends fill. */
  readonly segments: Array<Segment>
  /** The open segment's file. */
  current: SegmentFile | undefined
  /** Where the last read stopped (a record boundary), so reading on from there does not rescan the segment. */
  lastRead: { readonly base: number; readonly index: number; readonly offset: number } | undefined
  /** Read-ahead buffers, reused by this stream's scans. */
  readonly readBuffers: Array<Uint8Array>

  /** Records appended, written to the files and covered by an fdatasync that returned: durable ≤ written ≤ appended. */
  appended: number
  written: number
  durable: number
  /** Bytes of the open segment covered by the last fdatasync. */
  durableBytes: number
  /** Bytes the open segment will hold once everything pending is written (to decide rolls). */
  tailBytes: number
  /** Bytes written but not yet covered by a started fdatasync. */
  unsynced: number
  /** Appended and not yet durable. */
  pendingBytes: number
  /** What appends left for the writer, in order. */
  pending: Array<Pending>
  /** The chunk appends copy records into, and how far it is filled. */
  chunk: Uint8Array<ArrayBuffer>
  chunkFill: number
  /** Written chunks, to be filled again (at most FREE_CHUNKS). */
  readonly freeChunks: Array<Uint8Array<ArrayBuffer>>
  /** The header index of the segment appends fill, when they fill it from its start (`indexBytes`). */
  filling: IndexFill | undefined

  syncs: number
  syncedBytes: number
  /** The fdatasync in flight (one at a time: a failed one must stop every later frontier move), settled when it returns. */
  syncing: Promise<void> | undefined
  /** The error that stopped the writer: every later append and wait fails with it. */
  failure: SegmentWriteError | undefined
  /** Set when the scope closes: the writer drains what is pending and stops. */
  closing: boolean
  /** Completed to wake the writer (then replaced by it). */
  wake: Deferred.Deferred<void>
  /** Completed, and replaced, whenever the durable frontier moves or the writer stops. */
  changed: Deferred.Deferred<void>
  readonly listeners: Set<(durable: number) => void>

  /** One retention pass at a time (SegmentRetention.ts). */
  readonly retaining: Effect.Semaphore
  readonly retentionFailuresMetric: Metric.Metric.Counter<number>
  /** Failed passes since the last warning, and when that was. */
  retentionFailures: number
  retentionWarnedAt: number
}

/** A stream's state before its files are looked at: no segment yet (opening's recovery scan adds them, then `resumeAfterRecovery`). */
export const newStreamState = (
  files: SegmentFiles,
  directory: string,
  stream: string,
  options: SegmentLogOptions
): StreamState => ({
  files,
  directory,
  stream,
  dir: join(directory, stream),
  segmentBytes: options.segmentBytes ?? defaultSegmentBytes,
  maxPendingBytes: options.maxPendingBytes ?? defaultMaxPendingBytes,
  indexBytes: options.indexBytes ?? 0,
  retention: options.retention,
  segments: [],
  current: undefined,
  lastRead: undefined,
  readBuffers: [],
  appended: 0,
  written: 0,
  durable: 0,
  durableBytes: 0,
  tailBytes: 0,
  unsynced: 0,
  pendingBytes: 0,
  pending: [],
  chunk: new Uint8Array(0),
  chunkFill: 0,
  freeChunks: [],
  filling: undefined,
  syncs: 0,
  syncedBytes: 0,
  syncing: undefined,
  failure: undefined,
  closing: false,
  wake: Deferred.unsafeMake<void>(FiberId.none),
  changed: Deferred.unsafeMake<void>(FiberId.none),
  listeners: new Set(),
  retaining: Effect.unsafeMakeSemaphore(1),
  retentionFailuresMetric: Metric.tagged(segmentRetentionFailures, "stream", stream),
  retentionFailures: 0,
  retentionWarnedAt: -Infinity
})

/** After opening's recovery scan: appends, writes and the durable frontier go on from the open segment's end. */
export const resumeAfterRecovery = (s: StreamState): void => {
  const tail = openSegment(s)
  const recovered = tail.base + tail.records
  s.appended = recovered
  s.written = recovered
  s.durable = recovered
  s.durableBytes = tail.bytes
  s.tailBytes = tail.bytes
  s.filling = s.indexBytes > 0 && tail.records === 0 ? newIndex() : undefined
}

export const openSegment = (s: StreamState): Segment => s.segments[s.segments.length - 1]!

/** Wakes the writer. */
export const wakeWriter = (s: StreamState): void => Deferred.unsafeDone(s.wake, Exit.void)

/** Tells waiters and listeners the durable frontier moved (or the writer stopped). */
export const announce = (s: StreamState): void => {
  const done = s.changed
  s.changed = Deferred.unsafeMake<void>(FiberId.none)
  Deferred.unsafeDone(done, Exit.void)
  for (const listener of s.listeners) listener(s.durable)
}

/** Closes the open segment's file, if one is open (the scope's end). */
export const closeCurrent = (s: StreamState) =>
  Effect.suspend(() => (s.current === undefined ? Effect.void : Effect.promise(() =>
    s.current!.close().catch(() => undefined)
  )))
