/**
 * A broker's side of an admin connection (docs/protocol.md, "Administering topics"): after the
 * client's ADMIN and the authentication every connection runs, each ADMIN_REQUEST is answered in
 * turn. A change (create, delete, trim, purge) goes to the head's coordinator, which the broker joined as it
 * started; a description or the list is read from the region in place, as `cxlog topics` reads it.
 *
 * Each request is checked against the user's rights as they are when it arrives (docs/security.md,
 * "Administering topics"; a user removed since the connection signed in does nothing more): a
 * change needs the admin right on its topic, a description the read or the admin right, and the
 * list names only the topics the user may see; a refusal is `TopicForbidden` and changes nothing. A request the broker cannot read (not JSON, no such operation, an input of the
 * wrong shape) gets `InvalidAdminRequest` and the connection goes on; a frame that breaks the
 * protocol (a bad crc, an oversized or unexpected frame) ends the connection with an ERROR, as on
 * any other connection. A change waits for no head: one asked while the head is gone fails
 * `HeadUnavailable` unsent (nothing changed); one whose head goes while it waits for the
 * coordinator fails `HeadUnavailable` within a quarter second, saying whether the head had read it
 * (then it may have been made) or not (then it is not, and a head that runs again refuses it:
 * control/LapseGuard.ts).
 */
import { Cause, Effect, Either, Schema, type Scope } from "effect"
import type { Socket } from "node:net"
import type { CoordinatorShape, CoordinatorUnavailable } from "../../services/control/Coordinator.js"
import type { RingInspector } from "../../services/control/Rings.js"
import type { RpcMethod } from "../../services/control/Rpc.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import {
  InvalidTopicSpec,
  TopicForbidden,
  TopicName,
  TopicNotFound,
  TopicSpec,
  type TopicsShape,
  TopicsUnavailable,
  withinRegion
} from "../../services/log/Topics.js"
import type { ServeConnection } from "../../services/net/GroupConnections.js"
import { changeFate } from "../control/CoordinatorCalls.js"
import type { HeadWatch } from "../log/HeadWatch.js"
import {
  ADMIN_FRAMES,
  ADMIN_OPERATIONS,
  adminAnswerFrame,
  adminRefusalFrame,
  AdminRequest,
  CreateTopic,
  decodeInput,
  DeleteTopic,
  DescribeTopic,
  InvalidAdminRequest,
  ListTopics,
  PurgeTopic,
  TrimTopic
} from "./AdminProtocol.js"
import { authorize, type AuthServer, type UserRecord } from "./Auth.js"
import { decodeControl, WireViolation } from "./Control.js"
import { FRAME_HEADER_BYTES, FrameType, MAX_ADMIN_REPLY_BYTES } from "./Frame.js"
import { acceptRequestConnection, withinClientBound } from "./RequestAccept.js"
import { type ArrivedFrame, requestsInTurn } from "./RequestReadAhead.js"

export interface AdminServerOptions {
  readonly brokerId: number
  /** The region's topics, as this broker reads them. */
  readonly topics: TopicsShape
  /**
   * Where a change goes: the head's coordinator, when this process joined one; without it,
   * `topics` itself (a broker over the memory log, whose Topics make topics themselves).
   */
  readonly coordinator: CoordinatorShape | undefined
  /** This process's request ring to the coordinator: whether the head read a change it was lost with. */
  readonly requests: RingInspector | undefined
  /** The head, watched with no grace (a change does not wait for a head that is gone); none without a region. */
  readonly head: HeadWatch | undefined
  /** The broker's authentication, when it authenticates its clients: each request needs its right. */
  readonly auth: AuthServer | undefined
  /** Counts the connection against its user's limit for the scope's life (shared with its publishers and subscribers). */
  readonly holdConnection: (user: UserRecord) => Effect.Effect<unknown, WireViolation, Scope.Scope>
  /** A connection that sends no request this long is closed (`idle-timeout`); 0 never. */
  readonly idleTimeoutMs: number
}

/** How often a change waiting for the coordinator looks at the head. */
const HEAD_CHECK_MS = 250

/** Refused unless `user` (none: a broker without authentication) may administer `topic`. */
const mayAdminister = (user: UserRecord | undefined, topic: string): Effect.Effect<void, TopicForbidden> => {
  const denied = user === undefined ? undefined : authorize(user, "admin", topic)
  return denied === undefined ? Effect.void : Effect.fail(new TopicForbidden({ user: user!.name, reason: denied }))
}

/** Why `user` may not see `topic` (read it or administer it), or undefined. */
const hiddenFrom = (user: UserRecord | undefined, topic: string): string | undefined => {
  if (user === undefined) return undefined
  const read = authorize(user, "read", topic)
  const admin = authorize(user, "admin", topic)
  return read === undefined || admin === undefined
    ? undefined
    : `user ${user.name} may neither read nor administer topic ${topic} (its read rights: ${
      user.read.join(", ") || "none"
    }; its admin rights: ${user.admin?.join(", ") || "none"})`
}

