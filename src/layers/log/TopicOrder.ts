/**
 * One topic under the sequencer (`TopicOrder`): its order engine's sink, scan cursors,
 * counters and frontier, over a `TopicStorage` — the region's (RegionTopicStorage.ts) or the
 * in-process store's (SequencerMemory.ts). The engine decides; `orderBatch`, `dropBatch` and
 * `releaseSession` store what it decided.
 */
import { defaultSequencerOptions, type SequencerOptions } from "../../services/log/Sequencer.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import type { LogConfig } from "./Layout.js"
import { type DropReason, OrderEngine, type OrderSink, type Session } from "./OrderEngine.js"
import type { OrderHistory } from "./OrderHistory.js"
import { Dropped } from "./Records.js"
import { RoundTally } from "./RoundTally.js"
import type { SessionFields } from "./SessionFields.js"
import type { SessionTable } from "./SessionTable.js"

/** What line 1 of a finished PBR slot says for each way a batch leaves without a GOI entry. */
export const DROP_CODE: Record<DropReason, number> = {
  duplicate: Dropped.duplicate,
  fenced: Dropped.fenced,
  refused: Dropped.refused,
  corrupt: Dropped.corrupt,
  marker: Dropped.marker
}

/** The gap bound's default, in idle bounds (an hour at the default 10 minutes). */
export const GAP_IDLE_FACTOR = 6

/**
 * Where one topic's batches, GOI and published state live. The scan reads a broker's PBR
 * positions through a cursor (`seek`, then the header of that position), so a position is
 * located once however many of its fields are read.
 */
export interface TopicStorage {
  /** The topic's session table (the same code over the region or a private buffer). */
  readonly sessions: SessionTable
  /** Its GOI's entries (the topic's shape). */
  readonly goiSlots: number
  /** The writer slots with a lane in the topic (a lane appears when its writer first writes; none goes while the topic lives). */
  readonly lanes: () => ReadonlyArray<number>
  /** Whether `broker` has committed position `pbrSeq` (a cheap check for idle waits). */
  readonly committed: (broker: number, pbrSeq: number) => boolean
  /** Points the cursor at `broker`'s position `pbrSeq`; false when it is not committed yet. */
  readonly seek: (broker: number, pbrSeq: number) => boolean
  /** The cursor's slot was finished before (a restart): already accounted for. */
  readonly finished: () => boolean
  /** The cursor's slot is a session's close marker. */
  readonly isClose: () => boolean
  /** The cursor's header can describe a batch (a region slot may be corrupt). */
  readonly sane: () => boolean
  readonly clientId: () => number
  readonly sessionEpoch: () => number
  readonly batchSeq: () => number
  /** Writes the batch at (broker, pbrSeq) as GOI entry `g` starting at `totalOrder`; returns its message count. */
  readonly writeGoi: (g: number, broker: number, pbrSeq: number, totalOrder: number) => number
  /** Finishes the slot: its global seq (or a `Dropped` code) and total order, then the finish word. */
  readonly finish: (broker: number, pbrSeq: number, globalSeq: number, totalOrder: number) => void
  /** The lowest durable subscriber cursor (Infinity when none): GOI entries from it on are still needed. */
  readonly lowestCursor: () => number
  /** Whether a broker's append waits for PBR or Blog room now. */
  readonly roomWaits: () => boolean
  /** Says whether the topic's GOI is full (readers that move their cursor then ring the sequencer). */
  readonly publishStalled: (stalled: boolean) => void
  /**
   * Publishes per-broker lines, the committed frontier and the progress word (session lines are
   * published first), then bumps `rounds`, whose new value the topic keeps (`seenRounds`).
   */
  readonly publishFrontier: (topic: TopicOrder) => void
  /** The topic's `rounds` word: bumped by every round that published it, whichever process ran it. */
  readonly rounds: () => number
  /** What the storage holds of the topic's order now (its published lines and GOI). */
  readonly history: () => OrderHistory
}

/** The sequencer's settings that both storages share. */
export interface OrderSettings {
  readonly maxBrokers: number
  readonly holdTimeoutMs: number
  readonly sessionIdleMs: number
  /** How long a session with batches ordered above a gap (orders 0/2/4) is kept without a batch before it lapses. */
  readonly sessionGapIdleMs: number
  /** Positions scanned per broker per round. */
  readonly maxPerBroker: number
}

/** The settings from the layer's options, defaulted, for a log of `config`. */
export const orderSettings = (config: LogConfig, options: SequencerOptions): OrderSettings => {
  const sessionIdleMs = options.sessionIdleMs ?? defaultSequencerOptions.sessionIdleMs
  return {
    maxBrokers: config.maxBrokers,
    holdTimeoutMs: options.holdTimeoutMs ?? defaultSequencerOptions.holdTimeoutMs,
    sessionIdleMs,
    // One below the idle bound was refused when the layer was made (checkSequencerOptions).
    sessionGapIdleMs: options.sessionGapIdleMs ?? GAP_IDLE_FACTOR * sessionIdleMs,
    maxPerBroker: options.maxBatchesPerBroker ?? defaultSequencerOptions.maxBatchesPerBroker
  }
}

