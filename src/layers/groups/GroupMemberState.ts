/**
 * One member's state in its own process: the group it joined, its reference, its reader and the
 * batch it is handing out from, what it holds (deliveries not settled, per key bucket), the
 * buckets it owns (byKey), and what its last look at the pending table found to deliver again.
 * The member's loop (GroupMember.ts), its dispatch (GroupDispatch.ts), its redeliveries
 * (GroupRedelivery.ts) and its share of the keys (GroupKeyShare.ts) work on it.
 */
import type { DeadLetterWriter } from "./GroupDeadLetters.js"
import type { Settling } from "./GroupDelivery.js"
import type { GroupObject } from "./GroupObject.js"
import type { BatchCopy, BatchRef, GroupReader } from "./GroupReader.js"

/** An entry the last look found this member may deliver again. */
export interface Redeliverable {
  readonly slot: number
  readonly observed: bigint
  readonly offset: number
  readonly why: "dead" | "expired" | "due"
}

export interface MemberState {
  readonly group: GroupObject
  readonly ref: number
  readonly reader: GroupReader
  readonly maxInFlight: number
  readonly checkEveryMs: number
  readonly deadLetter: DeadLetterWriter
  readonly settling: Settling
  /** byKey: the batch being handed out from, and the next of its messages to look at. */
  batch: BatchCopy | undefined
  index: number
  /** Without keys: the batches read and not yet wholly handed out, in offset order (where they lie in the log). */
  ahead: Array<BatchRef>
  /** Without keys: the messages of the last batch read, to judge how many batches a read takes. */
  lastBatchMessages: number
  /** byKey: where the reader must go back to before reading on (a bucket taken over starts there). */
  seekTo: number | undefined
  /** Deliveries handed out and not settled, and (byKey) how many of them per key bucket. */
  outstanding: number
  readonly byLane: Map<number, number>
  /** Without keys: the entries of the claim being made, and their control words (reused claim after claim). */
  readonly runSlots: Int32Array
  readonly runControls: Array<bigint>
  /** byKey: the buckets it hands out, and those it is handing back. */
  owned: Set<number>
  draining: Set<number>
  /** When it last looked at members and pending entries (performance.now), and what it found. */
  lastLook: number
  /**
   * How long until its next look: `checkEveryMs`, or QUIET_LOOK_MS while the group is quiet (its
   * last look found no entry in use and no member gone, and nothing moved since).
   */
  lookEveryMs: number
  backlog: Array<Redeliverable>
  /** The earliest time an entry it may take falls due (Infinity: none). */
  nextDueMs: number
  /** When it last let the event loop turn (performance.now). */
  lastTurn: number
  /** Wakes the member's wait for room, when a delivery is settled. */
  wake: (() => void) | undefined
  /**
   * It stopped short of a batch it could not take whole (GroupDispatch.ts): the room it left
   * waits for one of its deliveries to be settled, so that its next claim is not a sliver of a
   * batch taken at once by a member that pulls again before it settles (a broker for its client).
   */
  heldBack: boolean
}

export interface MemberOptions {
  readonly maxInFlight: number
  readonly checkEveryMs: number
}

export const makeMemberState = (
  group: GroupObject,
  ref: number,
  reader: GroupReader,
  deadLetter: DeadLetterWriter,
  options: MemberOptions
): MemberState => {
  const m: MemberState = {
    group,
    ref,
    reader,
    maxInFlight: options.maxInFlight,
    checkEveryMs: options.checkEveryMs,
    deadLetter,
    settling: {
      group: group.name,
      config: group.config,
      pending: group.pending,
      members: group.members,
      ref,
      count: group.count,
      deadLetter,
      done: (lane, count) => release(m, lane, count)
    },
    batch: undefined,
    index: 0,
    ahead: [],
    lastBatchMessages: 1,
    seekTo: undefined,
    outstanding: 0,
    byLane: new Map(),
    runSlots: new Int32Array(options.maxInFlight),
    runControls: new Array<bigint>(options.maxInFlight).fill(0n),
    owned: new Set(),
    draining: new Set(),
    lastLook: -Infinity,
    lookEveryMs: options.checkEveryMs,
    lastTurn: -Infinity,
    backlog: [],
    nextDueMs: Infinity,
    wake: undefined,
    heldBack: false
  }
  return m
}

/** What it may take now: nothing while it is held back, else what its window has left. */
export const room = (m: MemberState): number => (m.heldBack ? 0 : m.maxInFlight - m.outstanding)

/** Holding `count` more deliveries of `lane` (counted per lane byKey only: a bucket is handed on once none is held). */
export const hold = (m: MemberState, lane: number, count = 1): void => {
  m.outstanding += count
  if (m.group.config.byKey) m.byLane.set(lane, (m.byLane.get(lane) ?? 0) + count)
}

/** `count` deliveries of `lane` are no longer held. */
export const release = (m: MemberState, lane: number, count = 1): void => {
  m.outstanding -= count
  m.heldBack = false
  if (m.group.config.byKey) {
    const left = (m.byLane.get(lane) ?? count) - count
    if (left <= 0) m.byLane.delete(lane)
    else m.byLane.set(lane, left)
  }
  const wake = m.wake
  m.wake = undefined
  wake?.()
}

/**
 * byKey: every message of the buckets it hands out before this offset was handed out — where
 * its batch stands, or its reader when it has none, and never past where it must go back to.
 */
export const scanPosition = (m: MemberState): number => {
  if (!m.reader.isOpen()) return m.seekTo ?? 0
  const at = m.batch !== undefined ? m.batch.start + m.index : m.reader.position()
  return m.seekTo === undefined ? at : Math.min(at, m.seekTo)
}

/**
 * Between a member's looks while its group is quiet. Nothing can be taken over then: an entry
 * comes into use only by a claim of what the topic grew by (which the member sees, and then looks
 * every `checkEveryMs` again: `stir`) or by a member that holds one (and so was not quiet). An
 * idle member's looks — a scan of the pending table and of the members' processes — are what it
 * spends idle.
 */
export const QUIET_LOOK_MS = 1_000

/** After a look that found `inUse` pending entries in use and `gone` members dead: when the member looks next. */
export const pace = (m: MemberState, inUse: number, gone: number): void => {
  m.lookEveryMs = inUse === 0 && gone === 0 ? Math.max(m.checkEveryMs, QUIET_LOOK_MS) : m.checkEveryMs
}

/**
 * Something moved (its wait saw the topic grow, or it handed messages out): it looks every
 * `checkEveryMs` again. A member that has no room, or no free entry, is not quiet anyway: entries
 * are in use.
 */
export const stir = (m: MemberState): void => {
  m.lookEveryMs = m.checkEveryMs
}
