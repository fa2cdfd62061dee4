/**
 * The Topics service through brokers (docs/topics.md): create, delete, describe, list, trim and purge a
 * region's topics from a process that does not map it, over one admin connection to any broker
 * (AdminClient.ts; the broker forwards changes to the head's coordinator and reads the rest from
 * the region in place). The connection is made at the first call, to the first broker in the
 * order given that takes it, and made again, the same way, by the first call after it broke.
 * What a broker answers is the region's answer, typed as the head's layers type it; what keeps it
 * from answering is a `TopicsRemoteError`: `TopicForbidden` (the user's rights),
 * `HeadUnavailable`, or `TopicsUnavailable` (no broker took the connection, or it broke with a
 * call in flight, whose outcome is then unknown: a change is never sent twice).
 */
import { type Duration, Effect, Layer, type Scope } from "effect"
import { withMillis } from "../../Durations.js"
import type { RpcMethod } from "../../services/control/Rpc.js"
import {
  type TopicDescription,
  type TopicInfo,
  Topics,
  type TopicsShape,
  TopicsUnavailable
} from "../../services/log/Topics.js"
import { type AdminLink, type AdminSettings, openAdminLink } from "./AdminClient.js"
import {
  CreateTopic,
  DeleteTopic,
  DescribeTopic,
  InvalidAdminRequest,
  ListTopics,
  PurgeTopic,
  TrimTopic
} from "./AdminProtocol.js"
import { type Credentials, withLocalCredentials } from "./Auth.js"
import type { BrokerAddress } from "./BrokerAddress.js"
import type { ClientSecurity } from "./ClientConnection.js"
import { fatalWireErrors } from "./Control.js"

export interface RemoteTopicsOptions {
  readonly brokers: ReadonlyArray<BrokerAddress>
  /** How long a broker may take to connect and accept the connection. Default 5 s. */
  readonly connectTimeoutMs?: number
  /** `connectTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly connectTimeout?: Duration.DurationInput
  /**
   * How long a call waits for its answer. Default 30 s: a change the head's coordinator does not
   * answer fails before, after its call timeout (10 s), and one whose head is gone at once.
   */
  readonly requestTimeoutMs?: number
  /** `requestTimeoutMs` as a duration; given both, this one counts. */
  readonly requestTimeout?: Duration.DurationInput
  /**
   * Authenticate as this user (a change needs its admin right on the topic; a description, its read
   * or admin right). Without it the local user's secret file of `region` is used when the head wrote
   * one on this host; with neither, only a broker without authentication accepts.
   */
  readonly credentials?: Credentials | undefined
  /** Without `credentials`: the region whose local secret file to authenticate with, when there is one. Default "cxlog". */
  readonly region?: string
  /** Also take a broker that authenticates nobody although this client holds credentials (ClientSecurity `insecure`). */
  readonly insecure?: boolean | undefined
  /** Connect with TLS (the brokers' CA, and a client certificate when they ask for one), as publishers do. */
  readonly tls?: ClientSecurity["tls"]
}

/** A description's TopicInfo: what a lookup or a list through brokers answers. */
const infoOf = (description: TopicDescription): TopicInfo => {
  const {
    blogBytesPerLane: _blog,
    lanes: _lanes,
    usedBytes: _used,
    consumers: _consumers,
    earliest: _earliest,
    end: _end,
    memoryBytes: _memory,
    orderedBatches: _ordered,
    sessionSlots: _slots,
    sessions: _sessions,
    subscribers: _subscribers,
    ...info
  } = description
  return info
}

/** A request the broker could not read is this client's fault, not the caller's: it reads as the brokers being unavailable to it. */
const unreadRequest = <E>(e: E): Exclude<E, InvalidAdminRequest> | TopicsUnavailable =>
  e instanceof InvalidAdminRequest
    ? new TopicsUnavailable({ reason: `the broker refused the request: ${e.reason}` })
    : e as Exclude<E, InvalidAdminRequest>

export interface RemoteTopics {
  readonly topics: TopicsShape
  /** Connects now (the calls would at their first): to see at once whether a broker takes this client. */
  readonly connect: Effect.Effect<void, TopicsUnavailable>
}

/** The Topics service over `options.brokers`; the connection closes with the scope. */
export const makeRemoteTopics = (given: RemoteTopicsOptions): Effect.Effect<RemoteTopics, never, Scope.Scope> =>
  Effect.gen(function*() {
    const options = withMillis(withLocalCredentials(given), ["connectTimeout", "requestTimeout"])
    const settings: AdminSettings = {
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      credentials: options.credentials,
      insecure: options.insecure === true,
      tls: options.tls
    }
    let link: AdminLink | undefined
    yield* Effect.addFinalizer(() => Effect.sync(() => link?.close()))
    const opening = yield* Effect.makeSemaphore(1)
    /** The first broker that takes the connection, in the order given; a refusal every broker would give ends the search. */
    const openAny = Effect.gen(function*() {
      const refusals: Array<string> = []
      for (const address of options.brokers) {
        const attempt = yield* Effect.either(openAdminLink(address, settings))
        if (attempt._tag === "Right") return attempt.right
        refusals.push(attempt.left.message)
        if ((fatalWireErrors as ReadonlySet<string>).has(attempt.left.code)) break
      }
      return yield* new TopicsUnavailable({
        reason: options.brokers.length === 0
          ? "no brokers given"
          : `no broker took the admin connection: ${refusals.join("; ")}`
      })
    })
    const connected: Effect.Effect<AdminLink, TopicsUnavailable> = opening.withPermits(1)(
      Effect.suspend(() =>
        link !== undefined && link.open() ? Effect.succeed(link) : Effect.tap(openAny, (l) => void (link = l))
      )
    )
    /** `method` with `input` over the connection (made first if need be). */
    const call = <P, PI, S, SI, F, FI>(method: RpcMethod<string, P, PI, S, SI, F, FI>, input: P) =>
      Effect.flatMap(connected, (l) => l.call(method, input)).pipe(Effect.mapError(unreadRequest))
    const topics: TopicsShape = {
      create: (spec) => call(CreateTopic, spec),
      lookup: (name) => Effect.map(call(DescribeTopic, { name }), infoOf),
      list: Effect.map(call(ListTopics, {}), (overview) => overview.topics.map(infoOf)),
      delete: (name) => Effect.asVoid(call(DeleteTopic, { name })),
      describe: (name) => call(DescribeTopic, { name }),
      overview: call(ListTopics, {}),
      trim: (name, target) => call(TrimTopic, { name, target }),
      purge: (name) => call(PurgeTopic, { name })
    }
    return { topics, connect: Effect.asVoid(connected) }
  })

/** The Topics service over `options.brokers` (docs/topics.md); a local secret file that is there but unusable is a defect naming it. */
export const layerRemote = (options: RemoteTopicsOptions): Layer.Layer<Topics> =>
  Layer.scoped(Topics, Effect.map(makeRemoteTopics(options), (remote) => remote.topics))
