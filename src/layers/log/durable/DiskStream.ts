/**
 * A read-only reader of a replication factor 2 topic's stream on disk (`DIR/topic-NAME`, the
 * records DurableOrder.ts writes: a 64-byte header, then the batch's payload), for serving
 * offsets the hot tier recycled. It takes no lock and writes nothing, so any process of the
 * head's host that knows the data directory can read while the head appends: it reads segment
 * files directly, checking each record's checksum, and treats a record that is not intact at
 * the end of the last segment as not written yet (the writer is at it), never as data.
 *
 * It finds an offset by the segments' first records (a binary search over the segments), then
 * scans that segment; retention may delete a segment meanwhile (an open file still reads;
 * one gone before it was opened is reported as `gone`).
 */
import { Data } from "effect"
import { constants } from "node:fs"
import * as fs from "node:fs/promises"
import { join } from "node:path"
import { decodeOrderRecord, type OrderedBatch, streamOf } from "./DurableOrder.js"
import { listDirectory, readFully, type SegmentFile, type SegmentFiles } from "./SegmentFiles.js"
import { SEGMENT_NAME, segmentFileName } from "./SegmentNames.js"
import { checkRecord, MAX_RECORD_BYTES, RECORD_HEADER_BYTES, recordBytes } from "./SegmentRecord.js"

/** What the reader needs of the file system: listing a directory and reading files. */
export interface StreamFiles {
  readonly list: SegmentFiles["list"]
  readonly open: (path: string) => Promise<Pick<SegmentFile, "read" | "close">>
}

/** node:fs, opening files read-only. */
export const nodeStreamFiles: StreamFiles = {
  list: listDirectory,
  open: async (path) => {
    const handle = await fs.open(path, constants.O_RDONLY)
    return {
      read: async (into, position) => (await handle.read(into, 0, into.length, position)).bytesRead,
      close: () => handle.close()
    }
  }
}

/** A batch read from disk: its record as `decodeOrderRecord` reads it, `payload` a copy the reader never touches again. */
export type DiskBatch = OrderedBatch

/** Why a read stopped short of what it asked for. */
export type DiskProblem =
  /** The segment holding the position was deleted (retention) before it could be read. */
  | { readonly kind: "gone" }
  | { readonly kind: "corrupt"; readonly file: string; readonly offset: number; readonly reason: string }
  | { readonly kind: "io"; readonly file: string; readonly reason: string }

const errnoOf = (e: unknown) => (e as NodeJS.ErrnoException)?.code ?? "EIO"

/** A damaged record found while locating an offset. */
export class DiskRecordDamaged extends Data.TaggedError("DiskRecordDamaged")<{
  readonly file: string
  readonly offset: number
  readonly reason: string
}> {
  override get message() {
    return `${this.file} at byte ${this.offset}: ${this.reason}`
  }
}

/** The total order of a segment's first record, checked against its checksum; undefined while it has none (whole) yet. */
const firstOrderOf = async (files: StreamFiles, path: string): Promise<number | undefined> => {
  const file = await files.open(path)
  try {
    const header = new Uint8Array(RECORD_HEADER_BYTES)
    if ((await readFully(file, header, 0)) < RECORD_HEADER_BYTES) return undefined
    const length = new DataView(header.buffer).getUint32(0, true)
    if (length > MAX_RECORD_BYTES) {
      throw new DiskRecordDamaged({ file: path, offset: 0, reason: `length ${length} exceeds the largest record` })
    }
    const record = new Uint8Array(recordBytes(length))
    const got = await readFully(file, record, 0)
    const check = checkRecord(record, 0, got)
    if (check.kind === "short") return undefined
    if (check.kind === "bad") throw new DiskRecordDamaged({ file: path, offset: 0, reason: check.reason })
    const batch = decodeOrderRecord(record.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + length))
    if (batch === undefined) {
      throw new DiskRecordDamaged({
        file: path,
        offset: 0,
        reason: "the record is not a batch (its length disagrees with its header)"
      })
    }
    return batch.totalOrder
  } finally {
    await file.close().catch(() => undefined)
  }
}

