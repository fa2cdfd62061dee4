/**
 * The sequencer's decisions for one topic, independent of where batches are stored: per
 * client session (client id, session epoch) it orders, drops duplicates, holds (mode 5) and
 * fences. The live sequencer drives it over the region's PBRs, the in-memory one over
 * arrays; a `sink` does the storing. Work is per batch, in plain code (no Effect).
 *
 * Mode 5: seq == next → ordered (then every held successor); seq < next → duplicate
 * (dropped, counted, acknowledged); seq > next → held until the gap closes or stays open
 * longer than the hold timeout, which fences the session (its held batches are dropped;
 * `next` is its committed frontier). Modes 0, 2 and 4 order every batch as it is scanned
 * (a broker's PBR in arrival order) and drop duplicates of batches already ordered. A batch
 * ordered above a gap is recorded in the session's `ahead` set, published in its line, so a
 * restarted head knows it however long ago it was ordered; the line has room for
 * `AHEAD_WINDOW` of them above the frontier, so a batch further out is held as in mode 5 until
 * the gap closes. A gap that stays open past the hold timeout fences the session when nothing
 * is ordered above it, and otherwise lapses it (below).
 *
 * Sessions are registered by brokers (SessionTable.ts); a batch of a session the table does
 * not hold as active is refused. A session ends by its close marker (once every batch before
 * it is ordered) or by idling out; either way it is released with its final frontier. A
 * session with batches ordered above a gap has no frontier that tells its publisher the
 * truth (below the gap it would replay them; above it, the missing batch would count as
 * ordered): it is kept past the idle bound, up to the longer gap bound, and then lapses:
 * its line is freed and forgotten, so its publisher is told the session is unknown.
 *
 * Waiting for room is not a gap: while the topic is backpressured (its GOI waits for
 * readers, or brokers wait for PBR/Blog room) and still ordering, gap clocks restart, so a
 * healthy session is never fenced because the log was full. Only a topic that has ordered
 * nothing for the hold timeout fences, which also breaks a full log whose room is held by
 * batches waiting for each other.
 */
import { type OrderMode, orderPolicy } from "../../services/log/OrderModes.js"
import { AHEAD_WINDOW } from "./Records.js"
import type { SessionFields } from "./SessionFields.js"

/** `marker`: a close marker, handled and finished (it is no batch); `corrupt`: a slot whose header cannot be a batch (the scan's, not the engine's). */
export type DropReason = "duplicate" | "fenced" | "refused" | "corrupt" | "marker"

/** What holds the topic up this round: nothing, brokers waiting for room, or a full GOI. */
export type Backpressure = "none" | "room" | "stalled"

export interface Session {
  readonly clientId: number
  readonly sessionEpoch: number
  /** Storage slot of the session's published record. */
  readonly slot: number
  /** Batches 0..next-1 are ordered. */
  next: number
  /** Modes 0/2/4: ordered batch seqs above `next` (each at most `AHEAD_WINDOW` above it). */
  readonly ahead: Set<number>
  /** Held batches by batch seq (mode 5; modes 0/2/4: those past the ahead window). */
  readonly held: Map<number, Held>
  /** When the oldest still-open gap opened (clock ms). */
  gapSince: number
  fenced: boolean
  /** The batch count its close marker announced (Infinity until then). */
  closeAt: number
  /** Released: no longer in the engine; its line says where it ended. */
  released: boolean
  orderedMessages: number
  duplicates: number
  lastActivityMs: number
  dirty: boolean
}

export interface Held {
  readonly broker: number
  readonly pbrSeq: number
}

export interface OrderSink {
  /** GOI entries that can be written now (registered subscribers may hold the ring). */
  readonly room: () => number
  /** Puts the batch at (broker, pbrSeq) next in the total order; returns its message count. */
  readonly order: (broker: number, pbrSeq: number, session: Session) => number
  readonly drop: (broker: number, pbrSeq: number, reason: DropReason) => void
  /**
   * The registered session with this key (active or fenced) as its storage holds it, or
   * undefined: a fresh registration, or one this engine forgot (`forget`) whose state another
   * process's round moved.
   */
  readonly findSession: (
    clientId: number,
    sessionEpoch: number
  ) => { readonly slot: number; readonly fields: SessionFields } | undefined
  /** Publishes that the session ended (its line keeps the frontier). */
  readonly releaseSession: (session: Session) => void
  /** Publishes that the session ended with batches ordered above a gap (its line is forgotten). */
  readonly lapseSession: (session: Session) => void
  /**
   * Publishes the session's line now (it is fenced): before any of its held batches is
   * dropped, so a sequencer that dies in between leaves a fenced session, never an active
   * one whose batches were dropped unseen (a takeover would order past them).
   */
  readonly publishSession: (session: Session) => void
}

