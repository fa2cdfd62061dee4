/**
 * Typed accessors for a topic's lines in the log area (RecordViews.ts says how a view works):
 * its session lines, its registry and order lines, the per-broker lines the broker and the
 * sequencer write, and its descriptor.
 */
import { WordView as View } from "../region/WordView.js"
import {
  BrokerLine,
  Descriptor,
  LaneTable,
  OrderLine,
  RegistryLine,
  RetentionLine,
  SequencerLine,
  SessionLine
} from "./Records.js"
import type { TopicShape } from "./TopicShape.js"

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
  retentionMaxAgeMs(at: number): number {
    return this.f64[(at + Descriptor.retentionMaxAgeMs) / 8]!
  }
  setRetentionMaxAgeMs(at: number, v: number): void {
    this.f64[(at + Descriptor.retentionMaxAgeMs) / 8] = v
  }
  retentionMaxMessages(at: number): number {
    return this.f64[(at + Descriptor.retentionMaxMessages) / 8]!
  }
  setRetentionMaxMessages(at: number, v: number): void {
    this.f64[(at + Descriptor.retentionMaxMessages) / 8] = v
  }
  discard(at: number): number {
    return this.i32[(at + Descriptor.discard) / 4]!
  }
  setDiscard(at: number, v: number): void {
    this.i32[(at + Descriptor.discard) / 4] = v
  }
  /** The topic's shape as stored (its reader checks it: a corrupt region is never trusted). */
  readShape(at: number): TopicShape {
    return {
      memoryBytes: this.f64[(at + Descriptor.memoryBytes) / 8]!,
      writers: this.i32[(at + Descriptor.writers) / 4]!,
      mainBytes: this.f64[(at + Descriptor.mainBytes) / 8]!,
      laneBytes: this.f64[(at + Descriptor.laneBytes) / 8]!,
      pbrSlots: this.i32[(at + Descriptor.pbrSlots) / 4]!,
      goiSlots: this.i32[(at + Descriptor.goiSlots) / 4]!,
      sessionSlots: this.i32[(at + Descriptor.sessionSlots) / 4]!,
      maxBatchBytes: this.i32[(at + Descriptor.maxBatchBytes) / 4]!,
      maxMessageBytes: this.i32[(at + Descriptor.maxMessageBytes) / 4]!
    }
  }
  writeShape(at: number, shape: TopicShape): void {
    this.f64[(at + Descriptor.memoryBytes) / 8] = shape.memoryBytes
    this.i32[(at + Descriptor.writers) / 4] = shape.writers
    this.f64[(at + Descriptor.mainBytes) / 8] = shape.mainBytes
    this.f64[(at + Descriptor.laneBytes) / 8] = shape.laneBytes
    this.i32[(at + Descriptor.pbrSlots) / 4] = shape.pbrSlots
    this.i32[(at + Descriptor.goiSlots) / 4] = shape.goiSlots
    this.i32[(at + Descriptor.sessionSlots) / 4] = shape.sessionSlots
    this.i32[(at + Descriptor.maxBatchBytes) / 4] = shape.maxBatchBytes
    this.i32[(at + Descriptor.maxMessageBytes) / 4] = shape.maxMessageBytes
  }
}

/** A topic's retention line (the head's), a sequence lock over its first batch and offset. */
export class RetentionLineView extends View {
  version(at: number): number {
    return Atomics.load(this.i32, (at + RetentionLine.version) / 4)
  }
  storeVersion(at: number, v: number): void {
    Atomics.store(this.i32, (at + RetentionLine.version) / 4, v)
  }
  firstBatch(at: number): number {
    return this.f64[(at + RetentionLine.firstBatch) / 8]!
  }
  setFirstBatch(at: number, v: number): void {
    this.f64[(at + RetentionLine.firstBatch) / 8] = v
  }
  firstOffset(at: number): number {
    return this.f64[(at + RetentionLine.firstOffset) / 8]!
  }
  setFirstOffset(at: number, v: number): void {
    this.f64[(at + RetentionLine.firstOffset) / 8] = v
  }
}

/** A topic's lane table (the head's): the lane count, then each writer slot's lane page (0: none). */
export class LaneTableView extends View {
  lanes(at: number): number {
    return Atomics.load(this.i32, (at + LaneTable.lanes) / 4)
  }
  /** Writer slot `slot`'s lane as a page of the region (its offset / 4096), 0 for none. */
  page(at: number, slot: number): number {
    return Atomics.load(this.i32, (at + LaneTable.pages) / 4 + slot)
  }
  /** Stores the lane's page, then counts it (so a process that sees the count move finds the page). */
  addLane(at: number, slot: number, page: number): void {
    Atomics.store(this.i32, (at + LaneTable.pages) / 4 + slot, page)
    Atomics.add(this.i32, (at + LaneTable.lanes) / 4, 1)
  }
}
