/**
 * The batches' path through the window: `seal` closes the open batch and gives it the
 * session's next seq, `dispatch` `choose`s an open link and `transmit` sends it there (or it
 * waits in `unrouted` for one); back, an ACK `acknowledge`s batches (`complete`) and
 * `afterProgress` ends a pacing round when one is over (PublisherPacing), seals what gathered
 * meanwhile (self-clocking) and wakes the waits.
 */
import { publisherBatches, publisherResends } from "../../Metrics.js"
import { complete, settleAwaiting, trim } from "./PublisherAcks.js"
import type { PublisherLink } from "./PublisherLink.js"
import { paceLeaving, paceRound } from "./PublisherPacing.js"
import { type Batch, notify, type PublisherState, room } from "./PublisherState.js"

export const seal = (s: PublisherState): void => {
  s.lingerDue = Infinity
  const sealed = s.builder.seal()
  const batch: Batch = {
    seq: s.nextSeq++,
    payload: sealed.payload,
    buffer: sealed.buffer,
    pendingWrites: 0,
    messageCount: sealed.messageCount,
    firstMessage: s.sealedMessages,
    crc32c: sealed.crc32c,
    link: -1,
    lastLink: -1,
    sends: 0,
    sealedAt: performance.now(),
    done: false,
    ordered: false,
    firstOffset: -1,
    ackWaiters: s.openAckWaiters
  }
  if (s.openAckWaiters !== undefined) s.ackWaitingBatches++
  s.openAckWaiters = undefined
  s.sealedMessages += sealed.messageCount
  s.unacked.push(batch)
  s.inFlight++
  s.counts.batches++
  publisherBatches.unsafeUpdate(1, [])
  dispatch(s, batch)
}

/** Seals what a burst published while nothing was in flight (unless something sealed it meanwhile). */
export const sealBurst = (s: PublisherState): void => {
  s.burstSealQueued = false
  if (s.failure === undefined && s.builder.messageCount > 0 && room(s)) seal(s)
}

/** The open batch waited `lingerMs` for an ACK: it goes now if the window has room, else with the next ACK (a later batch's due time: wait on). */
export const onLinger = (s: PublisherState): void => {
  s.lingerTimer = undefined
  if (s.lingerDue === Infinity || s.builder.messageCount === 0) return
  const left = s.lingerDue - performance.now()
  // Whole milliseconds: Node keeps a timer list per distinct delay.
  if (left > 0) s.lingerTimer = setTimeout(s.lingerTask, Math.ceil(left))
  else if (room(s)) seal(s)
}

/**
 * An open link for the next batch (none before the session is registered). Round-robin moves on
 * only for a batch that overlaps others in flight: a lone batch (light load, a closed loop) goes
 * to the publisher's home link (`sticky`, its client id modulo the links), so at light load one
 * broker process takes nearly every batch and it alone warms its code and caches, while a stream
 * that keeps batches in flight still spreads over every broker.
 */
const choose = (s: PublisherState): PublisherLink | undefined => {
  if (s.epoch === undefined) return undefined
  const links = s.links
  const n = links.length
  const sticky = s.settings.spread === "sticky"
  const home = sticky || s.inFlight + s.orderedInFlight <= 1
  const from = home ? s.sticky : s.roundRobin
  for (let k = 0; k < n; k++) {
    const i = (from + k) % n
    if (links[i]!.state === "open") {
      if (sticky) s.sticky = i
      else s.roundRobin = i + 1
      return links[i]
    }
  }
  return undefined
}

const transmit = (s: PublisherState, link: PublisherLink, batch: Batch, sessionEpoch: number) => {
  batch.link = link.index
  batch.lastLink = link.index
  if (batch.sends++ > 0) {
    s.counts.resends++
    publisherResends.unsafeUpdate(1, [])
  }
  s.linkCounts[link.index]!.sent++
  batch.pendingWrites++
  const written = (error: Error | null | undefined) => {
    if (--batch.pendingWrites === 0 && batch.done) s.pool.give(batch.buffer)
    else if (s.ackLevel === 0 && !batch.done && error == null) {
      complete(s, batch)
      afterWritesSoon(s)
    }
  }
  link.send(batch, sessionEpoch, written)
}

export const dispatch = (s: PublisherState, batch: Batch): void => {
  const link = choose(s)
  if (link === undefined || s.epoch === undefined) {
    batch.link = -1
    s.unrouted.push(batch)
  } else {
    transmit(s, link, batch, s.epoch)
  }
}

/** A link opened: the batches waiting for one go out, in seq order. */
export const drainUnrouted = (s: PublisherState): void => {
  if (s.unrouted.length === 0) return
  const waiting = s.unrouted.filter((batch) => !batch.done).sort((a, b) => a.seq - b.seq)
  s.unrouted = []
  for (const batch of waiting) dispatch(s, batch)
}

export const afterProgress = (s: PublisherState): void => {
  while (s.head < s.unacked.length && s.unacked[s.head]!.done) s.head++
  trim(s)
  paceRound(s)
  // Self-clocking: an ACK that leaves window room sends what gathered meanwhile.
  if (s.builder.messageCount > 0 && room(s)) seal(s)
  notify(s)
}

/**
 * Level 0 completes batches one write callback at a time: handle them together once the
 * callbacks of this event-loop turn have run, so a waiting publisher wakes once for many.
 */
const afterWritesSoon = (s: PublisherState) => {
  if (s.afterWritesScheduled) return
  s.afterWritesScheduled = true
  setImmediate(s.afterWritesTask)
}

export const afterWrites = (s: PublisherState): void => {
  s.afterWritesScheduled = false
  afterProgress(s)
}

/**
 * Batches 0..count-1 of the current epoch are acknowledged; `link` sent the ACK (undefined:
 * a fence). Its ACK named the offsets of the batches it carried, so those it has not
 * named are not known.
 */
export const acknowledge = (s: PublisherState, count: number, link: number | undefined): void => {
  let moved = false
  for (let i = s.head; i < s.unacked.length && s.unacked[i]!.seq < count; i++) {
    const batch = s.unacked[i]!
    if (!batch.done) {
      complete(s, batch)
      moved = true
    }
  }
  if (s.awaitingOffset.length > 0) {
    settleAwaiting(
      s,
      (batch) => batch.firstOffset >= 0 || (batch.seq < count && (link === undefined || batch.lastLink === link))
    )
  }
  if (moved) afterProgress(s)
}

/** ACK 2: batches 0..count-1 of the current epoch are ordered; they leave the send window for the ordered one. */
export const acknowledgeOrdered = (s: PublisherState, count: number): void => {
  if (count <= s.orderedSeq || s.unacked.length === 0) return
  let moved = false
  const now = performance.now()
  for (
    let i = Math.max(s.head, s.orderedSeq - s.unacked[0]!.seq);
    i < s.unacked.length && s.unacked[i]!.seq < count;
    i++
  ) {
    const batch = s.unacked[i]!
    if (batch.done || batch.ordered) continue
    batch.ordered = true
    paceLeaving(s, batch, now)
    s.inFlight--
    s.orderedInFlight++
    moved = true
  }
  s.orderedSeq = count
  if (moved) afterProgress(s)
}
