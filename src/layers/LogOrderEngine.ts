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
 * (a broker's PBR in arrival order) and drop duplicates of batches already ordered.
 */
import type { OrderMode } from "../services/Topics.js"

export type DropReason = "duplicate" | "fenced" | "refused"

export interface Session {
  readonly clientId: number
  readonly sessionEpoch: number
  /** Storage slot of the session's published record. */
  readonly slot: number
  /** Batches 0..next-1 are ordered. */
  next: number
  /** Modes 0/2/4: ordered batch seqs above `next`. */
  readonly ahead: Set<number>
  /** Mode 5: held batches by batch seq. */
  readonly held: Map<number, Held>
  /** When the oldest still-open gap opened (clock ms). */
  gapSince: number
  fenced: boolean
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
  /** A storage slot for a new session, or -1 when the session table is full. */
  readonly openSession: (clientId: number, sessionEpoch: number) => number
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
    return this.head < this.positions.length ? this.positions[this.head]! : Infinity
  }
  private compact() {
    while (this.head < this.positions.length && this.released.delete(this.positions[this.head]!)) this.head++
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

  constructor(
    readonly mode: OrderMode,
    readonly holdTimeoutMs: number,
    brokers: number,
    private readonly sink: OrderSink
  ) {
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

  /** Re-creates a session from its published record (restart recovery). */
  restore(clientId: number, sessionEpoch: number, slot: number, state: { next: number; fenced: boolean; orderedMessages: number; duplicates: number }) {
    const session = this.newSession(clientId, sessionEpoch, slot, 0, false)
    session.next = state.next
    session.fenced = state.fenced
    session.orderedMessages = state.orderedMessages
    session.duplicates = state.duplicates
    if (session.fenced) this.fencedSessions++
    return session
  }

  /** Restart recovery: a session seen in the GOI whose record was never published; undefined if the table is full. */
  recoverSession(clientId: number, sessionEpoch: number, nowMs: number): Session | undefined {
    const slot = this.sink.openSession(clientId, sessionEpoch)
    return slot < 0 ? undefined : this.newSession(clientId, sessionEpoch, slot, nowMs, true)
  }

  /**
   * Restart recovery: a batch found in the GOI. Moves `next` past it (mode 5) or records it
   * as ordered ahead (other modes), so a copy scanned again is a duplicate.
   */
  recoverOrdered(session: Session, batchSeq: number) {
    if (batchSeq < session.next) return
    if (this.mode === 5) {
      session.next = batchSeq + 1
    } else if (batchSeq === session.next) {
      this.advance(session)
    } else {
      session.ahead.add(batchSeq)
    }
    this.markDirty(session)
  }

  /** Decides one scanned batch. `stall` means nothing was done: retry later. */
  arrive(broker: number, pbrSeq: number, clientId: number, sessionEpoch: number, batchSeq: number, nowMs: number): Verdict {
    let session = this.session(clientId, sessionEpoch)
    if (session === undefined) {
      const slot = this.sink.openSession(clientId, sessionEpoch)
      if (slot < 0) {
        this.sink.drop(broker, pbrSeq, "refused")
        return Verdict.refused
      }
      session = this.newSession(clientId, sessionEpoch, slot, nowMs, true)
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
    if (this.mode !== 5) {
      if (this.sink.room() < 1) return Verdict.stall
      this.orderOne(broker, pbrSeq, session)
      if (batchSeq !== session.next) session.ahead.add(batchSeq)
      else if (session.ahead.size === 0) session.next++
      else this.advance(session)
      return Verdict.ordered
    }
    if (batchSeq > session.next) {
      if (session.held.size === 0) {
        session.gapSince = nowMs
        this.holding.add(session)
      }
      session.held.set(batchSeq, { broker, pbrSeq })
      this.heldByBroker[broker]!.add(pbrSeq)
      this.markDirty(session)
      return Verdict.held
    }
    if (this.sink.room() < 1 + session.held.size) return Verdict.stall
    this.orderOne(broker, pbrSeq, session)
    session.next++
    for (let h = session.held.get(session.next); h !== undefined; h = session.held.get(session.next)) {
      session.held.delete(session.next)
      this.heldByBroker[h.broker]!.release(h.pbrSeq)
      this.orderOne(h.broker, h.pbrSeq, session)
      session.next++
    }
    if (session.held.size === 0) this.holding.delete(session)
    else session.gapSince = nowMs
    return Verdict.ordered
  }

  /** Fences every session whose gap has been open for the hold timeout; returns how many. */
  expire(nowMs: number): number {
    let fenced = 0
    for (const session of this.holding) {
      if (nowMs - session.gapSince < this.holdTimeoutMs) continue
      session.fenced = true
      for (const h of session.held.values()) {
        this.heldByBroker[h.broker]!.release(h.pbrSeq)
        this.sink.drop(h.broker, h.pbrSeq, "fenced")
      }
      session.held.clear()
      this.holding.delete(session)
      this.markDirty(session)
      fenced++
    }
    this.fencedSessions += fenced
    return fenced
  }

  /** When the next hold timeout falls due (Infinity if nothing is held). */
  nextDeadline(): number {
    let deadline = Infinity
    for (const session of this.holding) deadline = Math.min(deadline, session.gapSince + this.holdTimeoutMs)
    return deadline
  }

  /** The oldest PBR position of `broker` that is held (Infinity if none): consumed-through stops there. */
  lowestHeld(broker: number): number {
    return this.heldByBroker[broker]!.lowest()
  }

  heldCount(broker: number): number {
    return this.heldByBroker[broker]!.size
  }

  private orderOne(broker: number, pbrSeq: number, session: Session) {
    session.orderedMessages += this.sink.order(broker, pbrSeq, session)
    this.markDirty(session)
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

  private newSession(clientId: number, sessionEpoch: number, slot: number, nowMs: number, publish: boolean): Session {
    const session: Session = {
      clientId,
      sessionEpoch,
      slot,
      next: 0,
      ahead: new Set(),
      held: new Map(),
      gapSince: nowMs,
      fenced: false,
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
    if (publish) this.markDirty(session)
    return session
  }
}
