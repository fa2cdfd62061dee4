/**
 * The batches' path through the window: `seal` closes a lane's open batch and gives it the
 * session's next seq, `dispatch` `choose`s an open link where the lane's session is open and
 * `transmit` sends it there (or it waits in the lane's `unrouted` for one); back, an ACK
 * `acknowledge`s a lane's batches (`complete`) and `afterProgress` ends a pacing round when one
 * is over (PublisherPacing), seals what gathered meanwhile — the lanes that waited longest
 * first (self-clocking) — and wakes the waits.
 */
import { publisherBatches, publisherResends } from "../../Metrics.js"
import { complete, settleAwaiting, trim } from "./PublisherAcks.js"
import { gather, openSessions, ungather } from "./PublisherLanes.js"
import type { PublisherLink } from "./PublisherLink.js"
import { paceLeaving, paceRound } from "./PublisherPacing.js"
import { type Batch, type Lane, notify, type PublisherState, room, SessionOnLink } from "./PublisherState.js"

export const seal = (s: PublisherState, lane: Lane): void => {
  ungather(s, lane)
  if (lane.full) {
    lane.full = false
    s.fullLanes--
  }
  const sealed = lane.builder.seal()
  const batch: Batch = {
    seq: lane.nextSeq++,
    lane,
    payload: sealed.payload,
    buffer: sealed.buffer,
    pendingWrites: 0,
    messageCount: sealed.messageCount,
    firstMessage: lane.sealedMessages,
    crc32c: sealed.crc32c,
    link: -1,
    lastLink: -1,
    sends: 0,
    sealedAt: performance.now(),
    done: false,
    lost: false,
    ordered: false,
    firstOffset: -1,
    ackWaiters: lane.openAckWaiters
  }
  if (lane.openAckWaiters !== undefined) lane.ackWaitingBatches++
  lane.openAckWaiters = undefined
  lane.sealedMessages += sealed.messageCount
  lane.unacked.push(batch)
  lane.counts.batches++
  s.inFlight++
  s.counts.batches++
  publisherBatches.unsafeUpdate(1, [])
  dispatch(s, batch)
}

/** Seals open batches, the longest waiting first, while the window has room (and, with `dueBy`, those opened by then). */
const sealWaiting = (s: PublisherState, dueBy = Infinity): void => {
  for (let lane = s.gatherFirst; lane !== undefined && room(s) && lane.openedAt <= dueBy; lane = s.gatherFirst) {
    seal(s, lane)
  }
}

/** A message took a lane's empty open batch: it waits in the queue, due `lingerMs` from now at the latest. */
export const opened = (s: PublisherState, lane: Lane): void => {
  lane.openedAt = performance.now()
  gather(s, lane)
}

/** Seals what a burst published while nothing was in flight (unless something sealed it meanwhile). */
export const sealBurst = (s: PublisherState): void => {
  s.burstSealQueued = false
  if (s.failure === undefined) sealWaiting(s)
}

/**
 * Open batches wait `lingerMs` at most for an ACK: one timer for every lane, due for the
 * longest waiting; armed only while the window has room (a full one is clocked by the ACK that
 * frees it: `afterProgress` seals), and left running from batch to batch in a burst.
 */
export const armLinger = (s: PublisherState): void => {
  if (s.lingerTimer === undefined) s.lingerTimer = setTimeout(s.lingerTask, s.settings.lingerMs)
}

/** The linger timer: what waited `lingerMs` goes now if the window has room; then it is due again for the next. */
export const onLinger = (s: PublisherState): void => {
  s.lingerTimer = undefined
  if (s.failure !== undefined) return
  const now = performance.now()
  sealWaiting(s, now - s.settings.lingerMs)
  const first = s.gatherFirst
  if (first === undefined || !room(s)) return
  // Whole milliseconds: Node keeps a timer list per distinct delay.
  s.lingerTimer = setTimeout(s.lingerTask, Math.max(1, Math.ceil(first.openedAt + s.settings.lingerMs - now)))
}

