/**
 * The ConsumerGroups service through brokers (docs/consumers.md, "Remote members"): from a
 * process that does not map the region, over one groups' connection to any broker
 * (GroupLink.ts). The connection is made at the first call, to the first broker in the order
 * given that takes it, and made again the same way by the first call after it broke.
 *
 * A member joined here is a member the broker holds for this connection, a local member of the
 * region. Its deliveries are settled through the broker; when the connection breaks, the broker
 * leaves the member (or died with it), and what it held goes to the group's other members at
 * once — settling it from here then answers `false`. The member itself then joins again through
 * the next broker that takes a connection; when none does, its stream fails `GroupsUnavailable`.
 */
import { Chunk, type Duration, Effect, Either, Layer, Option, Queue, Schema, Scope, Stream } from "effect"
import { withMillis } from "../../Durations.js"
import type { RpcMethod } from "../../services/control/Rpc.js"
import {
  ConsumerGroups,
  type ConsumerGroupsShape,
  type Delivery,
  type GroupJoinError,
  GroupsUnavailable
} from "../../services/groups/ConsumerGroups.js"
import { type Credentials, withLocalCredentials } from "../net/Auth.js"
import type { BrokerAddress } from "../net/BrokerAddress.js"
import type { ClientSecurity } from "../net/ClientConnection.js"
import { fatalWireErrors } from "../net/Control.js"
import { FrameType } from "../net/Frame.js"
import { readDeliveries } from "./GroupDeliveryFrame.js"
import { type GroupLink, type GroupLinkSettings, openGroupLink } from "./GroupLink.js"
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
import { RemoteDelivery, RemoteSettling } from "./RemoteDelivery.js"

export interface RemoteGroupsOptions {
  readonly brokers: ReadonlyArray<BrokerAddress>
  /** How long a broker may take to connect and accept the connection. Default 5 s. */
  readonly connectTimeoutMs?: number
  /** `connectTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly connectTimeout?: Duration.DurationInput
  /** How long a call (a create, a settle) waits for its answer. Default 30 s. */
  readonly requestTimeoutMs?: number
  /** `requestTimeoutMs` as a duration; given both, this one counts. */
  readonly requestTimeout?: Duration.DurationInput
  /**
   * Authenticate as this user (it needs the read right on the group's topic and the consume right
   * on the group's name). Without it the local user's secret file of `region` is used when the head
   * wrote one on this host; with neither, only a broker without authentication accepts.
   */
  readonly credentials?: Credentials | undefined
  /** Without `credentials`: the region whose local secret file to authenticate with, when there is one. Default "cxlog". */
  readonly region?: string
  /** Also take a broker that authenticates nobody although this client holds credentials (ClientSecurity `insecure`). */
  readonly insecure?: boolean | undefined
  /** Connect with TLS (the brokers' CA, and a client certificate when they ask for one), as publishers do. */
  readonly tls?: ClientSecurity["tls"]
}

/** A request the broker could not read is this client's fault, not the caller's: it reads as the groups being unavailable. */
const unreadRequest = <E>(e: E): Exclude<E, InvalidGroupRequest> | GroupsUnavailable =>
  e instanceof InvalidGroupRequest
    ? new GroupsUnavailable({ reason: `the broker refused the request: ${e.reason}` })
    : e as Exclude<E, InvalidGroupRequest>

const decodeLeft = Schema.decodeUnknownEither(Schema.parseJson(MemberLeft))
const decoder = new TextDecoder()

/** What a member's queue holds: a frame's deliveries, the link breaking under it, or its end (an error, or none). */
type MemberEvent =
  | { readonly _tag: "deliveries"; readonly deliveries: Array<Delivery> }
  | { readonly _tag: "broken"; readonly why: GroupsUnavailable }
  | { readonly _tag: "left"; readonly why: GroupJoinError | undefined }

