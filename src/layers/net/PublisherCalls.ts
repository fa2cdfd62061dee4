/**
 * The `PublisherShape` calls over a publisher's state: `offer` takes a message into its topic's
 * open batch (sealing it at once when nothing is in flight, else leaving it to gather behind the
 * batches in flight), the publish calls wait for window room or an ACK, `flush` for
 * everything, and the reporting calls read the counts.
 */
import { Effect, type Either } from "effect"
import {
  FIRST_RECORD_OVERHEAD_BYTES,
  InvalidMessage,
  type MessageOptions,
  type MessageRange,
  MessageTooLarge,
  type PublishAck,
  type PublishAckTimeout,
  type PublishError,
  type PublisherShape,
  type PublisherStats,
  type TopicStats
} from "../../services/net/Publisher.js"
import { encodeParts, firstRecordBytes, type MessageParts } from "./BatchPayload.js"
import { invalidValue } from "./MessageCheck.js"
import { publishClock } from "./PublishClock.js"
import { messageTooLarge } from "./PublisherDefaults.js"
import { failureOf, laneFor, passesOn, unacknowledgedOf } from "./PublisherLanes.js"
import { type AckWaiter, type Lane, LATENCY_SAMPLES, type PublisherState, room } from "./PublisherState.js"
import { awaitRoom, boundedWait, brokerCounts, wakeWhen } from "./PublisherWaits.js"
import { armLinger, opened, seal } from "./PublisherWindow.js"

/** The calls of the publisher over `s`. */
export const publisherCalls = (s: PublisherState): PublisherShape => {
  /** A batch may be sealed, or no open batch waits for room (a linger or an ACK sealed them): any message is taken. */
  const writable = awaitRoom(s, () => room(s) || s.fullLanes === 0)
  const flushed = () => isFlushed(s)
  return {
    clientId: s.clientId,
    publish: (payload, message) => publish(s, writable, payload, message),
    publishAcked: (payload, message) => publishAcked(s, writable, payload, message),
    tryPublish: (payload, message) => {
      const parts = checkedParts(payload, message)
      if (parts instanceof InvalidMessage) return parts
      const lane = laneFor(s, message?.topic)
      return lane instanceof Error ? lane : offer(s, lane, payload, parts, publishClock())
    },
    writable,
    flush: (timeoutMs) => flush(s, flushed, timeoutMs),
    stats: () => stats(s),
    unacknowledged: () => unacknowledged(s),
    ackLatencies: (since = 0) => ackLatencies(s, since)
  }
}

/**
 * The message's key and headers encoded, or why the message cannot be published (its value, key
 * or a header not bytes): checked before a lane is made for its topic, nothing allocated besides.
 */
const checkedParts = (payload: Uint8Array, message: MessageOptions | undefined) =>
  invalidValue(payload) ?? encodeParts(message)

/**
 * A message larger than any batch of this publisher, or than its topic takes: the topic's largest
 * message, or its largest batch (a topic of small memory) once its session said them.
 */
const tooLarge = (s: PublisherState, lane: Lane, payload: Uint8Array, parts: MessageParts | undefined) => {
  const bytes = payload.length + (parts === undefined ? 0 : parts.bytes)
  if (bytes <= lane.takesUpTo) return undefined
  const overBatch = messageTooLarge(bytes, s.settings.maxBatchBytes)
  if (overBatch !== undefined) return overBatch
  // Until the session opens, the lane's batch limit is one any topic takes, not this topic's.
  if (bytes <= lane.maxMessageBytes && (!lane.opened || firstRecordBytes(bytes) <= lane.builder.limit)) return undefined
  // The topic's own limit: a message past it would end the topic's session for every message behind it.
  return new MessageTooLarge({
    bytes,
    maxBatchBytes: lane.builder.limit,
    topic: lane.topic,
    maxMessageBytes: Math.min(lane.maxMessageBytes, lane.builder.limit - FIRST_RECORD_OVERHEAD_BYTES)
  })
}

/** The lane's open batch refused a message for want of room: `writable` waits for it. */
const refusedForRoom = (s: PublisherState, lane: Lane): false => {
  if (!lane.full) {
    lane.full = true
    s.fullLanes++
  }
  return false
}

