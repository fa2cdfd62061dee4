/**
 * Reads of a stream's durable records: `read` (whole records, each against its checksum) and
 * `scanHeaders` (the first bytes of each, from a closed segment's header index when it has a
 * sound one). Both walk a snapshot of the segments: retention may drop some from the front
 * meanwhile (an open fd still reads them; one gone before it was opened is out of range).
 */
import { Effect } from "effect"
import {
  type RecordPosition,
  SegmentCorrupt,
  SegmentIoError,
  SegmentOutOfRange
} from "../../../services/log/Segments.js"
import { HeaderScanner } from "./HeaderScanner.js"
import { readIndex } from "./SegmentIndex.js"
import { errnoOf, ioRead } from "./SegmentIo.js"
import { recordBytes } from "./SegmentRecord.js"
import { scanFile } from "./SegmentScan.js"
import type { Segment, StreamState } from "./SegmentStream.js"

/** `from` is out of range unless the stream holds it (first ≤ from ≤ durable). */
const checkFrom = (s: StreamState, from: number) => {
  const first = s.segments[0]!.base
  return from < first || from > s.durable
    ? Effect.fail(new SegmentOutOfRange({ stream: s.stream, from, first, durable: s.durable }))
    : Effect.void
}

/** Opens a segment to read record `index` on; one retention deleted meanwhile is out of range. */
const openToRead = (s: StreamState, segment: Segment, index: number) =>
  ioRead(segment.path, "open", () => s.files.open(segment.path)).pipe(
    Effect.catchTag(
      "SegmentIoError",
      (e): Effect.Effect<never, SegmentIoError | SegmentOutOfRange> =>
        Effect.fail(
          e.code === "ENOENT"
            ? new SegmentOutOfRange({ stream: s.stream, from: index, first: s.segments[0]!.base, durable: s.durable })
            : e
        )
    )
  )

/** `SegmentLog.read`. */
export const readRecords = (
  s: StreamState,
  from: number,
  onRecord: (index: number, record: Uint8Array) => boolean | void,
  start?: RecordPosition
) =>
  Effect.gen(function*() {
    yield* checkFrom(s, from)
    let index = from
    for (const segment of [...s.segments]) {
      const isOpen = segment === s.segments[s.segments.length - 1]
      const durable = s.durable
      const end = segment.base + (isOpen ? durable - segment.base : segment.records)
      if (end <= index) continue
      if (index >= durable) break
      const limit = isOpen ? s.durableBytes : segment.bytes
      const file = yield* openToRead(s, segment, index)
      const lastRead = s.lastRead
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
        scanFile(
          file,
          limit,
          (view, next) => {
            const i = at++
            if (i >= end && !isOpen) {
              overrun = true
              return false
            }
            if (i < index) return
            if (i >= durable) {
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
          },
          resume?.offset ?? 0,
          s.readBuffers
        ).finally(() => file.close().catch(() => undefined)))
      if (readTo >= 0) s.lastRead = { base: segment.base, index, offset: readTo }
      if (scanned.bad !== undefined) {
        return yield* new SegmentCorrupt({ file: segment.path, offset: scanned.bad.offset, reason: scanned.bad.reason })
      }
      if (overrun || (!stopped && !segment.verified && at !== end)) {
        return yield* new SegmentCorrupt({
          file: segment.path,
          offset: scanned.end,
          reason: `it holds ${
            overrun ? `more than ${end - segment.base}` : at - segment.base
          } records, but the next segment begins at record ${end}`
        })
      }
      if (stopped) break
    }
    return index
  })

type OnHeader = (index: number, header: Uint8Array, length: number, position: RecordPosition) => boolean | void

/** `SegmentLog.scanHeaders`. */
export const scanHeaders = (s: StreamState, from: number, headerBytes: number, onHeader: OnHeader) =>
  Effect.gen(function*() {
    yield* checkFrom(s, from)
    let index = from
    const scanner = new HeaderScanner(headerBytes)
    for (const segment of [...s.segments]) {
      const isOpen = segment === s.segments[s.segments.length - 1]
      const end = segment.base + (isOpen ? s.durable - segment.base : segment.records)
      if (end <= index) continue
      if (index >= s.durable) break
      if (!isOpen) {
        // A closed segment's index, when it has a sound one, holds what is asked for.
        const indexed = yield* headersFromIndex(s, segment, end, index, headerBytes, onHeader)
        if (indexed !== undefined) {
          index = indexed.next
          if (indexed.stopped) break
          yield* Effect.yieldNow()
          continue
        }
      }
      const limit = isOpen ? s.durableBytes : segment.bytes
      const scanned = yield* headersFromFile(s, segment, scanner, limit, end, index, onHeader)
      index = scanner.next
      if (typeof scanned === "object") {
        return yield* new SegmentCorrupt({ file: segment.path, offset: scanned.offset, reason: scanned.reason })
      }
      if (scanned === "stopped") break
    }
    return index
  })

/**
 * Delivers records `index`..`end - 1` of a closed segment from its header index: the next index
 * not delivered and whether `onHeader` stopped, or undefined when it has no sound index.
 */
const headersFromIndex = (
  s: StreamState,
  segment: Segment,
  end: number,
  index: number,
  headerBytes: number,
  onHeader: OnHeader
) =>
  Effect.map(
    Effect.promise(() => readIndex(s.files, s.dir, segment.base, segment.bytes, end - segment.base, headerBytes)),
    (entries) => {
      if (entries === undefined) return undefined
      let offset = 0
      for (let k = 0; k < entries.records; k++) {
        const length = entries.view.getUint32(entries.at(k), true)
        const i = segment.base + k
        if (i >= index) {
          const header = entries.bytes.subarray(entries.at(k) + 4, entries.at(k) + 4 + Math.min(headerBytes, length))
          if (onHeader(i, header, length, { segment: segment.base, offset }) === false) {
            return { next: i + 1, stopped: true }
          }
        }
        offset += recordBytes(length)
      }
      return { next: end, stopped: false }
    }
  )

/** Reads records `index`..`end - 1` of the segment's first `limit` bytes with `scanner`, a slice at a time. */
const headersFromFile = (
  s: StreamState,
  segment: Segment,
  scanner: HeaderScanner,
  limit: number,
  end: number,
  index: number,
  onHeader: OnHeader
) =>
  Effect.gen(function*() {
    const file = yield* openToRead(s, segment, index)
    return yield* Effect.gen(function*() {
      scanner.begin(file, segment.base, limit, end, index, onHeader)
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
  })
