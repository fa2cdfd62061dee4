/**
 * A broker's side of a consumer groups' connection (docs/protocol.md, "Consumer groups"), over
 * the broker process's `ConsumerGroups` (the region's): after the client's GROUP and the
 * authentication every connection runs, each GROUP_REQUEST is answered in turn. A `join` makes
 * the broker a member of the group on the client's behalf — a local member of the region, whose
 * line names the broker's process — and sends its deliveries as GROUP_DELIVERY frames (what it
 * took in one wake in one frame); the client settles them with `settle` requests, many in one
 * (what it acks together). The member holds at most its `maxInFlight`
 * unsettled, so that is also what the broker queues for the client.
 *
 * When the connection ends (closed, broken, or refused for a frame that breaks the protocol) the
 * broker leaves its members at once: what they held goes to the group's other members on their
 * next look. When the broker's process dies, its members die with it and the others find them
 * dead by pid and start time, as any member's death.
 *
 * Rights (docs/security.md; GroupRights.ts): every operation on a group needs the read right on its
 * topic and the consume right on the group's name, by the user's rights as they are at each request;
 * the list names only the groups the user may read. A group whose object does not read as one names
 * no topic: every operation on it needs the admin right on every topic (`*`) instead of the read
 * right, checked before it is said to be damaged, and the list (asked for them) names such groups
 * to the users who may delete them.
 */
import { Cause, Chunk, Effect, Either, Fiber, FiberSet, Layer, Schema, type Scope, Stream } from "effect"
import type { Socket } from "node:net"
import type { RpcMethod } from "../../services/control/Rpc.js"
import {
  ConsumerGroups,
  type ConsumerGroupsShape,
  type DeadLetterFailed,
  type Delivery,
  GroupsUnavailable
} from "../../services/groups/ConsumerGroups.js"
import { TopicForbidden } from "../../services/log/Topics.js"
import {
  type GroupConnectionContext,
  GroupConnections,
  type ServeConnection
} from "../../services/net/GroupConnections.js"
import type { UserRecord } from "../net/Auth.js"
import { decodeControl, WireViolation } from "../net/Control.js"
import { type Frame, FrameType } from "../net/Frame.js"
import { acceptRequestConnection, withinClientBound } from "../net/RequestAccept.js"
import { type ArrivedFrame, type RequestsInTurn, requestsInTurn } from "../net/RequestReadAhead.js"
import { eachChunk } from "./ChunkLoop.js"
import { ackAll, LocalDelivery } from "./GroupDelivery.js"
import { deliveryFrames } from "./GroupDeliveryFrame.js"
import {
  CreateGroup,
  DeleteGroup,
  DescribeGroup,
  GROUP_FRAMES,
  GROUP_OPERATIONS,
  groupAnswerFrame,
  groupLeftFrame,
  groupRefusalFrame,
  GroupRequest,
  InvalidGroupRequest,
  JoinGroup,
  LeaveGroup,
  ListGroups,
  MemberLeft,
  PendingOfGroup,
  plainSettleInput,
  SettleDelivery
} from "./GroupProtocol.js"
import { authorized, deleteUnreadableRefusal, listFor, mayCreate, mayName, mayUse, refusedBy } from "./GroupRights.js"

const isMemberLeft = Schema.is(MemberLeft)

/** A member's typed error as it crosses the wire; one that cannot (the log found damaged) says so in words. */
const leftBecause = (error: unknown): typeof MemberLeft.Type =>
  isMemberLeft(error) ? error : new GroupsUnavailable({ reason: `the broker's member failed: ${String(error)}` })

/** What one connection's requests share, once it is open. */
interface ConnectionState {
  readonly groups: ConsumerGroupsShape
  readonly socket: Socket
  /**
   * Its user as the credential file has it now (none: a broker without authentication): each
   * request is held to the rights of the moment; refused once the user was removed.
   */
  readonly userNow: Effect.Effect<UserRecord | undefined, TopicForbidden>
  /** Runs a member on the connection's scope. */
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  /** The members running, each with how it leaves (the others take what it held at once). */
  readonly members: Map<number, Effect.Effect<void>>
  /**
   * Each member's deliveries not settled yet, by id; kept after it left, since one not taken
   * over meanwhile still settles (as a local member's does).
   */
  readonly held: Map<number, Map<number, Delivery>>
  nextDelivery: number
}

