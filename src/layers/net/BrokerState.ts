/**
 * The broker's shared state, which its parts work over (Broker.ts builds it and wires them):
 * its settings and log services, the users' admission, the sessions' owners, the live
 * connections and the counters of `stats()`; and what every part does to a connection with it:
 * `send` a frame, `reject` the connection with an ERROR frame.
 */
import { type Effect, type Fiber, Metric } from "effect"
import type { Socket } from "node:net"
import { brokerRejected } from "../../Metrics.js"
import type { AckTrackerShape } from "../../services/log/AckTracker.js"
import type { AppenderShape } from "../../services/log/Appender.js"
import type { AckLevel, TopicsShape } from "../../services/log/Topics.js"
import type { BrokerOptions } from "../../services/net/Broker.js"
import type { ServeConnection } from "../../services/net/GroupConnections.js"
import type { adminServer } from "./AdminServer.js"
import type { AuthServer, RateBudget, UserRecord } from "./Auth.js"
import type { Carried } from "./BrokerCarried.js"
import type { ConnectionOutput } from "./BrokerOutput.js"
import { endedFrame, errorFrame, type WireErrorCode, WireViolation } from "./Control.js"
import type { subscriptionServer } from "./SubscriptionServer.js"

export interface Settings {
  readonly host: string
  readonly port: number
  readonly maxBatchBytes: number
  readonly ackIntervalMs: number
  readonly handshakeTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxConnections: number
  readonly maxSessions: number
  readonly writeBufferBytes: number
}

/** A publisher's connection once its HELLO is accepted: who it is, and the sessions it opened (one per topic). */
export interface PublisherConnection {
  readonly clientId: number
  readonly ackLevel: AckLevel
  /** ACK 2: the ordered frontier is acknowledged too, at level 1 (the HELLO asked for it). */
  readonly orderedAcks: boolean
  /** The user it authenticated as (undefined: the broker authenticates nobody): each session's topic is checked against its rights. */
  readonly user: UserRecord | undefined
  /** The rate budgets its batches draw on (the connection's and its user's); empty: unlimited. */
  readonly budgets: ReadonlyArray<RateDraw>
  /** Its open sessions by session id (the client id field of their frames). */
  readonly sessions: Map<number, ConnectionSession>
  /** The highest session id it opened: a frame of a lower id no longer open is of a session that ended (dropped). */
  lastSessionId: number
  /** Its sessions' frames to the client (ACKs, SESSION_OPENED, SESSION_FENCED, ENDED), each callback's written together. */
  readonly output: ConnectionOutput
}

/** One session a publisher's connection opened: registered or attached on SESSION_OPEN. */
export interface ConnectionSession {
  /** Its id on the connection. */
  readonly id: number
  readonly topic: string
  readonly clientId: number
  readonly sessionEpoch: number
  readonly ackLevel: AckLevel
  readonly orderedAcks: boolean
  /** Its topic's largest message (value, key and headers): a batch holding a larger one ends the session. */
  readonly maxMessageBytes: number
  /** The batches it carried that its ACKs have not covered yet. */
  readonly carried: Carried
  /** Stops its ACK tracker (set once the tracker runs). */
  stop: (() => void) | undefined
}

/** One rate budget a session's batches draw on, and whose it is (named by the `rate-limited` ERROR). */
export interface RateDraw {
  readonly budget: RateBudget
  readonly of: "messages" | "bytes"
  readonly whose: string
}

/** What a user holds on this broker: its live connections and its rate budgets. */
export interface UserUse {
  connections: number
  messages: RateBudget | undefined
  bytes: RateBudget | undefined
}

