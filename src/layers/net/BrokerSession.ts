/**
 * A broker connection from its first frame on (`session`): a SUBSCRIBE goes to the subscription
 * server, an ADMIN to the admin server; a HELLO is the handshake (`handshake`: authentication, admission, then the session
 * registered or attached, and the WELCOME), followed by the session's batches until its CLOSE.
 */
import { Effect } from "effect"
import type { Socket } from "node:net"
import * as Auth from "./Auth.js"
import { acknowledge } from "./BrokerAcks.js"
import { admitPublisher } from "./BrokerAdmission.js"
import { appendFailed, batchStream, DONE, IDLE } from "./BrokerBatches.js"
import { Carried } from "./BrokerCarried.js"
import type { Intake } from "./BrokerIntake.js"
import { type BrokerState, type ConnectionSession, send } from "./BrokerState.js"
import { decodeControl, Hello, PROTOCOL_VERSION, Welcome, welcomeFrame, WireViolation } from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"
import type { InPlaceFrameReader } from "./FrameReader.js"

/** Sessions whose owning user a broker remembers (a few MB at most); far above a region's session lines. */
const MAX_SESSION_OWNERS = 65_536

const welcome = (
  broker: BrokerState,
  sessionEpoch: number,
  serverSignature: string | undefined,
  sessionToken: string | undefined
) =>
  welcomeFrame(
    new Welcome({
      protocol: PROTOCOL_VERSION,
      brokerId: broker.brokerId,
      maxBatchBytes: broker.settings.maxBatchBytes,
      sessionEpoch,
      ...(serverSignature === undefined ? {} : { serverSignature }),
      ...(sessionToken === undefined ? {} : { sessionToken })
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
    if (frame.clientId !== hello.clientId || frame.sessionEpoch !== (hello.sessionEpoch ?? 0)) {
      return yield* new WireViolation({
        code: "bad-handshake",
        detail: "the HELLO header and body name different sessions"
      })
    }
    // Who it is comes first: an unauthenticated client learns nothing, not even which topics exist.
    const authenticated = auth === undefined
      ? undefined
      : yield* Auth.authenticate(auth, hello, { action: "publish", target: hello.topic }, {
        send: (frame) => void send(broker, socket, frame),
        next: nextFrame
      })
    if (authenticated === null) return undefined
    const unknownTopic = (e: { readonly message: string }) =>
      new WireViolation({ code: "unknown-topic", detail: e.message })
    yield* broker.topics.lookup(hello.topic).pipe(Effect.mapError(unknownTopic))
    const budgets = yield* admitPublisher(broker, authenticated?.user)
    const user = authenticated?.user.name
    const sessionEpoch = hello.sessionEpoch === undefined
      ? yield* registerSession(broker, hello)
      : yield* attachSession(broker, hello, hello.sessionEpoch, user)
    if (user !== undefined) claimSession(broker, hello.topic, hello.clientId, sessionEpoch, user)
    const token = user === undefined ? undefined : auth?.sessionToken(hello.topic, hello.clientId, sessionEpoch, user)
    send(broker, socket, welcome(broker, sessionEpoch, authenticated?.serverSignature, token))
    return {
      topic: hello.topic,
      clientId: hello.clientId,
      sessionEpoch,
      ackLevel: hello.ackLevel,
      orderedAcks: hello.ackLevel === 2 && hello.orderedAcks === true,
      budgets
    }
  })

/** A HELLO without an epoch: the log registers a new session and hands out its epoch. */
const registerSession = (broker: BrokerState, hello: Hello) =>
  broker.appender.registerSession(hello.topic, hello.clientId).pipe(
    Effect.mapError((e) =>
      e._tag === "SessionTableFull"
        ? new WireViolation({ code: "session-table-full", detail: e.message })
        : new WireViolation({ code: "unknown-topic", detail: e.message })
    )
  )

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

/** A HELLO naming an epoch: it must be a session the log registered (a fenced or ended one learns so from its ACK tracker), of this user. */
const attachSession = (broker: BrokerState, hello: Hello, sessionEpoch: number, user: string | undefined) =>
  Effect.gen(function*() {
    const { auth } = broker
    const owner = user === undefined
      ? undefined
      : broker.sessionOwners.get(sessionKey(hello.topic, hello.clientId, sessionEpoch))
    const foreign = owner === undefined
      ? user !== undefined && auth !== undefined &&
        !auth.sessionTokenMatches(hello.topic, hello.clientId, sessionEpoch, user, hello.sessionToken)
      : owner !== user
    if (foreign) {
      return yield* new WireViolation({
        code: "forbidden",
        detail: `session ${hello.clientId}/${sessionEpoch} on topic ${hello.topic} belongs to another user${
          owner === undefined ? " (its token does not match)" : ""
        }: user ${user} may attach only its own sessions`
      })
    }
    const known = yield* broker.acks.sessionAcks(hello.topic, hello.clientId, sessionEpoch).pipe(
      Effect.mapError((e) =>
        new WireViolation({ code: e._tag === "TopicNotFound" ? "unknown-topic" : "internal", detail: e.message })
      )
    )
    if (known.known) return sessionEpoch
    return yield* new WireViolation({
      code: "unknown-session",
      detail:
        `session ${hello.clientId}/${sessionEpoch} is not registered on topic ${hello.topic} (it was never, or it ended and its line was reused): register a new one`
    })
  })

export const session = (
  broker: BrokerState,
  socket: Socket,
  intake: Intake,
  reader: InPlaceFrameReader,
  nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
  handshakeDone: (session: ConnectionSession) => void,
  subscribed: () => void
) =>
  Effect.gen(function*() {
    const first = yield* nextFrame
    if (first === undefined) return
    if (first.type === FrameType.SUBSCRIBE) return yield* broker.subscriptions(socket, first, nextFrame, subscribed)
    if (first.type === FrameType.ADMIN) return yield* broker.admin(socket, first, nextFrame, subscribed)
    let opening: Frame | undefined = first
    const session = yield* handshake(
      broker,
      socket,
      Effect.suspend(() => {
        const frame = opening
        opening = undefined
        return frame === undefined ? nextFrame : Effect.succeed(frame)
      })
    )
    if (session === undefined) return
    handshakeDone(session)
    const carried = new Carried()
    yield* Effect.forkScoped(acknowledge(broker, socket, session, carried))
    const batches = batchStream(broker, socket, intake, reader, session, carried)
    for (;;) {
      const outcome = batches.receive()
      // Caught up: from here the data callback receives; this fiber sleeps until it cannot.
      const stop = outcome === IDLE ? yield* batches.direct : outcome
      if (stop === DONE) return
      if (stop instanceof WireViolation) return yield* Effect.fail(stop)
      if (stop.type === FrameType.CLOSE) {
        // After every batch this connection carried: the log releases the session once they are ordered.
        broker.sessionOwners.delete(sessionKey(session.topic, session.clientId, session.sessionEpoch))
        return yield* broker.appender.closeSession(session.topic, session.clientId, session.sessionEpoch, stop.seq)
          .pipe(
            Effect.mapError(appendFailed),
            Effect.asVoid
          )
      }
      yield* batches.appendWaiting(stop)
    }
  })
