/**
 * A broker's side of a subscriber connection (docs/protocol.md, "Subscribing"): after the
 * client's SUBSCRIBE, the broker reads the topic's total order from the region through its
 * `LogReader` (any broker serves any topic: the region holds them all) and sends each batch as
 * a DATA frame — a 32-byte header, then the stored payload written to the socket from where it
 * lies, with no copy per message or per batch — as long as the client has credit. The client
 * grants more with CREDIT frames as it consumes, so a slow subscriber slows only its own
 * connection, and the broker queues at most its credit's worth of frames for it.
 *
 * Subscribers hold no retention. The bytes a DATA frame names stay the region's while the
 * kernel takes them: a batch reclaimed before the kernel had all of it may arrive torn, so
 * after each round's writes are flushed the broker checks that every batch it sent is still
 * held, and if one is not it sends `out-of-range` (naming the oldest offset held) and closes.
 * The client checks each DATA frame's crc32c (the publisher's) and reads a mismatch followed by
 * that error as out-of-range: torn data is never delivered.
 *
 * A connection whose client holds the broker up — no credit left, or bytes the kernel does not
 * take — with no byte moving either way for the broker's idle timeout is closed with
 * `idle-timeout`, releasing its named consumer. A subscriber waiting for new messages (credit
 * held, nothing to send) is never idle; a host that vanished there is found by TCP keepalive.
 *
 * A named consumer cut off for holding publishers too long (services/log/Consumers.ts) gets
 * `consumer-cut-off` (its committed offset, the oldest offset held) when the broker next sends,
 * waits or commits for it; the client maps it back to `ConsumerCutOff`.
 *
 * The handshake (SUBSCRIBE, authentication, the cursor and the named consumer's lease) is here;
 * the subscription it serves then (its rounds, credits, commits and idle watch) is ServedSubscription.ts.
 */
import { Effect, Either, type Scope } from "effect"
import type { Socket } from "node:net"
import { ConsumerCutOff, type ConsumersShape } from "../../services/log/Consumers.js"
import { LogOutOfRange, type LogReaderShape } from "../../services/log/LogReader.js"
import { TopicDeleted, type TopicsShape } from "../../services/log/Topics.js"
import { authenticate, authorize, type AuthServer, type UserRecord } from "./Auth.js"
import { decodeControl, KEEPALIVE_DELAY_MS, PROTOCOL_VERSION, WireViolation } from "./Control.js"
import type { Frame } from "./Frame.js"
import { idleWatch, newServed, readCredits, sendRounds } from "./ServedSubscription.js"
import { serveTopics } from "./ServedTopics.js"
import { Subscribe, Subscribed, subscribedFrame } from "./SubscribeFrames.js"
import { openTopic, refuseCutOff, refuseOutOfRange } from "./SubscriptionOpen.js"

export interface SubscriptionServerOptions {
  readonly brokerId: number
  /** The broker's reader of the region; without one, subscriptions are refused. */
  readonly reader: LogReaderShape | undefined
  /** The region's named consumers; without them, subscriptions naming one are refused. */
  readonly consumers: ConsumersShape | undefined
  /** The broker's authentication, when it authenticates its clients: a subscriber needs the right to read the topic. */
  readonly auth: AuthServer | undefined
  /** Counts the connection against its user's limit for the scope's life (the broker's, shared with its publishers); refused past it. */
  readonly holdConnection: (user: UserRecord) => Effect.Effect<unknown, WireViolation, Scope.Scope>
  /** A connection whose client holds the broker up this long with nothing moving is closed (`idle-timeout`); 0 never. */
  readonly idleTimeoutMs: number
  /** The region's topics, which a multi-topic subscription's patterns are matched against; without them, patterns are refused. */
  readonly topics: TopicsShape | undefined
}

/**
 * Serves one subscriber connection whose first frame, `first`, is its SUBSCRIBE; `nextFrame`
 * gives its later frames (the broker's reader admits only CREDIT frames after a SUBSCRIBE).
 * `subscribed` runs as the SUBSCRIBED goes out (the handshake is over: authenticated and
 * joined). Returns when the client closes; fails with the violation the broker should send.
 * The subscription's cursor lives in the scope (the connection's).
 */
