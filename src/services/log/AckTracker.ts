/**
 * AckTracker: per client session, how far its batches are acknowledged at each ACK level,
 * read from the region (read-only; any broker process). Level 1: in the total order (mode
 * 0: written, i.e. scanned by the sequencer); level 2: replicated to RF copies (RF 2: the
 * batch and its place in the order are on disk, docs/durability.md; equal to level 1 while
 * RF = 1). Frontiers are counts: batches 0..n-1 of the session.
 */
import { Context, type Effect, Schema } from "effect"
import type { AckLevel, LogCorrupt, TopicDeleted, TopicNotFound } from "./Topics.js"

export interface SessionAcks {
  /** Level 1: batches 0..ordered-1 are in the total order. */
  readonly ordered: number
  /** Level 2: batches 0..replicated-1 have RF copies. */
  readonly replicated: number
  /**
   * The session takes no more batches (fenced, or released after closing or idling):
   * `ordered` is then its committed frontier and never moves again.
   */
  readonly fenced: boolean
  /** False when no session line holds the key (never registered, or released and its line reused). */
  readonly known: boolean
  /**
   * Level 2 will not move again for this session (replication factor 2): the head's disk writer
   * found batches of it recycled before they reached the disk (it was not running), so
   * `replicated` stays where it is for good.
   */
  readonly durableFrozen: boolean
}

/** Why level 2 of a replication factor 2 topic no longer moves: the head stopped writing its copy on disk. */
export type DurableFailure = "disk-full" | "stopped"

/** `DurableFailure` as the order line's word holds it (0: the durable tier is writing). */
export const DurableFailureCode = { "disk-full": 1, stopped: 2 } as const satisfies Record<DurableFailure, number>

/** The failure a code names (undefined for 0 or an unknown code). */
export const durableFailureOf = (code: number): DurableFailure | undefined =>
  code === 1 ? "disk-full" : code === 2 ? "stopped" : undefined

/**
 * Why an ACK 2 session of `topic` can get no more level 2 ACKs — its topic's copy on disk stopped,
 * or the session was frozen — as its publisher is told (`durability-unavailable`); undefined
 * while level 2 may still move.
 */
export const levelTwoRefusal = (
  topic: string,
  clientId: number,
  sessionEpoch: number,
  failure: DurableFailure | undefined,
  acks: SessionAcks
): string | undefined => {
  if (failure !== undefined) {
    const why = failure === "disk-full" ? "the head's data directory is full" : "the head stopped writing it"
    return `topic ${topic}: its copy on disk stopped (${why}); ACK 2 cannot be given`
  }
  return acks.durableFrozen
    ? `session ${clientId}/${sessionEpoch} of topic ${topic}: its batches from ${acks.replicated} on were recycled before they reached the disk (the head's disk writer was not running); ACK 2 cannot be given for them`
    : undefined
}

export const BrokerCounts = Schema.Struct({
  brokerId: Schema.Int,
  /** Batches of this broker the sequencer has finished (ordered or dropped as duplicates). */
  acked: Schema.Number,
  /** Batches this broker appended. */
  sent: Schema.Number
})
export type BrokerCounts = typeof BrokerCounts.Type

/**
 * One session's frontiers and its topic's progress as plain reads, resolved once: for a tracker
 * that re-reads them on every wake (a broker connection's), so a wake costs no Effect per read.
 */
export interface SessionWatch {
  /** What `sessionAcks` says now. */
  readonly acks: () => SessionAcks
  /** What `progress` says now. */
  readonly progress: () => number
  /**
   * As `awaitProgress`; resumes at once (no wait) when the progress already differs from `seen`.
   * With a `carrier`, a change made only by ordering other brokers' batches may not resume it.
   */
  readonly awaitProgress: (seen: number, timeoutMs: number) => Effect.Effect<number>
  /**
   * The same wait as a standing callback, for a tracker run from callbacks (no fiber per wake):
   * whenever `condition()` holds at a re-check after a wake, `onReady(true)` runs in the wake's
   * own callback; when it has not held for `everyMs()` ms, `onReady(false)`. Registered (and
   * counted as a waiter, with the same carrier rule as `awaitProgress`) until the returned
   * function is called; the caller checks its condition once after registering (see
   * `DoorbellShape.watch`: that is the re-check that makes a lost wake impossible).
   */
  readonly standing: (
    condition: () => boolean,
    onReady: (satisfied: boolean) => void,
    everyMs: () => number
  ) => () => void
  /** Set once the topic's copy on disk stopped (replication factor 2): its level 2 will not move again. */
  readonly durableFailure: () => DurableFailure | undefined
  /** True once the topic was deleted: its frontiers stay where they were last read, and nothing more is acknowledged. */
  readonly deleted: () => boolean
}