export const Verdict = { ordered: 0, duplicate: 1, held: 2, fenced: 3, refused: 4, stall: 5 } as const
export type Verdict = (typeof Verdict)[keyof typeof Verdict]

/** PBR positions of one broker's held batches, oldest first, with lazy removal. */
class HeldPositions {
  private readonly positions: Array<number> = []
  private head = 0
  private readonly released = new Set<number>()
  get size() {
    return this.positions.length - this.head - this.released.size
  }
  add(pbrSeq: number) {
    this.positions.push(pbrSeq)
  }
  release(pbrSeq: number) {
    this.released.add(pbrSeq)
    this.compact()
  }
  /** The oldest held position, or Infinity. */
  lowest(): number {
    return this.head < this.positions.length ? this.positions[this.head] : Infinity
  }
  private compact() {
    while (this.head < this.positions.length && this.released.delete(this.positions[this.head])) this.head++
    if (this.head > 1024 && this.head * 2 > this.positions.length) {
      this.positions.splice(0, this.head)
      this.head = 0
    }
  }
}

export class OrderEngine {
  private readonly sessions = new Map<number, Map<number, Session>>()
  private readonly holding = new Set<Session>()
  private readonly heldByBroker: Array<HeldPositions>
  /** Sessions whose published record is stale. */
  readonly dirty: Array<Session> = []
  fencedSessions = 0
  releasedSessions = 0
  lapsedSessions = 0
  /** The mode orders each session's batches in seq order (OrderModes.ts). */
  private readonly inSequence: boolean
  /** When a batch was last ordered (clock ms); -Infinity until the first `expire` sets the clock. */
  private lastOrderedMs = Number.NEGATIVE_INFINITY

  constructor(
    readonly mode: OrderMode,
    readonly holdTimeoutMs: number,
    brokers: number,
    private readonly sink: OrderSink
  ) {
    this.inSequence = orderPolicy(mode).sessionInSequence
    this.heldByBroker = Array.from({ length: brokers }, () => new HeldPositions())
  }

  get sessionCount(): number {
    let n = 0
    for (const byEpoch of this.sessions.values()) n += byEpoch.size
    return n
  }

  session(clientId: number, sessionEpoch: number): Session | undefined {
    return this.sessions.get(clientId)?.get(sessionEpoch)
  }

  /**
   * Re-creates a session from its published record: every line at a restart (`counted`: a
   * fenced one adds to `fencedSessions`), or one line when a batch of it arrives after `forget`
   * (already counted in the `fencedSessions` the engine was given).
   */
  restore(clientId: number, sessionEpoch: number, slot: number, state: SessionFields, counted = true): Session {
    const session = this.newSession(clientId, sessionEpoch, slot, state.lastActivityMs)
    session.next = state.next
    if (state.ahead !== undefined) { for (const seq of state.ahead) session.ahead.add(seq) }
    session.fenced = state.fenced
    session.orderedMessages = state.orderedMessages
    session.duplicates = state.duplicates
    if (session.fenced && counted) this.fencedSessions++
    return session
  }

  /**
   * Drops every session and hold: another process's round moved the topic's published state,
   * so this engine's copy of it is stale. Sessions come back from their lines as their batches
   * arrive (`findSession`), held batches as the scan meets them again (it restarts at each
   * broker's consumed-through, the oldest held position). A close marker's pending count is lost
   * with them, as at a restart: such a session ends by idling out instead.
   */
  forget(fencedSessions: number): void {
    this.sessions.clear()
    this.holding.clear()
    for (let b = 0; b < this.heldByBroker.length; b++) this.heldByBroker[b] = new HeldPositions()
    this.dirty.length = 0
    this.fencedSessions = fencedSessions
    this.lastOrderedMs = Number.NEGATIVE_INFINITY
  }

  /**
   * Restart recovery: a batch found in the GOI. Moves `next` past it (mode 5) or records it
   * as ordered ahead (other modes), so a copy scanned again is a duplicate.
   */
  recoverOrdered(session: Session, batchSeq: number) {
    if (batchSeq < session.next) return
    if (this.inSequence) {
      session.next = batchSeq + 1
    } else if (batchSeq === session.next) {
      this.advance(session)
    } else {
      session.ahead.add(batchSeq)
    }
    this.markDirty(session)
  }

