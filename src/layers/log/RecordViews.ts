/**
 * Typed accessors for the log area's records (field offsets in Records.ts, record offsets
 * from Layout.ts: `pbrSlotOffset`, `goiEntryOffset`, `sessionLineOffset`). A view is made
 * once over the region's (or a private buffer's) typed arrays; every method takes the
 * record's byte offset and reads or writes one field, so hot paths allocate nothing.
 * 64-bit values are f64 (below 2^53). Commit and other shared words go through `Atomics`;
 * flushing (`publish`) and invalidating stay with the caller, who knows the record's span.
 */
import { highHalf, lowHalf, pairWord, wordsOver } from "../region/Words64.js"
import { type RecordWords, WordView as View } from "../region/WordView.js"
import {
  BrokerLine,
  Descriptor,
  GOI_INVALID,
  GoiEntry,
  goiSeqHi,
  goiSeqLo,
  lapMark,
  LeaseLine,
  NAME_LENGTH_MASK,
  OrderLine,
  Participant,
  PbrSlot,
  RegistryLine,
  SequencerLine,
  SessionLine,
  SubscriberLine
} from "./Records.js"

// The arrays every view below reads (SessionTable and the layout tests name them from here).
export type { RecordWords }

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
 * A PBR slot of a ring of `slots`. Line 0 is the broker's (its commit word says lap + 1),
 * line 1 the sequencer's (its finish word says lap + 1).
 */
