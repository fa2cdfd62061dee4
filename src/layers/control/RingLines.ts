/**
 * A ring's lines in region bytes and their typed views: the control line (the writer's), one
 * progress line per reader slot, and the observer line (the last reader slot while a process
 * watches the readers' progress). A view is made once per region (`ringLineViews`); every method
 * takes the line's byte offset and reads or writes one field, so hot paths allocate nothing.
 * Flushing (`publish`) and invalidating stay with the caller, who knows the line.
 *
 * 64-bit positions are published as an f64 plus its low 32 bits written last with
 * `Atomics.store` (the commit word). A reader loads the low word first, then the f64, and
 * rebuilds the value the low word released: f64 - ((low(f64) - low) mod 2^32). The f64 can
 * only be newer, and never by 2^32 bytes, so no store is ever seen torn or early.
 *
 * A reader's counters are the exception (`counter`): the reader swaps the commit word first,
 * from the value it last published, then stores the f64. The low word is the truth; the f64 is
 * within 2^31 of it either way, so the value is rebuilt by the signed difference. Each commit
 * word shares an aligned 64-bit word with one that names the reader (`delivered`'s with the
 * state word, `processed`'s with the occurrence), and the swap is of that whole word: a reader
 * whose slot was reaped and taken by another never writes that one's counters, even where the
 * successor's counter stands at the very value it last published (a quiet ring).
 */
import { type RingAddress, ringFootprint } from "../../services/control/Rings.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { SUPERBLOCK_BYTES } from "../region/Superblock.js"
import { highHalf, lowHalf, pairWord, wordsOver } from "../region/Words64.js"
import { WordView } from "../region/WordView.js"

/** Byte offsets in the control line (written by the writer only). */
const Control = {
  headLow: 0, // u32 commit word: low 32 bits of the leading sequence
  closed: 4, // u32
  head: 8, // f64 leading sequence
  occurrence: 16, // u32
  bell: 24, // u32 writer's doorbell line
  waiting: 28, // u32: 1 while the writer waits for space
  id: 32, // u32
  readerSlots: 36, // u32
  dataBytes: 40, // f64
  pid: 48, // i32 the writer's; with `start`, one 64-bit word, claimed by one compare-and-swap
  start: 52 // u32 the writer's start tag (`startTag`, 0 where unknown): with the pid, it names the process
} as const

/**
 * Byte offsets in a reader's progress line (written by that reader; a reaper only swaps `state`).
 * `state` and `deliveredLow` form one 64-bit word, and so do `processedLow` and `occurrence`.
 */
const Reader = {
  state: 0, // u32 free / attaching (with the claimer's pid, `claimOf`) / attached (with the occurrence, `attachedOf`)
  deliveredLow: 4, // u32 commit word of `delivered`
  pid: 8, // i32
  bell: 12, // u32 reader's doorbell line
  processedLow: 16, // u32 commit word of `processed`
  occurrence: 20, // u32
  delivered: 24, // f64
  processed: 32, // f64
  heartbeat: 40, // f64 ms since the epoch
  waiting: 48, // u32 `waitingOf`: low bit set while the reader waits for frames
  start: 52 // u32 the reader's start tag (`startTag`, 0 where unknown), set before it is attached: with the pid, it names the process
} as const

/**
 * Byte offsets in an observer's line: the ring's last reader slot while a process watches the
 * readers' progress. Written by that observer only; readers read `state`, `bell` and the
 * target. Its identity sits where a reader's does. Its target's commit word is where a reader's
 * `deliveredLow` is, which only that reader's swap paired with the state word writes (failing
 * while the state says observing), and the f64 in bytes no reader field uses: a reader reaped
 * just after a swap, whose late f64 store lands on this line, misses both.
 */
const Observer = {
  state: 0, // u32 OBSERVING while watched
  targetLow: 4, // u32 commit word: low 32 bits of the target
  pid: 8, // i32
  bell: 12, // u32 observer's doorbell line
  occurrence: 20, // u32 (where a reader's is)
  start: 52, // u32 start tag (where a reader's is)
  target: 56 // f64: readers ring `bell` when their delivered or processed crosses it
} as const

/** Where one ring's lines lie in a region (byte offsets). */
export interface Lines {
  readonly address: RingAddress
  readonly control: number
  readonly data: number
  readonly line: (slot: number) => number
  /** Offset just past the ring. */
  readonly end: number
}

/** The lines of the ring at `address`, placed at region offset `at` (its own offset, unless the ring lives in a region of its own). */
export const lines = (address: RingAddress, at = address.offset): Lines => ({
  address,
  control: at,
  data: at + LINE_BYTES * (1 + address.readerSlots),
  line: (slot) => at + LINE_BYTES * (1 + slot),
  end: at + ringFootprint(address.dataBytes, address.readerSlots)
})

/** A ring placed in some region's bytes, with the doorbell of the process that uses it. */
export interface PlacedRing {
  readonly region: CxlMemoryShape
  readonly doorbell: DoorbellShape
  readonly lines: Lines
}