const refuse = (socket: Socket, id: number, error: InvalidGroupRequest | GroupsUnavailable) =>
  Effect.sync(() => void socket.write(groupRefusalFrame(id, error)))

const answer = <P, PI, S, SI, F, FI>(
  socket: Socket,
  id: number,
  method: RpcMethod<string, P, PI, S, SI, F, FI>,
  input: unknown,
  handle: (input: P) => Effect.Effect<S, F>,
  /** Reads a well-formed input without the Schema (undefined: decode it with the Schema). */
  plain?: (input: unknown) => P | undefined
): Effect.Effect<void> => {
  const read = plain?.(input)
  const decoded = read === undefined ? Schema.decodeUnknownEither(method.payload)(input) : Either.right(read)
  if (Either.isLeft(decoded)) {
    return refuse(
      socket,
      id,
      new InvalidGroupRequest({ reason: `the input of ${method.tag}: ${decoded.left.message}` })
    )
  }
  return Effect.either(handle(decoded.right)).pipe(
    Effect.map((outcome) => void socket.write(groupAnswerFrame(id, method, outcome))),
    Effect.catchAllDefect((defect) =>
      Effect.zipRight(
        Effect.logWarning("consumer groups request failed", Cause.die(defect)),
        refuse(socket, id, new GroupsUnavailable({ reason: "the broker failed to answer (its log says why)" }))
      )
    )
  )
}

/** Member `id` joins `name` and runs until it leaves, fails, or the connection goes. */
const join = (state: ConnectionState, id: number, name: string, maxInFlight: number | undefined) => {
  const { groups, members, socket } = state
  const deliveriesOf = new Map<number, Delivery>()
  state.held.set(id, deliveriesOf)
  const deliveries = Stream.unwrap(
    state.userNow.pipe(
      Effect.flatMap((user) => authorized(groups, user, name)),
      Effect.as(groups.join(name, maxInFlight === undefined ? {} : { maxInFlight }))
    )
  )
  // Known as running before it starts: a join refused at once removes itself after this.
  let fiber: Fiber.RuntimeFiber<void> | undefined
  members.set(
    id,
    Effect.suspend(() => {
      members.delete(id)
      return fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
    })
  )
  fiber = state.run(
    // What the member took in one wake goes in one frame (several only for big messages).
    eachChunk(deliveries, (chunk) =>
      Effect.sync(() => {
        const taken = Chunk.toReadonlyArray(chunk)
        const first = state.nextDelivery
        for (const delivery of taken) deliveriesOf.set(state.nextDelivery++, delivery)
        for (const frame of deliveryFrames(id, first, taken)) socket.write(frame)
      })).pipe(
        Effect.either,
        Effect.flatMap((outcome) =>
          Effect.sync(() => {
            members.delete(id)
            socket.write(groupLeftFrame(id, Either.isLeft(outcome) ? leftBecause(outcome.left) : undefined))
          })
        )
      )
  )
}

/** Gives back unseen what member's code never pulled: its deliveries after id `pulledThrough`. */
const giveBackUnpulled = (deliveries: Map<number, Delivery> | undefined, pulledThrough: number): void => {
  if (deliveries === undefined) return
  for (const [id, delivery] of deliveries) {
    if (id > pulledThrough && delivery instanceof LocalDelivery) delivery.giveBack()
  }
}