/**
 * An open link for the lane's next batch, where its session is open. Round-robin moves on only
 * for a batch that overlaps others in flight: a lone batch (light load, a closed loop) goes to
 * the publisher's home link (`sticky`, its client id modulo the links), so at light load one
 * broker process takes nearly every batch and it alone warms its code and caches, while a stream
 * that keeps batches in flight still spreads over every broker.
 */
const choose = (s: PublisherState, lane: Lane): PublisherLink | undefined => {
  if (lane.epoch === undefined) return undefined
  const links = s.links
  const n = links.length
  const sticky = s.settings.spread === "sticky"
  const home = sticky || s.inFlight + s.orderedInFlight <= 1
  const from = home ? s.sticky : s.roundRobin
  const onLink = lane.onLink
  for (let k = 0; k < n; k++) {
    const i = (from + k) % n
    if (onLink[i] === SessionOnLink.open && links[i]!.state === "open") {
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
  link.send(batch, batch.lane, sessionEpoch, written)
}

export const dispatch = (s: PublisherState, batch: Batch): void => {
  const lane = batch.lane
  const link = choose(s, lane)
  if (link === undefined || lane.epoch === undefined) {
    batch.link = -1
    lane.unrouted.push(batch)
    openSessions(s, lane)
  } else {
    transmit(s, link, batch, lane.epoch)
  }
}

/** The lane's session opened on a link: its batches waiting for one go out, in seq order. */
export const drainUnrouted = (s: PublisherState, lane: Lane): void => {
  if (lane.unrouted.length === 0) return
  const waiting = lane.unrouted.filter((batch) => !batch.done).sort((a, b) => a.seq - b.seq)
  lane.unrouted = []
  for (const batch of waiting) dispatch(s, batch)
}

export const afterProgress = (s: PublisherState): void => {
  paceRound(s)
  // Self-clocking: an ACK that leaves window room sends what gathered meanwhile.
  sealWaiting(s)
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
  for (const lane of s.lanes) advance(lane)
  afterProgress(s)
}

/** Drops the lane's done batches from the front of `unacked` (amortised). */
const advance = (lane: Lane): void => {
  while (lane.head < lane.unacked.length && lane.unacked[lane.head]!.done) lane.head++
  trim(lane)
}

/**
 * The lane's batches 0..count-1 of its current epoch are acknowledged; `link` sent the ACK
 * (undefined: a fence). Its ACK named the offsets of the batches it carried, so those it has
 * not named are not known.
 */
export const acknowledge = (s: PublisherState, lane: Lane, count: number, link: number | undefined): void => {
  let moved = false
  const unacked = lane.unacked
  for (let i = lane.head; i < unacked.length && unacked[i]!.seq < count; i++) {
    const batch = unacked[i]!
    if (!batch.done) {
      complete(s, batch)
      moved = true
    }
  }
  if (lane.awaitingOffset.length > 0) {
    settleAwaiting(
      lane,
      (batch) => batch.firstOffset >= 0 || (batch.seq < count && (link === undefined || batch.lastLink === link))
    )
  }
  if (moved) {
    advance(lane)
    afterProgress(s)
  }
}

/** ACK 2: the lane's batches 0..count-1 of its current epoch are ordered; they leave the send window for the ordered one. */
export const acknowledgeOrdered = (s: PublisherState, lane: Lane, count: number): void => {
  if (count <= lane.orderedSeq || lane.unacked.length === 0) return
  let moved = false
  const now = performance.now()
  const unacked = lane.unacked
  for (
    let i = Math.max(lane.head, lane.orderedSeq - unacked[0]!.seq);
    i < unacked.length && unacked[i]!.seq < count;
    i++
  ) {
    const batch = unacked[i]!
    if (batch.done || batch.ordered) continue
    batch.ordered = true
    paceLeaving(s, batch, now)
    s.inFlight--
    s.orderedInFlight++
    moved = true
  }
  lane.orderedSeq = count
  if (moved) afterProgress(s)
}