/** A doorbell offset read from the region: a line past the superblock, outside this ring. */
export const validBell = (region: CxlMemoryShape, l: Lines, bell: number): boolean =>
  bell % LINE_BYTES === 0 && bell >= SUPERBLOCK_BYTES && region.inBounds(bell, LINE_BYTES) &&
  (bell < l.control || bell >= l.end)

/** A process as a line names it: its pid and its start tag. */
export interface LineOwner {
  readonly pid: number
  readonly start: number
}

class LineView extends WordView {
  protected readonly words: BigUint64Array
  constructor(region: CxlMemoryShape) {
    super(region)
    this.words = wordsOver(region.u32)
  }
  /** A published position: the commit word at `lowByte`, then the f64 at `fullByte` (see the module comment). */
  protected position(lowByte: number, fullByte: number): number {
    const low = Atomics.load(this.u32, lowByte / 4)
    const full = this.f64[fullByte / 8]!
    return full - (((full >>> 0) - low) >>> 0)
  }
  /** Publishes a position: the f64, then its commit word. */
  protected storePosition(lowByte: number, fullByte: number, value: number): void {
    this.f64[fullByte / 8] = value
    Atomics.store(this.u32, lowByte / 4, value >>> 0)
  }
  /** A reader counter: the commit word is the truth, the f64 within 2^31 of it, older or newer (see the module comment). */
  protected counter(lowByte: number, fullByte: number): number {
    const low = Atomics.load(this.u32, lowByte / 4)
    const full = this.f64[fullByte / 8]!
    return full + ((low - (full >>> 0)) | 0)
  }
  /**
   * Moves a reader counter: one 64-bit compare-and-swap of the word holding its commit word
   * (and the field beside it that names the reader), then the f64. False if not written.
   */
  protected swapCounter(pairByte: number, expected: bigint, next: bigint, fullByte: number, to: number): boolean {
    if (Atomics.compareExchange(this.words, pairByte / 8, expected, next) !== expected) return false
    this.f64[fullByte / 8] = to
    return true
  }
}

/** The control line, the writer's. */
export class ControlLineView extends LineView {
  /** The leading sequence. */
  head(at: number): number {
    return this.position(at + Control.headLow, at + Control.head)
  }
  publishHead(at: number, v: number): void {
    this.storePosition(at + Control.headLow, at + Control.head, v)
  }
  /** The leading sequence's commit word alone: whether it moved. */
  headLow(at: number): number {
    return Atomics.load(this.u32, (at + Control.headLow) / 4)
  }
  closed(at: number): boolean {
    return Atomics.load(this.u32, (at + Control.closed) / 4) !== 0
  }
  storeClosed(at: number, v: 0 | 1): void {
    Atomics.store(this.u32, (at + Control.closed) / 4, v)
  }
  /** Bumped by every writer that opens the ring. */
  occurrence(at: number): number {
    return Atomics.load(this.u32, (at + Control.occurrence) / 4)
  }
  storeOccurrence(at: number, v: number): void {
    Atomics.store(this.u32, (at + Control.occurrence) / 4, v)
  }
  bell(at: number): number {
    return this.u32[(at + Control.bell) / 4]!
  }
  setBell(at: number, v: number): void {
    this.u32[(at + Control.bell) / 4] = v
  }
  /** 1 while the writer waits for space (readers ring it only then). */
  waiting(at: number): number {
    return Atomics.load(this.u32, (at + Control.waiting) / 4)
  }
  storeWaiting(at: number, v: 0 | 1): void {
    Atomics.store(this.u32, (at + Control.waiting) / 4, v)
  }
  /** The ring's address, for a tool reading the region. */
  setShape(at: number, address: RingAddress): void {
    this.u32[(at + Control.id) / 4] = address.id
    this.u32[(at + Control.readerSlots) / 4] = address.readerSlots
    this.f64[(at + Control.dataBytes) / 8] = address.dataBytes
  }
  pid(at: number): number {
    return Atomics.load(this.i32, (at + Control.pid) / 4)
  }
  /** The writer's pid and start tag, read in one atomic load so both belong to one claim. */
  writer(at: number): LineOwner {
    const pair = Atomics.load(this.words, (at + Control.pid) / 8)
    return { pid: lowHalf(pair) | 0, start: highHalf(pair) }
  }
  /** Compare-and-swap of the writer's (pid, start) pair; true when it held `expected`. */
  swapWriter(at: number, expected: LineOwner, pid: number, start: number): boolean {
    const before = pairWord(expected.pid, expected.start)
    return Atomics.compareExchange(this.words, (at + Control.pid) / 8, before, pairWord(pid, start)) === before
  }
}

