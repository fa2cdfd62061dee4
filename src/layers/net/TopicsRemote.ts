/**
 * The Topics service through brokers (docs/topics.md): create, delete, describe, list, trim and purge a
 * region's topics from a process that does not map it, over one admin connection to any broker
 * (AdminClient.ts; the broker forwards changes to the head's coordinator and reads the rest from
 * the region in place). The connection is made at the first call, to the first broker in the
 * order given that takes it, and made again, the same way, by the first call after it broke
 * (RemoteLink.ts).
 * What a broker answers is the region's answer, typed as the head's layers type it; what keeps it
 * from answering is a `TopicsRemoteError`: `TopicForbidden` (the user's rights),
 * `HeadUnavailable`, or `TopicsUnavailable` (no broker took the connection, or it broke with a
 * call in flight, whose outcome is then unknown: a change is never sent twice).
 */
import { Effect, Layer, type Scope } from "effect"
import type { RpcMethod } from "../../services/control/Rpc.js"
import {
  checkTopicName,
  checkTopicSpec,
  checkTrim,
  type TopicDescription,
  type TopicInfo,
  Topics,
  type TopicsShape,
  TopicsUnavailable
} from "../../services/log/Topics.js"
import { openAdminLink } from "./AdminClient.js"
import {
  CreateTopic,
  DeleteTopic,
  DescribeTopic,
  InvalidAdminRequest,
  ListTopics,
  PurgeTopic,
  TrimTopic
} from "./AdminProtocol.js"
import type { Credentials } from "./Auth.js"
import { remoteLink, type RemoteLinkOptions } from "./RemoteLink.js"

export interface RemoteTopicsOptions extends RemoteLinkOptions {
  /**
   * How long a call waits for its answer. Default 30 s: a change the head's coordinator does not
   * answer fails before, after its call timeout (10 s), and one whose head is gone at once.
   */
  readonly requestTimeoutMs?: number
  /**
   * Authenticate as this user (a change needs its admin right on the topic; a description, its read
   * or admin right); see RemoteLinkOptions for the local secret file.
   */
  readonly credentials?: Credentials | undefined
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
export const makeRemoteTopics = (options: RemoteTopicsOptions): Effect.Effect<RemoteTopics, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connected = yield* remoteLink(
      options,
      openAdminLink,
      (reason) => new TopicsUnavailable({ reason }),
      "the admin connection"
    )
    /** `method` with `input` over the connection (made first if need be). */
    const call = <P, PI, S, SI, F, FI>(method: RpcMethod<string, P, PI, S, SI, F, FI>, input: P) =>
      Effect.flatMap(connected, (l) => l.call(method, input)).pipe(Effect.mapError(unreadRequest))
    const describe = (name: string) =>
      Effect.flatMap(checkTopicName(name), (checked) => call(DescribeTopic, { name: checked }))
    const topics: TopicsShape = {
      // Checked before it is sent, as over the coordinator: a spec that cannot be encoded is the caller's mistake.
      create: (spec) => Effect.flatMap(checkTopicSpec(spec), (checked) => call(CreateTopic, checked)),
      lookup: (name) => Effect.map(describe(name), infoOf),
      list: Effect.map(call(ListTopics, {}), (overview) => overview.topics.map(infoOf)),
      delete: (name) =>
        Effect.asVoid(Effect.flatMap(checkTopicName(name), (checked) => call(DeleteTopic, { name: checked }))),
      describe,
      overview: call(ListTopics, {}),
      trim: (name, target) => Effect.flatMap(checkTrim(name, target), (checked) => call(TrimTopic, checked)),
      purge: (name) => Effect.flatMap(checkTopicName(name), (checked) => call(PurgeTopic, { name: checked }))
    }
    return { topics, connect: Effect.asVoid(connected) }
  })

/** The Topics service over `options.brokers` (docs/topics.md); a local secret file that is there but unusable is a defect naming it. */
export const layerRemote = (options: RemoteTopicsOptions): Layer.Layer<Topics> =>
  Layer.scoped(Topics, Effect.map(makeRemoteTopics(options), (remote) => remote.topics))
