/**
 * Where the directory lives in the region and what its records hold (docs/region.md):
 *   header        4096                    (the writer's line: epochs, generation, counts)
 *   journal       JOURNAL_RECORDS × 16    (the writer; a ring of the latest creates and deletes)
 *   entries       entrySlots × 256        (the writer; an open-addressing hash table by kind and name)
 *   holder lines  holderLines × 64        (each its holder process's: claim and pinned epoch)
 *   page map      heapPages × 16          (the writer; one record per 4 KiB page of the heap)
 *   heap          heapBytes               (extents, handed out by the buddy allocator)
 * Offsets from the region's base; every view method takes a record's offset. Commit words are
 * read and written with Atomics; flushing (`publish`) stays with the caller.
 */
import { LINE_BYTES } from "../../services/region/CxlMemory.js"
import { MAX_NAME_BYTES, MAX_OBJECT_PARAMS } from "../../services/region/Directory.js"
import type { DirectoryArea, DirectoryConfig } from "../../services/region/DirectoryArea.js"
import { DIRECTORY_LAYOUT_SETTINGS } from "../../services/region/RegionSettings.js"
import { pairWord, wordsOver } from "./Words64.js"
import { WordView } from "./WordView.js"

export const PAGE_BYTES = 4096

/** `bytes` rounded up to whole pages: where a directory's area may start (`makeDirectoryArea`). */
export const alignToPage = (bytes: number): number => Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES
export const ENTRY_BYTES = 256
export const HOLDER_LINE_BYTES = LINE_BYTES
export const PAGE_RECORD_BYTES = 16
/** The change journal's ring (DirectoryJournal.ts): 1024 records of 16 bytes, 16 KiB. */
export const JOURNAL_RECORDS = 1024
export const JOURNAL_RECORD_BYTES = 16

// The interfaces are the contract (services/region/DirectoryArea.ts); the region layers take them from here.
export type { DirectoryArea, DirectoryConfig }

const alignPage = (n: number) => Math.ceil(n / PAGE_BYTES) * PAGE_BYTES

const isPowerOfTwo = (n: number) => Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0

/** A field as a problem names it: its name, its value, and the variable that sets it. */
const named = (config: DirectoryConfig, field: keyof DirectoryConfig) =>
  `${field} ${config[field]} (${DIRECTORY_LAYOUT_SETTINGS.settings[field].env})`

/** Every reason `config` cannot be laid out (empty when it can). */
export const directoryConfigProblems = (config: DirectoryConfig): ReadonlyArray<string> => [
  ...(isPowerOfTwo(config.entrySlots) && config.entrySlots >= 16 && config.entrySlots <= 2 ** 24
    ? []
    : [`directory ${named(config, "entrySlots")} must be a power of two in [16, 2^24]`]),
  ...(Number.isSafeInteger(config.holderLines) && config.holderLines >= 1 && config.holderLines <= 4096
    ? []
    : [`directory ${named(config, "holderLines")} must be in [1, 4096]`]),
  ...(Number.isSafeInteger(config.heapBytes) && config.heapBytes >= 0 && config.heapBytes % PAGE_BYTES === 0
    ? []
    : [`${named(config, "heapBytes")} must be a multiple of 4096`])
]

const geometry = (config: DirectoryConfig) => {
  const journal = PAGE_BYTES
  const entries = alignPage(journal + JOURNAL_RECORDS * JOURNAL_RECORD_BYTES)
  const holders = entries + config.entrySlots * ENTRY_BYTES
  const pageMap = alignPage(holders + config.holderLines * HOLDER_LINE_BYTES)
  const heapPages = config.heapBytes / PAGE_BYTES
  const heap = alignPage(pageMap + heapPages * PAGE_RECORD_BYTES)
  return { journal, entries, holders, pageMap, heap, heapPages, bytes: heap + config.heapBytes }
}

/** Bytes the directory's area takes for `config`, its heap included (a multiple of 4096). */
export const directoryAreaBytes = (config: DirectoryConfig): number => geometry(config).bytes

/** The directory's area at `base` (4096-aligned) for a valid `config`. */
export const makeDirectoryArea = (base: number, config: DirectoryConfig): DirectoryArea => {
  // Its heap's extents are whole pages: the host backs and takes back pages (RegionOpen.ts).
  if (base % PAGE_BYTES !== 0) throw new RangeError(`a directory's area starts on a page (4096 bytes), not at ${base}`)
  const g = geometry(config)
  return {
    base,
    config,
    bytes: g.bytes,
    header: base,
    // The number of a change is a 32-bit count that wraps: `>>> 0` keeps a wrapped (negative) one's index in the ring.
    journalRecord: (n) => base + g.journal + ((n >>> 0) % JOURNAL_RECORDS) * JOURNAL_RECORD_BYTES,
    journalRecords: JOURNAL_RECORDS,
    entry: (slot) => base + g.entries + slot * ENTRY_BYTES,
    holder: (line) => base + g.holders + line * HOLDER_LINE_BYTES,
    pageRecord: (page) => base + g.pageMap + page * PAGE_RECORD_BYTES,
    heap: base + g.heap,
    heapPages: g.heapPages
  }
}

