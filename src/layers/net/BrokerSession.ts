/**
 * A broker connection from its first frame on (`session`): a SUBSCRIBE goes to the subscription
 * server, an ADMIN to the admin server; a HELLO is a publisher's handshake (`handshake`:
 * authentication, admission, the WELCOME), followed by its sessions — each opened by a
 * SESSION_OPEN (`openSession`: the user's right to the topic, then the session registered or
 * attached, and SESSION_OPENED), its batches and its CLOSE — until the client ends the connection.
 */
import { Effect } from "effect"
import type { Socket } from "node:net"
import * as Auth from "./Auth.js"
import { acknowledge } from "./BrokerAcks.js"
import { admitPublisher } from "./BrokerAdmission.js"
import { appendFailed, batchStream, DONE, IDLE } from "./BrokerBatches.js"
import { Carried } from "./BrokerCarried.js"
import type { Intake } from "./BrokerIntake.js"
import { ConnectionOutput } from "./BrokerOutput.js"
import { type BrokerState, type ConnectionSession, endSession, type PublisherConnection, send } from "./BrokerState.js"
import {
  decodeControl,
  Hello,
  PROTOCOL_VERSION,
  SessionOpen,
  sessionOpenedFrame,
  topicDeleted,
  Welcome,
  welcomeFrame,
  WireViolation
} from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"
import type { InPlaceFrameReader } from "./FrameReader.js"

/** Sessions whose owning user a broker remembers (a few MB at most); far above a region's session lines. */
const MAX_SESSION_OWNERS = 65_536

const welcome = (broker: BrokerState, serverSignature: string | undefined) =>
  welcomeFrame(
    new Welcome({
      protocol: PROTOCOL_VERSION,
      brokerId: broker.brokerId,
      maxBatchBytes: broker.settings.maxBatchBytes,
      maxSessions: broker.settings.maxSessions,
      ...(serverSignature === undefined ? {} : { serverSignature })
    })
  )

const handshake = (broker: BrokerState, socket: Socket, nextFrame: Effect.Effect<Frame | undefined, WireViolation>) =>
  Effect.gen(function*() {
    const { auth } = broker
    const frame = yield* nextFrame
    if (frame === undefined) return undefined
    if (frame.type !== FrameType.HELLO) {
      return yield* new WireViolation({ code: "unexpected-frame", detail: "the first frame must be HELLO" })
    }
    const hello = yield* decodeControl(Hello, frame.payload, "bad-handshake")
    if (hello.protocol !== PROTOCOL_VERSION) {
      return yield* new WireViolation({
        code: "version-mismatch",
        detail: `protocol ${hello.protocol}, this broker speaks ${PROTOCOL_VERSION}`
      })
    }
    if (frame.clientId !== hello.clientId) {
      return yield* new WireViolation({
        code: "bad-handshake",
        detail: "the HELLO header and body name different clients"
      })
    }
    const authenticated = auth === undefined
      ? undefined
      : yield* Auth.authenticate(auth, hello, undefined, {
        send: (frame) => void send(broker, socket, frame),
        next: nextFrame
      })
    if (authenticated === null) return undefined
    const budgets = yield* admitPublisher(broker, authenticated?.user)
    send(broker, socket, welcome(broker, authenticated?.serverSignature))
    const connection: PublisherConnection = {
      clientId: hello.clientId,
      ackLevel: hello.ackLevel,
      orderedAcks: hello.ackLevel === 2 && hello.orderedAcks === true,
      user: authenticated?.user,
      budgets,
      sessions: new Map(),
      lastSessionId: 0,
      output: new ConnectionOutput((frames) => send(broker, socket, frames), () => socket.writableLength)
    }
    return connection
  })

/** `BrokerState.sessionOwners`' key of a session. */
const sessionKey = (topic: string, clientId: number, sessionEpoch: number) => `${topic}/${clientId}/${sessionEpoch}`

const claimSession = (broker: BrokerState, topic: string, clientId: number, sessionEpoch: number, user: string) => {
  const { sessionOwners } = broker
  const key = sessionKey(topic, clientId, sessionEpoch)
  if (sessionOwners.has(key)) return
  // Bounded: the oldest claims go first (their sessions ended long ago, or are claimed again on their next attach).
  if (sessionOwners.size >= MAX_SESSION_OWNERS) sessionOwners.delete(sessionOwners.keys().next().value!)
  sessionOwners.set(key, user)
}

/** Why a SESSION_OPEN's session cannot be: the session's own end (an ENDED: the connection goes on). */
class SessionRefusal {
  constructor(readonly violation: WireViolation) {}
}

const refused = (code: WireViolation["code"], detail: string) =>
  Effect.fail(new SessionRefusal(new WireViolation({ code, detail })))

