/**
 * Batches becoming done: `complete` frees a batch's place in its window and counts it,
 * `learnOffsets` takes the total orders an ACK names, and the batches' `publishAcked` callers
 * are resumed with their offsets once known (or once no ACK can name them any more).
 */
import { Either } from "effect"
import { publisherAckedBytes, publisherAckedMessages, publisherAckLatency } from "../../Metrics.js"
import type { PublishError } from "../../services/net/Publisher.js"
import { paceLeaving } from "./PublisherPacing.js"
import { type Batch, LATENCY_SAMPLES, type PublisherState } from "./PublisherState.js"

/** Done batches dropped from the front of `unacked` at a time (at least). */
const TRIM_DONE_BATCHES = 64

export const complete = (s: PublisherState, batch: Batch): void => {
  batch.done = true
  s.lastAckAt = performance.now()
  if (batch.ordered) {
    s.orderedInFlight--
  } else {
    paceLeaving(s, batch, s.lastAckAt)
    s.inFlight--
  }
  if (batch.lastLink >= 0) s.linkCounts[batch.lastLink]!.acked++
  const micros = (s.lastAckAt - batch.sealedAt) * 1000
  s.latencies[s.latencyCount++ % LATENCY_SAMPLES] = micros
  publisherAckLatency.unsafeUpdate(micros, [])
  publisherAckedMessages.unsafeUpdate(batch.messageCount, [])
  publisherAckedBytes.unsafeUpdate(batch.payload.byteLength, [])
  s.counts.ackedBatches++
  s.counts.ackedMessages += batch.messageCount
  s.settings.onAcknowledged?.({ from: batch.firstMessage, count: batch.messageCount })
  if (batch.pendingWrites === 0) s.pool.give(batch.buffer)
  if (batch.ackWaiters !== undefined) {
    s.ackWaitingBatches--
    if (batch.firstOffset >= 0 || s.ackLevel === 0) settleAcks(batch)
    else s.awaitingOffset.push(batch)
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
 * Done batches still waiting for their offset that no ACK can name any more (their
 * connection is gone, or their epoch ended): settled with what is known.
 */
export const settleAwaiting = (s: PublisherState, gone: (batch: Batch) => boolean): void => {
  if (s.awaitingOffset.length === 0) return
  const keep: Array<Batch> = []
  for (const batch of s.awaitingOffset) {
    if (gone(batch)) settleAcks(batch)
    else keep.push(batch)
  }
  s.awaitingOffset = keep
}

/** The total orders an ACK names: pairs (batch seq, total order of its first message), little-endian f64. */
export const learnOffsets = (s: PublisherState, orders: Uint8Array): void => {
  if (orders.length < 16 || s.unacked.length === 0 || (s.ackWaitingBatches === 0 && s.awaitingOffset.length === 0)) {
    return
  }
  const view = new DataView(orders.buffer, orders.byteOffset, orders.length)
  const base = s.unacked[0]!.seq
  for (let at = 0; at + 16 <= orders.length; at += 16) {
    const batch = s.unacked[view.getFloat64(at, true) - base]
    if (batch !== undefined) batch.firstOffset = view.getFloat64(at + 8, true)
  }
}

/**
 * Drops done batches from the front of `unacked` once they are most of it (amortised O(1) per
 * batch), keeping any whose offset an ACK may still name (`learnOffsets` finds them there).
 * From early on: a trim first run after TurboFan optimised `acknowledge` (which inlines this) deoptimised it.
 */
export const trim = (s: PublisherState): void => {
  let from = s.head
  if (s.awaitingOffset.length > 0) {
    const base = s.unacked.length === 0 ? 0 : s.unacked[0]!.seq
    for (const batch of s.awaitingOffset) from = Math.min(from, batch.seq - base)
  }
  if (from >= TRIM_DONE_BATCHES && from * 2 > s.unacked.length) {
    s.unacked = s.unacked.slice(from)
    s.head -= from
  }
}

/**
 * The publisher failed: every `publishAcked` caller still waiting (the open batch's, the
 * sealed batches', those awaiting an offset) is resumed with `error`.
 */
export const failAckWaiters = (s: PublisherState, error: PublishError): void => {
  s.ackWaitingBatches = 0
  const failed = Either.left(error)
  const waiting = [
    s.openAckWaiters,
    ...s.awaitingOffset.map((b) => b.ackWaiters),
    ...s.unacked.slice(s.head).map((b) => b.ackWaiters)
  ]
  for (const batch of [...s.awaitingOffset, ...s.unacked]) batch.ackWaiters = undefined
  s.awaitingOffset = []
  s.openAckWaiters = undefined
  for (const waiters of waiting) for (const waiter of waiters ?? []) waiter.resume(failed)
}