/** The ConsumerGroups service over `options.brokers`; the connection closes with the scope. */
export const makeRemote = (given: RemoteGroupsOptions): Effect.Effect<ConsumerGroupsShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const options = withMillis(withLocalCredentials(given), ["connectTimeout", "requestTimeout"])
    const settings: GroupLinkSettings = {
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      credentials: options.credentials,
      insecure: options.insecure === true,
      tls: options.tls
    }
    let link: GroupLink | undefined
    yield* Effect.addFinalizer(() => Effect.sync(() => link?.close()))
    const opening = yield* Effect.makeSemaphore(1)
    /** The first broker that takes the connection, in the order given; a refusal every broker would give ends the search. */
    const openAny = Effect.gen(function*() {
      const refusals: Array<string> = []
      for (const address of options.brokers) {
        const attempt = yield* Effect.either(openGroupLink(address, settings))
        if (Either.isRight(attempt)) return attempt.right
        refusals.push(attempt.left.error.reason)
        if ((fatalWireErrors as ReadonlySet<string>).has(attempt.left.code)) break
      }
      return yield* new GroupsUnavailable({
        reason: options.brokers.length === 0
          ? "no brokers given"
          : `no broker took the groups' connection: ${refusals.join("; ")}`
      })
    })
    const connected: Effect.Effect<GroupLink, GroupsUnavailable> = opening.withPermits(1)(
      Effect.suspend(() =>
        link !== undefined && link.open() ? Effect.succeed(link) : Effect.tap(openAny, (l) => void (link = l))
      )
    )
    const call = <P, PI, S, SI, F, FI>(method: RpcMethod<string, P, PI, S, SI, F, FI>, input: P) =>
      Effect.flatMap(connected, (l) => l.call(method, input)).pipe(Effect.mapError(unreadRequest))

    /** One membership over one link: its events into `queue`, until it leaves, breaks or is interrupted. */
    const joinOver = (
      over: GroupLink,
      name: string,
      topic: string,
      maxInFlight: number | undefined,
      queue: Queue.Queue<MemberEvent>
    ) =>
      Effect.acquireRelease(
        Effect.sync(() => {
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
                  ? unreadRequest(why.right)
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
            // Leaving as asked; a link that broke meanwhile left it already.
            return over.open() ? Effect.ignore(Effect.forkDaemon(over.call(LeaveGroup, { member: id }))) : Effect.void
          })
      )

    const join = (name: string, joinOptions: { readonly maxInFlight?: number } = {}) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        // A missing group, or one the user may not use, fails here; its topic names the deliveries.
        const { topic } = yield* call(DescribeGroup, { name })
        const queue = yield* Effect.acquireRelease(Queue.unbounded<MemberEvent>(), Queue.shutdown)
        const scope = yield* Effect.scope
        // Each membership leaves with the stream; one whose link broke was left by its broker already.
        const joinAgain = Effect.flatMap(
          connected,
          (over) => Scope.extend(joinOver(over, name, topic, joinOptions.maxInFlight, queue), scope)
        )
        yield* joinAgain
        // A frame's deliveries are one chunk of the stream: a member handling chunks acks them in one request (`ackAll`).
        const next = (): Effect.Effect<Chunk.Chunk<Delivery>, Option.Option<GroupJoinError>> =>
          Effect.flatMap(Queue.take(queue), (event) => {
            switch (event._tag) {
              case "deliveries":
                return Effect.succeed(Chunk.unsafeFromArray(event.deliveries))
              case "left":
                return Effect.fail(event.why === undefined ? Option.none() : Option.some(event.why))
              case "broken":
                // Its broker left the member (or died with it): join again through the next broker that takes a connection.
                return Effect.zipRight(Effect.mapError(joinAgain, Option.some), Effect.suspend(next))
            }
          })
        return Stream.repeatEffectChunkOption(Effect.suspend(next))
      }))

    return {
      create: (spec) => call(CreateGroup, spec),
      describe: (name) => call(DescribeGroup, { name }),
      list: call(ListGroups, {}),
      pending: (name) => call(PendingOfGroup, { name }),
      delete: (name) => Effect.asVoid(call(DeleteGroup, { name })),
      join
    }
  })

/** The ConsumerGroups service over `options.brokers` (docs/consumers.md, "Remote members"). */
export const layerRemote = (options: RemoteGroupsOptions): Layer.Layer<ConsumerGroups> =>
  Layer.scoped(ConsumerGroups, makeRemote(options))
