/**
 * A local publisher's link (PublisherLink.ts is the seam): on a host that maps the region, the
 * publisher appends its batches into the region itself, through an Appender in a broker slot
 * of its own (`AppenderLayers.makeAnySlot`), and learns its ACKs from its session's line, as a
 * broker's ACK tracker does. Sessions are registered in the log's table like a broker registers
 * them, so order modes, ACK levels, duplicates and resends are the log's and the core's, the same
 * as over TCP. An uncontended batch is ordered by the Appender at the end of its turn
 * (AppenderRounds.ts) and acknowledged in the same turn: no process is woken for it.
 *
 * Sends keep their order: while one batch waits for room in the log (backpressure), the ones
 * after it queue behind it.
 */
import { Cause, Effect, Exit } from "effect"
import type { AckTrackerShape, SessionWatch } from "../../services/log/AckTracker.js"
import type { AppenderShape, BatchHeader } from "../../services/log/Appender.js"
import { BrokerRejected, type PublishError } from "../../services/net/Publisher.js"
import type { WireErrorCode } from "./Control.js"
import type { LinkBatch, LinkState, PublisherLink, PublisherLinkEvents } from "./PublisherLink.js"

/** What a region link works with: the process's log services, how it runs an Effect, and what it publishes. */
export interface RegionLinkContext {
  readonly appender: AppenderShape
  readonly acks: AckTrackerShape
  readonly events: PublisherLinkEvents
  readonly topic: string
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

const refusal = (region: string, code: BrokerRejected["code"], detail: string): PublishError =>
  new BrokerRejected({ broker: `region ${region}`, code, detail })

/** The wire code a local append's refusal carries, as a broker's would. */
const refusalCode = (tag: string | undefined): WireErrorCode =>
  tag === "TopicNotFound" ? "unknown-topic" : tag === "TopicDeleted" ? "topic-deleted" : "bad-batch"

export class RegionLink implements PublisherLink {
  readonly index = 0
  readonly name = "L0"
  readonly address: string
  state: LinkState = "idle"
  lastClose: string | undefined = undefined
  private epoch = 0
  private watch: SessionWatch | undefined = undefined
  private stopWatch: (() => void) | undefined = undefined
  /** Batch seq → its PBR position in this link's broker slot (for its total order), until acknowledged. */
  private readonly carried = new Map<number, number>()
  private reportedOrdered = 0
  private reportedReplicated = 0
  private totalOrder: ((broker: number, pbrSeq: number) => number | undefined) | undefined = undefined
  private readonly queue: Array<Queued> = []
  private draining = false
  /** Made once: the standing wait's condition and callback (no closure per wake). */
  private readonly moved = () => this.acksMoved()
  private readonly onMoved = (satisfied: boolean) => {
    if (satisfied) this.report()
  }
  private readonly every = () => this.c.recheckMs

  constructor(private readonly c: RegionLinkContext) {
    this.address = `region ${c.region}`
  }

  open(sessionEpoch: number | undefined): void {
    this.state = "opening"
    const { appender, acks, topic, clientId } = this.c
    const opening = Effect.gen(function*() {
      const epoch = sessionEpoch ?? (yield* appender.registerSession(topic, clientId))
      const watch = yield* acks.watch(topic, clientId, epoch, appender.brokerId)
      const totalOrder = yield* acks.totalOrders(topic)
      return { epoch, watch, totalOrder }
    })
    this.c.run(opening, (exit) => {
      if (this.state !== "opening") return
      if (Exit.isFailure(exit)) {
        const error = Cause.squash(exit.cause) as { readonly _tag?: string; readonly message?: string }
        this.state = "idle"
        this.lastClose = error._tag ?? "failed"
        const code = error._tag === "SessionTableFull"
          ? "session-table-full"
          : error._tag === "TopicNotFound" || error._tag === "TopicDeleted"
          ? refusalCode(error._tag)
          : "internal"
        return this.c.events.failed(refusal(this.c.region, code, error.message ?? String(error)))
      }
      const { epoch, watch, totalOrder } = exit.value
      const now = watch.acks()
      if (sessionEpoch !== undefined && !now.known) {
        this.state = "idle"
        return this.c.events.sessionUnknown(this, `the log no longer knows session ${epoch}`)
      }
      this.epoch = epoch
      this.watch = watch
      this.totalOrder = totalOrder
      this.reportedOrdered = now.ordered
      this.reportedReplicated = now.replicated
      this.state = "open"
      this.c.events.opened(this, epoch)
      this.stopWatch = watch.standing(this.moved, this.onMoved, this.every)
      if (this.acksMoved()) this.report()
    })
  }

