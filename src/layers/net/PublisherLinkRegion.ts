/**
 * A local publisher's link (PublisherLink.ts is the seam): on a host that maps the region, the
 * publisher appends its batches into the region itself, through an Appender in a broker slot
 * of its own (`AppenderLayers.makeAnySlot`), and learns its ACKs from its session's line, as a
 * broker's ACK tracker does. Sessions are registered in the log's table like a broker registers
 * them, so order modes, ACK levels, duplicates and resends are the log's and the core's, the same
 * as over TCP. An uncontended batch is ordered by the Appender at the end of its turn
 * (AppenderRounds.ts) and acknowledged in the same turn: no process is woken for it.
 *
 * It carries the session of every topic the publisher writes (each lane's, registered in that
 * topic's session table). Sends keep their order per topic: while one batch waits for room in
 * its topic's log (backpressure), that topic's later ones queue behind it; other topics go on.
 */
import { Cause, Effect, Exit } from "effect"
import { type AckTrackerShape, levelTwoRefusal, type SessionWatch } from "../../services/log/AckTracker.js"
import { type AppenderShape, type BatchHeader, BatchRejected, type TopicLimits } from "../../services/log/Appender.js"
import { BrokerRejected } from "../../services/net/Publisher.js"
import { checkBatchWithin } from "./BatchPayload.js"
import type { WireErrorCode } from "./Control.js"
import type { LaneRef, LinkBatch, LinkState, PublisherLink, PublisherLinkEvents } from "./PublisherLink.js"

/** What a region link works with: the process's log services, how it runs an Effect, and who publishes. */
export interface RegionLinkContext {
  readonly appender: AppenderShape
  readonly acks: AckTrackerShape
  readonly events: PublisherLinkEvents
  readonly clientId: number
  readonly ackLevel: 0 | 1 | 2
  /** The region's name, for stats and errors. */
  readonly region: string
  /** Runs an Effect on the publisher's runtime; `done` with its exit. */
  readonly run: <A, E>(effect: Effect.Effect<A, E>, done: (exit: Exit.Exit<A, E>) => void) => void
  /** How often a standing ACK wait looks again without a wake (it is woken by rounds). */
  readonly recheckMs: number
}

/** A batch waiting for room in the log, with what its send must say when it is in or dropped. */
interface Queued {
  readonly header: BatchHeader
  readonly payload: Uint8Array
  readonly onWritten: (error: Error | null | undefined) => void
}

type Refusal = { readonly _tag?: string; readonly maxBatchBytes?: number; readonly regionFull?: true }

/** The wire code a local append's refusal carries, as a broker's would. */
const refusalCode = (error: Refusal): WireErrorCode =>
  error._tag === "TopicNotFound"
    ? "unknown-topic"
    : error._tag === "TopicDeleted"
    ? "topic-deleted"
    : error._tag === "SessionTableFull"
    ? "session-table-full"
    : error._tag === "BatchRejected" && error.maxBatchBytes !== undefined
    ? "oversized"
    : error._tag === "BatchRejected" && error.regionFull === true
    ? "region-full"
    : "internal"

/**
 * Whether an append's refusal is its topic's (the lane fails: gone, a batch over its limit, or no
 * lane for want of heap) rather than the link's.
 */
const topicRefused = (error: Refusal): boolean =>
  error._tag === "TopicNotFound" || error._tag === "TopicDeleted" ||
  (error._tag === "BatchRejected" && (error.maxBatchBytes !== undefined || error.regionFull === true))

/**
 * One lane's session in the region: its frontiers' watch (standing on the doorbell only while
 * batches it appended await their ACK), the PBR positions of those batches, what was reported,
 * and the batches waiting for room, in order.
 */
