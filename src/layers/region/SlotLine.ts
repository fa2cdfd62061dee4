/**
 * A process slot's owner line (the slot's first line; the second is its owner's doorbell) and
 * its typed view: every method takes the slot's byte offset and reads or writes one field.
 * The owner's pid and `ready` form one 64-bit word, claimed by one compare-and-swap (the pid,
 * with `ready` cleared), so a dead owner's slot is never seen ready under its new owner's pid
 * with the old owner's start time. Flushing (`publish`) stays with the caller.
 */
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { pairWord, wordsOver } from "./Words64.js"

/** Byte offsets in a slot's owner line. */
const SlotLine = {
  owner: 0, // i32 pid, 0 = free; with `ready`, the 64-bit claim word
  ready: 4, // i32 occurrence once ready, 0 while claiming
  occurrence: 8, // i32
  role: 12, // i32 index in ROLES
  heartbeat: 16, // f64 ms since the epoch
  started: 24, // f64 ms since the epoch
  startTag: 32 // u32 the owner's start tag (`startTag`, 0 where unknown); set before `ready`
} as const

export class SlotLineView {
  private readonly i32: Int32Array
  private readonly u32: Uint32Array
  private readonly f64: Float64Array
  private readonly words: BigUint64Array
  constructor(region: Pick<CxlMemoryShape, "i32" | "u32" | "f64">) {
    this.i32 = region.i32
    this.u32 = region.u32
    this.f64 = region.f64
    this.words = wordsOver(region.u32)
  }
  /** The owner's pid, 0 while the slot is free. */
  owner(at: number): number {
    return Atomics.load(this.i32, (at + SlotLine.owner) / 4)
  }
  /** The owner's occurrence once the slot is ready, 0 while it is being claimed. */
  ready(at: number): number {
    return Atomics.load(this.i32, (at + SlotLine.ready) / 4)
  }
  storeReady(at: number, v: number): void {
    Atomics.store(this.i32, (at + SlotLine.ready) / 4, v)
  }
  /** The (owner, ready) word, read in one atomic load (0n: free). */
  claimWord(at: number): bigint {
    return Atomics.load(this.words, (at + SlotLine.owner) / 8)
  }
  /** Claims the slot for `pid`, not ready yet, if its (owner, ready) word still is `expected`; true when it was. */
  claim(at: number, expected: bigint, pid: number): boolean {
    return Atomics.compareExchange(this.words, (at + SlotLine.owner) / 8, expected, pairWord(pid, 0)) === expected
  }
  /** Frees the slot if `pid` still owns it. */
  release(at: number, pid: number): void {
    Atomics.compareExchange(this.i32, (at + SlotLine.owner) / 4, pid, 0)
  }
  occurrence(at: number): number {
    return this.i32[(at + SlotLine.occurrence) / 4]!
  }
  setOccurrence(at: number, v: number): void {
    this.i32[(at + SlotLine.occurrence) / 4] = v
  }
  /** The owner's role, as its index in ROLES. */
  role(at: number): number {
    return this.i32[(at + SlotLine.role) / 4]!
  }
  setRole(at: number, v: number): void {
    this.i32[(at + SlotLine.role) / 4] = v
  }
  heartbeatMs(at: number): number {
    return this.f64[(at + SlotLine.heartbeat) / 8]!
  }
  setHeartbeatMs(at: number, v: number): void {
    this.f64[(at + SlotLine.heartbeat) / 8] = v
  }
  /** When the owner took the slot (ms since the epoch). */
  startedMs(at: number): number {
    return this.f64[(at + SlotLine.started) / 8]!
  }
  setStartedMs(at: number, v: number): void {
    this.f64[(at + SlotLine.started) / 8] = v
  }
  startTag(at: number): number {
    return this.u32[(at + SlotLine.startTag) / 4]!
  }
  setStartTag(at: number, v: number): void {
    this.u32[(at + SlotLine.startTag) / 4] = v
  }
}

const viewsByRegion = new WeakMap<CxlMemoryShape, SlotLineView>()

/** The slot line view over `region`, made once per region. */
export const slotLines = (region: CxlMemoryShape): SlotLineView => {
  let view = viewsByRegion.get(region)
  if (view === undefined) viewsByRegion.set(region, view = new SlotLineView(region))
  return view
}
