/**
 * A publisher's state, one plain mutable record touched from link callbacks and fibers on the
 * one JS thread, and the few questions every part asks of it (is there window room, what is
 * outstanding). Each topic published to has a lane (`Lane`): its open batch, its session in the
 * log and its batches not yet acknowledged; the window, the links and the waits are the
 * publisher's, shared by every lane. The parts over it: PublisherLanes (a topic's lane, the
 * queue of lanes whose batches gather), PublisherWindow (seal → dispatch → transmit, ACKs →
 * afterProgress), PublisherAcks (completing batches, their offsets), PublisherWaits (bounded
 * waits), PublisherSession (each lane's sessions on the links coming and going),
 * PublisherPacing (the adaptive window), PublisherCalls (the `PublisherShape` calls);
 * Publisher.ts makes the record and wires them.
 */
import type { Effect, Either } from "effect"
import type { AckLevel } from "../../services/log/Topics.js"
import type { PublishAck, PublishError } from "../../services/net/Publisher.js"
import type { BatchBuilder, BufferPool } from "./BatchBuilder.js"
import type { Pacing } from "./Pacing.js"
import type { PublisherSettings } from "./PublisherDefaults.js"
import type { LinkBatch, PublisherLink } from "./PublisherLink.js"

/** Seal-to-ACK latencies kept (`ackLatencies`). */
export const LATENCY_SAMPLES = 1 << 16

/**
 * A lane's session on one link (`Lane.onLink`): none, being opened, open (batches may go there),
 * or refused for want of heap there (the link's broker has no lane in the topic and the region no
 * room for one: the other links carry the lane until this one reconnects).
 */
export const SessionOnLink = { none: 0, opening: 1, open: 2, refused: 3 } as const

export interface Batch extends LinkBatch {
  /** Batch seq in its lane's current epoch (renumbered when a fence opens the next one). */
  seq: number
  readonly lane: Lane
  pendingWrites: number
  /** Its first message's number in the order the publisher took its topic's messages (`MessageRange`). */
  readonly firstMessage: number
  /** The link it is outstanding on, or -1 while it waits for one. */
  link: number
  /** The link it was last sent to (its ACK is counted there). */
  lastLink: number
  sends: number
  readonly sealedAt: number
  /** Acknowledged, or `lost`. */
  done: boolean
  /** Its topic failed before it was acknowledged: it left the window unacknowledged. */
  lost: boolean
  /** ACK 2: the log ordered it (a level-1 ACK said so); it waits for the disk outside the send window. */
  ordered: boolean
  /** Total order of its first message once an ACK named it (-1: not known). */
  firstOffset: number
  /** `publishAcked` calls waiting for this batch's ACK (undefined: none, the usual case). */
  ackWaiters: Array<AckWaiter> | undefined
}

/** One `publishAcked` message: its index in the batch and how to resume its caller. */
export interface AckWaiter {
  readonly index: number
  readonly resume: (result: Either.Either<PublishAck, PublishError>) => void
}

/** A wait in progress, as the timer that bounds every wait sees it. */
export interface Bounded {
  /** When it fails (performance.now() ms). */
  readonly expiresAt: () => number
  /** Fails it with its timeout. */
  readonly expire: () => void
}

/** Per link: batches sent to it (resends included), and acknowledged whose last send went to it. */
export interface LinkCounts {
  sent: number
  acked: number
}

/**
 * One topic's part of the publisher: its open batch, its session (registered by one link, then
 * attached on the others) and its batches not yet done, in seq order.
 */
export interface Lane {
  readonly topic: string
  /** Its place in `PublisherState.lanes` (links name lanes by it). */
  readonly index: number
  /** The session's epoch once the log registered it (epoch 0 is never handed out). */
  epoch: number | undefined
  /** Whether a session of the lane was ever opened (its topic was there then). */
  opened: boolean
  /** The link registering the session; the others attach once it is registered. */
  registrar: PublisherLink | undefined
  /** The session on each link, by link index (`SessionOnLink`). */
  readonly onLink: Uint8Array
  nextSeq: number
  /** Sealed batches not yet done, in seq order from `head` (done ones are dropped from the front). */
  unacked: Array<Batch>
  head: number
  readonly builder: BatchBuilder
  /** The topic's largest message (value, key and headers), once its session said it; Infinity until then. */
  maxMessageBytes: number
  /** The largest message (value, key and headers) every limit of the lane takes (`limitLane`): one comparison for a message within it. */
  takesUpTo: number
  /** Messages in sealed batches (the open batch's first message is numbered this). */
  sealedMessages: number
  /** When the open batch took its first message (performance.now() ms), for `lingerMs`. */
  openedAt: number
  /** Whether its open batch is in the queue of those waiting to be sealed (`PublisherState.gatherFirst`), and its neighbours there. */
  gathering: boolean
  gatherPrev: Lane | undefined
  gatherNext: Lane | undefined
  /** Its open batch refused a message for want of window room (a `writable` wait is for it). */
  full: boolean
  /** Batches waiting for a link where its session is open. */
  unrouted: Array<Batch>
  /** `publishAcked` waiters of the open batch (they move to the batch when it seals). */
  openAckWaiters: Array<AckWaiter> | undefined
  /**
   * Batches with ACK waiters that are done but whose offset is not known yet: the ACK frame
   * from the connection that carried them names it (or settles that it is unknown).
   */
  awaitingOffset: Array<Batch>
  /** Sealed batches not done that carry ACK waiters: while none do and none await an offset, ACK payloads are not read. */
  ackWaitingBatches: number
  /** ACK 2: batches below this seq of the current epoch are ordered or done (an ordered ACK scans from here). */
  orderedSeq: number
  /** Set once the log refused the topic (unknown, deleted, forbidden): its publishes fail with it. */
  failure: PublishError | undefined
  /**
   * Of a lane whose topic was deleted under it (`retired`, PublisherLanes.ts), which keeps its
   * failure and what it lost: once a call was handed that failure (`reported`), a later message
   * naming the topic goes to a new lane, a session of whatever topic has the name then, and once
   * a `flush` failed with it (`lossReported`), flushes no longer do.
   */
  reported: boolean
  lossReported: boolean
  /**
   * Of a lane whose topic the log did not know when it first asked (`askAgain`, PublisherLanes.ts),
   * which asks again in place at its next message once a call was told: the messages its earlier
   * tries lost (adjacent ranges merged), and that loss's failure while no flush has reported it.
   */
  earlierLost: Array<{ readonly from: number; readonly count: number }>
  lossToReport: PublishError | undefined
  readonly counts: { messages: number; batches: number; ackedMessages: number; fences: number }
}

