/**
 * The ConsumerGroups service through brokers (docs/consumers.md, "Remote members"): from a
 * process that does not map the region, over one groups' connection to any broker
 * (GroupLink.ts). The connection is made at the first call, to the first broker in the order
 * given that takes it, and made again the same way by the first call after it broke
 * (net/RemoteLink.ts).
 *
 * A member joined here is a member the broker holds for this connection, a local member of the
 * region. Its deliveries are settled through the broker; when the connection breaks, the broker
 * leaves the member (or died with it), and what it held goes to the group's other members at
 * once — settling it from here then answers `false`. The member itself then joins again through
 * the next broker that takes a connection; when none does, its stream fails `GroupsUnavailable`.
 */
import { Effect, Either, FiberSet, Layer, Queue, Schema, Scope, Stream } from "effect"
import type { RpcMethod } from "../../services/control/Rpc.js"
import {
  ConsumerGroups,
  type ConsumerGroupsShape,
  type Delivery,
  GroupCorrupt,
  type GroupJoinError,
  GroupNotFound,
  GroupsUnavailable,
  InvalidGroupSpec
} from "../../services/groups/ConsumerGroups.js"
import { InvalidObjectName, objectNameProblem } from "../../services/region/Directory.js"
import type { Credentials } from "../net/Auth.js"
import { formatAddress } from "../net/BrokerAddress.js"
import { FrameType } from "../net/Frame.js"
import { remoteLink, type RemoteLinkOptions } from "../net/RemoteLink.js"
import { chunkLoop } from "./ChunkLoop.js"
import { readDeliveries } from "./GroupDeliveryFrame.js"
import { type GroupLink, openGroupLink } from "./GroupLink.js"
import {
  CreateGroup,
  DeleteGroup,
  DescribeGroup,
  InvalidGroupRequest,
  JoinGroup,
  LeaveGroup,
  ListGroups,
  MemberLeft,
  PendingOfGroup
} from "./GroupProtocol.js"
import { groupSpecProblem, lookedUp, nameRefusal, refuseJoin } from "./GroupSpecs.js"
import { RemoteDelivery, RemoteSettling } from "./RemoteDelivery.js"

export interface RemoteGroupsOptions extends RemoteLinkOptions {
  /** How long a call (a create, a settle) waits for its answer. Default 30 s. */
  readonly requestTimeoutMs?: number
  /**
   * Authenticate as this user (it needs the read right on the group's topic and the consume right
   * on the group's name); see RemoteLinkOptions for the local secret file.
   */
  readonly credentials?: Credentials | undefined
}

/** A request the broker could not read is this client's fault, not the caller's: it reads as the groups being unavailable. */
const unreadRequest = <E>(e: E): Exclude<E, InvalidGroupRequest> | GroupsUnavailable =>
  e instanceof InvalidGroupRequest
    ? new GroupsUnavailable({ reason: `the broker refused the request: ${e.reason}` })
    : e as Exclude<E, InvalidGroupRequest>

/** A damaged group told through `brokers` names the delete that works from here: through them. */
const toldThrough = (brokers: string) => <E>(e: E): E =>
  e instanceof GroupCorrupt ? new GroupCorrupt({ group: e.group, reason: e.reason, brokers }) as E : e

const decodeLeft = Schema.decodeUnknownEither(Schema.parseJson(MemberLeft))
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** What a member's queue holds: a frame's deliveries, the link breaking under it, or its end (an error, or none). */
type MemberEvent =
  | { readonly _tag: "deliveries"; readonly deliveries: Array<RemoteDelivery> }
  | { readonly _tag: "broken"; readonly why: GroupsUnavailable }
  | { readonly _tag: "left"; readonly why: GroupJoinError | undefined }