const isTopicName = Schema.is(TopicName)

/** The spec a create asks for, checked as Topics.create checks it. */
const topicSpecOf = (input: unknown) =>
  Schema.decodeUnknown(TopicSpec)(input).pipe(Effect.mapError((e) => new InvalidTopicSpec({ reason: e.message })))

/**
 * Answers one request: its input decoded, `run` for its user as the credential file has it now
 * (`userNow`), the result or typed error framed for request `id`.
 */
interface Handler {
  readonly operation: string
  readonly answer: (
    id: number,
    input: unknown,
    userNow: Effect.Effect<UserRecord | undefined, TopicForbidden>
  ) => Effect.Effect<Buffer>
}

const handle = <P, PI, S, SI, F, FI>(
  method: RpcMethod<string, P, PI, S, SI, F | TopicForbidden, FI>,
  run: (input: P, user: UserRecord | undefined) => Effect.Effect<S, F | TopicForbidden>
): Handler => ({
  operation: method.tag,
  answer: (id, input, userNow) => {
    const decoded = decodeInput(method, input)
    return Either.isLeft(decoded)
      ? Effect.succeed(adminRefusalFrame(id, decoded.left))
      : Effect.map(
        Effect.either(Effect.flatMap(userNow, (user) => run(decoded.right, user))),
        (o) => adminAnswerFrame(id, method, o)
      )
  }
})

/** The operations this broker answers (AdminProtocol.ts's, each once). */
const handlers = (options: AdminServerOptions): ReadonlyMap<string, Handler> => {
  const { coordinator, head, requests, topics } = options
  /**
   * A change through the head's coordinator (or `local` without one), failing `HeadUnavailable`
   * once the head is gone rather than waiting for the coordinator's call timeout.
   */
  const change = <A, E>(
    what: string,
    viaCoordinator: (c: CoordinatorShape) => Effect.Effect<A, E | CoordinatorUnavailable>,
    local: Effect.Effect<A, E>
  ): Effect.Effect<A, E | HeadUnavailable | TopicsUnavailable> => {
    if (coordinator === undefined) return local
    const call = viaCoordinator(coordinator).pipe(
      Effect.catchIf(
        (e): e is CoordinatorUnavailable => (e as { readonly _tag?: string })._tag === "CoordinatorUnavailable",
        (e) =>
          Effect.fail(new TopicsUnavailable({ reason: `the head's coordinator did not answer (${what}): ${e.reason}` }))
      )
    ) as Effect.Effect<A, E | TopicsUnavailable>
    if (head === undefined) return call
    const headGone = (fate: () => string): Effect.Effect<never, HeadUnavailable> =>
      Effect.gen(function*() {
        for (;;) {
          yield* Effect.sleep(HEAD_CHECK_MS)
          const lost = head.check(() => `its coordinator ${what} (${fate()}; describe tells)`)
          if (lost !== undefined) return yield* lost
        }
      })
    // Looked at before the change is sent: with the head gone it is not, so the failure is final.
    return Effect.suspend(() => {
      const lost = head.check(() => `its coordinator ${what} (not sent: nothing changed)`)
      if (lost !== undefined) return Effect.fail(lost)
      const fate = requests === undefined
        ? () => "sent: a head that runs again may still make it"
        : changeFate(requests, requests.writer().sequence)
      return Effect.raceFirst(call, headGone(fate))
    })
  }
  const list: ReadonlyArray<Handler> = [
    handle(CreateTopic, (input, user) =>
      Effect.gen(function*() {
        yield* mayAdminister(user, input.name)
        const spec = yield* topicSpecOf(input)
        return yield* change(
          `to create topic ${spec.name}`,
          (c) => c.createTopic(spec),
          withinRegion(topics.create(spec))
        )
      })),
    handle(DeleteTopic, ({ name }, user) =>
      Effect.gen(function*() {
        yield* mayAdminister(user, name)
        // No topic has a name outside the pattern (and the coordinator's call takes none).
        if (!isTopicName(name)) return yield* new TopicNotFound({ name })
        yield* change(`to delete topic ${name}`, (c) => c.deleteTopic(name), withinRegion(topics.delete(name)))
        return null
      })),
    handle(TrimTopic, ({ name, target }, user) =>
      Effect.gen(function*() {
        yield* mayAdminister(user, name)
        if (!isTopicName(name)) return yield* new TopicNotFound({ name })
        return yield* change(
          `to trim topic ${name}`,
          (c) => c.trimTopic(name, target),
          withinRegion(topics.trim(name, target))
        )
      })),
    handle(PurgeTopic, ({ name }, user) =>
      Effect.gen(function*() {
        yield* mayAdminister(user, name)
        if (!isTopicName(name)) return yield* new TopicNotFound({ name })
        return yield* change(`to purge topic ${name}`, (c) => c.purgeTopic(name), withinRegion(topics.purge(name)))
      })),
    handle(DescribeTopic, ({ name }, user) => {
      const hidden = hiddenFrom(user, name)
      return hidden === undefined
        ? withinRegion(topics.describe(name))
        : Effect.fail(new TopicForbidden({ user: user!.name, reason: hidden }))
    }),
    handle(ListTopics, (_, user) =>
      Effect.map(
        withinRegion(topics.overview),
        ({ unreadable, ...overview }) => {
          const unseen = unreadable?.filter((t) => hiddenFrom(user, t.name) === undefined) ?? []
          return {
            ...overview,
            topics: overview.topics.filter((t) => hiddenFrom(user, t.name) === undefined),
            ...(unseen.length === 0 ? {} : { unreadable: unseen })
          }
        }
      ))
  ]
  return new Map(list.map((h) => [h.operation, h]))
}