/** The segments of the stream `topic-NAME` under `directory`, oldest first. */
export const streamSegments = async (
  files: StreamFiles,
  directory: string,
  topic: string
): Promise<ReadonlyArray<number>> => {
  const names = await files.list(join(directory, streamOf(topic)))
  return names.flatMap((n) => {
    const m = SEGMENT_NAME.exec(n)
    return m === null ? [] : [Number(m[1])]
  }).sort((a, b) => a - b)
}

/** The oldest message offset the stream holds, or undefined when it holds none (or there is no stream). */
export const diskEarliest = async (
  files: StreamFiles,
  directory: string,
  topic: string
): Promise<number | undefined> => {
  const dir = join(directory, streamOf(topic))
  for (const base of await streamSegments(files, directory, topic)) {
    try {
      const order = await firstOrderOf(files, join(dir, segmentFileName(base)))
      if (order !== undefined) return order
    } catch (e) {
      // Retention deleted it while we looked: the next one is older than anything after it.
      if (errnoOf(e) !== "ENOENT") throw e
    }
  }
  return undefined
}

/** A position in a topic's stream, read forward. One reader per subscription; not shared between fibers. */
export class DiskStream {
  private readonly dir: string
  private segment:
    | { readonly base: number; readonly path: string; readonly file: Pick<SegmentFile, "read" | "close"> }
    | undefined
  private buf = new Uint8Array(1 << 20)
  /** The file offset of buf[0]; bytes buf[0, filled) are the file's; `at` is the next record. */
  private bufStart = 0
  private filled = 0
  private at = 0

  constructor(private readonly files: StreamFiles, private readonly directory: string, readonly topic: string) {
    this.dir = join(directory, streamOf(topic))
  }

  private pathOf(base: number): string {
    return join(this.dir, segmentFileName(base))
  }

  async close(): Promise<void> {
    const open = this.segment
    this.segment = undefined
    if (open !== undefined) await open.file.close().catch(() => undefined)
  }

  private async openSegment(base: number): Promise<void> {
    await this.close()
    const path = this.pathOf(base)
    this.segment = { base, path, file: await this.files.open(path) }
    this.bufStart = 0
    this.filled = 0
    this.at = 0
  }