/** A SESSION_OPEN naming no epoch: the log registers a new session and hands out its epoch. */
const registerSession = (broker: BrokerState, topic: string, clientId: number) =>
  broker.appender.registerSession(topic, clientId).pipe(
    Effect.catchAll((e) =>
      refused(
        e._tag === "SessionTableFull"
          ? "session-table-full"
          : e._tag === "TopicDeleted"
          ? "topic-deleted"
          : e._tag === "BatchRejected"
          ? e.regionFull === true ? "region-full" : "internal"
          : "unknown-topic",
        e.message
      )
    )
  )

/** A SESSION_OPEN naming an epoch: it must be a session the log registered (a fenced or ended one learns so from its ACK tracker), of this user. */
const attachSession = (
  broker: BrokerState,
  open: SessionOpen,
  clientId: number,
  sessionEpoch: number,
  user: string | undefined
) =>
  Effect.gen(function*() {
    const { auth } = broker
    const owner = user === undefined
      ? undefined
      : broker.sessionOwners.get(sessionKey(open.topic, clientId, sessionEpoch))
    const foreign = owner === undefined
      ? user !== undefined && auth !== undefined &&
        !auth.sessionTokenMatches(open.topic, clientId, sessionEpoch, user, open.sessionToken)
      : owner !== user
    if (foreign) {
      return yield* refused(
        "forbidden",
        `session ${clientId}/${sessionEpoch} on topic ${open.topic} belongs to another user${
          owner === undefined ? " (its token does not match)" : ""
        }: user ${user} may attach only its own sessions`
      )
    }
    // The session was registered on the topic, so a topic no longer found was deleted since.
    const known = yield* broker.acks.sessionAcks(open.topic, clientId, sessionEpoch).pipe(
      Effect.catchAll((e) =>
        e._tag === "TopicNotFound"
          ? Effect.fail(new SessionRefusal(topicDeleted(open.topic)))
          : refused("internal", e.message)
      )
    )
    if (known.known) return sessionEpoch
    return yield* refused(
      "unknown-session",
      `session ${clientId}/${sessionEpoch} is not registered on topic ${open.topic} (it was never, or it ended and its line was reused): register a new one`
    )
  })

/** The most sessions of one topic a connection holds open at once. */
const SESSIONS_PER_TOPIC = 8

/**
 * A SESSION_OPEN: the session named is registered or attached, its ACK tracker started and
 * SESSION_OPENED sent; a session the log or the user's rights refuse gets an ENDED naming why,
 * and the connection goes on. A session id that does not follow the last one is the
 * connection's violation.
 */
const openSession = (broker: BrokerState, socket: Socket, connection: PublisherConnection, frame: Frame) =>
  Effect.gen(function*() {
    const id = frame.clientId
    if (id <= connection.lastSessionId) {
      return yield* new WireViolation({
        code: "bad-handshake",
        detail:
          `SESSION_OPEN of session id ${id}: a connection's session ids increase (the last was ${connection.lastSessionId})`
      })
    }
    connection.lastSessionId = id
    const open = yield* decodeControl(SessionOpen, frame.payload, "bad-handshake")
    const opening = Effect.gen(function*() {
      if (connection.sessions.size >= broker.settings.maxSessions) {
        return yield* refused(
          "too-many-sessions",
          `a connection holds at most ${broker.settings.maxSessions} sessions open (CXLOG_BROKER_MAX_SESSIONS): close some, or publish through another connection`
        )
      }
      // The rights of the moment (a user narrowed or removed since the connection signed in opens nothing more).
      // A client needs a session of a topic on a connection (two across a fence): more would only
      // take the topic's session lines from its other publishers, which they hold until they idle out.
      let ofTopic = 0
      for (const other of connection.sessions.values()) if (other.topic === open.topic) ofTopic++
      if (ofTopic >= SESSIONS_PER_TOPIC) {
        return yield* refused(
          "too-many-sessions",
          `a connection holds at most ${SESSIONS_PER_TOPIC} sessions of one topic (${open.topic}): a publisher needs one`
        )
      }
      const denied = connection.user === undefined
        ? undefined
        : broker.auth === undefined
        ? Auth.authorize(connection.user, "publish", open.topic)
        : broker.auth.deniedNow(connection.user, "publish", open.topic)
      if (denied !== undefined) return yield* refused("forbidden", denied)
      yield* broker.topics.lookup(open.topic).pipe(
        Effect.catchAll((e) =>
          // A session the log registered names a topic that was there: not found now, it was deleted.
          frame.sessionEpoch === 0
            ? refused("unknown-topic", e.message)
            : Effect.fail(new SessionRefusal(topicDeleted(open.topic)))
        )
      )
      const user = connection.user?.name
      const sessionEpoch = frame.sessionEpoch === 0
        ? yield* registerSession(broker, open.topic, connection.clientId)
        : yield* attachSession(broker, open, connection.clientId, frame.sessionEpoch, user)
      if (user !== undefined) claimSession(broker, open.topic, connection.clientId, sessionEpoch, user)
      // The topic's own limits (its batches within the broker's): the client seals its batches of the
      // topic within them and refuses a message over the topic's largest before sending it.
      const topic = yield* broker.appender.limits(open.topic).pipe(Effect.orElseSucceed(() => undefined))
      const maxBatchBytes = Math.min(topic?.maxBatchBytes ?? Infinity, broker.settings.maxBatchBytes)
      return {
        sessionEpoch,
        limits: topic === undefined ? { maxBatchBytes } : { maxBatchBytes, maxMessageBytes: topic.maxMessageBytes }
      }
    })
    const outcome = yield* Effect.either(opening)
    if (outcome._tag === "Left") {
      const { violation } = outcome.left
      endSession(broker, connection, id, frame.sessionEpoch, violation)
      return
    }
    const { limits, sessionEpoch } = outcome.right
    const session: ConnectionSession = {
      id,
      topic: open.topic,
      clientId: connection.clientId,
      sessionEpoch,
      ackLevel: connection.ackLevel,
      orderedAcks: connection.orderedAcks,
      maxMessageBytes: limits.maxMessageBytes ?? Infinity,
      carried: new Carried(),
      stop: undefined
    }
    connection.sessions.set(id, session)
    broker.counts.sessions++
    const user = connection.user?.name
    const token = user === undefined
      ? undefined
      : broker.auth?.sessionToken(open.topic, connection.clientId, sessionEpoch, user)
    connection.output.frame(sessionOpenedFrame(id, sessionEpoch, token, limits))
    yield* Effect.forkScoped(acknowledge(broker, socket, connection, session))
  })

