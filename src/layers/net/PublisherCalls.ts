/**
 * The `PublisherShape` calls over a publisher's state: `offer` takes a message into the open
 * batch (sealing it at once when nothing is in flight, else leaving it to gather behind the
 * batches in flight), the publish calls wait for window room or an ACK, `flush` for
 * everything, and the reporting calls read the counts.
 */
import { Effect, type Either } from "effect"
import type {
  MessageOptions,
  MessageRange,
  PublishAck,
  PublishAckTimeout,
  PublishError,
  PublisherShape,
  PublisherStats
} from "../../services/net/Publisher.js"
import { encodeParts, type MessageParts } from "./BatchPayload.js"
import { messageTooLarge } from "./PublisherDefaults.js"
import { type AckWaiter, LATENCY_SAMPLES, type PublisherState, room } from "./PublisherState.js"
import { awaitRoom, boundedWait, brokerCounts, wakeWhen } from "./PublisherWaits.js"
import { seal } from "./PublisherWindow.js"

/** The calls of the publisher over `s`. */
export const publisherCalls = (s: PublisherState): PublisherShape => {
  /** A batch may be sealed, or the open one is empty (a linger seal emptied it): any message is taken. */
  const writable = awaitRoom(s, () => room(s) || s.builder.messageCount === 0)
  const flushed = () => isFlushed(s)
  return {
    clientId: s.clientId,
    publish: (payload, message) => publish(s, writable, payload, message),
    publishAcked: (payload, message) => publishAcked(s, writable, payload, message),
    tryPublish: (payload, message) => offer(s, payload, encodeParts(message), Date.now()),
    writable,
    flush: (timeoutMs) => flush(s, flushed, timeoutMs),
    stats: () => stats(s),
    unacknowledged: () => unacknowledged(s),
    ackLatencies: (since = 0) => ackLatencies(s, since)
  }
}

const tooLarge = (s: PublisherState, payload: Uint8Array, parts: MessageParts | undefined) =>
  messageTooLarge(payload.length + (parts === undefined ? 0 : parts.bytes), s.settings.maxBatchBytes)

/** Takes a message published at `timestamp`, its key and headers encoded in `parts`. */
const offer = (
  s: PublisherState,
  payload: Uint8Array,
  parts: MessageParts | undefined,
  timestamp: number
): boolean | PublishError => {
  if (s.failure !== undefined) return s.failure
  const large = tooLarge(s, payload, parts)
  if (large !== undefined) return large
  if (!s.builder.fits(payload.length, parts === undefined ? 0 : parts.bytes, timestamp)) {
    if (!room(s)) return false
    seal(s)
  }
  s.builder.add(payload, timestamp, parts)
  s.counts.messages++
  // Nothing in flight: no ACK is coming to clock this batch out, so it goes now: at the end of
  // this synchronous burst (a microtask, no timer), so messages published together go together.
  if (s.inFlight + s.orderedInFlight === 0) {
    if (!s.burstSealQueued) {
      s.burstSealQueued = true
      queueMicrotask(s.sealBurstTask)
    }
  } else if (s.lingerDue === Infinity && room(s)) {
    // Only while the window has room: a full one is clocked by the ACK that frees it
    // (`afterProgress` seals), and a linger could not seal before that anyway.
    s.lingerDue = performance.now() + s.settings.lingerMs
    s.lingerTimer ??= setTimeout(s.lingerTask, s.settings.lingerMs)
  }
  return true
}

/**
 * `offer` that also registers `resume` as the message's ACK waiter, with its index in
 * the batch it lands in (the waiters of the open batch move to it when it seals).
 */
