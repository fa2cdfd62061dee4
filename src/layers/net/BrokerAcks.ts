/**
 * A publisher session's ACK tracker (`acknowledge`), one per session a connection opened: it
 * follows the session's frontiers and sends cumulative ACK frames (`sendAck`) for the batches
 * the connection carried, a SESSION_FENCED frame once the sequencer fences the session, or the
 * ENDED that ends it (its topic deleted, the log forgot it); the connection goes on.
 */
import { Effect } from "effect"
import type { Socket } from "node:net"
import { brokerAckFrames, brokerFencedFrames } from "../../Metrics.js"
import { levelTwoRefusal, type SessionWatch } from "../../services/log/AckTracker.js"
import {
  type BrokerState,
  type ConnectionSession,
  endOpenSession,
  type PublisherConnection,
  reject
} from "./BrokerState.js"
import { sessionFencedFrame, topicDeleted, WireViolation } from "./Control.js"
import { MAX_ACK_ORDERS } from "./Frame.js"

/**
 * Upper bound of one wait for frontier progress; its expiry only re-reads. The wake itself
 * comes from the doorbell: the sequencer rings every listener after each round that moved a
 * frontier, so an idle connection's tracker sleeps without wake-ups. The bound is a backstop
 * (a head that died between publishing a frontier and ringing) and costs one wake a minute.
 */
const PROGRESS_WAIT_MS = 60_000
/** How long a fenced ACK 2 session waits for the durable tier to cover what was ordered before the broker gives up on it. */
const FENCE_DURABLE_WAIT_MS = 10_000

/** One session's ACK tracker: where it reads, and what it has sent. */
interface AckTrack {
  readonly socket: Socket
  readonly connection: PublisherConnection
  readonly session: ConnectionSession
  readonly watch: SessionWatch
  readonly orderOf: (pbrSeq: number) => number | undefined
  /** The frontier the last ACK named. */
  acked: number
  /** The ordered frontier last sent at level 1 (`orderedAcks`). */
  orderedSent: number
  /** When the session was first seen fenced with batches ordered but not yet on disk (ACK 2). */
  fencedAt: number | undefined
}

/**
 * Sends the cumulative ACK of batches 0..frontier-1 with the total orders of the `pairs`
 * batches in `orders` (with the connection's other frames of this callback); false once the
 * connection is gone. Past one frame's worth of pairs, the first frames repeat the previous
 * frontier (`before`), so the publisher learns every order before the frontier covers its batch.
 */
const sendAck = (
  broker: BrokerState,
  track: AckTrack,
  before: number,
  frontier: number,
  orders: Float64Array,
  pairs: number
): boolean => {
  const { connection, session, socket } = track
  if (socket.destroyed || socket.writableEnded) return false
  for (let from = 0;; from += MAX_ACK_ORDERS) {
    const count = Math.min(MAX_ACK_ORDERS, pairs - from)
    const last = from + count >= pairs
    connection.output.ack(
      session.id,
      session.sessionEpoch,
      last ? frontier : before,
      session.ackLevel,
      orders,
      from,
      count
    )
    broker.counts.ackFrames++
    brokerAckFrames.unsafeUpdate(1, [])
    if (last) return true
  }
}

/**
 * Acknowledge: a session's ACK tracker, run from callbacks (no fiber per wake). It re-reads the
 * session's frontier whenever the topic's progress moves (a standing wait on the doorbell, woken
 * by the rounds that order this broker's batches) and sends the cumulative ACK if it advanced
 * past what this connection was sent and covers a batch this connection carried. After an ACK
 * with batches still in flight it re-checks only after `ackIntervalMs` (0: the next event-loop
 * turn, in which every batch already received is appended), so a fast stream gets one ACK per
 * interval or turn, not one per batch. With nothing in flight it leaves the doorbell and waits
 * for the next batch (`Carried.onCarried`), so rounds for other sessions do not wake its
 * process; a fence is then seen with that batch or at the idle check every PROGRESS_WAIT_MS.
 */
