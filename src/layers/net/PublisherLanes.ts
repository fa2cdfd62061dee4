/**
 * A publisher's lanes, one per topic it publishes to: found (or made, on a topic's first
 * message) by `laneFor`; the queue of lanes whose open batch waits to be sealed (`gather`,
 * `ungather`, oldest first); and `openSessions`, which opens a lane's session on every open link
 * (registered on one, attached on the others once the log handed out its epoch).
 */
import { Schema } from "effect"
import { TopicName } from "../../services/log/Topics.js"
import { type MessageRange, type PublishError, PublishTopicInvalid } from "../../services/net/Publisher.js"
import { SMALLEST_BATCH_LIMIT } from "../log/TopicShape.js"
import { BatchBuilder } from "./BatchBuilder.js"
import { largestFirstMessage } from "./BatchPayload.js"
import { type Lane, type PublisherState, SessionOnLink } from "./PublisherState.js"

const isTopicName = Schema.is(TopicName)

/**
 * A fresh lane for `topic` (checked), the last of the publisher's; its messages are numbered on
 * from `firstMessage` (after those of a lane of the topic that was retired).
 */
export const newLane = (s: PublisherState, topic: string, firstMessage = 0): Lane => {
  const lane: Lane = {
    topic,
    index: s.lanes.length,
    epoch: undefined,
    opened: false,
    registrar: undefined,
    onLink: new Uint8Array(s.links.length),
    nextSeq: 0,
    unacked: [],
    head: 0,
    builder: new BatchBuilder(s.pool),
    maxMessageBytes: Infinity,
    takesUpTo: 0,
    sealedMessages: firstMessage,
    openedAt: 0,
    gathering: false,
    gatherPrev: undefined,
    gatherNext: undefined,
    full: false,
    unrouted: [],
    openAckWaiters: undefined,
    awaitingOffset: [],
    ackWaitingBatches: 0,
    orderedSeq: 0,
    failure: undefined,
    reported: false,
    lossReported: false,
    earlierLost: [],
    lossToReport: undefined,
    counts: { messages: 0, batches: 0, ackedMessages: 0, fences: 0 }
  }
  // Until its session opens and says the topic's own limit, a batch fits any topic.
  limitLane(s, lane, SMALLEST_BATCH_LIMIT, Infinity)
  s.lanes.push(lane)
  s.laneOf.set(topic, lane)
  s.pool.keepMore(1)
  return lane
}

/**
 * The lane a message naming `topic` goes to (undefined: the default topic's), made on the
 * topic's first message with its session opened on the links; or why there is none.
 */
export const laneFor = (s: PublisherState, topic: string | undefined): Lane | PublishTopicInvalid => {
  if (topic === undefined) {
    const lane = s.defaultLane
    if (lane === undefined) {
      return new PublishTopicInvalid({
        topic,
        reason: "the publisher has no default topic: name one with the message ({ topic }), or open it with `topic`"
      })
    }
    if (kept(s, lane)) return lane
    // The default topic was deleted under its lane and a call was told: its name goes on in the topic that has it now.
    const next = laneFor(s, lane.topic)
    if (!(next instanceof PublishTopicInvalid)) s.defaultLane = next
    return next
  }
  const known = s.laneOf.get(topic)
  if (known !== undefined && kept(s, known)) return known
  if (known === undefined && !isTopicName(topic)) {
    return new PublishTopicInvalid({ topic, reason: "a topic name is 1 to 100 of A-Z a-z 0-9 . _ -" })
  }
  // A retired lane takes no message after its failure: the new one numbers on from its last.
  const lane = newLane(s, topic, known === undefined ? 0 : known.sealedMessages + known.builder.messageCount)
  openSessions(s, lane)
  return lane
}

/** Sets the lane's limits and the largest message all of them take (the topic's batch only once a session opened). */
export const limitLane = (s: PublisherState, lane: Lane, batchLimit: number, maxMessageBytes: number): void => {
  lane.builder.limit = batchLimit
  lane.maxMessageBytes = maxMessageBytes
  lane.takesUpTo = Math.min(
    largestFirstMessage(s.settings.maxBatchBytes),
    maxMessageBytes,
    lane.opened ? largestFirstMessage(batchLimit) : Infinity
  )
}

/** Whether the log refused the lane's topic as deleted under it: the name may be created again, and go on in a new lane. */
const retired = (lane: Lane): boolean =>
  lane.failure?._tag === "BrokerRejected" && lane.failure.code === "topic-deleted"

/**
 * Whether the log did not know the lane's topic when the lane first asked for it (no session
 * of it ever opened): the topic may be created yet, and the lane asks again at its next message.
 */
const notThereYet = (lane: Lane): boolean =>
  !lane.opened && lane.failure?._tag === "BrokerRejected" && lane.failure.code === "unknown-topic"