class RegionSession {
  watch: SessionWatch | undefined = undefined
  totalOrder: ((broker: number, pbrSeq: number) => number | undefined) | undefined = undefined
  stopWatch: (() => void) | undefined = undefined
  /** Batch seq → its PBR position in this link's broker slot (for its total order), until acknowledged. */
  readonly carried = new Map<number, number>()
  reportedOrdered = 0
  reportedReplicated = 0
  /** The topic's limits, as its session opened: a batch holding a message over the largest is refused as a broker would. */
  limits: TopicLimits = { maxBatchBytes: Infinity, maxMessageBytes: Infinity }
  /** Batches 0..appended-1 of the session were appended here (the highest seq appended, plus one). */
  appended = 0
  readonly queue: Array<Queued> = []
  draining = false
  /** Made once: the standing wait's condition and callback (no closure per wake). */
  readonly moved = () => this.acksMoved()
  readonly onMoved = (satisfied: boolean) => {
    if (satisfied) this.link.report(this)
  }

  constructor(readonly link: RegionLink, readonly lane: LaneRef, readonly epoch: number) {}

  /** Whether the session's line moved past what was reported (or ended, or can get no more level 2 ACKs). */
  acksMoved(): boolean {
    const acks = this.watch?.acks()
    if (acks === undefined) return false
    return this.watch!.deleted() || acks.fenced || acks.ordered > this.reportedOrdered ||
      (this.link.c.ackLevel === 2 &&
        (acks.replicated > this.reportedReplicated || acks.durableFrozen ||
          this.watch!.durableFailure() !== undefined))
  }

  /** Batch `seq` was appended: the session stands on the doorbell until its ACK is reported. */
  appendedBatch(seq: number, pbrSeq: number): void {
    this.carried.set(seq, pbrSeq)
    if (seq >= this.appended) this.appended = seq + 1
    this.link.idle.delete(this)
    this.stand()
  }

  /** Everything it appended is reported at the publisher's level. */
  get settled(): boolean {
    return this.reportedOrdered >= this.appended &&
      (this.link.c.ackLevel !== 2 || this.reportedReplicated >= this.appended)
  }

  private stand(): void {
    if (this.stopWatch !== undefined || this.watch === undefined) return
    this.stopWatch = this.watch.standing(this.moved, this.onMoved, this.link.every)
    if (this.acksMoved()) this.link.report(this)
  }

  sit(): void {
    this.link.idle.delete(this)
    this.stopWatch?.()
    this.stopWatch = undefined
  }
}

/**
 * Settled sessions that stay on the doorbell (the most recently active): a publisher's one busy
 * topic does not leave and rejoin it per batch, while a thousand idle ones cost no wake-ups.
 */
const IDLE_STANDING = 8

export class RegionLink implements PublisherLink {
  readonly index = 0
  readonly name = "L0"
  readonly address: string
  state: LinkState = "idle"
  lastClose: string | undefined = undefined
  /** The lanes' sessions, by lane index. */
  private readonly sessions = new Map<number, RegionSession>()
  /** Settled sessions still standing, least recently active first (at most IDLE_STANDING). */
  readonly idle = new Set<RegionSession>()
  readonly every = () => this.c.recheckMs

  constructor(readonly c: RegionLinkContext) {
    this.address = `region ${c.region}`
  }

  private refusal(lane: LaneRef | undefined, code: WireErrorCode, detail: string) {
    return new BrokerRejected({
      broker: this.address,
      code,
      detail,
      ...(lane === undefined ? {} : { topic: lane.topic })
    })
  }

  /** The region is there: open at once (reported once the caller's turn is over). */
  open(): void {
    this.state = "opening"
    queueMicrotask(() => {
      if (this.state !== "opening") return
      this.state = "open"
      this.c.events.opened(this)
    })
  }