/** A CLOSE: after every batch the session carried on this connection, the log releases it once they are ordered. */
const closeSession = (broker: BrokerState, connection: PublisherConnection, frame: Frame) =>
  Effect.gen(function*() {
    const session = connection.sessions.get(frame.clientId)
    // A session that ended meanwhile (its ENDED crossed the CLOSE): nothing to release.
    if (session === undefined || session.sessionEpoch !== frame.sessionEpoch) return
    connection.sessions.delete(session.id)
    session.stop?.()
    broker.sessionOwners.delete(sessionKey(session.topic, session.clientId, session.sessionEpoch))
    yield* broker.appender.closeSession(session.topic, session.clientId, session.sessionEpoch, frame.seq).pipe(
      Effect.catchTags({
        TopicDeleted: () => Effect.void,
        TopicNotFound: () => Effect.void
      }),
      Effect.mapError(appendFailed)
    )
  })

export const session = (
  broker: BrokerState,
  socket: Socket,
  intake: Intake,
  reader: InPlaceFrameReader,
  nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
  handshakeDone: (connection: PublisherConnection) => void,
  subscribed: () => void
) =>
  Effect.gen(function*() {
    const first = yield* nextFrame
    if (first === undefined) return
    if (first.type === FrameType.SUBSCRIBE) return yield* broker.subscriptions(socket, first, nextFrame, subscribed)
    if (first.type === FrameType.ADMIN) return yield* broker.admin(socket, first, nextFrame, subscribed)
    if (first.type === FrameType.GROUP) {
      if (broker.groups === undefined) {
        return yield* new WireViolation({
          code: "internal",
          detail: `broker ${broker.brokerId} serves no consumer groups (it was started without the region's groups)`
        })
      }
      return yield* broker.groups(socket, first, nextFrame, subscribed)
    }
    let opening: Frame | undefined = first
    const connection = yield* handshake(
      broker,
      socket,
      Effect.suspend(() => {
        const frame = opening
        opening = undefined
        return frame === undefined ? nextFrame : Effect.succeed(frame)
      })
    )
    if (connection === undefined) return
    handshakeDone(connection)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const open of connection.sessions.values()) open.stop?.()
        connection.sessions.clear()
        // What its sessions were told goes out before an ERROR that may end the connection.
        connection.output.flush()
      })
    )
    const batches = batchStream(broker, socket, intake, reader, connection)
    for (;;) {
      const outcome = batches.receive()
      // Caught up: from here the data callback receives; this fiber sleeps until it cannot.
      const stop = outcome === IDLE ? yield* batches.direct : outcome
      if (stop === DONE) return
      if (stop instanceof WireViolation) return yield* Effect.fail(stop)
      if (stop.type === FrameType.SESSION_OPEN) yield* openSession(broker, socket, connection, stop)
      else if (stop.type === FrameType.CLOSE) yield* closeSession(broker, connection, stop)
      else yield* batches.appendWaiting(stop)
    }
  })