/** Whether the lane's failure is not for good: once a call was told, a later message naming the topic tries it again. */
export const passesOn = (lane: Lane): boolean => retired(lane) || notThereYet(lane)

/**
 * Whether messages naming the lane's topic still go to it: a lane whose topic was deleted under
 * it gives the name over to a new lane once a call was told; one whose topic was not there yet
 * asks for it again in place (so publishing to a topic before it is created never piles up lanes).
 */
const kept = (s: PublisherState, lane: Lane): boolean => {
  if (!lane.reported) return true
  if (notThereYet(lane)) {
    askAgain(s, lane)
    return true
  }
  return !retired(lane)
}

/**
 * The lane's messages not acknowledged: those its earlier tries lost, its batches not done or
 * lost, and its open batch, adjacent ones merged.
 */
export const unacknowledgedOf = (lane: Lane): ReadonlyArray<MessageRange> => {
  const ranges: Array<{ topic: string; from: number; count: number }> = []
  const add = (from: number, count: number) => {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && last.from + last.count === from) last.count += count
    else ranges.push({ topic: lane.topic, from, count })
  }
  for (const range of lane.earlierLost) add(range.from, range.count)
  // Not-done batches are all in `unacked` from `head` on, in the order they were sealed (a fence's replay keeps it).
  for (let i = lane.head; i < lane.unacked.length; i++) {
    const batch = lane.unacked[i]!
    if (!batch.done || batch.lost) add(batch.firstMessage, batch.messageCount)
  }
  if (lane.builder.messageCount > 0) add(lane.sealedMessages, lane.builder.messageCount)
  return ranges
}

/**
 * The lane, refused a topic the log did not know, tries it again: what it lost stays counted
 * (`earlierLost`, and its failure for the next flush if none reported it), its messages are
 * numbered on, and its session is asked for anew on every open link.
 */
const askAgain = (s: PublisherState, lane: Lane): void => {
  const lost = unacknowledgedOf(lane)
  if (!lane.lossReported && lost.length > 0) lane.lossToReport = lane.failure
  lane.earlierLost = lost.map(({ count, from }) => ({ from, count }))
  if (lane.builder.messageCount > 0) {
    lane.sealedMessages += lane.builder.messageCount
    s.pool.give(lane.builder.seal().buffer)
  }
  lane.unacked = []
  lane.head = 0
  lane.nextSeq = 0
  lane.failure = undefined
  lane.reported = false
  lane.lossReported = false
  lane.registrar = undefined
  lane.onLink.fill(SessionOnLink.none)
  limitLane(s, lane, SMALLEST_BATCH_LIMIT, Infinity)
  openSessions(s, lane)
}

/** The lane's `failure` as a call is handed it: a lane whose failure is not for good then tries the topic again (`kept`). */
export const failureOf = (lane: Lane, failure: PublishError): PublishError => {
  if (passesOn(lane)) lane.reported = true
  return failure
}

/** The lane's open batch took its first message: it joins the end of the queue. */
export const gather = (s: PublisherState, lane: Lane): void => {
  if (lane.gathering) return
  lane.gathering = true
  lane.gatherNext = undefined
  lane.gatherPrev = s.gatherLast
  if (s.gatherLast === undefined) s.gatherFirst = lane
  else s.gatherLast.gatherNext = lane
  s.gatherLast = lane
  s.gatheringCount++
}

/** The lane's open batch was sealed (or dropped): it leaves the queue. */
export const ungather = (s: PublisherState, lane: Lane): void => {
  if (!lane.gathering) return
  lane.gathering = false
  const { gatherPrev: prev, gatherNext: next } = lane
  if (prev === undefined) s.gatherFirst = next
  else prev.gatherNext = next
  if (next === undefined) s.gatherLast = prev
  else next.gatherPrev = prev
  lane.gatherPrev = lane.gatherNext = undefined
  s.gatheringCount--
}

/**
 * Opens the lane's session on every open link that has none: attaches where the epoch is
 * known, or has one link register it (its home link if open: the client id modulo the links)
 * while none is registering. A failed lane or publisher opens nothing.
 */
export const openSessions = (s: PublisherState, lane: Lane): void => {
  if (lane.failure !== undefined || s.failure !== undefined) return
  const links = s.links
  const n = links.length
  for (let k = 0; k < n; k++) {
    const i = (s.sticky + k) % n
    const link = links[i]!
    if (link.state !== "open" || lane.onLink[i] !== SessionOnLink.none) continue
    if (lane.epoch === undefined) {
      if (lane.registrar !== undefined) return
      lane.registrar = link
    }
    lane.onLink[i] = SessionOnLink.opening
    link.openSession(lane, lane.epoch)
  }
}