  openSession(lane: LaneRef, sessionEpoch: number | undefined): void {
    const { appender, acks, clientId } = this.c
    const topic = lane.topic
    const opening = Effect.gen(function*() {
      const epoch = sessionEpoch ?? (yield* appender.registerSession(topic, clientId))
      const watch = yield* acks.watch(topic, clientId, epoch, appender.brokerId)
      const totalOrder = yield* acks.totalOrders(topic)
      const limits = yield* appender.limits(topic)
      return { epoch, watch, totalOrder, limits }
    })
    this.c.run(opening, (exit) => {
      if (this.state !== "open") return
      if (Exit.isFailure(exit)) {
        const error = Cause.squash(exit.cause) as { readonly _tag?: string; readonly message?: string }
        return this.c.events.sessionRefused(
          this,
          lane,
          this.refusal(lane, refusalCode(error), error.message ?? String(error))
        )
      }
      const { epoch, limits, totalOrder, watch } = exit.value
      const now = watch.acks()
      if (sessionEpoch !== undefined && !now.known) {
        return this.c.events.sessionUnknown(this, lane, `the log no longer knows session ${epoch} of topic ${topic}`)
      }
      const session = new RegionSession(this, lane, epoch)
      session.limits = limits
      session.watch = watch
      session.totalOrder = totalOrder
      session.reportedOrdered = now.ordered
      session.reportedReplicated = now.replicated
      this.sessions.get(lane.index)?.sit()
      this.sessions.set(lane.index, session)
      this.c.events.sessionOpened(this, lane, epoch, limits)
      // A fence or a deletion while nothing is in flight is seen with the next batch, or now.
      if (now.fenced || watch.deleted()) this.report(session)
    })
  }

  send(
    batch: LinkBatch,
    lane: LaneRef,
    sessionEpoch: number,
    onWritten: (error: Error | null | undefined) => void
  ): void {
    const session = this.sessions.get(lane.index)!
    const header: BatchHeader = {
      clientId: this.c.clientId,
      sessionEpoch,
      batchSeq: batch.seq,
      messageCount: batch.messageCount,
      payloadBytes: batch.payload.length,
      crc32c: batch.crc32c
    }
    // A message gathered before the session said the topic's largest: refused as a broker refuses it.
    // (No message is larger than its batch: a batch within the limit is not walked.)
    const over = batch.payload.length > session.limits.maxMessageBytes
      ? checkBatchWithin(batch.payload, batch.messageCount, session.limits.maxMessageBytes)
      : undefined
    if (typeof over === "object") {
      const refused = new BatchRejected({
        topic: lane.topic,
        maxBatchBytes: session.limits.maxBatchBytes,
        reason:
          `message ${over.index} of the batch is ${over.bytes} bytes, over the topic's largest message of ${session.limits.maxMessageBytes} bytes (key and headers included)`
      })
      onWritten(refused)
      return this.failAppend(session, refused)
    }
    if (session.queue.length === 0) {
      const outcome = this.c.appender.tryAppendWith(lane.topic, header, (dst) => dst.set(batch.payload))
      if (outcome !== "wait") {
        if ("pbrSeq" in outcome) {
          onWritten(null)
          return session.appendedBatch(batch.seq, outcome.pbrSeq)
        }
        onWritten(outcome)
        return this.failAppend(session, outcome)
      }
    }
    // Waiting for room (or for the topic's first use): in order, behind any batch of the lane already waiting.
    session.queue.push({ header, payload: batch.payload, onWritten })
    this.drain(session)
  }

  /** An append refused: a topic gone, a batch over its limit or no lane for want of heap fails its lane; anything else takes the link down (the core resends). */
  private failAppend(
    session: RegionSession,
    error: Error & Refusal
  ): void {
    for (const dropped of session.queue.splice(0)) dropped.onWritten(error)
    if (topicRefused(error)) {
      this.dropSession(session.lane)
      return this.c.events.sessionRefused(
        this,
        session.lane,
        this.refusal(session.lane, refusalCode(error), error.message)
      )
    }
    this.down(`append failed: ${error.message}`)
  }

  /** Appends the lane's queued batches one by one, each waiting for room as long as the appender's bound. */
  private drain(session: RegionSession): void {
    if (session.draining || session.queue.length === 0) return
    session.draining = true
    const next = session.queue[0]!
    const { appender } = this.c
    this.c.run(appender.appendWith(session.lane.topic, next.header, (dst) => dst.set(next.payload)), (exit) => {
      session.draining = false
      if (this.sessions.get(session.lane.index) !== session) return
      session.queue.shift()
      if (Exit.isSuccess(exit)) {
        next.onWritten(null)
        session.appendedBatch(next.header.batchSeq, exit.value.pbrSeq)
        return this.drain(session)
      }
      const error = Cause.squash(exit.cause) as Error & { readonly _tag?: string }
      next.onWritten(error)
      this.failAppend(session, error)
    })
  }