export const acknowledge = (
  broker: BrokerState,
  socket: Socket,
  connection: PublisherConnection,
  session: ConnectionSession
) =>
  Effect.gen(function*() {
    const { acks, brokerId } = broker
    const { clientId, sessionEpoch, topic } = session
    const totalOrder = yield* acks.totalOrders(topic)
    // Resolved once: a wake re-reads the session line with plain calls.
    const watch = yield* acks.watch(topic, clientId, sessionEpoch, brokerId)
    yield* Effect.async<void>((resume) => {
      const track: AckTrack = {
        socket,
        connection,
        session,
        watch,
        orderOf: (pbrSeq) => totalOrder(brokerId, pbrSeq),
        acked: 0,
        orderedSent: 0,
        fencedAt: undefined
      }
      const stop = trackAcks(broker, track, () => resume(Effect.void))
      session.stop = stop
      return Effect.sync(stop)
    })
  }).pipe(
    Effect.catchAll((error) =>
      Effect.logWarning(`broker ${broker.brokerId}: ACK tracker of ${session.topic} stopped: ${error.message}`).pipe(
        Effect.zipRight(
          Effect.sync(() =>
            endOpenSession(
              broker,
              connection,
              session,
              error._tag === "TopicNotFound" || error._tag === "TopicDeleted"
                ? topicDeleted(error.name)
                : new WireViolation({ code: "internal", detail: error.message })
            )
          )
        )
      )
    )
  )

/** One look at the frontiers: what to send and how to wait next. */
const frontierPass = (broker: BrokerState, track: AckTrack): "end" | "sent" | "wait" | { readonly boundMs: number } => {
  const { connection, session, socket, watch } = track
  const { ackLevel, carried, clientId, sessionEpoch, topic } = session
  const end = (code: WireViolation["code"], detail: string) => {
    endOpenSession(broker, connection, session, new WireViolation({ code, detail }))
    return "end" as const
  }
  if (watch.deleted()) {
    // What was acknowledged stands; nothing more will be, and the publisher is told why.
    endOpenSession(broker, connection, session, topicDeleted(topic))
    return "end"
  }
  const frontiers = watch.acks()
  if (!frontiers.known) {
    // Released and its line reused: where it ended is no longer known.
    return end("unknown-session", `session ${clientId}/${sessionEpoch} ended and its record was reused`)
  }
  const frontier = ackLevel === 2 ? frontiers.replicated : frontiers.ordered
  let sent = false
  // Only a frontier past one of this connection's batches: under order 5 the session's frontier
  // also moves with the batches other brokers carry, and their brokers acknowledge those.
  const pairs = ackLevel > 0 && frontier > track.acked ? carried.take(frontier, track.orderOf) : -1
  if (pairs >= 0) {
    const before = track.acked
    track.acked = frontier
    if (!sendAck(broker, track, before, frontier, carried.orders, pairs)) return "end"
    sent = true
  }
  if (
    session.orderedAcks && frontiers.ordered > Math.max(track.orderedSent, track.acked) &&
    carried.highest >= track.orderedSent
  ) {
    // Ordered, not on disk yet: the publisher keeps them for resend, outside its send window.
    track.orderedSent = frontiers.ordered
    if (socket.destroyed || socket.writableEnded) return "end"
    connection.output.ack(session.id, sessionEpoch, frontiers.ordered, 1, carried.orders, 0, 0)
    sent = true
  }
  const refusal = ackLevel === 2
    ? levelTwoRefusal(topic, clientId, sessionEpoch, watch.durableFailure(), frontiers)
    : undefined
  // Level 2 will not move again: the publisher gets a typed refusal, not an ACK timeout (what was acked is on disk).
  if (refusal !== undefined) return end("durability-unavailable", refusal)
  if (frontiers.fenced && ackLevel === 2 && frontiers.replicated < frontiers.ordered) {
    // The fence's frontier is what the publisher counts as done: at ACK 2 it must be on disk as well.
    track.fencedAt ??= performance.now()
    const leftMs = FENCE_DURABLE_WAIT_MS - (performance.now() - track.fencedAt)
    if (leftMs > 0) return { boundMs: leftMs }
    return end(
      "durability-unavailable",
      `session ${clientId}/${sessionEpoch} of topic ${topic} ended with batches ${frontiers.replicated}..${
        frontiers.ordered - 1
      } ordered but not on disk within ${FENCE_DURABLE_WAIT_MS} ms`
    )
  }
  if (frontiers.fenced) {
    // Fenced, or released (closed or idle): the publisher replays what is past the frontier in a new session.
    if (connection.sessions.get(session.id) === session) connection.sessions.delete(session.id)
    connection.output.frame(sessionFencedFrame(session.id, sessionEpoch, frontiers.ordered))
    broker.counts.fencedFrames++
    brokerFencedFrames.unsafeUpdate(1, [])
    return "end"
  }
  return sent ? "sent" : "wait"
}

