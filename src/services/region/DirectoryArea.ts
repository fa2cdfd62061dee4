/**
 * The directory area's contract: its configuration and every offset in it, absolute in the
 * region. layers/region/DirectoryRecords.ts computes them; the region's layout
 * (services/RegionLayout.ts) holds one.
 */

export interface DirectoryConfig {
  /** Entry slots of the hash table; a power of two. Objects fill at most 7/8 of it, so probes stay short. */
  readonly entrySlots: number
  /** Processes that can pin objects at once. */
  readonly holderLines: number
  /** The heap the allocator hands out; a multiple of 4096. */
  readonly heapBytes: number
}

/** Every offset of the directory's area, absolute in the region. */
export interface DirectoryArea {
  readonly base: number
  readonly config: DirectoryConfig
  readonly bytes: number
  readonly header: number
  /** The journal's record of change `n` (its ring's record n mod `journalRecords`). */
  readonly journalRecord: (n: number) => number
  /** Records the change journal holds: the changes a reader may fall behind by and still read only what changed. */
  readonly journalRecords: number
  readonly entry: (slot: number) => number
  readonly holder: (line: number) => number
  readonly pageRecord: (page: number) => number
  readonly heap: number
  readonly heapPages: number
}