const publishAckedNow = (
  s: PublisherState,
  payload: Uint8Array,
  parts: MessageParts | undefined,
  timestamp: number,
  resume: AckWaiter["resume"]
): boolean | PublishError => {
  if (s.failure !== undefined) return s.failure
  const large = tooLarge(s, payload, parts)
  if (large !== undefined) return large
  const fits = s.builder.fits(payload.length, parts === undefined ? 0 : parts.bytes, timestamp)
  if (!fits && !room(s)) return false
  // Registered before `offer`, which may seal the batch (taking its waiters along).
  const index = fits ? s.builder.messageCount : 0
  if (index === 0 && s.builder.messageCount > 0) seal(s)
  ;(s.openAckWaiters ??= []).push({ index, resume })
  return offer(s, payload, parts, timestamp)
}

type Writable = Effect.Effect<void, PublishError | PublishAckTimeout>

const publish = (
  s: PublisherState,
  writable: Writable,
  payload: Uint8Array,
  message?: MessageOptions
): Effect.Effect<void, PublishError | PublishAckTimeout> =>
  Effect.suspend(() => {
    // Stamped once, at publish: a wait for window room does not move it.
    const parts = encodeParts(message)
    const timestamp = Date.now()
    return Effect.suspend(function attempt(): Effect.Effect<void, PublishError | PublishAckTimeout> {
      const taken = offer(s, payload, parts, timestamp)
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
    // Stamped once, at publish: a wait for window room does not move it.
    const parts = encodeParts(message)
    const timestamp = Date.now()
    return Effect.suspend(function attempt(): Effect.Effect<PublishAck, PublishError | PublishAckTimeout> {
      let settled: Either.Either<PublishAck, PublishError> | undefined
      let resumeCaller: ((result: Either.Either<PublishAck, PublishError>) => void) | undefined
      const taken = publishAckedNow(s, payload, parts, timestamp, (result) => {
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

/** Everything published is acknowledged (the open batch is sealed as soon as the window has room). */
const isFlushed = (s: PublisherState): boolean => {
  if (s.builder.messageCount > 0 && room(s)) seal(s)
  return s.builder.messageCount === 0 && s.inFlight + s.orderedInFlight === 0
}

/**
 * Until everything published is acknowledged, failing after `timeoutMs` (no sleeping fiber
 * per flush: a closed loop of publish and flush allocated ~50 KiB of fibers per round trip that way).
 */
const flush = (
  s: PublisherState,
  flushed: () => boolean,
  timeoutMs: number
): Effect.Effect<void, PublishError | PublishAckTimeout> =>
  Effect.suspend(() => {
    if (s.failure !== undefined) return Effect.fail(s.failure)
    if (flushed()) return Effect.void
    return boundedWait<void>(s, timeoutMs, false, (settle) => wakeWhen(s, flushed, settle))
  })

const stats = (s: PublisherState): PublisherStats => ({
  clientId: s.clientId,
  sessionEpoch: s.epoch ?? 0,
  ...s.counts,
  inFlight: s.inFlight + s.orderedInFlight,
  window: s.window,
  brokers: brokerCounts(s)
})

/** Not-done batches are all in `unacked` from `head` on, in the order they were sealed (a fence's replay keeps it). */
const unacknowledged = (s: PublisherState): ReadonlyArray<MessageRange> => {
  const ranges: Array<{ from: number; count: number }> = []
  const add = (from: number, count: number) => {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && last.from + last.count === from) last.count += count
    else ranges.push({ from, count })
  }
  for (let i = s.head; i < s.unacked.length; i++) {
    const batch = s.unacked[i]!
    if (!batch.done) add(batch.firstMessage, batch.messageCount)
  }
  if (s.builder.messageCount > 0) add(s.sealedMessages, s.builder.messageCount)
  return ranges
}

const ackLatencies = (s: PublisherState, since: number): Float64Array => {
  const from = Math.max(since, s.latencyCount - LATENCY_SAMPLES)
  const out = new Float64Array(Math.max(0, s.latencyCount - from))
  for (let i = from; i < s.latencyCount; i++) out[i - from] = s.latencies[i % LATENCY_SAMPLES]!
  return out
}
