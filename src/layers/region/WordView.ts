/**
 * The base of every typed view of a region's records (the superblock's, the log area's records',
 * the ring lines'): the 32-bit and f64 arrays over the same memory, which its subclasses index by
 * a record's byte offset plus a field's.
 */

/** The typed arrays records live in (a `CxlMemoryShape` is one). */
export interface RecordWords {
  readonly i32: Int32Array
  readonly u32: Uint32Array
  readonly f64: Float64Array
}

export class WordView {
  protected readonly i32: Int32Array
  protected readonly u32: Uint32Array
  protected readonly f64: Float64Array
  constructor(words: RecordWords) {
    this.i32 = words.i32
    this.u32 = words.u32
    this.f64 = words.f64
  }
}