  /**
   * Positions the reader at the segment holding message offset `offset`: "ok", "before" (the
   * stream's oldest record is after it: retention deleted it, or it never reached the disk) with
   * the oldest offset held, or "empty" (no record on disk).
   */
  async seek(
    offset: number
  ): Promise<
    { readonly kind: "ok" } | { readonly kind: "before"; readonly earliest: number } | { readonly kind: "empty" }
  > {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const bases = await streamSegments(this.files, this.directory, this.topic)
        // Only the last segment can be empty (just begun): it counts as starting after everything.
        const firstOf = (i: number) =>
          firstOrderOf(this.files, this.pathOf(bases[i]!)).then((o) => o ?? Number.POSITIVE_INFINITY)
        if (bases.length === 0) return { kind: "empty" }
        const earliest = await firstOf(0)
        if (earliest === Number.POSITIVE_INFINITY) return { kind: "empty" }
        if (offset < earliest) return { kind: "before", earliest }
        // The last segment whose first record is at or before `offset`.
        let lo = 0
        let hi = bases.length - 1
        while (lo < hi) {
          const mid = Math.ceil((lo + hi) / 2)
          if ((await firstOf(mid)) <= offset) lo = mid
          else hi = mid - 1
        }
        await this.openSegment(bases[lo]!)
        return { kind: "ok" }
      } catch (e) {
        // Retention deleted a segment while we looked: look again.
        if (errnoOf(e) !== "ENOENT") throw e
      }
    }
    const earliest = await diskEarliest(this.files, this.directory, this.topic)
    return earliest === undefined ? { kind: "empty" } : { kind: "before", earliest }
  }

  /** Whether a segment after the current one exists: then the current one is complete. */
  private async laterSegment(): Promise<number | undefined> {
    const current = this.segment!.base
    const bases = await streamSegments(this.files, this.directory, this.topic)
    return bases.find((b) => b > current)
  }

  /** Reads more of the current segment into the buffer, keeping its unread bytes; room for at least `need` bytes. */
  private async fill(need: number): Promise<number> {
    if (need > this.buf.length) {
      const bigger = new Uint8Array(need)
      bigger.set(this.buf.subarray(this.at, this.filled))
      this.buf = bigger
    } else {
      this.buf.copyWithin(0, this.at, this.filled)
    }
    this.bufStart += this.at
    this.filled -= this.at
    this.at = 0
    return this.segment!.file.read(this.buf.subarray(this.filled), this.bufStart + this.filled).then((n) => {
      this.filled += Math.max(0, n)
      return n
    })
  }

  /**
   * Reads up to `max` whole records on from the position, skipping those that end at or before
   * message offset `skipBefore`; returns them (copies) and, when it stopped on one, the problem.
   * Fewer than `max` without a problem: nothing more is on disk yet.
   */
  async next(
    max: number,
    skipBefore = 0
  ): Promise<{ readonly batches: ReadonlyArray<DiskBatch>; readonly problem?: DiskProblem }> {
    const batches: Array<DiskBatch> = []
    if (this.segment === undefined) return { batches }
    try {
      while (batches.length < max) {
        const check = checkRecord(this.buf, this.at, this.filled)
        if (check.kind === "ok") {
          const record = decodeOrderRecord(
            this.buf.subarray(this.at + RECORD_HEADER_BYTES, this.at + RECORD_HEADER_BYTES + check.length)
          )
          if (record === undefined) {
            return {
              batches,
              problem: {
                kind: "corrupt",
                file: this.segment.path,
                offset: this.bufStart + this.at,
                reason: "the record is not a batch (its length disagrees with its header)"
              }
            }
          }
          this.at = check.next
          if (record.totalOrder + record.messageCount <= skipBefore) continue
          batches.push({ ...record, payload: record.payload.slice() })
          continue
        }
        const more = check.kind === "short"
          ? await this.fill(check.length < 0 ? RECORD_HEADER_BYTES : recordBytes(check.length))
          : 0
        if (more > 0) continue
        // The end of what the file holds now, or a record not intact: final only if a later segment was begun.
        const later = await this.laterSegment()
        if (later === undefined) {
          // Read those bytes again next time: they may be mid-write now (or cut and written anew after a crash).
          this.filled = this.at
          return { batches }
        }
        // The writer completes a segment before it creates the next: read once more, in case it wrote meanwhile.
        if (
          check.kind === "short" &&
          (await this.fill(check.length < 0 ? RECORD_HEADER_BYTES : recordBytes(check.length))) > 0
        ) continue
        const after = checkRecord(this.buf, this.at, this.filled)
        if (after.kind === "ok") continue
        if (after.kind === "bad" || this.filled > this.at) {
          const reason = after.kind === "bad"
            ? after.reason
            : `${this.filled - this.at} bytes at the end of a completed segment are not a record`
          return {
            batches,
            problem: { kind: "corrupt", file: this.segment.path, offset: this.bufStart + this.at, reason }
          }
        }
        await this.openSegment(later)
      }
      return { batches }
    } catch (e) {
      if (errnoOf(e) === "ENOENT") return { batches, problem: { kind: "gone" } }
      return {
        batches,
        problem: {
          kind: "io",
          file: this.segment?.path ?? this.dir,
          reason: e instanceof Error ? e.message : String(e)
        }
      }
    }
  }
}
