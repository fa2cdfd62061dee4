/**
 * Opening a stream: its segment files are scanned (the closed ones too unless
 * `verifyClosedSegments: false`), a torn tail of the last one is cut, damage anywhere else is
 * `SegmentCorrupt`, and the last segment is synced before any of its records counts as durable.
 */
import { Effect } from "effect"
import { join } from "node:path"
import { SegmentCorrupt, type SegmentRecovery } from "../../../services/log/Segments.js"
import { io } from "./SegmentIo.js"
import { SEGMENT_NAME, segmentFileName } from "./SegmentNames.js"
import { intactRecordAfter, scanFile } from "./SegmentScan.js"
import { openSegment, type StreamState } from "./SegmentStream.js"

/**
 * Fills `s.segments` from the stream's files and opens the last as `s.current` (closed with the
 * scope by the caller's finalizer, also when this fails); a new stream gets its first segment.
 */
export const recoverSegments = (s: StreamState, verifyClosedSegments: boolean) =>
  Effect.gen(function*() {
    const { directory, dir, files } = s
    const names = yield* io(directory, dir, "readdir", () => files.list(dir))
    const bases = names.flatMap((n) => {
      const m = SEGMENT_NAME.exec(n)
      return m === null ? [] : [Number(m[1])]
    }).sort((a, b) => a - b)
    let cutBytes = 0
    for (let i = 0; i < bases.length; i++) {
      const cut = yield* recoverSegment(
        s,
        bases[i]!,
        i === bases.length - 1 ? undefined : bases[i + 1]!,
        verifyClosedSegments
      )
      cutBytes += cut
    }
    yield* syncOpenSegment(s)
    const tail = openSegment(s)
    const recovery: SegmentRecovery = { records: tail.base + tail.records, cutBytes, segments: s.segments.length }
    return recovery
  })

/**
 * Scans the segment beginning at record `base` (the last one when `nextBase` is undefined, which
 * becomes `s.current`) and adds it to `s.segments`; resolves to the torn tail's bytes it cut.
 */
const recoverSegment = (s: StreamState, base: number, nextBase: number | undefined, verifyClosedSegments: boolean) =>
  Effect.gen(function*() {
    const { directory, dir, files, segments } = s
    const path = join(dir, segmentFileName(base))
    const last = nextBase === undefined
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
    if (!last && !verifyClosedSegments) {
      segments.push({ base, path, bytes: size, records: nextBase - base, modifiedAt, verified: false })
      return 0
    }
    const file = yield* io(directory, path, "open", () => files.open(path))
    if (last) s.current = file
    /** Where its last intact record starts: a read of the stream's last record (a writer resuming) starts there. */
    let lastStart = 0
    let recordEnd = 0
    const scanned = yield* io(directory, path, "read", () =>
      scanFile(
        file,
        size,
        (_, next) => {
          lastStart = recordEnd
          recordEnd = next
        },
        0,
        s.readBuffers
      ))
    if (last && scanned.records > 0) s.lastRead = { base, index: base + scanned.records - 1, offset: lastStart }
    let cutBytes = 0
    if (scanned.bad !== undefined) {
      const bad = scanned.bad
      const later = last
        ? yield* io(directory, path, "read", () => intactRecordAfter(file, bad.offset, size))
        : bad.offset
      if (later !== undefined) {
        if (!last) yield* Effect.promise(() => file.close().catch(() => undefined))
        const where = last
          ? `an intact record follows at byte ${later}`
          : "a segment after it was begun, so this one was complete"
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
    return cutBytes
  })

/** Makes the open segment's bytes durable, or creates the first segment of a new stream. */
const syncOpenSegment = (s: StreamState) =>
  Effect.gen(function*() {
    const { directory, dir, files, segments } = s
    if (segments.length > 0) {
      // The last segment's bytes may be in the page cache only (the writer died before its
      // fdatasync returned): synced here, with the directory's entries, before any of them
      // counts as durable (level 2 given through them must survive a power cut). It also
      // makes a cut torn tail durable.
      yield* io(directory, openSegment(s).path, "fdatasync", () => s.current!.datasync())
      yield* io(directory, dir, "fsync", () => files.syncDirectory(dir))
    } else {
      const path = join(dir, segmentFileName(0))
      s.current = yield* io(directory, path, "create", () => files.create(path))
      yield* io(directory, dir, "fsync", () => files.syncDirectory(dir))
      segments.push({ base: 0, path, bytes: 0, records: 0, modifiedAt: files.now(), verified: true })
    }
  })
