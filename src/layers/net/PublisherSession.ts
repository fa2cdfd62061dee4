/**
 * The lanes' sessions and the links: a link that opens gets every lane's session (the first link
 * to open one registers it, the others attach to it); a link that goes down has its batches
 * resent through the others; a fence or a forgotten session starts a lane's next session, which
 * replays its unacknowledged suffix; a refusal of a topic fails that lane alone; a failure of the
 * publisher or `close` ends it all. `linkEvents` is what the links report to (PublisherLink.ts).
 */
import { Effect } from "effect"
import { publisherFenced } from "../../Metrics.js"
import { BrokerRejected, MessageTooLarge, PublisherClosed, type PublishError } from "../../services/net/Publisher.js"
import type { SessionLimits } from "./Control.js"
import { dropOverLimit, failAckWaiters, failLane, learnOffsets, settleAwaiting } from "./PublisherAcks.js"
import { limitLane, openSessions } from "./PublisherLanes.js"
import type { LaneRef, PublisherLink, PublisherLinkEvents } from "./PublisherLink.js"
import { type Lane, notify, type PublisherState, SessionOnLink } from "./PublisherState.js"
import { stopBounds } from "./PublisherWaits.js"
import { acknowledge, acknowledgeOrdered, afterProgress, dispatch, drainUnrouted, seal } from "./PublisherWindow.js"

/** What the links report to: each event acts on the publisher's state. */
export const linkEvents = (s: PublisherState): PublisherLinkEvents => {
  const laneOf = (ref: LaneRef): Lane => s.lanes[ref.index]!
  return {
    opened: () => {
      for (const lane of s.lanes) openSessions(s, lane)
    },
    sessionOpened: (link, ref, sessionEpoch, limits) => sessionOpened(s, link, laneOf(ref), sessionEpoch, limits),
    sessionRefused: (link, ref, error) => {
      const lane = laneOf(ref)
      if (error.code === "region-full" && leftOut(s, link, lane)) return
      lane.onLink[link.index] = SessionOnLink.none
      refuse(s, lane, lane.opened && error.code === "unknown-topic" ? deletedSince(lane, error) : error)
    },
    sessionUnknown: (link, ref, detail) => sessionLost(s, link, laneOf(ref), detail),
    acked: (link, ref, sessionEpoch, count, orders, level) => {
      const lane = laneOf(ref)
      if (sessionEpoch !== lane.epoch) return
      if (level < s.ackLevel) return acknowledgeOrdered(s, lane, count)
      learnOffsets(lane, orders)
      acknowledge(s, lane, count, link.index)
    },
    fenced: (ref, sessionEpoch, committed) => {
      const lane = laneOf(ref)
      if (sessionEpoch === lane.epoch) fence(s, lane, committed)
    },
    failed: (error) => fail(s, error),
    down: (link, reason) => linkDown(s, link, reason),
    retry: (link) => connectLink(s, link)
  }
}

/**
 * The link's broker has no lane in the topic and the region no room for one, yet another link
 * may carry the lane (its broker has a lane, or may get one): this link is left out of the lane
 * until it reconnects, and the batches the lane sent through it go through the others (a batch
 * it appended before the refusal is recognised as a resend). False when no other link may: the
 * lane then fails with the refusal.
 */
const leftOut = (s: PublisherState, link: PublisherLink, lane: Lane): boolean => {
  const i = link.index
  const others = s.links.some((other) =>
    other.index !== i && other.state !== "idle" && lane.onLink[other.index] !== SessionOnLink.refused
  )
  if (!others) return false
  lane.onLink[i] = SessionOnLink.refused
  if (lane.registrar === link) lane.registrar = undefined
  for (let b = lane.head; b < lane.unacked.length; b++) {
    const batch = lane.unacked[b]!
    if (!batch.done && batch.link === i) dispatch(s, batch)
  }
  settleAwaiting(lane, (batch) => batch.lastLink === i)
  openSessions(s, lane)
  return true
}

/**
 * A topic some session of this lane was opened on is unknown now: it was deleted since (a broker
 * that learns of the delete only when the session comes back, say after a reconnect, can tell
 * no more than that it does not know the name).
 */
const deletedSince = (lane: Lane, error: BrokerRejected) =>
  new BrokerRejected({
    broker: error.broker,
    code: "topic-deleted",
    detail: `topic ${JSON.stringify(lane.topic)} was deleted (${error.detail})`,
    topic: lane.topic
  })

/** Opens a link (its lanes' sessions follow once it is up). */
export const connectLink = (s: PublisherState, link: PublisherLink): void => {
  if (s.failure === undefined) link.open()
}

/**
 * The lane's session is open on `link`: the first to open registered it (the others attach to
 * it now), the topic's batch limit is known (its batches gather up to it from now on), and the
 * batches waiting for a link go out.
 */
const sessionOpened = (
  s: PublisherState,
  link: PublisherLink,
  lane: Lane,
  sessionEpoch: number,
  limits: SessionLimits
) => {
  if (lane.failure !== undefined) return link.dropSession(lane)
  const first = !lane.opened
  lane.opened = true
  limitLane(s, lane, limits.maxBatchBytes ?? Infinity, limits.maxMessageBytes ?? Infinity)
  // What gathered before the topic's limit was known: sealed now, and any batch over the limit dropped (not sent).
  if (first && lane.maxMessageBytes !== Infinity) {
    if (lane.builder.messageCount > 0) seal(s, lane)
    const dropped = dropOverLimit(s, lane, (bytes) =>
      new MessageTooLarge({
        bytes,
        maxBatchBytes: lane.builder.limit,
        topic: lane.topic,
        maxMessageBytes: lane.maxMessageBytes
      }))
    // Their window room is free, and a flush waiting on them has its answer.
    if (dropped) afterProgress(s)
  }
  if (lane.epoch === undefined) {
    lane.epoch = sessionEpoch
    lane.registrar = undefined
  } else if (sessionEpoch !== lane.epoch) {
    // Attached to an epoch the lane has left since (a fence meanwhile): it opens the current one there.
    link.dropSession(lane)
    lane.onLink[link.index] = SessionOnLink.none
    return openSessions(s, lane)
  }
  lane.onLink[link.index] = SessionOnLink.open
  openSessions(s, lane)
  drainUnrouted(s, lane)
}