export interface PublisherState {
  readonly settings: PublisherSettings
  readonly clientId: number
  readonly ackLevel: AckLevel
  /** The send window: sealed batches not done and not ordered, of every lane; `pacing` moves it (PublisherPacing.ts). */
  window: number
  readonly pacing: Pacing
  /**
   * ACK 2: batches the log ordered wait for the disk in a window of their own, so the send
   * window keeps batches moving through ordering meanwhile (they are still held for resend,
   * and a resend of one is a duplicate the log drops).
   */
  readonly orderedWindow: number
  /** Runs what link callbacks log as fibers of the publisher's scope. */
  readonly log: (effect: Effect.Effect<void>) => unknown
  readonly pool: BufferPool
  /** The links to the log, and their counts by index: set once, by the wiring, right after the record (they report to it). */
  links: ReadonlyArray<PublisherLink>
  linkCounts: ReadonlyArray<LinkCounts>
  /** The lanes by topic, and in the order they were made (`Lane.index`). */
  readonly laneOf: Map<string, Lane>
  readonly lanes: Array<Lane>
  /** The default topic's lane (undefined: every message names its topic). */
  defaultLane: Lane | undefined
  /**
   * Lanes whose open batch waits to be sealed, a list oldest first: an ACK that frees window
   * room seals the longest waiting first, so every topic's batches go in turn.
   */
  gatherFirst: Lane | undefined
  gatherLast: Lane | undefined
  gatheringCount: number
  /** Lanes whose open batch refused a message for want of room (`Lane.full`): `writable` waits until none is. */
  fullLanes: number
  /** Sealed batches not done and not ordered (the send window), and ordered ones waiting for the disk (ACK 2). */
  inFlight: number
  orderedInFlight: number
  roundRobin: number
  sticky: number
  /** The publisher's own failure (it closed, no broker took it, a refusal of the connection itself). */
  failure: PublishError | undefined
  /** The linger timer (undefined: not armed); one for every lane, re-armed for the longest waiting open batch. */
  lingerTimer: ReturnType<typeof setTimeout> | undefined
  /** Whether a microtask will seal what this synchronous burst published (`sealBurst`). */
  burstSealQueued: boolean
  /** Whether level-0 completions of this event-loop turn are to be handled together (`afterWritesSoon`). */
  afterWritesScheduled: boolean
  /** Waits for window room or a flush, each re-checked by every change (`notify`). */
  readonly waiters: Set<() => void>
  /** Every wait in progress, for the one timer that bounds them all (`armBound`). */
  readonly bounded: Set<Bounded>
  boundTimer: ReturnType<typeof setTimeout> | undefined
  boundAt: number
  /** When a batch was last completed (a wait for window room counts its bound from there). */
  lastAckAt: number
  readonly counts: {
    messages: number
    batches: number
    ackedBatches: number
    ackedMessages: number
    resends: number
    fences: number
  }
  readonly latencies: Float64Array
  latencyCount: number
  /** The timer and microtask callbacks, bound to this record once (not a closure per arming). */
  readonly sealBurstTask: () => void
  readonly lingerTask: () => void
  readonly expireBoundsTask: () => void
  readonly afterWritesTask: () => void
}

/** A batch may be sealed: both windows have room. */
export const room = (s: PublisherState): boolean =>
  s.inFlight < s.window && (s.ackLevel !== 2 || s.orderedInFlight < s.orderedWindow)

/** Batches not acknowledged yet, the open ones included. */
export const outstanding = (s: PublisherState): number => s.inFlight + s.orderedInFlight + s.gatheringCount

/** Wakes every wait; one that is ready withdraws itself (a Set's iteration tolerates that). */
export const notify = (s: PublisherState): void => {
  if (s.waiters.size === 0) return
  for (const wake of s.waiters) wake()
}