/** The answer to a request frame: its operation's, or `InvalidAdminRequest` when the broker cannot read it. */
const answer = (
  served: ReadonlyMap<string, Handler>,
  { arrivedAtMs, frame }: ArrivedFrame,
  userNow: Effect.Effect<UserRecord | undefined, TopicForbidden>
): Effect.Effect<Buffer> => {
  const invalid = (reason: string) => Effect.succeed(adminRefusalFrame(frame.seq, new InvalidAdminRequest({ reason })))
  const request = decodeControl(AdminRequest, frame.payload, "bad-handshake")
  if (Either.isLeft(request)) return invalid(request.left.detail)
  const handler = served.get(request.right.operation)
  if (handler === undefined) {
    return invalid(
      `no operation ${JSON.stringify(request.right.operation)}: this broker answers ${
        ADMIN_OPERATIONS.map((o) => o.tag).join(", ")
      }`
    )
  }
  // A result that does not encode is the broker's own fault: the client learns that much, the log the rest.
  return handler.answer(frame.seq, request.right.input, userNow).pipe(
    withinClientBound(request.right.timeoutMs, arrivedAtMs),
    Effect.map((answer) =>
      answer.length - FRAME_HEADER_BYTES <= MAX_ADMIN_REPLY_BYTES ? answer : adminRefusalFrame(
        frame.seq,
        new TopicsUnavailable({
          reason: `the answer is ${
            answer.length - FRAME_HEADER_BYTES
          } bytes, over the ${MAX_ADMIN_REPLY_BYTES} an admin reply carries: describe the topics one by one`
        })
      )
    ),
    Effect.catchAllDefect((defect) =>
      Effect.as(
        Effect.logWarning("admin request failed", Cause.die(defect)),
        adminRefusalFrame(
          frame.seq,
          new TopicsUnavailable({ reason: "the broker failed to answer (its log says why)" })
        )
      )
    )
  )
}

/** Writes `frame`; when the socket's queue is past its mark, waits (at most `timeoutMs`, 0: for ever) until it drains. */
const write = (socket: Socket, frame: Buffer, timeoutMs: number): Effect.Effect<void, WireViolation> =>
  socket.write(frame) || socket.destroyed
    ? Effect.void
    : Effect.async<void, WireViolation>((resume) => {
      const done = () => resume(Effect.void)
      socket.once("drain", done)
      socket.once("close", done)
      const timer = timeoutMs > 0
        ? setTimeout(
          () =>
            resume(
              Effect.fail(
                new WireViolation({ code: "slow-consumer", detail: "the client does not read its admin replies" })
              )
            ),
          timeoutMs
        )
        : undefined
      return Effect.sync(() => {
        clearTimeout(timer)
        socket.off("drain", done)
        socket.off("close", done)
      })
    })

/**
 * Serves one admin connection whose first frame, `first`, is its ADMIN; `nextFrame` gives its
 * later frames (the broker's reader admits only AUTH and ADMIN_REQUEST after an ADMIN). `opened`
 * runs as the ADMIN_READY goes out. Returns when the client closes; fails with the violation the
 * broker should send.
 */
export const adminServer = (options: AdminServerOptions): ServeConnection => {
  const served = handlers(options)
  return (socket, first, nextFrame, opened) =>
    Effect.gen(function*() {
      const accepted = yield* acceptRequestConnection(ADMIN_FRAMES, options, { socket, first, nextFrame, opened })
      if (accepted === null) return
      const idle = options.idleTimeoutMs
      const requests = yield* requestsInTurn(nextFrame, () => idle)
      for (;;) {
        const arrived = yield* requests.next
        if (arrived === undefined) return
        if (arrived.frame.type !== FrameType.ADMIN_REQUEST) {
          return yield* new WireViolation({ code: "unexpected-frame", detail: "an admin connection sends requests" })
        }
        // Any request may wait on the head (a change, or a lookup behind one): those sent meanwhile are read as they come.
        yield* write(socket, yield* requests.readingAhead(answer(served, arrived, accepted.userNow)), idle)
      }
    })
}
