/**
 * Typed accessors for the log area's records (field offsets in Records.ts, record offsets
 * from Layout.ts: `pbrSlotOffset`, `goiEntryOffset`, `sessionLineOffset`). A view is made
 * once over the region's (or a private buffer's) typed arrays; every method takes the
 * record's byte offset and reads or writes one field, so hot paths allocate nothing.
 * 64-bit values are f64 (below 2^53). Commit and other shared words go through `Atomics`;
 * flushing (`publish`) and invalidating stay with the caller, who knows the record's span.
 */
import { type RecordWords, WordView as View } from "../region/WordView.js"
import { GOI_INVALID, GoiEntry, goiSeqHi, goiSeqLo, PbrSlot, positionMark } from "./Records.js"

// The arrays every view reads (SessionTable and the layout tests name them from here).
export type { RecordWords }
// The lines of a topic and those a process claims, in rooms of their own.
export * from "./ProcessLineViews.js"
export * from "./TopicLineViews.js"

/** What a PBR slot records of a batch's header. */
export interface SlotHeader {
  readonly clientId: number
  readonly sessionEpoch: number
  readonly batchSeq: number
  readonly messageCount: number
  readonly payloadBytes: number
  readonly crc32c: number
}

/**
 * A PBR slot. Line 0 is the broker's (its commit word names the position it was written for:
 * `positionMark`), line 1 the sequencer's (its finish word names it the same way).
 */
export class PbrSlotView extends View {
  // line 0, the broker's
  clientId(at: number): number {
    return this.u32[(at + PbrSlot.clientId) / 4]
  }
  sessionEpoch(at: number): number {
    return this.u32[(at + PbrSlot.sessionEpoch) / 4]
  }
  batchSeq(at: number): number {
    return this.f64[(at + PbrSlot.batchSeq) / 8]
  }
  messageCount(at: number): number {
    return this.u32[(at + PbrSlot.messageCount) / 4]
  }
  payloadBytes(at: number): number {
    return this.u32[(at + PbrSlot.payloadBytes) / 4]
  }
  blogPosition(at: number): number {
    return this.f64[(at + PbrSlot.blogPosition) / 8]
  }
  crc32c(at: number): number {
    return this.u32[(at + PbrSlot.crc32c) / 4]
  }
  brokerId(at: number): number {
    return this.u32[(at + PbrSlot.brokerId) / 4]
  }
  receivedAtMs(at: number): number {
    return this.f64[(at + PbrSlot.receivedAtMs) / 8]
  }
  /** The absolute position the broker wrote the slot for (a check against stale or corrupt slots). */
  pbrSeq(at: number): number {
    return this.f64[(at + PbrSlot.pbrSeq) / 8]
  }
  kind(at: number): number {
    return this.u32[(at + PbrSlot.kind) / 4]
  }
  setClientId(at: number, v: number): void {
    this.u32[(at + PbrSlot.clientId) / 4] = v
  }
  setSessionEpoch(at: number, v: number): void {
    this.u32[(at + PbrSlot.sessionEpoch) / 4] = v
  }
  setBatchSeq(at: number, v: number): void {
    this.f64[(at + PbrSlot.batchSeq) / 8] = v
  }
  setMessageCount(at: number, v: number): void {
    this.u32[(at + PbrSlot.messageCount) / 4] = v
  }
  setPayloadBytes(at: number, v: number): void {
    this.u32[(at + PbrSlot.payloadBytes) / 4] = v
  }
  setBlogPosition(at: number, v: number): void {
    this.f64[(at + PbrSlot.blogPosition) / 8] = v
  }
  setCrc32c(at: number, v: number): void {
    this.u32[(at + PbrSlot.crc32c) / 4] = v
  }
  setBrokerId(at: number, v: number): void {
    this.u32[(at + PbrSlot.brokerId) / 4] = v
  }
  setReceivedAtMs(at: number, v: number): void {
    this.f64[(at + PbrSlot.receivedAtMs) / 8] = v
  }
  setPbrSeq(at: number, v: number): void {
    this.f64[(at + PbrSlot.pbrSeq) / 8] = v
  }
  setKind(at: number, v: number): void {
    this.u32[(at + PbrSlot.kind) / 4] = v
  }
  /** Line 0 but its commit word: the batch's header, where it lies, who wrote it for which position. */
  writeHeader(at: number, h: SlotHeader, blogPosition: number, brokerId: number, pbrSeq: number, kind: number): void {
    this.setClientId(at, h.clientId)
    this.setSessionEpoch(at, h.sessionEpoch)
    this.setBatchSeq(at, h.batchSeq)
    this.setMessageCount(at, h.messageCount)
    this.setPayloadBytes(at, h.payloadBytes)
    this.setBlogPosition(at, blogPosition)
    this.setCrc32c(at, h.crc32c)
    this.setBrokerId(at, brokerId)
    this.setReceivedAtMs(at, Date.now())
    this.setPbrSeq(at, pbrSeq)
    this.setKind(at, kind)
  }
  /** Whether the broker committed the slot for position `pbrSeq` (this lap). */
  committed(at: number, pbrSeq: number): boolean {
    return Atomics.load(this.i32, (at + PbrSlot.commit) / 4) === positionMark(pbrSeq)
  }
  /** The broker's commit word, written last. */
  commit(at: number, pbrSeq: number): void {
    Atomics.store(this.i32, (at + PbrSlot.commit) / 4, positionMark(pbrSeq))
  }
  // line 1, the sequencer's
  /** The batch's global seq, or a `Dropped` code. */
  globalSeq(at: number): number {
    return this.f64[(at + PbrSlot.globalSeq) / 8]
  }
  totalOrder(at: number): number {
    return this.f64[(at + PbrSlot.totalOrder) / 8]
  }
  setGlobalSeq(at: number, v: number): void {
    this.f64[(at + PbrSlot.globalSeq) / 8] = v
  }
  setTotalOrder(at: number, v: number): void {
    this.f64[(at + PbrSlot.totalOrder) / 8] = v
  }
  /** The epoch of the sequencer that finished the slot. */
  orderedEpoch(at: number): number {
    return this.i32[(at + PbrSlot.epoch) / 4]
  }
  setOrderedEpoch(at: number, v: number): void {
    this.i32[(at + PbrSlot.epoch) / 4] = v
  }
  /** Whether the sequencer finished the slot for position `pbrSeq` (this lap). */
  finished(at: number, pbrSeq: number): boolean {
    return Atomics.load(this.i32, (at + PbrSlot.finish) / 4) === positionMark(pbrSeq)
  }
  /** The sequencer's finish word, written last. */
  finish(at: number, pbrSeq: number): void {
    Atomics.store(this.i32, (at + PbrSlot.finish) / 4, positionMark(pbrSeq))
  }
}