/**
 * The log refuses the lane's topic: its publishes fail with `error`, its sessions elsewhere are
 * dropped, the other lanes go on. A topic deleted under the lane retires it: the name may be
 * created again, and a later message naming it goes to that topic.
 */
const refuse = (s: PublisherState, lane: Lane, error: BrokerRejected) => {
  if (lane.failure !== undefined) return
  s.log(Effect.logDebug(`publisher ${s.clientId}: ${error.message}`))
  dropSessions(s, lane)
  failLane(s, lane, error)
  afterProgress(s)
}

/** Forgets the lane's sessions on every link (the log ended them). */
const dropSessions = (s: PublisherState, lane: Lane) => {
  lane.registrar = undefined
  for (const link of s.links) {
    if (lane.onLink[link.index] === SessionOnLink.none) continue
    lane.onLink[link.index] = SessionOnLink.none
    link.dropSession(lane)
  }
}

/**
 * The log no longer knows the lane's session (it ended and its record was reused). With
 * nothing unacknowledged a new session carries on; otherwise whether those batches are in
 * the log cannot be known, and the lane fails rather than guess.
 */
const sessionLost = (s: PublisherState, link: PublisherLink, lane: Lane, detail: string) => {
  lane.onLink[link.index] = SessionOnLink.none
  if (lane.unacked.slice(lane.head).some((batch) => !batch.done)) {
    return refuse(
      s,
      lane,
      new BrokerRejected({ broker: `${link.name} ${link.address}`, code: "unknown-session", detail, topic: lane.topic })
    )
  }
  restartSession(s, lane)
}

/** Drops the lane's sessions and registers a new one; batches waiting for a link go out under it. */
const restartSession = (s: PublisherState, lane: Lane) => {
  dropSessions(s, lane)
  lane.epoch = undefined
  lane.orderedSeq = 0
  openSessions(s, lane)
}

/**
 * A link lost its connection: the batches it carried go to the other links now, and the lanes
 * it was registering register elsewhere. Whether it should retry.
 */
const linkDown = (s: PublisherState, link: PublisherLink, reason: string): boolean => {
  s.log(Effect.logDebug(`publisher ${s.clientId}: ${link.name} ${link.address} down: ${reason}`))
  const i = link.index
  for (const lane of s.lanes) {
    lane.onLink[i] = SessionOnLink.none
    if (lane.registrar === link) lane.registrar = undefined
  }
  for (const lane of s.lanes) {
    if (lane.failure !== undefined) continue
    for (let b = lane.head; b < lane.unacked.length; b++) {
      const batch = lane.unacked[b]!
      if (!batch.done && batch.link === i) dispatch(s, batch)
    }
    // Done batches it carried whose offset it had not named yet: it never will.
    settleAwaiting(lane, (batch) => batch.lastLink === i)
    if (lane.epoch === undefined) openSessions(s, lane)
  }
  return s.failure === undefined
}

/**
 * The lane's session ended at `committed` (fenced by a gap, or released after idling): what is
 * left is replayed under a new session, registered now when there is any, else with the lane's
 * next batch.
 */
const fence = (s: PublisherState, lane: Lane, committed: number) => {
  acknowledge(s, lane, committed, undefined)
  lane.counts.fences++
  s.counts.fences++
  publisherFenced.unsafeUpdate(1, [])
  const replay = lane.unacked.slice(lane.head).filter((batch) => !batch.done)
  s.log(
    Effect.logInfo(
      `publisher ${s.clientId}: topic ${lane.topic}: session epoch ${lane.epoch} ended at ${committed}; replaying ${replay.length} batches in a new session`
    )
  )
  replay.forEach((batch, seq) => {
    batch.seq = seq
    batch.link = -1
    // Ordered in the old session means nothing in the new one (the fence covers what was ordered anyway).
    if (batch.ordered) {
      batch.ordered = false
      s.orderedInFlight--
      s.inFlight++
    }
  })
  lane.unacked = replay
  lane.head = 0
  lane.unrouted = [...replay]
  lane.nextSeq = replay.length
  dropSessions(s, lane)
  lane.epoch = undefined
  lane.orderedSeq = 0
  if (replay.length > 0) openSessions(s, lane)
}

/** The publisher fails with `error`: every wait and `publishAcked` caller ends with it, every link is dropped. */
export const fail = (s: PublisherState, error: PublishError): void => {
  if (s.failure !== undefined) return
  s.failure = error
  clearTimeout(s.lingerTimer)
  failAckWaiters(s, error)
  stopBounds(s)
  for (const link of s.links) link.close()
  notify(s)
}

/**
 * Closing: each lane's session is released at once (its CLOSE names how many batches it sent,
 * so the log releases it once those are ordered), not left to idle out; the links close once
 * those are sent.
 */
export const closePublisher = (s: PublisherState): void => {
  for (const lane of s.lanes) {
    if (lane.epoch === undefined || lane.failure !== undefined) continue
    const link = s.links.find((candidate) =>
      candidate.state === "open" && lane.onLink[candidate.index] === SessionOnLink.open
    )
    link?.closeSession(lane, lane.epoch, lane.nextSeq)
  }
  for (const link of s.links) link.close(true)
  fail(s, new PublisherClosed())
}
