/**
 * A mirror session's publishes in flight, in offset order: at most `capacity` messages sent and
 * not yet settled. Message k of the session expects the stream's last sequence to be
 * `baseSequence + k` and its last message to be the offset before it (the first: `previous`, or
 * the sequence alone when that is undefined), so JetStream stores them contiguously or not at
 * all: a failed publish fails every later one (their expectations no longer hold), and nothing
 * past a gap is stored — not even when another writer's message takes the failed one's sequence.
 * `mirrored` moves over the acknowledged prefix only. The arrays are allocated once per session.
 */
import type { PubAck } from "@nats-io/jetstream"
import { Effect } from "effect"
import type { SubscriberMessage } from "../../services/net/Subscriber.js"
import type { JetStreamTarget } from "./JetStreamTarget.js"
import { mirrorHeaders } from "./MirrorRecord.js"

export interface MirrorWindow {
  readonly capacity: number
  readonly offsets: Float64Array
  readonly timestamps: Float64Array
  /** performance.now() at each publish, for the publish latency. */
  readonly sentAt: Float64Array
  readonly acked: Uint8Array
  /** The stream's last sequence before this session's first publish. */
  readonly baseSequence: number
  /** Messages published this session, those acknowledged in order, and those settled either way. */
  sent: number
  done: number
  settled: number
  /** The first offset not yet in the stream. */
  mirrored: number
  /** The offset published last (before the first publish, the one it expects, if any), which the next publish expects as the stream's last message. */
  previous: number | undefined
  /** The first failure this session (publishing stops at it; the next session resumes from the stream). */
  failure: string | undefined
  /** Runs after every settlement: the waiter for room, or for the window to drain. */
  wake: (() => void) | undefined
  /** Called per acknowledged message, in order: publish latency (µs) and the message's timestamp. */
  readonly onMirrored: (latencyUs: number, timestamp: number) => void
}

export const makeWindow = (
  capacity: number,
  baseSequence: number,
  mirrored: number,
  previous: number | undefined,
  onMirrored: MirrorWindow["onMirrored"]
): MirrorWindow => ({
  capacity,
  offsets: new Float64Array(capacity),
  timestamps: new Float64Array(capacity),
  sentAt: new Float64Array(capacity),
  acked: new Uint8Array(capacity),
  baseSequence,
  sent: 0,
  done: 0,
  settled: 0,
  mirrored,
  previous,
  failure: undefined,
  wake: undefined,
  onMirrored
})

export const inFlight = (w: MirrorWindow): number => w.sent - w.done

/** The acknowledged prefix moves on; each message leaving it is mirrored. */
const advance = (w: MirrorWindow): void => {
  const now = performance.now()
  while (w.done < w.sent && w.acked[w.done % w.capacity] === 1) {
    const slot = w.done % w.capacity
    w.acked[slot] = 0
    w.mirrored = w.offsets[slot]! + 1
    w.onMirrored((now - w.sentAt[slot]!) * 1000, w.timestamps[slot]!)
    w.done++
  }
}

const settle = (w: MirrorWindow, slot: number, expected: number, ack: PubAck): void => {
  w.settled++
  // A duplicate at the expected sequence is this offset stored by an earlier attempt: it is there, once.
  if (ack.seq === expected) {
    w.acked[slot] = 1
    advance(w)
  } else {
    w.failure ??= `JetStream stored offset ${w.offsets[slot]} at sequence ${ack.seq}, expected ${expected}${
      ack.duplicate ? " (a duplicate)" : ""
    }`
  }
  w.wake?.()
}

const fail = (w: MirrorWindow, slot: number, error: unknown): void => {
  w.settled++
  w.failure ??= `publishing offset ${w.offsets[slot]}: ${error instanceof Error ? error.message : String(error)}`
  w.wake?.()
}

/** Publishes one message (the caller made room); its settlement updates the window. */
export const publishOne = (w: MirrorWindow, target: JetStreamTarget, message: SubscriberMessage): void => {
  const slot = w.sent % w.capacity
  const expectedLast = w.baseSequence + w.sent
  w.offsets[slot] = message.offset
  w.timestamps[slot] = message.timestamp
  w.sentAt[slot] = performance.now()
  w.sent++
  // The client encodes the message before publish returns, so the batch's views need not outlive this call.
  const previous = w.previous
  w.previous = message.offset
  target.publish(message.payload, mirrorHeaders(message), message.offset, expectedLast, previous).then(
    (ack) => settle(w, slot, expectedLast + 1, ack),
    (error: unknown) => fail(w, slot, error)
  )
}

/** Resumes once `ready(w)` holds, re-checked at every settlement. */
export const awaitWindow = (w: MirrorWindow, ready: (w: MirrorWindow) => boolean): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (ready(w)) return resume(Effect.void)
    w.wake = () => {
      if (!ready(w)) return
      w.wake = undefined
      resume(Effect.void)
    }
    return Effect.sync(() => {
      w.wake = undefined
    })
  })

/** Room for more: at most half the window in flight (one wait per half window, not per message), or a failure. */
export const hasRoom = (w: MirrorWindow): boolean => w.failure !== undefined || inFlight(w) <= w.capacity >> 1
/** Every publish settled. */
export const drained = (w: MirrorWindow): boolean => w.settled === w.sent