/** A GOI entry; its global seq (high half, then the low half as commit word) is written last. */
export class GoiEntryView extends View {
  totalOrder(at: number): number {
    return this.f64[(at + GoiEntry.totalOrder) / 8]
  }
  blogPosition(at: number): number {
    return this.f64[(at + GoiEntry.blogPosition) / 8]
  }
  pbrSeq(at: number): number {
    return this.f64[(at + GoiEntry.pbrSeq) / 8]
  }
  batchSeq(at: number): number {
    return this.f64[(at + GoiEntry.batchSeq) / 8]
  }
  brokerId(at: number): number {
    return this.u32[(at + GoiEntry.brokerId) / 4]
  }
  payloadBytes(at: number): number {
    return this.u32[(at + GoiEntry.payloadBytes) / 4]
  }
  messageCount(at: number): number {
    return this.u32[(at + GoiEntry.messageCount) / 4]
  }
  clientId(at: number): number {
    return this.u32[(at + GoiEntry.clientId) / 4]
  }
  sessionEpoch(at: number): number {
    return this.u32[(at + GoiEntry.sessionEpoch) / 4]
  }
  crc32c(at: number): number {
    return this.u32[(at + GoiEntry.crc32c) / 4]
  }
  setTotalOrder(at: number, v: number): void {
    this.f64[(at + GoiEntry.totalOrder) / 8] = v
  }
  setBlogPosition(at: number, v: number): void {
    this.f64[(at + GoiEntry.blogPosition) / 8] = v
  }
  setPbrSeq(at: number, v: number): void {
    this.f64[(at + GoiEntry.pbrSeq) / 8] = v
  }
  setBatchSeq(at: number, v: number): void {
    this.f64[(at + GoiEntry.batchSeq) / 8] = v
  }
  setBrokerId(at: number, v: number): void {
    this.u32[(at + GoiEntry.brokerId) / 4] = v
  }
  setPayloadBytes(at: number, v: number): void {
    this.u32[(at + GoiEntry.payloadBytes) / 4] = v
  }
  setMessageCount(at: number, v: number): void {
    this.u32[(at + GoiEntry.messageCount) / 4] = v
  }
  setClientId(at: number, v: number): void {
    this.u32[(at + GoiEntry.clientId) / 4] = v
  }
  setSessionEpoch(at: number, v: number): void {
    this.u32[(at + GoiEntry.sessionEpoch) / 4] = v
  }
  setCrc32c(at: number, v: number): void {
    this.u32[(at + GoiEntry.crc32c) / 4] = v
  }
  /** Whether the entry is committed as global seq `g` (a reader checks again after reading it). */
  holds(at: number, g: number): boolean {
    return Atomics.load(this.i32, (at + GoiEntry.seqLo) / 4) === goiSeqLo(g) &&
      this.i32[(at + GoiEntry.seqHi) / 4] === goiSeqHi(g)
  }
  /** Voids the entry before it is rewritten: a reader validating an older seq of this slot then sees a mismatch. */
  markRewriting(at: number): void {
    Atomics.store(this.i32, (at + GoiEntry.seqLo) / 4, GOI_INVALID)
  }
  setSeqHigh(at: number, g: number): void {
    this.i32[(at + GoiEntry.seqHi) / 4] = goiSeqHi(g)
  }
  /**
   * Everything but the commit word, for global seq `g`: voided first, then the batch's fields
   * copied from its PBR slot (broker `brokerId`, position `pbrSeq`). Returns its message count.
   */
  writeFromSlot(
    at: number,
    g: number,
    pbr: PbrSlotView,
    slot: number,
    brokerId: number,
    pbrSeq: number,
    totalOrder: number
  ): number {
    const count = pbr.messageCount(slot)
    this.markRewriting(at)
    this.setTotalOrder(at, totalOrder)
    this.setBlogPosition(at, pbr.blogPosition(slot))
    this.setPbrSeq(at, pbrSeq)
    this.setBatchSeq(at, pbr.batchSeq(slot))
    this.setBrokerId(at, brokerId)
    this.setPayloadBytes(at, pbr.payloadBytes(slot))
    this.setMessageCount(at, count)
    this.setClientId(at, pbr.clientId(slot))
    this.setSessionEpoch(at, pbr.sessionEpoch(slot))
    this.setCrc32c(at, pbr.crc32c(slot))
    this.setSeqHigh(at, g)
    return count
  }
  /** The commit word (the low half of `g`), written last. */
  commitSeq(at: number, g: number): void {
    Atomics.store(this.i32, (at + GoiEntry.seqLo) / 4, goiSeqLo(g))
  }
}