  /** Decides one scanned batch. `stall` means nothing was done: retry later. */
  arrive(
    broker: number,
    pbrSeq: number,
    clientId: number,
    sessionEpoch: number,
    batchSeq: number,
    nowMs: number
  ): Verdict {
    const session = this.sessionFor(clientId, sessionEpoch)
    if (session === undefined) {
      this.sink.drop(broker, pbrSeq, "refused")
      return Verdict.refused
    }
    session.lastActivityMs = nowMs
    if (session.fenced) {
      this.sink.drop(broker, pbrSeq, "fenced")
      return Verdict.fenced
    }
    if (batchSeq < session.next || session.ahead.has(batchSeq) || session.held.has(batchSeq)) {
      session.duplicates++
      this.markDirty(session)
      this.sink.drop(broker, pbrSeq, "duplicate")
      return Verdict.duplicate
    }
    if (!this.inSequence) {
      // Past what the line can record: it waits for the gap to close.
      if (batchSeq - session.next > AHEAD_WINDOW) return this.hold(broker, pbrSeq, session, batchSeq, nowMs)
      if (this.sink.room() < 1 + session.held.size) return Verdict.stall
      this.orderOne(broker, pbrSeq, session, nowMs)
      this.noteOrdered(session, batchSeq)
      if (session.held.size > 0) this.orderHeldInWindow(session, nowMs)
      this.releaseIfDone(session)
      return Verdict.ordered
    }
    if (batchSeq > session.next) return this.hold(broker, pbrSeq, session, batchSeq, nowMs)
    if (this.sink.room() < 1 + session.held.size) return Verdict.stall
    this.orderOne(broker, pbrSeq, session, nowMs)
    session.next++
    for (let h = session.held.get(session.next); h !== undefined; h = session.held.get(session.next)) {
      session.held.delete(session.next)
      this.heldByBroker[h.broker].release(h.pbrSeq)
      this.orderOne(h.broker, h.pbrSeq, session, nowMs)
      session.next++
    }
    if (session.held.size === 0) this.holding.delete(session)
    else session.gapSince = nowMs
    this.releaseIfDone(session)
    return Verdict.ordered
  }

  private hold(broker: number, pbrSeq: number, session: Session, batchSeq: number, nowMs: number): Verdict {
    if (session.held.size === 0) {
      session.gapSince = nowMs
      this.holding.add(session)
    }
    session.held.set(batchSeq, { broker, pbrSeq })
    this.heldByBroker[broker].add(pbrSeq)
    this.markDirty(session)
    return Verdict.held
  }

  /** Modes 0/2/4: `batchSeq` was ordered; `next` moves over it if it was the next one, else it is ahead. */
  private noteOrdered(session: Session, batchSeq: number) {
    if (batchSeq !== session.next) session.ahead.add(batchSeq)
    else if (session.ahead.size === 0) session.next++
    else this.advance(session)
  }

  /** Modes 0/2/4: orders the held batches the moved frontier brought inside the ahead window (room was checked). */
  private orderHeldInWindow(session: Session, nowMs: number) {
    for (let moved = true; moved;) {
      moved = false
      for (const [seq, h] of session.held) {
        if (seq - session.next > AHEAD_WINDOW) continue
        session.held.delete(seq)
        this.heldByBroker[h.broker].release(h.pbrSeq)
        this.orderOne(h.broker, h.pbrSeq, session, nowMs)
        this.noteOrdered(session, seq)
        moved = true
      }
    }
    if (session.held.size === 0) this.holding.delete(session)
    else session.gapSince = nowMs
  }

  /**
   * A session's close marker at (broker, pbrSeq): the session sent `batches` batches. It is
   * released once all of them are ordered (at once if they are); the marker is finished.
   */
  close(broker: number, pbrSeq: number, clientId: number, sessionEpoch: number, batches: number, nowMs: number): void {
    this.sink.drop(broker, pbrSeq, "marker")
    const session = this.sessionFor(clientId, sessionEpoch)
    if (session === undefined) return
    session.closeAt = Math.min(session.closeAt, batches)
    session.lastActivityMs = nowMs
    this.markDirty(session)
    this.releaseIfDone(session)
  }

  /**
   * Releases every session (fenced ones included) with no batch for `idleMs`, nothing held and
   * nothing ordered above its frontier; returns how many. A session with batches ordered ahead
   * of a gap (modes 0/2/4) is kept: its released line could say only `next`, below them, and
   * the publisher, told it ended there, would replay them in a new session (ordered twice). It
   * idles out once its publisher's resend closes the gap, or lapses after `gapIdleMs` with no
   * batch (its publisher is then told the session is unknown, and fails if it has batches
   * not acknowledged: nothing is ordered twice, and the missing batch is never acknowledged).
   */
  evictIdle(nowMs: number, idleMs: number, gapIdleMs: number): number {
    let evicted = 0
    for (const byEpoch of this.sessions.values()) {
      for (const session of byEpoch.values()) {
        if (session.held.size > 0) continue
        const quietMs = nowMs - session.lastActivityMs
        if (session.ahead.size > 0 ? quietMs < gapIdleMs : quietMs < idleMs) continue
        this.release(session, session.ahead.size > 0)
        evicted++
      }
    }
    return evicted
  }