/** Settles the deliveries named alike: acks at once (`ackAll`: a local member's without an effect each), the rest in turn. */
const settle = (
  held: ConnectionState["held"],
  input: typeof SettleDelivery.payload.Type
): Effect.Effect<Array<boolean>, DeadLetterFailed> => {
  const deliveries = held.get(input.member)
  const found = input.deliveries.map((id) => deliveries?.get(id))
  const outcomes = found.map(() => false)
  if (deliveries === undefined) return Effect.succeed(outcomes)
  const settled = (i: number, ok: boolean) => {
    outcomes[i] = ok
    // Settled or not, it is not the member's any more (inProgress keeps it).
    if (input.action !== "inProgress") deliveries.delete(input.deliveries[i]!)
  }
  if (input.action === "ack") {
    const present: Array<Delivery> = []
    const at: Array<number> = []
    for (let i = 0; i < found.length; i++) {
      const delivery = found[i]
      if (delivery === undefined) continue
      present.push(delivery)
      at.push(i)
    }
    return Effect.as(
      Effect.map(ackAll(present), (acked) => acked.forEach((ok, k) => settled(at[k]!, ok))),
      outcomes
    )
  }
  const one = (delivery: Delivery): Effect.Effect<boolean, DeadLetterFailed> => {
    switch (input.action) {
      case "nak":
        // The request's Schema took only a delay a nak can have.
        return Effect.catchTag(delivery.nak(input.delayMs), "InvalidNakDelay", Effect.die)
      case "term":
        return delivery.term(input.reason)
      case "giveBack":
        // The broker's deliveries are its local member's: given back in place, as that member's own.
        return Effect.sync(() => delivery instanceof LocalDelivery && delivery.giveBack())
      default:
        return delivery.inProgress
    }
  }
  return Effect.as(
    Effect.forEach(
      found,
      (delivery, i) => delivery === undefined ? Effect.void : Effect.map(one(delivery), (ok) => settled(i, ok)),
      { discard: true }
    ),
    outcomes
  )
}

/**
 * One connection's requests, once it is open for its user (`userNow`, as the credential file has
 * it at each request): `handle` answers a GROUP_REQUEST; `joined` counts the members it holds.
 * Members run on `run`, the connection's scope. A member joined goes on, and its deliveries
 * settle, whatever its user's rights become (as a subscriber's stream does); every other request
 * is held to the rights of the moment.
 */
