/** `scanHeaders`' reader of record headers: small synchronous reads, in slices between which other fibers run. */
import type { RecordPosition } from "../../../services/log/Segments.js"
import type { SegmentFile } from "./SegmentFiles.js"
import { MAX_RECORD_BYTES, RECORD_HEADER_BYTES, recordBytes } from "./SegmentRecord.js"

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
export class HeaderScanner {
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
        return {
          offset: at,
          reason: `it holds more than ${
            this.end - this.segment
          } records, but the next segment begins at record ${this.end}`
        }
      }
      if (at >= this.limit) {
        return {
          offset: at,
          reason: `it holds ${this.next - this.segment} records, but the next segment begins at record ${this.end}`
        }
      }
      if (at + RECORD_HEADER_BYTES > this.limit) {
        return { offset: at, reason: `${this.limit - at} bytes, less than a record header` }
      }
      if (!this.have(at, RECORD_HEADER_BYTES)) return { offset: at, reason: "the file is shorter than its size" }
      const length = this.view.getUint32(at - this.bufStart, true)
      if (length > MAX_RECORD_BYTES) {
        return { offset: at, reason: `length ${length} exceeds the largest record (${MAX_RECORD_BYTES})` }
      }
      const size = recordBytes(length)
      if (at + size > this.limit) {
        return { offset: at, reason: `a record of ${length} bytes runs past the end of the segment` }
      }
      const headerBytes = Math.min(this.headerBytes, length)
      if (!this.have(at, RECORD_HEADER_BYTES + headerBytes)) {
        return { offset: at, reason: "the file is shorter than its size" }
      }
      this.inBuffer++
      const index = this.next++
      this.position = at + size
      if (index < this.from) continue
      const header = this.buf.subarray(
        at - this.bufStart + RECORD_HEADER_BYTES,
        at - this.bufStart + RECORD_HEADER_BYTES + headerBytes
      )
      if (this.onHeader(index, header, length, { segment: this.segment, offset: at }) === false) return "stopped"
    }
    return "more"
  }
}