export interface BrokerState {
  readonly brokerId: number
  readonly settings: Settings
  /** Each connection's own rate limits (`BrokerOptions.limits`). */
  readonly limits: BrokerOptions["limits"]
  readonly appender: AppenderShape
  readonly acks: AckTrackerShape
  readonly topics: TopicsShape
  /** The credential file's users, when the broker authenticates its clients. */
  readonly auth: AuthServer | undefined
  /** Per user: live connections and rate budgets, shared by all its connections to this broker. */
  readonly userUse: Map<string, UserUse>
  /**
   * Which user holds each session an authenticated connection registered or attached here, so
   * another user (who learns a session's id and epoch from any DATA frame) cannot attach to it
   * and have its batches taken for the owner's. A session this broker does not know (registered
   * through another broker, or before a restart) is attached only with its token (the WELCOME
   * that registered it carried it), when the credential file has a session key (docs/security.md).
   */
  readonly sessionOwners: Map<string, string>
  /** Serves a connection that opens with SUBSCRIBE (SubscriptionServer.ts). */
  readonly subscriptions: ReturnType<typeof subscriptionServer>
  /** Serves a connection that opens with ADMIN (AdminServer.ts). */
  readonly admin: ReturnType<typeof adminServer>
  /** Serves a connection that opens with GROUP, when the broker was given the region's groups (services/net/GroupConnections.ts). */
  readonly groups: ServeConnection | undefined
  readonly sockets: Set<Socket>
  /** TLS: connections whose handshake is not done yet (their TCP sockets). */
  readonly handshaking: Set<Socket>
  /** What each connection holds of its client's input, for `stats().queuedBytes`. */
  readonly held: Set<() => number>
  readonly counts: {
    accepted: number
    sessions: number
    batches: number
    messages: number
    bytes: number
    ackFrames: number
    fencedFrames: number
  }
  readonly rejected: Partial<Record<WireErrorCode, number>>
  /** Forks an effect into the broker's scope (from callbacks). */
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
}

/** How long a rejected connection may take to read its error frame before it is destroyed. */
const REJECT_GRACE_MS = 1_000

export const countRejection = (broker: BrokerState, code: WireErrorCode) => {
  broker.rejected[code] = (broker.rejected[code] ?? 0) + 1
  brokerRejected.pipe(Metric.tagged("code", code)).unsafeUpdate(1, [])
}

/** Sends the error frame and closes the connection once it is flushed and the client closed its side, or after a grace period. */
export const reject = (broker: BrokerState, socket: Socket, violation: WireViolation) => {
  if (socket.destroyed || socket.writableEnded) return
  countRejection(broker, violation.code)
  socket.end(errorFrame(violation.code, violation.detail))
  setTimeout(() => socket.destroy(), REJECT_GRACE_MS).unref()
}

/** Writes a frame unless the client stopped reading (then the connection is dropped). */
export const send = (broker: BrokerState, socket: Socket, frame: Buffer): boolean => {
  if (socket.destroyed || socket.writableEnded) return false
  if (socket.writableLength > broker.settings.writeBufferBytes) {
    reject(
      broker,
      socket,
      new WireViolation({ code: "slow-consumer", detail: "the client does not read its ACK frames" })
    )
    return false
  }
  socket.write(frame)
  return true
}

/** Ends one session of a publisher's connection with an ENDED frame naming why; the connection and its others go on. */
export const endSession = (
  broker: BrokerState,
  connection: PublisherConnection,
  id: number,
  sessionEpoch: number,
  violation: WireViolation
): void => {
  countRejection(broker, violation.code)
  connection.output.frame(endedFrame(id, sessionEpoch, violation.code, violation.detail))
}

/** Ends an open session of `connection` (its topic was deleted, the log forgot it, …): it leaves the connection, its tracker stops, the client is told. */
export const endOpenSession = (
  broker: BrokerState,
  connection: PublisherConnection,
  session: ConnectionSession,
  violation: WireViolation
): void => {
  if (connection.sessions.get(session.id) !== session) return
  connection.sessions.delete(session.id)
  session.stop?.()
  endSession(broker, connection, session.id, session.sessionEpoch, violation)
}