/** A reader's progress line. */
export class ReaderLineView extends LineView {
  /** The slot's state word (`RingSlotStates`). */
  state(at: number): number {
    return Atomics.load(this.u32, (at + Reader.state) / 4)
  }
  /** Compare-and-swap of the state word; true when it held `expected`. */
  swapState(at: number, expected: number, v: number): boolean {
    return Atomics.compareExchange(this.u32, (at + Reader.state) / 4, expected, v) === expected
  }
  occurrence(at: number): number {
    return Atomics.load(this.u32, (at + Reader.occurrence) / 4)
  }
  storeOccurrence(at: number, v: number): void {
    Atomics.store(this.u32, (at + Reader.occurrence) / 4, v)
  }
  pid(at: number): number {
    return Atomics.load(this.i32, (at + Reader.pid) / 4)
  }
  setPid(at: number, v: number): void {
    this.i32[(at + Reader.pid) / 4] = v
  }
  start(at: number): number {
    return Atomics.load(this.u32, (at + Reader.start) / 4)
  }
  setStart(at: number, v: number): void {
    this.u32[(at + Reader.start) / 4] = v
  }
  bell(at: number): number {
    return this.u32[(at + Reader.bell) / 4]!
  }
  setBell(at: number, v: number): void {
    this.u32[(at + Reader.bell) / 4] = v
  }
  heartbeatMs(at: number): number {
    return this.f64[(at + Reader.heartbeat) / 8]!
  }
  setHeartbeatMs(at: number, v: number): void {
    this.f64[(at + Reader.heartbeat) / 8] = v
  }
  /** The waiting word (`waitingOf`). */
  waiting(at: number): number {
    return Atomics.load(this.u32, (at + Reader.waiting) / 4)
  }
  storeWaiting(at: number, v: number): void {
    Atomics.store(this.u32, (at + Reader.waiting) / 4, v)
  }
  swapWaiting(at: number, expected: number, v: number): void {
    Atomics.compareExchange(this.u32, (at + Reader.waiting) / 4, expected, v)
  }
  delivered(at: number): number {
    return this.counter(at + Reader.deliveredLow, at + Reader.delivered)
  }
  processed(at: number): number {
    return this.counter(at + Reader.processedLow, at + Reader.processed)
  }
  /** Both counters at `position`: for a slot not attached yet, that no other process writes. */
  setCounters(at: number, position: number): void {
    this.storePosition(at + Reader.deliveredLow, at + Reader.delivered, position)
    this.storePosition(at + Reader.processedLow, at + Reader.processed, position)
  }
  /** Moves `delivered` from `from` to `to` if the state word still says `attached` (this reader's); true if written. */
  swapDelivered(at: number, attached: number, from: number, to: number): boolean {
    return this.swapCounter(
      at + Reader.state,
      pairWord(attached, from),
      pairWord(attached, to),
      at + Reader.delivered,
      to
    )
  }
  /** Moves `processed` from `from` to `to` if the occurrence is still `occurrence` (this reader's); true if written. */
  swapProcessed(at: number, occurrence: number, from: number, to: number): boolean {
    return this.swapCounter(
      at + Reader.processedLow,
      pairWord(from, occurrence),
      pairWord(to, occurrence),
      at + Reader.processed,
      to
    )
  }
}

/** The observer line, the last reader slot's while a process watches the readers' progress. */
export class ObserverLineView extends LineView {
  state(at: number): number {
    return Atomics.load(this.u32, (at + Observer.state) / 4)
  }
  storeState(at: number, v: number): void {
    Atomics.store(this.u32, (at + Observer.state) / 4, v)
  }
  /** Compare-and-swap of the state word; true when it held `expected`. */
  swapState(at: number, expected: number, v: number): boolean {
    return Atomics.compareExchange(this.u32, (at + Observer.state) / 4, expected, v) === expected
  }
  occurrence(at: number): number {
    return Atomics.load(this.u32, (at + Observer.occurrence) / 4)
  }
  storeOccurrence(at: number, v: number): void {
    Atomics.store(this.u32, (at + Observer.occurrence) / 4, v)
  }
  pid(at: number): number {
    return Atomics.load(this.i32, (at + Observer.pid) / 4)
  }
  setPid(at: number, v: number): void {
    this.i32[(at + Observer.pid) / 4] = v
  }
  start(at: number): number {
    return Atomics.load(this.u32, (at + Observer.start) / 4)
  }
  setStart(at: number, v: number): void {
    this.u32[(at + Observer.start) / 4] = v
  }
  bell(at: number): number {
    return this.u32[(at + Observer.bell) / 4]!
  }
  setBell(at: number, v: number): void {
    this.u32[(at + Observer.bell) / 4] = v
  }
  /** The lowest target watched: readers crossing it ring `bell`. */
  target(at: number): number {
    return this.position(at + Observer.targetLow, at + Observer.target)
  }
  publishTarget(at: number, v: number): void {
    this.storePosition(at + Observer.targetLow, at + Observer.target, v)
  }
}

/** The views of a region's ring lines. */
export interface RingLineViews {
  readonly control: ControlLineView
  readonly reader: ReaderLineView
  readonly observer: ObserverLineView
}

const viewsOf = new WeakMap<CxlMemoryShape, RingLineViews>()

/** The ring line views over `region`, made once per region. */
export const ringLineViews = (region: CxlMemoryShape): RingLineViews => {
  let views = viewsOf.get(region)
  if (views === undefined) {
    views = {
      control: new ControlLineView(region),
      reader: new ReaderLineView(region),
      observer: new ObserverLineView(region)
    }
    viewsOf.set(region, views)
  }
  return views
}