/** `acknowledge`'s callbacks; calls `ended` once the tracker is over, returns the function that stops it. */
const trackAcks = (broker: BrokerState, track: AckTrack, ended: () => void): () => void => {
  const { session, watch } = track
  const { ackLevel, carried } = session
  let seen = watch.progress()
  let over = false
  /** The standing progress wait while one is registered, and its bound. */
  let standing: (() => void) | undefined
  let standingMs = PROGRESS_WAIT_MS
  /** Set between an ACK and the re-check after `ackIntervalMs` (a timer) or the loop turn (an immediate). */
  let pauseTimer: ReturnType<typeof setTimeout> | undefined
  /** Waiting for the next turn (with the connection's other sessions: one immediate for them all). */
  let pauseTurn = false
  const moved = () => !pauseTurn && pauseTimer === undefined && watch.progress() !== seen
  const onProgress = () => step()
  const boundMs = () => standingMs
  const leave = () => {
    standing?.()
    standing = undefined
  }
  /** Waits for progress, bounded by `ms`; true if it already moved (the re-check after registering). */
  const stand = (ms: number): boolean => {
    if (standing !== undefined && ms !== standingMs) leave()
    standingMs = ms
    if (standing === undefined) standing = watch.standing(moved, onProgress, boundMs)
    return moved()
  }
  const afterPause = () => {
    pauseTimer = undefined
    pauseTurn = false
    step()
  }
  // An idle connection's backstop: one check a PROGRESS_WAIT_MS, not a timer per idle spell.
  const idleCheck = setInterval(() => {
    if (carried.onCarried !== undefined) step()
  }, PROGRESS_WAIT_MS)
  idleCheck.unref()
  const stop = () => {
    if (over) return
    over = true
    leave()
    clearInterval(idleCheck)
    clearTimeout(pauseTimer)
    carried.onCarried = undefined
  }
  const end = () => {
    stop()
    ended()
  }
  const step = (): void => {
    try {
      for (;;) {
        if (over) return
        // Read before the frontiers: a frontier that moves after this read moves the progress past it.
        seen = watch.progress()
        const next = frontierPass(broker, track)
        if (next === "end") return end()
        if (typeof next === "object") {
          if (stand(next.boundMs)) continue
          return
        }
        if (ackLevel > 0 && !carried.inFlight) {
          // Nothing to acknowledge: off the doorbell until a batch comes.
          leave()
          carried.onCarried = onCarried
          return
        }
        if (next === "sent") {
          stand(PROGRESS_WAIT_MS)
          if (broker.settings.ackIntervalMs > 0) pauseTimer = setTimeout(afterPause, broker.settings.ackIntervalMs)
          else {
            pauseTurn = true
            track.connection.output.nextTurn(afterPause)
          }
          return
        }
        if (stand(PROGRESS_WAIT_MS)) continue
        return
      }
    } catch (error) {
      broker.run(Effect.logWarning(`broker ${broker.brokerId}: ACK tracker stopped: ${String(error)}`))
      reject(broker, track.socket, new WireViolation({ code: "internal", detail: String(error) }))
      end()
    }
  }
  /**
   * A batch came after an idle spell. The topic's progress is bumped after every change to its
   * session lines (a frontier, a fence, a release), so while it still reads `seen` — read before
   * the last pass, which found nothing to send — a pass would find the same and stand: the batch
   * only puts the tracker back on the doorbell. With a thousand topics each batch is such a wake.
   */
  const onCarried = () => {
    if (over) return
    if (watch.deleted() || watch.progress() !== seen || stand(PROGRESS_WAIT_MS)) step()
  }
  step()
  return stop
}