const connectionRequests = (
  groups: ConsumerGroupsShape,
  socket: Socket,
  userNow: Effect.Effect<UserRecord | undefined, TopicForbidden>,
  run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
) => {
  const state: ConnectionState = {
    groups,
    socket,
    userNow,
    run,
    members: new Map(),
    held: new Map(),
    nextDelivery: 1
  }
  const { held, members } = state
  const settleHeld = (input: typeof SettleDelivery.payload.Type) => settle(held, input)

  const handle = (
    { arrivedAtMs, frame }: ArrivedFrame,
    readingAhead: RequestsInTurn["readingAhead"]
  ): Effect.Effect<void> => {
    const request = decodeControl(GroupRequest, frame.payload, "bad-handshake")
    if (Either.isLeft(request)) {
      return refuse(socket, frame.seq, new InvalidGroupRequest({ reason: request.left.detail }))
    }
    const { input, operation, timeoutMs } = request.right
    const id = frame.seq
    // What a create or a delete asks of the head ends before its client gives up; the requests
    // sent behind it meanwhile are read as they come, so their bounds count from then.
    const bounded = <A, E>(answering: Effect.Effect<A, E>) =>
      readingAhead(withinClientBound(timeoutMs, arrivedAtMs)(answering))
    switch (operation) {
      case CreateGroup.tag:
        return answer(
          socket,
          id,
          CreateGroup,
          input,
          (spec) =>
            bounded(
              userNow.pipe(
                Effect.flatMap((user) => mayCreate(user, spec)),
                Effect.zipRight(groups.create(spec))
              )
            )
        )
      case DescribeGroup.tag:
        return answer(
          socket,
          id,
          DescribeGroup,
          input,
          ({ name }) => Effect.flatMap(userNow, (user) => authorized(groups, user, name))
        )
      case ListGroups.tag:
        return answer(
          socket,
          id,
          ListGroups,
          input,
          (asked) => Effect.flatMap(userNow, (user) => listFor(groups, user, asked.unreadable === true))
        )
      case PendingOfGroup.tag:
        return answer(
          socket,
          id,
          PendingOfGroup,
          input,
          ({ name }) =>
            userNow.pipe(
              Effect.flatMap((user) => authorized(groups, user, name)),
              Effect.zipRight(groups.pending(name))
            )
        )
      case DeleteGroup.tag:
        return answer(
          socket,
          id,
          DeleteGroup,
          input,
          ({ name }) =>
            Effect.flatMap(userNow, (user) =>
              mayName(user, name).pipe(
                Effect.zipRight(groups.describe(name)),
                Effect.flatMap((info) => mayUse(user, name, info.topic)),
                // A group that does not read as one names no topic to check the read right on.
                Effect.catchTag("GroupCorrupt", (e) => refusedBy(user, deleteUnreadableRefusal(user, e))),
                Effect.zipRight(groups.delete(name)),
                Effect.as(null),
                bounded
              ))
        )
      case JoinGroup.tag: {
        const decoded = Schema.decodeUnknownEither(JoinGroup.payload)(input)
        if (Either.isLeft(decoded)) {
          return refuse(socket, id, new InvalidGroupRequest({ reason: `the input of join: ${decoded.left.message}` }))
        }
        if (held.has(id)) {
          return refuse(
            socket,
            id,
            new InvalidGroupRequest({ reason: `member ${id} joined already on this connection` })
          )
        }
        return Effect.sync(() => join(state, id, decoded.right.name, decoded.right.maxInFlight))
      }
      case SettleDelivery.tag:
        return answer(socket, id, SettleDelivery, input, settleHeld, plainSettleInput)
      case LeaveGroup.tag:
        return answer(
          socket,
          id,
          LeaveGroup,
          input,
          ({ member, pulledThrough }) =>
            Effect.suspend(() => {
              // Given back before the member stops (stopping releases what it holds as delivered).
              if (pulledThrough !== undefined) giveBackUnpulled(held.get(member), pulledThrough)
              return Effect.as(members.get(member) ?? Effect.void, null)
            })
        )
      default:
        return refuse(
          socket,
          id,
          new InvalidGroupRequest({
            reason: `no operation ${JSON.stringify(operation)}: this broker answers ${
              GROUP_OPERATIONS.map((o) => o.tag).join(", ")
            }`
          })
        )
    }
  }

  return { handle, joined: () => members.size }
}

/** Serves one connection over `groups`. */
const serveOver = (groups: ConsumerGroupsShape, context: GroupConnectionContext): ServeConnection =>
(
  socket: Socket,
  first: Frame,
  nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
  opened: () => void
): Effect.Effect<void, WireViolation, Scope.Scope> =>
  Effect.gen(function*() {
    const accepted = yield* acceptRequestConnection(GROUP_FRAMES, context, { socket, first, nextFrame, opened })
    if (accepted === null) return
    // The members run in the connection's scope: it closing (the connection gone) makes each leave at once.
    const { handle, joined } = connectionRequests(
      groups,
      socket,
      accepted.userNow,
      yield* FiberSet.makeRuntime<never>()
    )

    // A member waiting for messages is never idle: only a connection holding none times out.
    const requests = yield* requestsInTurn(nextFrame, () => joined() === 0 ? context.idleTimeoutMs : 0)
    for (;;) {
      const arrived = yield* requests.next
      if (arrived === undefined) return
      if (arrived.frame.type !== FrameType.GROUP_REQUEST) {
        return yield* new WireViolation({ code: "unexpected-frame", detail: "a groups' connection sends requests" })
      }
      yield* handle(arrived, requests.readingAhead)
    }
  })

/** The groups' side of every GROUP connection a broker takes, over this process's `ConsumerGroups`. */
export const layer: Layer.Layer<GroupConnections, never, ConsumerGroups> = Layer.effect(
  GroupConnections,
  Effect.map(ConsumerGroups, (groups) => ({ server: (context) => serveOver(groups, context) }))
)