/** The header line (the writer's). `writerEpoch` fences an old writer; `pinEpoch` is what pins announce. */
const Header = {
  writerEpoch: 0, // i32: the epoch of the head that writes now
  pinEpoch: 4, // i32: bumped by every delete; starts at 1 once formatted
  generation: 8, // i32: the last generation handed out
  formatted: 12, // i32: 1 once the page map holds the heap's first free blocks (stored last)
  objects: 16, // i32: live objects
  changes: 20 // i32: the changes journaled (DirectoryJournal.ts), stored after each record: a reader's cue to look again
} as const

export class DirectoryHeaderView extends WordView {
  writerEpoch(at: number): number {
    return Atomics.load(this.i32, (at + Header.writerEpoch) / 4)
  }
  storeWriterEpoch(at: number, v: number): void {
    Atomics.store(this.i32, (at + Header.writerEpoch) / 4, v)
  }
  pinEpoch(at: number): number {
    return Atomics.load(this.i32, (at + Header.pinEpoch) / 4)
  }
  storePinEpoch(at: number, v: number): void {
    Atomics.store(this.i32, (at + Header.pinEpoch) / 4, v)
  }
  generation(at: number): number {
    return this.i32[(at + Header.generation) / 4]!
  }
  setGeneration(at: number, v: number): void {
    this.i32[(at + Header.generation) / 4] = v
  }
  formatted(at: number): boolean {
    return Atomics.load(this.i32, (at + Header.formatted) / 4) === 1
  }
  storeFormatted(at: number): void {
    Atomics.store(this.i32, (at + Header.formatted) / 4, 1)
  }
  objects(at: number): number {
    return this.i32[(at + Header.objects) / 4]!
  }
  setObjects(at: number, v: number): void {
    this.i32[(at + Header.objects) / 4] = v
  }
  changes(at: number): number {
    return Atomics.load(this.i32, (at + Header.changes) / 4)
  }
  storeChanges(at: number, v: number): void {
    Atomics.store(this.i32, (at + Header.changes) / 4, v)
  }
}

/**
 * A directory entry: `version` is a sequence lock (odd while the writer rewrites the entry; a
 * reader that sees it odd, or changed across its read, reads again). Line 0 the fields, lines
 * 1–2 the name, line 3 the parameters.
 */
export const Entry = {
  version: 0, // i32 sequence lock
  state: 4, // i32 EntryState
  generation: 8, // i32
  kind: 12, // i32 index in OBJECT_KINDS
  hash: 16, // u32 of kind and name
  nameBytes: 20, // i32
  createdAtMs: 24, // f64
  offset: 32, // f64 the main extent
  bytes: 40, // f64
  paramCount: 48, // i32
  name: 64, // MAX_NAME_BYTES bytes
  params: 192 // f64 × MAX_OBJECT_PARAMS
} as const
export const EntryState = { empty: 0, live: 1, deleted: 2 } as const

export class EntryView extends WordView {
  version(at: number): number {
    return Atomics.load(this.i32, (at + Entry.version) / 4)
  }
  storeVersion(at: number, v: number): void {
    Atomics.store(this.i32, (at + Entry.version) / 4, v)
  }
  state(at: number): number {
    return this.i32[(at + Entry.state) / 4]!
  }
  setState(at: number, v: number): void {
    this.i32[(at + Entry.state) / 4] = v
  }
  generation(at: number): number {
    return this.i32[(at + Entry.generation) / 4]!
  }
  setGeneration(at: number, v: number): void {
    this.i32[(at + Entry.generation) / 4] = v
  }
  kind(at: number): number {
    return this.i32[(at + Entry.kind) / 4]!
  }
  setKind(at: number, v: number): void {
    this.i32[(at + Entry.kind) / 4] = v
  }
  hash(at: number): number {
    return this.u32[(at + Entry.hash) / 4]!
  }
  setHash(at: number, v: number): void {
    this.u32[(at + Entry.hash) / 4] = v
  }
  nameBytes(at: number): number {
    return this.i32[(at + Entry.nameBytes) / 4]!
  }
  setNameBytes(at: number, v: number): void {
    this.i32[(at + Entry.nameBytes) / 4] = v
  }
  createdAtMs(at: number): number {
    return this.f64[(at + Entry.createdAtMs) / 8]!
  }
  setCreatedAtMs(at: number, v: number): void {
    this.f64[(at + Entry.createdAtMs) / 8] = v
  }
  offset(at: number): number {
    return this.f64[(at + Entry.offset) / 8]!
  }
  bytes(at: number): number {
    return this.f64[(at + Entry.bytes) / 8]!
  }
  setExtent(at: number, offset: number, bytes: number): void {
    this.f64[(at + Entry.offset) / 8] = offset
    this.f64[(at + Entry.bytes) / 8] = bytes
  }
  paramCount(at: number): number {
    return this.i32[(at + Entry.paramCount) / 4]!
  }
  setParamCount(at: number, v: number): void {
    this.i32[(at + Entry.paramCount) / 4] = v
  }
  param(at: number, i: number): number {
    return this.f64[(at + Entry.params) / 8 + i]!
  }
  setParam(at: number, i: number, v: number): void {
    this.f64[(at + Entry.params) / 8 + i] = v
  }
}

