/**
 * Batches becoming done: `complete` frees a batch's place in its window and counts it,
 * `learnOffsets` takes the total orders an ACK names, and the batches' `publishAcked` callers
 * are resumed with their offsets once known (or once no ACK can name them any more), or with
 * the error that ended their topic (`failLane`) or the publisher (`failAckWaiters`).
 */
import { Either } from "effect"
import { publisherAckedBytes, publisherAckedMessages, publisherAckLatency } from "../../Metrics.js"
import type { PublishError } from "../../services/net/Publisher.js"
import { checkBatchWithin } from "./BatchPayload.js"
import { passesOn, ungather } from "./PublisherLanes.js"
import { paceLeaving } from "./PublisherPacing.js"
import { type Batch, type Lane, LATENCY_SAMPLES, type PublisherState } from "./PublisherState.js"

/** The batch leaves its window (done, acknowledged or failed). */
const leaveWindow = (s: PublisherState, batch: Batch, now: number): void => {
  batch.done = true
  if (batch.ordered) {
    s.orderedInFlight--
  } else {
    paceLeaving(s, batch, now)
    s.inFlight--
  }
  if (batch.pendingWrites === 0) s.pool.give(batch.buffer)
}

export const complete = (s: PublisherState, batch: Batch): void => {
  s.lastAckAt = performance.now()
  leaveWindow(s, batch, s.lastAckAt)
  if (batch.lastLink >= 0) s.linkCounts[batch.lastLink]!.acked++
  const micros = (s.lastAckAt - batch.sealedAt) * 1000
  s.latencies[s.latencyCount++ % LATENCY_SAMPLES] = micros
  publisherAckLatency.unsafeUpdate(micros, [])
  publisherAckedMessages.unsafeUpdate(batch.messageCount, [])
  publisherAckedBytes.unsafeUpdate(batch.payload.byteLength, [])
  s.counts.ackedBatches++
  s.counts.ackedMessages += batch.messageCount
  const lane = batch.lane
  lane.counts.ackedMessages += batch.messageCount
  s.settings.onAcknowledged?.({ topic: lane.topic, from: batch.firstMessage, count: batch.messageCount })
  if (batch.ackWaiters !== undefined) {
    lane.ackWaitingBatches--
    if (batch.firstOffset >= 0 || s.ackLevel === 0) settleAcks(batch)
    else lane.awaitingOffset.push(batch)
  }
}

/** Resumes the batch's `publishAcked` callers with their offsets (undefined where not known). */
const settleAcks = (batch: Batch) => {
  const waiting = batch.ackWaiters
  if (waiting === undefined) return
  batch.ackWaiters = undefined
  for (const waiter of waiting) {
    waiter.resume(Either.right({ offset: batch.firstOffset >= 0 ? batch.firstOffset + waiter.index : undefined }))
  }
}

/**
 * The lane's done batches still waiting for their offset that no ACK can name any more (their
 * connection is gone, or their epoch ended): settled with what is known.
 */
export const settleAwaiting = (lane: Lane, gone: (batch: Batch) => boolean): void => {
  if (lane.awaitingOffset.length === 0) return
  const keep: Array<Batch> = []
  for (const batch of lane.awaitingOffset) {
    if (gone(batch)) settleAcks(batch)
    else keep.push(batch)
  }
  lane.awaitingOffset = keep
}

/** The total orders an ACK names: pairs (batch seq, total order of its first message), little-endian f64. */
export const learnOffsets = (lane: Lane, orders: Uint8Array): void => {
  if (
    orders.length < 16 || lane.unacked.length === 0 ||
    (lane.ackWaitingBatches === 0 && lane.awaitingOffset.length === 0)
  ) {
    return
  }
  const view = new DataView(orders.buffer, orders.byteOffset, orders.length)
  const base = lane.unacked[0]!.seq
  for (let at = 0; at + 16 <= orders.length; at += 16) {
    const batch = lane.unacked[view.getFloat64(at, true) - base]
    if (batch !== undefined) batch.firstOffset = view.getFloat64(at + 8, true)
  }
}

/**
 * Drops the done batches from the front of `unacked` once they are more than half of it, in
 * place (amortised O(1) per batch), keeping any whose offset an ACK may still name
 * (`learnOffsets` finds them there). A lane keeps about as many batches as it has in flight, and
 * none once all are done, so a publisher spreading over a thousand topics holds no tail of done
 * batches in each (at 64 to 127 a topic, some 15 MiB of its heap; docs/clients.md).
 */