/** The ConsumerGroups service over `options.brokers`; the connection closes with the scope. */
export const makeRemote = (options: RemoteGroupsOptions): Effect.Effect<ConsumerGroupsShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connected = yield* remoteLink(
      options,
      openGroupLink,
      (reason) => new GroupsUnavailable({ reason }),
      "the groups' connection"
    )
    const seenHere = toldThrough(options.brokers.map(formatAddress).join(","))
    const call = <P, PI, S, SI, F, FI>(method: RpcMethod<string, P, PI, S, SI, F, FI>, input: P) =>
      Effect.flatMap(connected, (l) => l.call(method, input)).pipe(
        Effect.mapError((e) => seenHere(unreadRequest(e)))
      )
    // Members' leaves not yet answered. A stream's end does not wait for its leave, but the
    // connection closes only once each is answered (or its call timed out, `requestTimeout`):
    // closed first, the leave is never sent, and the broker, leaving the member for the closed
    // connection, hands on as delivered (counted) what the leave would have given back unseen.
    const leaving = yield* FiberSet.make()
    yield* Effect.addFinalizer(() => FiberSet.awaitEmpty(leaving))

    /** One membership over one link: its events into `queue`, until it leaves, breaks or is interrupted. */
    const joinOver = (
      over: GroupLink,
      name: string,
      topic: string,
      maxInFlight: number | undefined,
      queue: Queue.Queue<MemberEvent>,
      pulled: { through: number }
    ) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          // A new membership (a new link's ids start again): nothing of it handed out yet.
          pulled.through = 0
          let settling: RemoteSettling | undefined
          const id = over.send(JoinGroup, { name, ...(maxInFlight === undefined ? {} : { maxInFlight }) }, {
            frame: (frame) => {
              if (frame.type === FrameType.GROUP_DELIVERY) {
                const messages = readDeliveries(frame.payload, frame.messageCount)
                if (typeof messages === "string") {
                  return Queue.unsafeOffer(queue, { _tag: "broken", why: new GroupsUnavailable({ reason: messages }) })
                }
                settling ??= new RemoteSettling(over, id!, name, topic)
                const deliveries = messages.map((message, i) => new RemoteDelivery(settling!, frame.seq + i, message))
                return Queue.unsafeOffer(queue, { _tag: "deliveries", deliveries })
              }
              if (frame.payload.length === 0) return Queue.unsafeOffer(queue, { _tag: "left", why: undefined })
              const why = decodeLeft(decoder.decode(frame.payload))
              Queue.unsafeOffer(queue, {
                _tag: "left",
                why: Either.isRight(why)
                  ? seenHere(unreadRequest(why.right))
                  : new GroupsUnavailable({ reason: `an unreadable GROUP_LEFT: ${why.left.message}` })
              })
            },
            broken: (why) => Queue.unsafeOffer(queue, { _tag: "broken", why })
          })
          if (id === undefined) {
            Queue.unsafeOffer(queue, { _tag: "broken", why: new GroupsUnavailable({ reason: "the connection broke" }) })
          }
          return id
        }),
        (id) =>
          id === undefined ? Effect.void : Effect.suspend(() => {
            over.forget(id)
            // Leaving as asked; a link that broke meanwhile left it already. What the stream never
            // handed out (still queued here, or on its way) goes back unseen.
            return over.open()
              ? Effect.asVoid(
                FiberSet.run(
                  leaving,
                  Effect.ignore(over.call(LeaveGroup, { member: id, pulledThrough: pulled.through }))
                )
              )
              : Effect.void
          })
      )

    /**
     * A name no object can have is no group, as in place: told so here, where the request's
     * Schema would refuse it as a malformed request.
     */
    const named = <A, E>(name: string, request: Effect.Effect<A, E>): Effect.Effect<A, E | GroupNotFound> =>
      lookedUp(
        name,
        (): Effect.Effect<A, E | GroupNotFound> =>
          objectNameProblem(name) === undefined ? request : Effect.fail(new GroupNotFound({ group: name }))
      )

    const join = (name: string, joinOptions: { readonly maxInFlight?: number } = {}) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        yield* lookedUp(name, () => refuseJoin(name, joinOptions.maxInFlight))
        if (objectNameProblem(name) !== undefined) return yield* new GroupNotFound({ group: name })
        // A missing group, or one the user may not use, fails here; its topic names the deliveries.
        const { topic } = yield* call(DescribeGroup, { name })
        const queue = yield* Effect.acquireRelease(Queue.unbounded<MemberEvent>(), Queue.shutdown)
        const scope = yield* Effect.scope
        // The last delivery id of the membership now running that the stream handed out (ids grow on a connection from 1).
        const pulled = { through: 0 }
        // Each membership leaves with the stream; one whose link broke was left by its broker already.
        const joinAgain = Effect.flatMap(
          connected,
          (over) => Scope.extend(joinOver(over, name, topic, joinOptions.maxInFlight, queue, pulled), scope)
        )
        yield* joinAgain
        // A frame's deliveries are one chunk of the stream: a member handling chunks acks them in one request (`ackAll`).
        const next = (): Effect.Effect<ReadonlyArray<Delivery> | undefined, GroupJoinError> =>
          Effect.flatMap(Queue.take(queue), (event) => {
            switch (event._tag) {
              case "deliveries":
                if (event.deliveries.length > 0) pulled.through = event.deliveries.at(-1)!.id
                return Effect.succeed(event.deliveries)
              case "left":
                return event.why === undefined ? Effect.succeed(undefined) : Effect.fail(event.why)
              case "broken":
                // Its broker left the member (or died with it): join again through the next broker that takes a connection.
                return Effect.zipRight(joinAgain, Effect.suspend(next))
            }
          })
        return chunkLoop(Effect.suspend(next))
      }))

    return {
      // Checked before it is sent, as in place: the request's Schema would drop a field it has no name for.
      create: (spec) => {
        const badName = nameRefusal(spec.name)
        if (badName !== undefined) return Effect.fail(badName)
        const problem = groupSpecProblem(spec)
        if (problem !== undefined) return Effect.fail(new InvalidGroupSpec({ group: spec.name, reason: problem }))
        const nameProblem = objectNameProblem(spec.name)
        return nameProblem === undefined
          ? call(CreateGroup, spec)
          : Effect.fail(new InvalidObjectName({ name: spec.name, reason: nameProblem }))
      },
      describe: (name) => named(name, call(DescribeGroup, { name })),
      list: Effect.map(call(ListGroups, {}), (answer) => ("groups" in answer ? answer.groups : answer)),
      // A broker before the overview answers the list alone: it says no group is unreadable.
      overview: Effect.map(call(ListGroups, { unreadable: true }), (answer) =>
        "groups" in answer
          ? { groups: answer.groups, unreadable: answer.unreadable.map(seenHere) }
          : { groups: answer, unreadable: [] }),
      pending: (name) => named(name, call(PendingOfGroup, { name })),
      delete: (name) => named(name, Effect.asVoid(call(DeleteGroup, { name }))),
      join
    }
  })

/** The ConsumerGroups service over `options.brokers` (docs/consumers.md, "Remote members"). */
export const layerRemote = (options: RemoteGroupsOptions): Layer.Layer<ConsumerGroups> =>
  Layer.scoped(ConsumerGroups, makeRemote(options))