/**
 * A holder line, its holder process's: the claim is the (occurrence, pid) pair, taken by one
 * 64-bit compare-and-swap from (0, 0) or from a dead holder's (LineClaim.ts); `pinned` is the
 * oldest pin epoch among the holder's pins in force, 0 for none.
 */
const Holder = { occurrence: 0, pid: 4, pinned: 8 } as const

export class HolderLineView extends WordView {
  private readonly words = wordsOver(this.u32)
  occurrence(at: number): number {
    return Atomics.load(this.i32, (at + Holder.occurrence) / 4)
  }
  pid(at: number): number {
    return Atomics.load(this.i32, (at + Holder.pid) / 4)
  }
  /** Swaps the claim pair from (occurrence, pid) to (nextOccurrence, nextPid); true when it held the former. */
  swapClaim(at: number, occurrence: number, pid: number, nextOccurrence: number, nextPid: number): boolean {
    const expected = pairWord(occurrence, pid)
    return Atomics.compareExchange(
      this.words,
      (at + Holder.occurrence) / 8,
      expected,
      pairWord(nextOccurrence, nextPid)
    )
      === expected
  }
  pinned(at: number): number {
    return Atomics.load(this.i32, (at + Holder.pinned) / 4)
  }
  storePinned(at: number, v: number): void {
    Atomics.store(this.i32, (at + Holder.pinned) / 4, v)
  }
}

/**
 * A page record: whether a block starts at this page (its order and state) and, for a block in
 * use or retired, which object holds it. Pages inside a block read as `interior` (0). The block
 * word is the state (bits 0–7), the order (8–15) and whether the block was retired because its
 * owner's entry could not be read (bit 16: a writer taking over deleted that entry), which listings say.
 */
const PageRecord = { block: 0, ownerSlot: 4, ownerGeneration: 8, retiredAt: 12 } as const
const OWNER_DAMAGED = 1 << 16
export const BlockState = { interior: 0, free: 1, used: 2, retired: 3 } as const
export type BlockStateCode = (typeof BlockState)[keyof typeof BlockState]

export interface BlockRecord {
  readonly state: BlockStateCode
  /** The block is 2^order pages. */
  readonly order: number
  readonly ownerSlot: number
  readonly ownerGeneration: number
  /** The pin epoch its owner was deleted at (retired blocks). */
  readonly retiredAt: number
  /** Retired because its owner's directory entry could not be read (deleted by a writer taking over). */
  readonly ownerDamaged?: boolean
}

export class PageRecordView extends WordView {
  read(at: number): BlockRecord {
    const block = this.u32[(at + PageRecord.block) / 4]!
    return {
      state: (block & 0xff) as BlockStateCode,
      order: (block >>> 8) & 0xff,
      ownerSlot: this.u32[(at + PageRecord.ownerSlot) / 4]!,
      ownerGeneration: this.u32[(at + PageRecord.ownerGeneration) / 4]!,
      retiredAt: this.u32[(at + PageRecord.retiredAt) / 4]!,
      ownerDamaged: (block & OWNER_DAMAGED) !== 0
    }
  }
  write(at: number, record: BlockRecord): void {
    this.u32[(at + PageRecord.ownerSlot) / 4] = record.ownerSlot
    this.u32[(at + PageRecord.ownerGeneration) / 4] = record.ownerGeneration
    this.u32[(at + PageRecord.retiredAt) / 4] = record.retiredAt
    this.u32[(at + PageRecord.block) / 4] = record.state | (record.order << 8) |
      (record.ownerDamaged === true ? OWNER_DAMAGED : 0)
  }
  clear(at: number): void {
    this.u32.fill(0, at / 4, (at + PAGE_RECORD_BYTES) / 4)
  }
}

export { MAX_NAME_BYTES, MAX_OBJECT_PARAMS }