export interface AckTrackerShape {
  /**
   * The session's `SessionWatch` (the topic is resolved here, once). `carrier`: the broker whose
   * batches of the session the caller acknowledges, when it runs in that broker's process; its
   * `awaitProgress` may then sleep through rounds that ordered only other brokers' batches.
   */
  readonly watch: (
    topic: string,
    clientId: number,
    sessionEpoch: number,
    carrier?: number
  ) => Effect.Effect<SessionWatch, TopicNotFound>
  readonly sessionAcks: (
    topic: string,
    clientId: number,
    sessionEpoch: number
  ) => Effect.Effect<SessionAcks, TopicNotFound | LogCorrupt>
  readonly brokerCounts: (topic: string) => Effect.Effect<ReadonlyArray<BrokerCounts>, TopicNotFound>
  /**
   * Reads total orders: `(broker, pbrSeq)` → the total order of the first message of the
   * batch in that PBR slot once the sequencer ordered it; undefined while not ordered, when
   * it was dropped (a duplicate) or when the slot was reused. Exact in the broker slot's
   * owner process (slots are reused only by its own appends); elsewhere best effort.
   */
  readonly totalOrders: (
    topic: string
  ) => Effect.Effect<(broker: number, pbrSeq: number) => number | undefined, TopicNotFound>
  /** A number that changes whenever a frontier of the topic may have moved. */
  readonly progress: (topic: string) => Effect.Effect<number, TopicNotFound>
  /** The topic's progress once it differs from `seen`, or after `timeoutMs` (then it may equal `seen`). */
  readonly awaitProgress: (topic: string, seen: number, timeoutMs: number) => Effect.Effect<number, TopicNotFound>
  /**
   * Waits until batch `batchSeq` of the session and all before it are acknowledged at
   * `level` (default: the topic's ACK level).
   */
  readonly awaitAcked: (
    topic: string,
    clientId: number,
    sessionEpoch: number,
    batchSeq: number,
    options: { readonly timeoutMs: number; readonly level?: AckLevel }
  ) => Effect.Effect<SessionAcks, AckTimeout | SessionFenced | TopicNotFound | TopicDeleted | LogCorrupt>
}

export class AckTracker extends Context.Tag("cxlog/AckTracker")<AckTracker, AckTrackerShape>() {}

/** Lists each broker's acked/sent counts so a stuck broker stands out. */
export class AckTimeout extends Schema.TaggedError<AckTimeout>()("AckTimeout", {
  topic: Schema.String,
  clientId: Schema.Number,
  sessionEpoch: Schema.Number,
  batchSeq: Schema.Number,
  level: Schema.Number,
  /** The session's frontier at that level when the wait gave up. */
  acked: Schema.Number,
  waitedMs: Schema.Number,
  brokers: Schema.Array(BrokerCounts)
}) {
  override get message() {
    const brokers = this.brokers.map((b) => `B${b.brokerId}=${b.acked}/${b.sent}`).join(", ")
    return `topic ${this.topic} session ${this.clientId}/${this.sessionEpoch}: batch ${this.batchSeq} not acknowledged at level ${this.level} within ${this.waitedMs} ms (acknowledged: 0..${
      this.acked - 1
    }); brokers acked/sent: ${brokers}`
  }
}

/** The sequencer fenced the session (a gap outlived the hold timeout): open a new epoch and replay from `committed`. */
export class SessionFenced extends Schema.TaggedError<SessionFenced>()("SessionFenced", {
  topic: Schema.String,
  clientId: Schema.Number,
  sessionEpoch: Schema.Number,
  /** Batches 0..committed-1 are in the total order; the rest were not ordered. */
  committed: Schema.Number
}) {
  override get message() {
    return `topic ${this.topic} session ${this.clientId}/${this.sessionEpoch} was fenced; batches 0..${
      this.committed - 1
    } are committed, replay the rest in a new epoch`
  }
}
