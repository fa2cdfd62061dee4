/**
 * A process slot's owner line (the slot's first line; the second is its owner's doorbell) and
 * its typed view: every method takes the slot's byte offset and reads or writes one field.
 * The owner's pid and `ready` form one 64-bit word, claimed by one compare-and-swap (the pid,
 * with `ready` cleared), so a dead owner's slot is never seen ready under its new owner's pid
 * with the old owner's start time. The rest of the line is the owner's label (who supervises
 * it, under which name), written with the other fields before `ready`. Flushing (`publish`)
 * stays with the caller.
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
  startTag: 32, // u32 the owner's start tag (`startTag`, 0 where unknown); set before `ready`
  supervisor: 36, // i32 pid of the supervisor that started the owner, 0 = none; set before `ready`
  restarts: 40, // i32 how many times its supervisor had restarted it when it started
  name: 44 // LABEL_NAME_BYTES of UTF-8, zero-padded: the name its supervisor gave it ("" = none)
} as const

/** Bytes of a label's name in the owner line: a longer name is cut at a character boundary. */
export const LABEL_NAME_BYTES = 20

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** `name` as at most LABEL_NAME_BYTES of UTF-8, cut before a character that would not fit whole. */
export const labelNameBytes = (name: string): Uint8Array => {
  const { written } = encoder.encodeInto(name, new Uint8Array(LABEL_NAME_BYTES))
  return encoder.encode(name).subarray(0, written)
}

export class SlotLineView {
  private readonly i32: Int32Array
  private readonly u32: Uint32Array
  private readonly f64: Float64Array
  private readonly words: BigUint64Array
  private readonly bytes: Uint8Array
  constructor(region: Pick<CxlMemoryShape, "bytes" | "i32" | "u32" | "f64">) {
    this.bytes = region.bytes
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
  /** The pid of the supervisor that started the owner, 0 when none did. */
  supervisor(at: number): number {
    return this.i32[(at + SlotLine.supervisor) / 4]!
  }
  restarts(at: number): number {
    return this.i32[(at + SlotLine.restarts) / 4]!
  }
  /** The name its supervisor gave the owner, "" when none. */
  name(at: number): string {
    const field = this.bytes.subarray(at + SlotLine.name, at + SlotLine.name + LABEL_NAME_BYTES)
    const end = field.indexOf(0)
    return decoder.decode(end < 0 ? field : field.subarray(0, end))
  }
  /** Writes the owner's label (no supervisor: 0, 0 and ""). */
  setLabel(at: number, supervisor: number, restarts: number, name: string): void {
    this.i32[(at + SlotLine.supervisor) / 4] = supervisor
    this.i32[(at + SlotLine.restarts) / 4] = restarts
    const field = this.bytes.subarray(at + SlotLine.name, at + SlotLine.name + LABEL_NAME_BYTES)
    field.fill(0)
    field.set(labelNameBytes(name))
  }
}

const viewsByRegion = new WeakMap<CxlMemoryShape, SlotLineView>()

/** The slot line view over `region`, made once per region. */
export const slotLines = (region: CxlMemoryShape): SlotLineView => {
  let view = viewsByRegion.get(region)
  if (view === undefined) viewsByRegion.set(region, view = new SlotLineView(region))
  return view
}