export class PbrSlotView extends View {
  constructor(words: RecordWords, readonly slots: number) {
    super(words)
  }
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
    return Atomics.load(this.i32, (at + PbrSlot.commit) / 4) === lapMark(pbrSeq, this.slots)
  }
  /** The broker's commit word, written last. */
  commit(at: number, pbrSeq: number): void {
    Atomics.store(this.i32, (at + PbrSlot.commit) / 4, lapMark(pbrSeq, this.slots))
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
    return Atomics.load(this.i32, (at + PbrSlot.finish) / 4) === lapMark(pbrSeq, this.slots)
  }
  /** The sequencer's finish word, written last. */
  finish(at: number, pbrSeq: number): void {
    Atomics.store(this.i32, (at + PbrSlot.finish) / 4, lapMark(pbrSeq, this.slots))
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

/** A session line, a seqlock (the version is odd while it is written); `state` is claimed by compare-and-swap. */
export class SessionLineView extends View {
  version(at: number): number {
    return Atomics.load(this.i32, (at + SessionLine.version) / 4)
  }
  storeVersion(at: number, v: number): void {
    Atomics.store(this.i32, (at + SessionLine.version) / 4, v)
  }
  state(at: number): number {
    return Atomics.load(this.i32, (at + SessionLine.state) / 4)
  }
  storeState(at: number, v: number): void {
    Atomics.store(this.i32, (at + SessionLine.state) / 4, v)
  }
  /** Compare-and-swap of the state word; true when it held `expected`. */
  swapState(at: number, expected: number, v: number): boolean {
    return Atomics.compareExchange(this.i32, (at + SessionLine.state) / 4, expected, v) === expected
  }
  clientId(at: number): number {
    return this.u32[(at + SessionLine.clientId) / 4]
  }
  sessionEpoch(at: number): number {
    return this.u32[(at + SessionLine.sessionEpoch) / 4]
  }
  next(at: number): number {
    return this.f64[(at + SessionLine.next) / 8]
  }
  orderedMessages(at: number): number {
    return this.f64[(at + SessionLine.orderedMessages) / 8]
  }
  duplicates(at: number): number {
    return this.f64[(at + SessionLine.duplicates) / 8]
  }
  held(at: number): number {
    return this.f64[(at + SessionLine.held) / 8]
  }
  lastActivityMs(at: number): number {
    return this.f64[(at + SessionLine.lastActivityMs) / 8]
  }
  /** The durable frontier; the word holds -(frontier + 1) once frozen (`freezeDurable`). */
  durable(at: number): number {
    const raw = this.f64[(at + SessionLine.durable) / 8]!
    return raw < 0 ? -raw - 1 : raw
  }
  /** Whether the frontier is frozen: the session may have had batches that never reached the disk. */
  durableFrozen(at: number): boolean {
    return this.f64[(at + SessionLine.durable) / 8]! < 0
  }
  setDurable(at: number, v: number): void {
    this.f64[(at + SessionLine.durable) / 8] = v
  }
  freezeDurable(at: number): void {
    this.f64[(at + SessionLine.durable) / 8] = -this.durable(at) - 1
  }
  setClientId(at: number, v: number): void {
    this.u32[(at + SessionLine.clientId) / 4] = v
  }
  setSessionEpoch(at: number, v: number): void {
    this.u32[(at + SessionLine.sessionEpoch) / 4] = v
  }
  setNext(at: number, v: number): void {
    this.f64[(at + SessionLine.next) / 8] = v
  }
  setOrderedMessages(at: number, v: number): void {
    this.f64[(at + SessionLine.orderedMessages) / 8] = v
  }
  setDuplicates(at: number, v: number): void {
    this.f64[(at + SessionLine.duplicates) / 8] = v
  }
  setHeld(at: number, v: number): void {
    this.f64[(at + SessionLine.held) / 8] = v
  }
  setLastActivityMs(at: number, v: number): void {
    this.f64[(at + SessionLine.lastActivityMs) / 8] = v
  }
  /** Word `i` (0..15) of the ahead bitmap. */
  aheadWord(at: number, i: number): number {
    return this.u32[(at + SessionLine.ahead) / 4 + i]
  }
  writeAheadWord(at: number, i: number, v: number): void {
    this.u32[(at + SessionLine.ahead) / 4 + i] = v
  }
}

/** A topic's registry line, updated by brokers and the sequencer atomically. */
export class RegistryLineView extends View {
  /** Draws the next session epoch; returns the word's value before. */
  addEpoch(at: number): number {
    return Atomics.add(this.i32, (at + RegistryLine.epochs) / 4, 1)
  }
  live(at: number): number {
    return Atomics.load(this.i32, (at + RegistryLine.live) / 4)
  }
  /** Adds `delta` to the live count; returns the value before. */
  addLive(at: number, delta: number): number {
    return Atomics.add(this.i32, (at + RegistryLine.live) / 4, delta)
  }
}

/** A topic's order line (the sequencer's). */
export class OrderLineView extends View {
  committed(at: number): number {
    return this.f64[(at + OrderLine.committed) / 8]
  }
  totalOrder(at: number): number {
    return this.f64[(at + OrderLine.totalOrder) / 8]
  }
  epoch(at: number): number {
    return this.i32[(at + OrderLine.epoch) / 4]
  }
  fencedSessions(at: number): number {
    return this.f64[(at + OrderLine.fencedSessions) / 8]
  }
  sessions(at: number): number {
    return this.f64[(at + OrderLine.sessions) / 8]
  }
  setCommitted(at: number, v: number): void {
    this.f64[(at + OrderLine.committed) / 8] = v
  }
  setTotalOrder(at: number, v: number): void {
    this.f64[(at + OrderLine.totalOrder) / 8] = v
  }
  setEpoch(at: number, v: number): void {
    this.i32[(at + OrderLine.epoch) / 4] = v
  }
  setFencedSessions(at: number, v: number): void {
    this.f64[(at + OrderLine.fencedSessions) / 8] = v
  }
  setSessions(at: number, v: number): void {
    this.f64[(at + OrderLine.sessions) / 8] = v
  }
  /** Bumped after every round that moved anything (waiters poll it). */
  progress(at: number): number {
    return Atomics.load(this.i32, (at + OrderLine.progress) / 4)
  }
  bumpProgress(at: number): void {
    Atomics.add(this.i32, (at + OrderLine.progress) / 4, 1)
  }
  stalled(at: number): number {
    return Atomics.load(this.i32, (at + OrderLine.stalled) / 4)
  }
  storeStalled(at: number, v: 0 | 1): void {
    Atomics.store(this.i32, (at + OrderLine.stalled) / 4, v)
  }
  /** Why the head's durable tier stopped persisting the topic (a DurableFailureCode; 0 while it runs). */
  durableFailure(at: number): number {
    return Atomics.load(this.i32, (at + OrderLine.durableFailure) / 4)
  }
  storeDurableFailure(at: number, code: number): void {
    Atomics.store(this.i32, (at + OrderLine.durableFailure) / 4, code)
  }
  /** Bumped by every round that published the topic (not by the durable tier): see `OrderLine`. */
  rounds(at: number): number {
    return Atomics.load(this.i32, (at + OrderLine.rounds) / 4)
  }
  /** Bumps `rounds`; returns its new value. */
  bumpRounds(at: number): number {
    return Atomics.add(this.i32, (at + OrderLine.rounds) / 4, 1) + 1
  }
}

/** A (topic, broker) line written by that broker. */
export class BrokerLineView extends View {
  pbrHead(at: number): number {
    return this.f64[(at + BrokerLine.pbrHead) / 8]
  }
  blogHead(at: number): number {
    return this.f64[(at + BrokerLine.blogHead) / 8]
  }
  appendedMessages(at: number): number {
    return this.f64[(at + BrokerLine.appendedMessages) / 8]
  }
  pbrReclaimed(at: number): number {
    return this.f64[(at + BrokerLine.pbrReclaimed) / 8]
  }
  blogTail(at: number): number {
    return this.f64[(at + BrokerLine.blogTail) / 8]
  }
  ringFullWaits(at: number): number {
    return this.f64[(at + BrokerLine.ringFullWaits) / 8]
  }
  setPbrHead(at: number, v: number): void {
    this.f64[(at + BrokerLine.pbrHead) / 8] = v
  }
  setBlogHead(at: number, v: number): void {
    this.f64[(at + BrokerLine.blogHead) / 8] = v
  }
  setAppendedMessages(at: number, v: number): void {
    this.f64[(at + BrokerLine.appendedMessages) / 8] = v
  }
  setPbrReclaimed(at: number, v: number): void {
    this.f64[(at + BrokerLine.pbrReclaimed) / 8] = v
  }
  setBlogTail(at: number, v: number): void {
    this.f64[(at + BrokerLine.blogTail) / 8] = v
  }
  setRingFullWaits(at: number, v: number): void {
    this.f64[(at + BrokerLine.ringFullWaits) / 8] = v
  }
  /** Bumped after the reclaim cursors move. */
  reclaimVersion(at: number): number {
    return Atomics.load(this.i32, (at + BrokerLine.reclaimVersion) / 4)
  }
  bumpReclaimVersion(at: number): void {
    Atomics.add(this.i32, (at + BrokerLine.reclaimVersion) / 4, 1)
  }
}

/** A (topic, broker) line written by the sequencer. */
export class SequencerLineView extends View {
  consumedThrough(at: number): number {
    return this.f64[(at + SequencerLine.consumedThrough) / 8]
  }
  orderedBatches(at: number): number {
    return this.f64[(at + SequencerLine.orderedBatches) / 8]
  }
  orderedMessages(at: number): number {
    return this.f64[(at + SequencerLine.orderedMessages) / 8]
  }
  duplicates(at: number): number {
    return this.f64[(at + SequencerLine.duplicates) / 8]
  }
  dropped(at: number): number {
    return this.f64[(at + SequencerLine.dropped) / 8]
  }
  held(at: number): number {
    return this.f64[(at + SequencerLine.held) / 8]
  }
  setConsumedThrough(at: number, v: number): void {
    this.f64[(at + SequencerLine.consumedThrough) / 8] = v
  }
  setOrderedBatches(at: number, v: number): void {
    this.f64[(at + SequencerLine.orderedBatches) / 8] = v
  }
  setOrderedMessages(at: number, v: number): void {
    this.f64[(at + SequencerLine.orderedMessages) / 8] = v
  }
  setDuplicates(at: number, v: number): void {
    this.f64[(at + SequencerLine.duplicates) / 8] = v
  }
  setDropped(at: number, v: number): void {
    this.f64[(at + SequencerLine.dropped) / 8] = v
  }
  setHeld(at: number, v: number): void {
    this.f64[(at + SequencerLine.held) / 8] = v
  }
}

/** The sequencer lease line in the superblock: `occurrence` is claimed by compare-and-swap, `pid` published last. */
export class LeaseLineView extends View {
  occurrence(at: number): number {
    return Atomics.load(this.i32, (at + LeaseLine.occurrence) / 4)
  }
  /** Compare-and-swap of the holder's occurrence; true when it held `expected`. */
  swapOccurrence(at: number, expected: number, v: number): boolean {
    return Atomics.compareExchange(this.i32, (at + LeaseLine.occurrence) / 4, expected, v) === expected
  }
  pid(at: number): number {
    return Atomics.load(this.i32, (at + LeaseLine.pid) / 4)
  }
  storePid(at: number, v: number): void {
    Atomics.store(this.i32, (at + LeaseLine.pid) / 4, v)
  }
  epoch(at: number): number {
    return this.i32[(at + LeaseLine.epoch) / 4]
  }
  setEpoch(at: number, v: number): void {
    this.i32[(at + LeaseLine.epoch) / 4] = v
  }
  doorbell(at: number): number {
    return this.i32[(at + LeaseLine.doorbell) / 4]
  }
  setDoorbell(at: number, v: number): void {
    this.i32[(at + LeaseLine.doorbell) / 4] = v
  }
  expiresAtMs(at: number): number {
    return this.f64[(at + LeaseLine.expiresAtMs) / 8]
  }
  setExpiresAtMs(at: number, v: number): void {
    this.f64[(at + LeaseLine.expiresAtMs) / 8] = v
  }
  /** 1 while the sequencer waits on its doorbell for batches (appenders ring it only then). */
  waiting(at: number): number {
    return Atomics.load(this.i32, (at + LeaseLine.waiting) / 4)
  }
  storeWaiting(at: number, v: 0 | 1): void {
    Atomics.store(this.i32, (at + LeaseLine.waiting) / 4, v)
  }
  /** The round marker as one word: the pid of the process inside a round (`lowHalf`) and its start tag (`highHalf`); 0n between rounds. */
  round(at: number): bigint {
    return Atomics.load(wordsOver(this.u32), (at + LeaseLine.round) / 8)
  }
  /** Compare-and-swap of the round marker; returns what it held (the swap took place if that is `expected`). */
  exchangeRound(at: number, expected: bigint, holder: bigint): bigint {
    return Atomics.compareExchange(wordsOver(this.u32), (at + LeaseLine.round) / 8, expected, holder)
  }
  /** The occurrence of the holder that has taken every topic on (see `LeaseLine`). */
  ready(at: number): number {
    return Atomics.load(this.i32, (at + LeaseLine.ready) / 4)
  }
  storeReady(at: number, occurrence: number): void {
    Atomics.store(this.i32, (at + LeaseLine.ready) / 4, occurrence)
  }
}

/** The round marker naming process `pid` with start tag `tag` (0n names no one). */
export const roundHolder = (pid: number, tag: number): bigint => pairWord(pid, tag)
/** The pid a round marker names (0: no one). */
export const roundHolderPid = (holder: bigint): number => lowHalf(holder) | 0
/** The start tag a round marker names (0: unknown, the pid alone decides). */
export const roundHolderTag = (holder: bigint): number => highHalf(holder)

/**
 * A participant line (broker owners, listeners): each process its own, claimed by one 64-bit
 * compare-and-swap of its (occurrence, pid) pair, so the line never names a claim without its
 * claimer. Subscriber lines start with the same claim words.
 */
export class ParticipantLineView extends View {
  /** The (occurrence, pid) pair's word (occurrence low, pid high). */
  private pairIndex(at: number): number {
    return (at + Participant.occurrence) / 8
  }
  occurrence(at: number): number {
    return Atomics.load(this.i32, (at + Participant.occurrence) / 4)
  }
  /** The (occurrence, pid) pair read in one atomic load, so both belong to one claim. */
  claim(at: number): { readonly occurrence: number; readonly pid: number } {
    const pair = Atomics.load(wordsOver(this.u32), this.pairIndex(at))
    return { occurrence: lowHalf(pair) | 0, pid: highHalf(pair) | 0 }
  }
  /** Compare-and-swap of the (occurrence, pid) pair; true when it held (`occurrence`, `pid`). */
  swapClaim(at: number, occurrence: number, pid: number, newOccurrence: number, newPid: number): boolean {
    const expected = pairWord(occurrence, pid)
    return Atomics.compareExchange(
      wordsOver(this.u32),
      this.pairIndex(at),
      expected,
      pairWord(newOccurrence, newPid)
    ) === expected
  }
  pid(at: number): number {
    return Atomics.load(this.i32, (at + Participant.pid) / 4)
  }
  storePid(at: number, v: number): void {
    Atomics.store(this.i32, (at + Participant.pid) / 4, v)
  }
  doorbell(at: number): number {
    return this.i32[(at + Participant.doorbell) / 4]
  }
  setDoorbell(at: number, v: number): void {
    this.i32[(at + Participant.doorbell) / 4] = v
  }
  /** How many of the owner's appends wait for PBR or Blog room now. */
  roomWaits(at: number): number {
    return Atomics.load(this.i32, (at + Participant.roomWaits) / 4)
  }
  storeRoomWaits(at: number, v: number): void {
    Atomics.store(this.i32, (at + Participant.roomWaits) / 4, v)
  }
  addRoomWaits(at: number, delta: number): void {
    Atomics.add(this.i32, (at + Participant.roomWaits) / 4, delta)
  }
  /** How many of the owner's ACK trackers wait for the broker's batches to be ordered. */
  ackWaits(at: number): number {
    return Atomics.load(this.i32, (at + Participant.ackWaits) / 4)
  }
  storeAckWaits(at: number, v: number): void {
    Atomics.store(this.i32, (at + Participant.ackWaits) / 4, v)
  }
  addAckWaits(at: number, delta: number): void {
    Atomics.add(this.i32, (at + Participant.ackWaits) / 4, delta)
  }
}

/** A subscriber line: a participant line's claim words, then whether it is durable and its cursor. */
export class SubscriberLineView extends View {
  /**
   * 1 while its cursor holds retention (its owner alive), 2 for a named consumer (holding it for
   * as long as the consumer exists), 3 for a named consumer cut off (holding nothing); the store
   * that sets it fences the cursor before it.
   */
  durable(at: number): number {
    return Atomics.load(this.i32, (at + SubscriberLine.durable) / 4)
  }
  storeDurable(at: number, v: 0 | 1 | 2): void {
    Atomics.store(this.i32, (at + SubscriberLine.durable) / 4, v)
  }
  swapDurable(at: number, expected: number, v: number): boolean {
    return Atomics.compareExchange(this.i32, (at + SubscriberLine.durable) / 4, expected, v) === expected
  }
  /** A named consumer's committed offset: where its next member starts. */
  committed(at: number): number {
    return this.f64[(at + SubscriberLine.committed) / 8]
  }
  setCommitted(at: number, v: number): void {
    this.f64[(at + SubscriberLine.committed) / 8] = v
  }
  /**
   * A named consumer's member word, its pid (0: none; minus a deleter's pid: its mark), with the 16
   * bits of that process's start tag kept above the name's length: read in one atomic load, so
   * both belong to one claim.
   */
  memberClaim(at: number): { readonly pid: number; readonly tag: number } {
    const pair = Atomics.load(wordsOver(this.u32), (at + SubscriberLine.member) / 8)
    return { pid: lowHalf(pair) | 0, tag: highHalf(pair) >>> 16 }
  }
  /** The member word's pid alone. */
  member(at: number): number {
    return Atomics.load(this.i32, (at + SubscriberLine.member) / 4)
  }
  /** Compare-and-swap of the member word and its tag (the name's length kept); true when they held `expected`. */
  swapMember(at: number, expected: { readonly pid: number; readonly tag: number }, pid: number, tag: number): boolean {
    const words = wordsOver(this.u32)
    const index = (at + SubscriberLine.member) / 8
    const current = Atomics.load(words, index)
    if ((lowHalf(current) | 0) !== expected.pid || highHalf(current) >>> 16 !== expected.tag) return false
    const length = highHalf(current) & NAME_LENGTH_MASK
    return Atomics.compareExchange(words, index, current, pairWord(pid, (tag << 16) | length)) === current
  }
  /** Sets the member word and its tag (the name's length kept), whatever they held. */
  storeMember(at: number, pid: number, tag: number): void {
    while (!this.swapMember(at, this.memberClaim(at), pid, tag)) {
      // Moved between the read and the swap: read again.
    }
  }
  nameLength(at: number): number {
    return Atomics.load(this.u32, (at + SubscriberLine.nameLength) / 4) & NAME_LENGTH_MASK
  }
  /** Sets the name's length, the member's tag above it kept. */
  setNameLength(at: number, v: number): void {
    const index = (at + SubscriberLine.nameLength) / 4
    for (;;) {
      const word = Atomics.load(this.u32, index)
      if (Atomics.compareExchange(this.u32, index, word, ((word & ~NAME_LENGTH_MASK) | v) >>> 0) === word) return
    }
  }
  /** Where a named consumer's name bytes start. */
  nameAt(at: number): number {
    return at + SubscriberLine.name
  }
  /** The next global seq it reads. */
  cursor(at: number): number {
    return this.f64[(at + SubscriberLine.cursor) / 8]
  }
  setCursor(at: number, v: number): void {
    this.f64[(at + SubscriberLine.cursor) / 8] = v
  }
}

/** A topic descriptor (the head's); `state` is its commit word, claimed by compare-and-swap. */
export class DescriptorView extends View {
  state(at: number): number {
    return Atomics.load(this.i32, (at + Descriptor.state) / 4)
  }
  storeState(at: number, v: number): void {
    Atomics.store(this.i32, (at + Descriptor.state) / 4, v)
  }
  /** Compare-and-swap of the state word; true when it held `expected`. */
  swapState(at: number, expected: number, v: number): boolean {
    return Atomics.compareExchange(this.i32, (at + Descriptor.state) / 4, expected, v) === expected
  }
  order(at: number): number {
    return this.i32[(at + Descriptor.order) / 4]
  }
  ackLevel(at: number): number {
    return this.i32[(at + Descriptor.ackLevel) / 4]
  }
  replicationFactor(at: number): number {
    return this.i32[(at + Descriptor.replicationFactor) / 4]
  }
  nameBytes(at: number): number {
    return this.i32[(at + Descriptor.nameBytes) / 4]
  }
  setOrder(at: number, v: number): void {
    this.i32[(at + Descriptor.order) / 4] = v
  }
  setAckLevel(at: number, v: number): void {
    this.i32[(at + Descriptor.ackLevel) / 4] = v
  }
  setReplicationFactor(at: number, v: number): void {
    this.i32[(at + Descriptor.replicationFactor) / 4] = v
  }
  setNameBytes(at: number, v: number): void {
    this.i32[(at + Descriptor.nameBytes) / 4] = v
  }
  diskRetentionBytes(at: number): number {
    return this.f64[(at + Descriptor.diskRetentionBytes) / 8]
  }
  diskRetentionMs(at: number): number {
    return this.f64[(at + Descriptor.diskRetentionMs) / 8]
  }
  setDiskRetention(at: number, bytes: number, ms: number): void {
    this.f64[(at + Descriptor.diskRetentionBytes) / 8] = bytes
    this.f64[(at + Descriptor.diskRetentionMs) / 8] = ms
  }
}