/** Takes a message published at `timestamp` into the lane's open batch, its key and headers encoded in `parts`. */
const offer = (
  s: PublisherState,
  lane: Lane,
  payload: Uint8Array,
  parts: MessageParts | undefined,
  timestamp: number
): boolean | PublishError => {
  if (s.failure !== undefined) return s.failure
  if (lane.failure !== undefined) return failureOf(lane, lane.failure)
  const large = tooLarge(s, lane, payload, parts)
  if (large !== undefined) return large
  const builder = lane.builder
  if (!builder.fits(payload.length, parts === undefined ? 0 : parts.bytes, timestamp)) {
    if (!room(s)) return refusedForRoom(s, lane)
    seal(s, lane)
  }
  const first = builder.messageCount === 0
  builder.add(payload, timestamp, parts)
  s.counts.messages++
  lane.counts.messages++
  if (!first) return true
  opened(s, lane)
  // Nothing in flight: no ACK is coming to clock this batch out, so it goes now: at the end of
  // this synchronous burst (a microtask, no timer), so messages published together go together.
  if (s.inFlight + s.orderedInFlight === 0) {
    if (!s.burstSealQueued) {
      s.burstSealQueued = true
      queueMicrotask(s.sealBurstTask)
    }
  } else if (room(s)) {
    // Only while the window has room: a full one is clocked by the ACK that frees it
    // (`afterProgress` seals), and a linger could not seal before that anyway.
    armLinger(s)
  }
  return true
}

/**
 * `offer` that also registers `resume` as the message's ACK waiter, with its index in
 * the batch it lands in (the waiters of the open batch move to it when it seals).
 */
const publishAckedNow = (
  s: PublisherState,
  lane: Lane,
  payload: Uint8Array,
  parts: MessageParts | undefined,
  timestamp: number,
  resume: AckWaiter["resume"]
): boolean | PublishError => {
  if (s.failure !== undefined) return s.failure
  if (lane.failure !== undefined) return failureOf(lane, lane.failure)
  const large = tooLarge(s, lane, payload, parts)
  if (large !== undefined) return large
  const builder = lane.builder
  const fits = builder.fits(payload.length, parts === undefined ? 0 : parts.bytes, timestamp)
  if (!fits && !room(s)) return refusedForRoom(s, lane)
  // Registered before `offer`, which may seal the batch (taking its waiters along).
  const index = fits ? builder.messageCount : 0
  if (index === 0 && builder.messageCount > 0) seal(s, lane)
  ;(lane.openAckWaiters ??= []).push({ index, resume })
  return offer(s, lane, payload, parts, timestamp)
}

type Writable = Effect.Effect<void, PublishError | PublishAckTimeout>

const publish = (
  s: PublisherState,
  writable: Writable,
  payload: Uint8Array,
  message?: MessageOptions
): Effect.Effect<void, PublishError | PublishAckTimeout> =>
  Effect.suspend(() => {
    const parts = checkedParts(payload, message)
    if (parts instanceof InvalidMessage) return Effect.fail(parts)
    const lane = laneFor(s, message?.topic)
    if (lane instanceof Error) return Effect.fail(lane)
    // Stamped once, at publish: a wait for window room does not move it.
    const timestamp = publishClock()
    return Effect.suspend(function attempt(): Effect.Effect<void, PublishError | PublishAckTimeout> {
      const taken = offer(s, lane, payload, parts, timestamp)
      if (taken === true) return Effect.void
      if (taken !== false) return Effect.fail(taken)
      return Effect.zipRight(writable, Effect.suspend(attempt))
    })
  })

