/**
 * Typed accessors for the log area's lines a process claims by its pid (RecordViews.ts says how
 * a view works): the sequencer's lease and round marker, participant lines and subscriber lines.
 */
import { highHalf, lowHalf, pairWord, wordsOver } from "../region/Words64.js"
import { WordView as View } from "../region/WordView.js"
import { LaneAnswers, LeaseLine, NAME_LENGTH_MASK, Participant, SubscriberLine } from "./Records.js"

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
  /** How many lane requests the owner has made (TopicLanes.ts); the one above what the head answered is pending. */
  laneRequests(at: number): number {
    return Atomics.load(this.i32, (at + Participant.laneRequest) / 4)
  }
  laneTopic(at: number): number {
    return this.i32[(at + Participant.laneTopic) / 4]!
  }
  laneGeneration(at: number): number {
    return this.f64[(at + Participant.laneGeneration) / 8]!
  }
  /** Names the topic, then counts the request (the count is the request's commit word). */
  request(at: number, topic: number, generation: number, count: number): void {
    this.i32[(at + Participant.laneTopic) / 4] = topic
    this.f64[(at + Participant.laneGeneration) / 8] = generation
    Atomics.store(this.i32, (at + Participant.laneRequest) / 4, count)
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

/** The head's lane answers (TopicLanes.ts): the doorbell writers ring, and per writer slot its requests answered and the last answer. */
export class LaneAnswersView extends View {
  doorbell(at: number): number {
    return Atomics.load(this.i32, (at + LaneAnswers.doorbell) / 4)
  }
  storeDoorbell(at: number, v: number): void {
    Atomics.store(this.i32, (at + LaneAnswers.doorbell) / 4, v)
  }
  granted(at: number): number {
    return Atomics.load(this.i32, (at + LaneAnswers.granted) / 4)
  }
  /** After a lane's page and the table's count are stored (the head's alone). */
  countGranted(at: number): void {
    Atomics.add(this.i32, (at + LaneAnswers.granted) / 4, 1)
  }
  answered(at: number, slot: number): number {
    return Atomics.load(this.i32, (at + LaneAnswers.answers + slot * LaneAnswers.bytes + LaneAnswers.answered) / 4)
  }
  result(at: number, slot: number): number {
    return this.i32[(at + LaneAnswers.answers + slot * LaneAnswers.bytes + LaneAnswers.result) / 4]!
  }
  /** The answer's code, then the count it answers (its commit word). */
  answer(at: number, slot: number, count: number, result: number): void {
    const entry = at + LaneAnswers.answers + slot * LaneAnswers.bytes
    this.i32[(entry + LaneAnswers.result) / 4] = result
    Atomics.store(this.i32, (entry + LaneAnswers.answered) / 4, count)
  }
}