  /**
   * Fences every session whose gap has been open for the hold timeout (lapses one with batches
   * ordered above its gap); returns how many it fenced.
   * Under backpressure the clocks restart instead, while the topic still orders (see above).
   */
  expire(nowMs: number, backpressure: Backpressure = "none"): number {
    if (this.lastOrderedMs === Number.NEGATIVE_INFINITY) this.lastOrderedMs = nowMs
    if (backpressure === "stalled" || (backpressure === "room" && nowMs - this.lastOrderedMs < this.holdTimeoutMs)) {
      for (const session of this.holding) session.gapSince = nowMs
      return 0
    }
    let fenced = 0
    for (const session of this.holding) {
      if (nowMs - session.gapSince < this.holdTimeoutMs) continue
      // Modes 0/2/4 with batches ordered above the gap: a fence would have them replayed; the session lapses instead.
      const lapse = session.ahead.size > 0
      if (!lapse) {
        session.fenced = true
        this.sink.publishSession(session)
      }
      for (const h of session.held.values()) {
        this.heldByBroker[h.broker].release(h.pbrSeq)
        this.sink.drop(h.broker, h.pbrSeq, "fenced")
      }
      session.held.clear()
      this.holding.delete(session)
      if (lapse) {
        this.release(session, true)
      } else {
        this.markDirty(session)
        fenced++
      }
    }
    this.fencedSessions += fenced
    return fenced
  }

  /** When the next hold timeout falls due (Infinity if nothing is held). */
  /** Whether any batch is held (a session waits for an earlier batch of its own). */
  holds(): boolean {
    return this.holding.size > 0
  }

  nextDeadline(): number {
    let deadline = Infinity
    for (const session of this.holding) deadline = Math.min(deadline, session.gapSince + this.holdTimeoutMs)
    return deadline
  }

  /** The oldest PBR position of `broker` that is held (Infinity if none): consumed-through stops there. */
  lowestHeld(broker: number): number {
    return this.heldByBroker[broker].lowest()
  }

  heldCount(broker: number): number {
    return this.heldByBroker[broker].size
  }

  private orderOne(broker: number, pbrSeq: number, session: Session, nowMs: number) {
    session.orderedMessages += this.sink.order(broker, pbrSeq, session)
    this.lastOrderedMs = nowMs
    this.markDirty(session)
  }

  /** The engine's session, else the storage's registered one (taken on now, from its line), else undefined. */
  private sessionFor(clientId: number, sessionEpoch: number): Session | undefined {
    const known = this.session(clientId, sessionEpoch)
    if (known !== undefined) return known
    const found = this.sink.findSession(clientId, sessionEpoch)
    return found === undefined ? undefined : this.restore(clientId, sessionEpoch, found.slot, found.fields, false)
  }

  private releaseIfDone(session: Session) {
    if (session.fenced || (session.next >= session.closeAt && session.held.size === 0 && session.ahead.size === 0)) {
      if (session.closeAt !== Number.POSITIVE_INFINITY) this.release(session)
    }
  }

  /** Ends the session: released with its frontier, or lapsed (batches ordered above a gap, see `evictIdle`). */
  private release(session: Session, lapse = false) {
    const byEpoch = this.sessions.get(session.clientId)
    byEpoch?.delete(session.sessionEpoch)
    if (byEpoch?.size === 0) this.sessions.delete(session.clientId)
    this.holding.delete(session)
    session.released = true
    this.releasedSessions++
    if (lapse) {
      this.lapsedSessions++
      this.sink.lapseSession(session)
    } else {
      this.sink.releaseSession(session)
    }
  }

  /** Moves `next` over `next` itself (just ordered) and every ordered seq right after it. */
  private advance(session: Session) {
    session.ahead.delete(session.next)
    session.next++
    while (session.ahead.delete(session.next)) session.next++
  }

  private markDirty(session: Session) {
    if (session.dirty) return
    session.dirty = true
    this.dirty.push(session)
  }

  private newSession(clientId: number, sessionEpoch: number, slot: number, nowMs: number): Session {
    const session: Session = {
      clientId,
      sessionEpoch,
      slot,
      next: 0,
      ahead: new Set(),
      held: new Map(),
      gapSince: nowMs,
      fenced: false,
      closeAt: Number.POSITIVE_INFINITY,
      released: false,
      orderedMessages: 0,
      duplicates: 0,
      lastActivityMs: nowMs,
      dirty: false
    }
    let byEpoch = this.sessions.get(clientId)
    if (byEpoch === undefined) {
      byEpoch = new Map()
      this.sessions.set(clientId, byEpoch)
    }
    byEpoch.set(sessionEpoch, session)
    return session
  }
}