  /** Reports what the session's line says: ordered (and replicated) frontiers with the total orders of the batches carried, or its end. */
  report(session: RegionSession): void {
    const watch = session.watch
    if (watch === undefined || this.state !== "open" || this.sessions.get(session.lane.index) !== session) return
    const { lane } = session
    if (watch.deleted()) {
      this.dropSession(lane)
      return this.c.events.sessionRefused(
        this,
        lane,
        this.refusal(lane, "topic-deleted", `topic ${lane.topic} was deleted`)
      )
    }
    const acks = watch.acks()
    if (acks.ordered > session.reportedOrdered) {
      const orders = this.ordersUpTo(session, acks.ordered)
      session.reportedOrdered = acks.ordered
      this.c.events.acked(this, lane, session.epoch, acks.ordered, orders, 1)
    }
    if (this.c.ackLevel === 2 && acks.replicated > session.reportedReplicated) {
      session.reportedReplicated = acks.replicated
      this.c.events.acked(this, lane, session.epoch, acks.replicated, new Uint8Array(0), 2)
    }
    if (acks.fenced && this.sessions.get(lane.index) === session) {
      this.dropSession(lane)
      return this.c.events.fenced(lane, session.epoch, acks.ordered)
    }
    if (session.settled) return this.settle(session)
    // Level 2 will not move again: what it awaits fails with a typed refusal, as a broker's publisher's does.
    const refusal = this.c.ackLevel === 2
      ? levelTwoRefusal(lane.topic, this.c.clientId, session.epoch, watch.durableFailure(), acks)
      : undefined
    if (refusal !== undefined) {
      this.dropSession(lane)
      return this.c.events.sessionRefused(this, lane, this.refusal(lane, "durability-unavailable", refusal))
    }
  }

  /** Everything the session appended is acknowledged: it stays on the doorbell only while it is among the most recently active. */
  private settle(session: RegionSession): void {
    if (session.stopWatch === undefined) return
    this.idle.delete(session)
    this.idle.add(session)
    if (this.idle.size > IDLE_STANDING) this.idle.values().next().value!.sit()
  }

  /** (batch seq, total order) pairs, f64 little-endian, of the batches carried below `count`, forgotten as they are reported. */
  private ordersUpTo(session: RegionSession, count: number): Uint8Array {
    const pairs: Array<number> = []
    const broker = this.c.appender.brokerId
    for (const [seq, pbrSeq] of session.carried) {
      if (seq >= count) continue
      session.carried.delete(seq)
      const order = session.totalOrder?.(broker, pbrSeq)
      if (order !== undefined) pairs.push(seq, order)
    }
    return new Uint8Array(new Float64Array(pairs).buffer)
  }

  private down(reason: string): void {
    this.detach()
    this.lastClose = "closed"
    if (this.c.events.down(this, reason)) this.c.events.retry(this)
  }

  private detach(): void {
    for (const session of this.sessions.values()) {
      session.sit()
      for (const dropped of session.queue.splice(0)) dropped.onWritten(new Error("the link went down"))
    }
    this.sessions.clear()
    this.state = "idle"
  }

  closeSession(lane: LaneRef, sessionEpoch: number, batches: number): void {
    this.dropSession(lane)
    this.c.run(this.c.appender.closeSession(lane.topic, this.c.clientId, sessionEpoch, batches), () => {})
  }

  dropSession(lane: LaneRef): void {
    const session = this.sessions.get(lane.index)
    if (session === undefined) return
    session.sit()
    this.sessions.delete(lane.index)
  }

  close(): void {
    for (const session of this.sessions.values()) {
      for (const dropped of session.queue.splice(0)) dropped.onWritten(new Error("the publisher closed"))
    }
    this.detach()
  }
}