  send(batch: LinkBatch, sessionEpoch: number, onWritten: (error: Error | null | undefined) => void): void {
    const header: BatchHeader = {
      clientId: this.c.clientId,
      sessionEpoch,
      batchSeq: batch.seq,
      messageCount: batch.messageCount,
      payloadBytes: batch.payload.length,
      crc32c: batch.crc32c
    }
    if (this.queue.length === 0) {
      const outcome = this.c.appender.tryAppendWith(this.c.topic, header, (dst) => dst.set(batch.payload))
      if (outcome !== "wait") {
        if ("pbrSeq" in outcome) {
          this.carried.set(batch.seq, outcome.pbrSeq)
          return onWritten(null)
        }
        onWritten(outcome)
        return this.c.events.failed(refusal(this.c.region, refusalCode(outcome._tag), outcome.message))
      }
    }
    // Waiting for room (or for the topic's first use): in order, behind any batch already waiting.
    this.queue.push({ header, payload: batch.payload, onWritten })
    this.drain()
  }

  /** Appends the queued batches one by one, each waiting for room as long as the appender's bound. */
  private drain(): void {
    if (this.draining || this.queue.length === 0) return
    this.draining = true
    const next = this.queue[0]!
    const { appender, topic } = this.c
    this.c.run(appender.appendWith(topic, next.header, (dst) => dst.set(next.payload)), (exit) => {
      this.draining = false
      this.queue.shift()
      if (Exit.isSuccess(exit)) {
        this.carried.set(next.header.batchSeq, exit.value.pbrSeq)
        next.onWritten(null)
        return this.drain()
      }
      const error = Cause.squash(exit.cause) as Error & { readonly _tag?: string }
      next.onWritten(error)
      // The rest of the queue is dropped with the link: the core resends what it carried.
      for (const dropped of this.queue.splice(0)) dropped.onWritten(error)
      // A topic gone is the publisher's end; anything else, the link's (the core resends elsewhere).
      if (error._tag === "TopicNotFound" || error._tag === "TopicDeleted") {
        return this.c.events.failed(refusal(this.c.region, refusalCode(error._tag), error.message))
      }
      this.down(`append failed: ${error.message}`)
    })
  }

  /** Whether the session's line moved past what was reported (or ended). */
  private acksMoved(): boolean {
    const acks = this.watch?.acks()
    if (acks === undefined) return false
    return this.watch!.deleted() || acks.fenced || acks.ordered > this.reportedOrdered ||
      (this.c.ackLevel === 2 && acks.replicated > this.reportedReplicated)
  }

  /** Reports what the session's line says: ordered (and replicated) frontiers with the total orders of the batches carried, or its end. */
  private report(): void {
    const watch = this.watch
    if (watch === undefined || this.state !== "open") return
    if (watch.deleted()) {
      return this.c.events.failed(refusal(this.c.region, "topic-deleted", `topic ${this.c.topic} was deleted`))
    }
    const acks = watch.acks()
    if (acks.ordered > this.reportedOrdered) {
      const orders = this.ordersUpTo(acks.ordered)
      this.reportedOrdered = acks.ordered
      this.c.events.acked(this, this.epoch, acks.ordered, orders, 1)
    }
    if (this.c.ackLevel === 2 && acks.replicated > this.reportedReplicated) {
      this.reportedReplicated = acks.replicated
      this.c.events.acked(this, this.epoch, acks.replicated, new Uint8Array(0), 2)
    }
    if (acks.fenced && this.state === "open") this.c.events.fenced(this.epoch, acks.ordered)
  }

  /** (batch seq, total order) pairs, f64 little-endian, of the batches carried below `count`, forgotten as they are reported. */
  private ordersUpTo(count: number): Uint8Array {
    const pairs: Array<number> = []
    const broker = this.c.appender.brokerId
    for (const [seq, pbrSeq] of this.carried) {
      if (seq >= count) continue
      this.carried.delete(seq)
      const order = this.totalOrder?.(broker, pbrSeq)
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
    this.stopWatch?.()
    this.stopWatch = undefined
    this.watch = undefined
    this.carried.clear()
    this.state = "idle"
  }

  closeSession(sessionEpoch: number, batches: number): void {
    this.detach()
    this.c.run(this.c.appender.closeSession(this.c.topic, this.c.clientId, sessionEpoch, batches), () => {})
  }

  close(): void {
    this.detach()
    for (const dropped of this.queue.splice(0)) dropped.onWritten(new Error("the publisher closed"))
  }
}