export const trim = (lane: Lane): void => {
  let from = lane.head
  if (lane.awaitingOffset.length > 0) {
    const base = lane.unacked.length === 0 ? 0 : lane.unacked[0]!.seq
    for (const batch of lane.awaitingOffset) from = Math.min(from, batch.seq - base)
  }
  const unacked = lane.unacked
  if (from <= 0 || from * 2 <= unacked.length) return
  unacked.copyWithin(0, from)
  unacked.length -= from
  lane.head -= from
}

/** Every `publishAcked` caller of the lane still waiting (the open batch's, the sealed batches', those awaiting an offset) is resumed with `error`. */
const failLaneWaiters = (lane: Lane, error: PublishError): void => {
  lane.ackWaitingBatches = 0
  const failed = Either.left(error)
  const waiting = [
    lane.openAckWaiters,
    ...lane.awaitingOffset.map((b) => b.ackWaiters),
    ...lane.unacked.slice(lane.head).map((b) => b.ackWaiters)
  ]
  for (const batch of [...lane.awaitingOffset, ...lane.unacked]) batch.ackWaiters = undefined
  lane.awaitingOffset = []
  lane.openAckWaiters = undefined
  // Callers handed a failure not for good were told: their next message naming the topic tries it again.
  if (passesOn(lane) && waiting.some((waiters) => waiters !== undefined && waiters.length > 0)) lane.reported = true
  for (const waiters of waiting) for (const waiter of waiters ?? []) waiter.resume(failed)
}

/** The publisher failed: every `publishAcked` caller of every lane still waiting is resumed with `error`. */
export const failAckWaiters = (s: PublisherState, error: PublishError): void => {
  for (const lane of s.lanes) failLaneWaiters(lane, error)
}

/**
 * The log refused the lane's topic: its publishes fail with `error` from now on, and its
 * batches not done leave the window (the other lanes' batches take their room) — they stay
 * counted as not acknowledged (`unacknowledged` names them), and so do the open batch's messages.
 */
export const failLane = (s: PublisherState, lane: Lane, error: PublishError): void => {
  if (lane.failure !== undefined) return
  lane.failure = error
  failLaneWaiters(lane, error)
  const now = performance.now()
  for (let i = lane.head; i < lane.unacked.length; i++) {
    const batch = lane.unacked[i]!
    if (batch.done) continue
    batch.lost = true
    leaveWindow(s, batch, now)
  }
  lane.unrouted = []
  ungather(s, lane)
  if (lane.full) {
    lane.full = false
    s.fullLanes--
  }
}

/**
 * The lane's first session said its topic's largest message, and the batches sealed before it
 * (none sent yet) may hold a larger one, which the broker would answer by ending the session, the
 * lane failing with it for good. Each such batch is dropped instead: its messages are counted lost
 * (`unacknowledged`, one `flush` fails with `tooLarge`) and its `publishAcked` callers told
 * `tooLarge`; the batches left go out under the session, renumbered from 0. Whether it dropped any.
 */
export const dropOverLimit = (
  s: PublisherState,
  lane: Lane,
  tooLarge: (bytes: number) => PublishError
): boolean => {
  const now = performance.now()
  const kept: Array<Batch> = []
  for (let i = lane.head; i < lane.unacked.length; i++) {
    const batch = lane.unacked[i]!
    const over = batch.done ? undefined : checkBatchWithin(batch.payload, batch.messageCount, lane.maxMessageBytes)
    if (over === undefined || typeof over === "string") {
      kept.push(batch)
      continue
    }
    const error = tooLarge(over.bytes)
    lane.lossToReport ??= error
    addLost(lane, batch.firstMessage, batch.messageCount)
    if (batch.ackWaiters !== undefined) {
      lane.ackWaitingBatches--
      for (const waiter of batch.ackWaiters) waiter.resume(Either.left(error))
      batch.ackWaiters = undefined
    }
    leaveWindow(s, batch, now)
  }
  if (kept.length === lane.unacked.length - lane.head) return false
  kept.forEach((batch, seq) => (batch.seq = seq))
  lane.unacked = kept
  lane.head = 0
  lane.nextSeq = kept.length
  lane.unrouted = lane.unrouted.filter((batch) => !batch.done)
  return true
}

/** Messages `from` … `from + count - 1` of the lane were lost before they were sent: `earlierLost`, adjacent ranges merged. */
const addLost = (lane: Lane, from: number, count: number): void => {
  const last = lane.earlierLost[lane.earlierLost.length - 1]
  if (last !== undefined && last.from + last.count === from) {
    lane.earlierLost[lane.earlierLost.length - 1] = { from: last.from, count: last.count + count }
  } else {
    lane.earlierLost.push({ from, count })
  }
}
