/**
 * A publisher's state, one plain mutable record touched from link callbacks and fibers on the
 * one JS thread, and the few questions every part asks of it (is there window room, what is
 * outstanding). The parts over it: PublisherWindow (seal → dispatch → transmit, ACKs →
 * afterProgress), PublisherAcks (completing batches, their offsets), PublisherWaits (bounded
 * waits), PublisherSession (sessions, epochs, links coming and going), PublisherPacing (the
 * adaptive window), PublisherCalls (the `PublisherShape` calls); Publisher.ts makes the record
 * and wires them.
 */
import type { Effect, Either } from "effect"
import type { AckLevel } from "../../services/log/Topics.js"
import type { PublishAck, PublishError } from "../../services/net/Publisher.js"
import type { BatchBuilder, BufferPool } from "./BatchPayload.js"
import type { Pacing } from "./Pacing.js"
import type { PublisherSettings } from "./PublisherDefaults.js"
import type { LinkBatch, PublisherLink } from "./PublisherLink.js"

/** Seal-to-ACK latencies kept (`ackLatencies`). */
export const LATENCY_SAMPLES = 1 << 16

export interface Batch extends LinkBatch {
  /** Batch seq in the current epoch (renumbered when a fence opens the next one). */
  seq: number
  pendingWrites: number
  /** Its first message's number in the order the publisher took them (`MessageRange`). */
  readonly firstMessage: number
  /** The link it is outstanding on, or -1 while it waits for one. */
  link: number
  /** The link it was last sent to (its ACK is counted there). */
  lastLink: number
  sends: number
  readonly sealedAt: number
  done: boolean
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

export interface PublisherState {
  readonly settings: PublisherSettings
  readonly clientId: number
  readonly ackLevel: AckLevel
  /** The send window: sealed batches not done and not ordered; `pacing` moves it (PublisherPacing.ts). */
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
  readonly builder: BatchBuilder
  /** The links to the log, and their counts by index: set once, by the wiring, right after the record (they report to it). */
  links: ReadonlyArray<PublisherLink>
  linkCounts: ReadonlyArray<LinkCounts>
  /** The session's epoch once the log registered it (epoch 0 is never handed out). */
  epoch: number | undefined
  /** The link opened to register the session; the others open once it is registered. */
  registrar: PublisherLink | undefined
  nextSeq: number
  /** Sealed batches not yet done, in seq order from `head` (done ones are dropped from the front). */
  unacked: Array<Batch>
  head: number
  /** Messages in sealed batches (the open batch's first message is numbered this). */
  sealedMessages: number
  /** Sealed batches not done and not ordered (the send window), and ordered ones waiting for the disk (ACK 2). */
  inFlight: number
  orderedInFlight: number
  /** Batches waiting for an open link. */
  unrouted: Array<Batch>
  roundRobin: number
  sticky: number
  failure: PublishError | undefined
  /**
   * The linger timer and when the open batch is due (performance.now() ms; Infinity: not
   * lingering). A seal leaves the timer running for the next batch, which moves the due
   * time: a burst of batches arms one timer, not a setTimeout and clearTimeout per batch.
   */
  lingerTimer: ReturnType<typeof setTimeout> | undefined
  lingerDue: number
  /** Whether a microtask will seal what this synchronous burst published (`sealBurst`). */
  burstSealQueued: boolean
  /** Whether level-0 completions of this event-loop turn are to be handled together (`afterWritesSoon`). */
  afterWritesScheduled: boolean
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

/** Batches not acknowledged yet, the open one included. */
export const outstanding = (s: PublisherState): number =>
  s.inFlight + s.orderedInFlight + (s.builder.messageCount > 0 ? 1 : 0)

/** Wakes every wait; one that is ready withdraws itself (a Set's iteration tolerates that). */
export const notify = (s: PublisherState): void => {
  if (s.waiters.size === 0) return
  for (const wake of s.waiters) wake()
}