const publishAcked = (
  s: PublisherState,
  writable: Writable,
  payload: Uint8Array,
  message?: MessageOptions
): Effect.Effect<PublishAck, PublishError | PublishAckTimeout> =>
  Effect.suspend(() => {
    const parts = checkedParts(payload, message)
    if (parts instanceof InvalidMessage) return Effect.fail(parts)
    const lane = laneFor(s, message?.topic)
    if (lane instanceof Error) return Effect.fail(lane)
    // Stamped once, at publish: a wait for window room does not move it.
    const timestamp = publishClock()
    return Effect.suspend(function attempt(): Effect.Effect<PublishAck, PublishError | PublishAckTimeout> {
      let settled: Either.Either<PublishAck, PublishError> | undefined
      let resumeCaller: ((result: Either.Either<PublishAck, PublishError>) => void) | undefined
      const taken = publishAckedNow(s, lane, payload, parts, timestamp, (result) => {
        settled = result
        resumeCaller?.(result)
      })
      if (taken === false) return Effect.zipRight(writable, Effect.suspend(attempt))
      if (taken !== true) return Effect.fail(taken)
      if (settled !== undefined) return settled
      return boundedWait<PublishAck>(s, s.settings.ackTimeoutMs, false, (settle) => {
        resumeCaller = settle
        return () => {
          resumeCaller = undefined
        }
      })
    })
  })

/** Everything published is acknowledged or its topic failed (the open batches are sealed as soon as the window has room). */
const isFlushed = (s: PublisherState): boolean => {
  for (let lane = s.gatherFirst; lane !== undefined && room(s); lane = s.gatherFirst) seal(s, lane)
  return s.gatheringCount === 0 && s.inFlight + s.orderedInFlight === 0
}

/**
 * The error of the first topic that failed holding messages not acknowledged (they never will
 * be). A topic deleted under its lane fails one flush only: its name goes on in a new lane, whose
 * messages the next flushes are for.
 */
const failedLane = (s: PublisherState): PublishError | undefined => {
  for (const lane of s.lanes) {
    if (lane.failure !== undefined && !lane.lossReported && unacknowledgedOf(lane).length > 0) {
      if (passesOn(lane)) {
        lane.lossReported = true
        lane.lossToReport = undefined
      }
      return failureOf(lane, lane.failure)
    }
    // What an earlier try at a topic not there yet lost, no flush having said so.
    const earlier = lane.lossToReport
    if (earlier !== undefined) {
      lane.lossToReport = undefined
      return earlier
    }
  }
  return undefined
}

/**
 * Until everything published is acknowledged, failing after `timeoutMs` (no sleeping fiber
 * per flush: a closed loop of publish and flush allocated ~50 KiB of fibers per round trip that
 * way), or with the error of a topic whose messages never will be.
 */
const flush = (
  s: PublisherState,
  flushed: () => boolean,
  timeoutMs: number
): Effect.Effect<void, PublishError | PublishAckTimeout> => {
  const outcome = Effect.suspend(() => {
    const failed = failedLane(s)
    return failed === undefined ? Effect.void : Effect.fail(failed)
  })
  return Effect.suspend(() => {
    if (s.failure !== undefined) return Effect.fail(s.failure)
    if (flushed()) return outcome
    return Effect.zipRight(boundedWait<void>(s, timeoutMs, false, (settle) => wakeWhen(s, flushed, settle)), outcome)
  })
}

const topicStats = (lane: Lane): TopicStats => {
  let inFlight = 0
  for (let i = lane.head; i < lane.unacked.length; i++) if (!lane.unacked[i]!.done) inFlight++
  return {
    topic: lane.topic,
    sessionEpoch: lane.epoch ?? 0,
    ...lane.counts,
    inFlight,
    ...(lane.failure === undefined ? {} : { failure: lane.failure.message })
  }
}

const stats = (s: PublisherState): PublisherStats => ({
  clientId: s.clientId,
  sessionEpoch: s.defaultLane?.epoch ?? 0,
  ...s.counts,
  inFlight: s.inFlight + s.orderedInFlight,
  window: s.window,
  brokers: brokerCounts(s),
  topics: s.lanes.map(topicStats)
})

const unacknowledged = (s: PublisherState): ReadonlyArray<MessageRange> => s.lanes.flatMap(unacknowledgedOf)

const ackLatencies = (s: PublisherState, since: number): Float64Array => {
  const from = Math.max(since, s.latencyCount - LATENCY_SAMPLES)
  const out = new Float64Array(Math.max(0, s.latencyCount - from))
  for (let i = from; i < s.latencyCount; i++) out[i - from] = s.latencies[i % LATENCY_SAMPLES]!
  return out
}