export const subscriptionServer = (options: SubscriptionServerOptions) =>
(
  socket: Socket,
  first: Frame,
  nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
  subscribed: () => void
): Effect.Effect<void, WireViolation, Scope.Scope> =>
  Effect.gen(function*() {
    // A vanished host (power loss, partition: no FIN) would otherwise hold its named consumer until the broker restarts.
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS)
    const request = yield* decodeControl(Subscribe, first.payload, "bad-subscribe")
    if (request.protocol !== PROTOCOL_VERSION) {
      return yield* new WireViolation({
        code: "version-mismatch",
        detail: `protocol ${request.protocol}, this broker speaks ${PROTOCOL_VERSION}`
      })
    }
    const { topic } = request
    if ((topic === undefined) === (request.topics === undefined)) {
      return yield* new WireViolation({ code: "bad-subscribe", detail: "a SUBSCRIBE names one of topic and topics" })
    }
    // Who it is comes first: an unauthenticated client learns nothing, not even which topics exist.
    const authenticated = options.auth === undefined
      ? undefined
      : yield* authenticate(
        options.auth,
        request,
        topic === undefined ? undefined : { action: "read", target: topic },
        {
          send: (frame) => void socket.write(frame),
          next: nextFrame
        }
      )
    if (authenticated === null) return
    if (authenticated !== undefined) {
      const denied = request.consumer === undefined
        ? undefined
        : authorize(authenticated.user, "consume", request.consumer)
      if (denied !== undefined) return yield* new WireViolation({ code: "forbidden", detail: denied })
      yield* options.holdConnection(authenticated.user)
    }
    const reader = options.reader
    if (reader === undefined) {
      return yield* new WireViolation({ code: "internal", detail: `broker ${options.brokerId} serves no subscribers` })
    }
    if (topic === undefined) {
      return yield* serveTopics({
        socket,
        reader,
        consumers: options.consumers,
        topics: options.topics,
        request,
        user: authenticated?.user,
        auth: options.auth,
        brokerId: options.brokerId,
        serverSignature: authenticated?.serverSignature,
        idleTimeoutMs: options.idleTimeoutMs,
        nextFrame,
        subscribed
      })
    }
    const opened = yield* Effect.either(
      openTopic(reader, options.consumers, topic, { from: request.from, fromTime: request.fromTime }, request.consumer)
    )
    if (Either.isLeft(opened)) {
      const e = opened.left
      if (e instanceof LogOutOfRange) {
        return refuseOutOfRange(socket, e)
      }
      return yield* e
    }
    const { cursor, lease } = opened.right
    const served = newServed(socket, reader, topic, cursor, lease, request.credit)
    const held = yield* reader.bounds(topic).pipe(Effect.orDie)
    subscribed()
    socket.write(
      subscribedFrame(
        new Subscribed({
          protocol: PROTOCOL_VERSION,
          brokerId: options.brokerId,
          start: cursor.position(),
          ...held,
          ...(authenticated === undefined ? {} : { serverSignature: authenticated.serverSignature })
        })
      )
    )

    const outcome = yield* Effect.either(
      Effect.raceFirst(
        readCredits(served, nextFrame),
        Effect.raceFirst(sendRounds(served), idleWatch(socket, () => served.credit, options.idleTimeoutMs))
      )
    )
    if (Either.isLeft(outcome)) {
      const e = outcome.left
      if (e instanceof LogOutOfRange) return refuseOutOfRange(socket, e)
      if (e instanceof ConsumerCutOff) return refuseCutOff(socket, e)
      if (e instanceof WireViolation) return yield* e
      if (e instanceof TopicDeleted) return yield* new WireViolation({ code: "topic-deleted", detail: e.message })
      return yield* new WireViolation({ code: "internal", detail: e.message })
    }
  })