/** A session's published fields. */
export const fieldsOf = (session: Session): SessionFields => ({
  next: session.next,
  orderedMessages: session.orderedMessages,
  duplicates: session.duplicates,
  held: session.held.size,
  lastActivityMs: session.lastActivityMs,
  fenced: session.fenced,
  ahead: session.ahead
})

/**
 * One topic under the sequencer: its engine, scan cursors, counters and frontier. It is
 * the engine's sink: the engine decides, `order` / `drop` / `releaseSession` store.
 */
export class TopicOrder implements OrderSink {
  readonly engine: OrderEngine
  /** Per broker: the next position to scan. */
  readonly scan: Float64Array
  /** Per broker, as published in its sequencer line. */
  readonly orderedBatches: Float64Array
  readonly orderedMessages: Float64Array
  readonly duplicates: Float64Array
  readonly dropped: Float64Array
  /** The next global seq and total order. */
  goiNext = 0
  totalNext = 0
  /** Lowest durable subscriber cursor, refreshed each round. */
  lowest = Infinity
  /** What the storage says of the GOI being full now. */
  stalled = false
  /** The `rounds` word as this process's last round (or its recovery) left it: while it reads so, this state is current. */
  seenRounds = 0
  /** Sessions are taken from their lines as their batches arrive, since another process's round (`syncTopic`). */
  sessionsPartial = false
  readonly tally: RoundTally

  constructor(readonly info: TopicInfo, readonly storage: TopicStorage, settings: OrderSettings) {
    const brokers = settings.maxBrokers
    this.scan = new Float64Array(brokers)
    this.orderedBatches = new Float64Array(brokers)
    this.orderedMessages = new Float64Array(brokers)
    this.duplicates = new Float64Array(brokers)
    this.dropped = new Float64Array(brokers)
    this.tally = new RoundTally(brokers)
    this.engine = new OrderEngine(info.order, settings.holdTimeoutMs, brokers, this)
  }

  /** GOI entries that can be written now: durable subscribers hold the ring from their cursor on. */
  room(): number {
    const slots = this.storage.goiSlots
    return this.lowest === Infinity ? slots : slots - (this.goiNext - this.lowest)
  }

  order(broker: number, pbrSeq: number): number {
    return orderBatch(this, broker, pbrSeq)
  }

  drop(broker: number, pbrSeq: number, reason: DropReason): void {
    dropBatch(this, broker, pbrSeq, reason)
  }

  findSession(
    clientId: number,
    sessionEpoch: number
  ): { readonly slot: number; readonly fields: SessionFields } | undefined {
    return this.storage.sessions.find(clientId, sessionEpoch)
  }

  releaseSession(session: Session): void {
    releaseSession(this, session)
  }

  lapseSession(session: Session): void {
    this.storage.sessions.lapse(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
    this.tally.lapsed++
  }

  publishSession(session: Session): void {
    this.storage.sessions.publish(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
  }

  /** Whether the engine has a session of this key (made once: the sweep calls it per active line). */
  readonly isKnown = (clientId: number, sessionEpoch: number): boolean =>
    this.engine.session(clientId, sessionEpoch) !== undefined

  /** Where the broker's consumed-through stands: its oldest held position, else the scan cursor. */
  consumedThrough(broker: number): number {
    return Math.min(this.engine.lowestHeld(broker), this.scan[broker])
  }
}

/** Puts the batch at (broker, pbrSeq) next in the topic's total order: its GOI entry, then its slot's finish line. */
export function orderBatch(topic: TopicOrder, broker: number, pbrSeq: number): number {
  const g = topic.goiNext
  const totalOrder = topic.totalNext
  const count = topic.storage.writeGoi(g, broker, pbrSeq, totalOrder)
  topic.storage.finish(broker, pbrSeq, g, totalOrder)
  topic.goiNext = g + 1
  topic.totalNext = totalOrder + count
  topic.orderedBatches[broker]++
  topic.orderedMessages[broker] += count
  const tally = topic.tally
  tally.ordered++
  tally.messages += count
  tally.batches[broker]++
  tally.batchMessages[broker] += count
  return count
}

/** Finishes a slot that gets no GOI entry and counts it by reason (a close marker is no batch and counts nowhere). */
export function dropBatch(topic: TopicOrder, broker: number, pbrSeq: number, reason: DropReason): void {
  topic.storage.finish(broker, pbrSeq, DROP_CODE[reason], 0)
  const tally = topic.tally
  if (reason === "marker") {
    tally.markers++
  } else if (reason === "duplicate") {
    tally.duplicates++
    topic.duplicates[broker]++
  } else {
    tally.dropped++
    topic.dropped[broker]++
  }
}

/** The session is over (closed, idle or fenced and done): its line keeps the final frontier and leaves the live count. */
export function releaseSession(topic: TopicOrder, session: Session): void {
  topic.storage.sessions.release(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
  topic.tally.released++
}
