/**
 * The mirror's side of JetStream, through the maintained NATS client (`@nats-io/transport-node`
 * and `@nats-io/jetstream`, docs/mirror.md "The client"): a connection that fails over among
 * the servers given, the stream (created when missing), where the mirror resumes (the stream's
 * last message), and fenced, de-duplicated publishes.
 */
import {
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  type PubAck,
  StorageType
} from "@nats-io/jetstream"
import { connect, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node"
import { Data, Effect, type Scope } from "effect"
import {
  MirrorHeaders,
  MirrorJetStreamDisabled,
  mirrorMessageId,
  type MirrorOptions,
  MirrorStreamForeign,
  MirrorStreamMismatch,
  MirrorStreamRefused
} from "../../services/mirror/Mirror.js"
import { type MirroredMessage, readMirrored } from "./MirrorRecord.js"

/** JetStream did not answer, or refused for a reason retrying may cure (no leader yet, servers down). */
export class JetStreamFailed extends Data.TaggedError("JetStreamFailed")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

const STREAM_NOT_FOUND = 10059

/**
 * What JetStream (or its client, checking the name first) answers about the stream that no retry
 * cures, and what to change: the mirror stops with it instead of backing off for `--retry-for`.
 */
const refusedStream = (options: MirrorOptions, error: unknown): MirrorStreamRefused | undefined => {
  const refused = (hint: string) => new MirrorStreamRefused({ stream: options.stream, reason: reasonOf(error), hint })
  if ((error as { name?: unknown } | null)?.name === "InvalidNameError") {
    return refused("a stream's name has no '.', '*', '>', spaces or path separators: --stream")
  }
  switch (apiCode(error)) {
    case 10065:
      return refused(
        `another stream takes subject ${options.subject}: mirror into it (--stream) or to another subject (--subject)`
      )
    case 10074:
      return refused("these servers are not a cluster: --replicas 1")
    case 10052:
      return refused("--replicas 1 to 5, and a subject of non-empty tokens (--subject)")
    case 10058:
      return refused(
        "a stream of that name exists with other settings: mirror into it as it is, or into another (--stream)"
      )
  }
  return undefined
}

/**
 * The client's `JetStreamNotEnabled`: the server answered and no JetStream takes its API (the
 * request had no responders), or the server said so for the account (10039). A server still
 * starting does not take connections before its JetStream runs, and one without a meta leader
 * yet answers otherwise (or not at all): either is an outage, retried.
 */
const disabled = (options: MirrorOptions, error: unknown): MirrorJetStreamDisabled | undefined =>
  (error as { name?: unknown } | null)?.name === "JetStreamNotEnabled"
    ? new MirrorJetStreamDisabled({ servers: options.servers, reason: reasonOf(error) })
    : undefined

/** JetStream's failure `what`: a refusal no retry cures (its stream, JetStream off), or one retrying may (JetStreamFailed). */
const failedOrRefused = (options: MirrorOptions, what: string) => (error: unknown) =>
  disabled(options, error) ?? refusedStream(options, error) ?? failed(what)(error)

const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))
const failed = (what: string) => (error: unknown) => new JetStreamFailed({ reason: `${what}: ${reasonOf(error)}` })
const apiCode = (error: unknown): number | undefined => (error as { code?: unknown } | null)?.code as number | undefined

/** Whether NATS subject `pattern` (with `*` and `>` wildcards) matches `subject`. */
export const subjectMatches = (pattern: string, subject: string): boolean => {
  const p = pattern.split(".")
  const s = subject.split(".")
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false
  }
  return p.length === s.length
}

/** Where the stream ends: its last sequence (0 when empty) and, if it holds any, the offset its last message mirrored. */
export interface StreamEnd {
  readonly sequence: number
  readonly offset: number | undefined
  /**
   * Set when the last message is this topic's, mirrored from another region (its id names another
   * region): the log may be the same one, its region made again from the head's data directory
   * (`--recover`), which gives the region a new id. The mirror goes on only once the region holds
   * the same message at that offset (`refused` otherwise).
   */
  readonly otherRegion?: { readonly last: MirroredMessage; readonly refused: MirrorStreamForeign }
}

export interface JetStreamTarget {
  readonly connection: NatsConnection
  readonly client: JetStreamClient
  readonly manager: JetStreamManager
  /** The stream's last message, which must be this mirror's (same region, topic and generation) unless the stream is empty. */
  readonly end: Effect.Effect<StreamEnd, JetStreamFailed | MirrorStreamForeign>
  /**
   * Publishes offset `offset` expecting the stream's last sequence to be `expectedLast` and, when
   * `previous` is given (a session's publishes after its first; Mirror.ts says why), its last message
   * to be offset `previous` (its id): a chain no other writer's message can enter, even in the slot
   * of one of ours that failed while later ones were in flight. Settles with JetStream's ack.
   */
  readonly publish: (
    payload: Uint8Array,
    headers: MsgHdrs,
    offset: number,
    expectedLast: number,
    previous: number | undefined
  ) => Promise<PubAck>
}

/**
 * Connects (failing over among `servers`), makes sure the stream takes the subject, and hands out
 * the target for the topic's `generation`; closed with the scope.
 */
export const openTarget = (
  options: MirrorOptions,
  generation: number
): Effect.Effect<
  JetStreamTarget,
  JetStreamFailed | MirrorJetStreamDisabled | MirrorStreamMismatch | MirrorStreamRefused,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const connection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          connect({
            servers: [...options.servers],
            name: `cxlog-mirror ${options.topic}`,
            timeout: options.requestTimeoutMs,
            // Reconnects go on for as long as the mirror runs; giving up is the mirror's decision (--retry-for).
            maxReconnectAttempts: -1,
            reconnectTimeWait: 250,
            // Without this the client captures a stack for every request: a publish each.
            noAsyncTraces: true
          }),
        catch: failed(`cannot connect to ${options.servers.join(",")}`)
      }),
      (nc) => Effect.promise(() => nc.close().catch(() => undefined))
    )
    const manager = yield* Effect.tryPromise({
      try: () => jetstreamManager(connection, { timeout: options.requestTimeoutMs }),
      catch: (error) => disabled(options, error) ?? failed("JetStream")(error)
    })
    const client = jetstream(connection, { timeout: options.requestTimeoutMs })
    yield* ensureStream(manager, options)
    const prefix = mirrorMessageId(options.regionId, options.topic, generation, 0).slice(0, -1)
    const end = Effect.gen(function*() {
      const info = yield* Effect.tryPromise({
        try: () => manager.streams.info(options.stream),
        catch: failed(`stream ${options.stream}`)
      })
      const sequence = info.state.last_seq
      if (info.state.messages === 0) return { sequence, offset: undefined }
      // The last sequence JetStream gave out, or, when messages at the end were deleted since (the
      // stream's last sequence stays), the last one left, found walking back over the deleted
      // ones: where the stream ends now, which a mirror whose consumer committed past it must not skip.
      const deleted = info.state.num_deleted ?? 0
      const last = yield* Effect.tryPromise({
        try: async () => {
          for (let seq = sequence; seq >= Math.max(info.state.first_seq, sequence - deleted); seq--) {
            const message = await manager.streams.getMessage(options.stream, { seq })
            if (message !== null) return message
          }
          return null
        },
        catch: failed(`stream ${options.stream}: message ${sequence}`)
      })
      if (last === null) {
        return yield* new JetStreamFailed({
          reason: `stream ${options.stream}: none of its last ${
            deleted + 1
          } sequences holds a message (deleted meanwhile)`
        })
      }
      const id = last.header?.get(MirrorHeaders.msgId) ?? ""
      const offset = Number(last.header?.get(MirrorHeaders.offset) ?? Number.NaN)
      if (!id.startsWith(prefix) || !Number.isSafeInteger(offset) || id !== `${prefix}${offset}`) {
        const refused = new MirrorStreamForeign({
          stream: options.stream,
          sequence: last.seq,
          found: id === ""
            ? `a message without ${MirrorHeaders.msgId} on ${last.subject}`
            : `${JSON.stringify(id)} on ${last.subject}`,
          expected: prefix
        })
        if (!Number.isSafeInteger(offset) || !ofThisTopicElsewhere(id, options, offset)) return yield* refused
        const mirrored = readMirrored({ seq: last.seq, data: last.data, headers: last.header })
        return { sequence, offset, otherRegion: { last: mirrored, refused } }
      }
      return { sequence, offset }
    })
    const publish = (
      payload: Uint8Array,
      headers: MsgHdrs,
      offset: number,
      expectedLast: number,
      previous: number | undefined
    ) =>
      client.publish(options.subject, payload, {
        headers,
        msgID: `${prefix}${offset}`,
        expect: previous === undefined
          ? { lastSequence: expectedLast }
          : { lastSequence: expectedLast, lastMsgID: `${prefix}${previous}` },
        timeout: options.requestTimeoutMs
      })
    return { connection, client, manager, end, publish } satisfies JetStreamTarget
  })

/** Whether `id` is a mirror's id of `offset` of this topic from a region other than this mirror's (any generation there). */
const ofThisTopicElsewhere = (id: string, options: MirrorOptions, offset: number): boolean => {
  const slash = id.indexOf("/")
  if (slash <= 0 || id.slice(0, slash) === options.regionId) return false
  const rest = id.slice(slash + 1)
  const generationAndOffset = rest.slice(options.topic.length + 1)
  return rest.startsWith(`${options.topic}/`) && /^\d+\/\d+$/.test(generationAndOffset) &&
    generationAndOffset.endsWith(`/${offset}`)
}

/** Creates the stream (file storage, `replicas`) when it does not exist; an existing one must take the subject. */
const ensureStream = (manager: JetStreamManager, options: MirrorOptions) =>
  Effect.gen(function*() {
    const info = yield* Effect.tryPromise({
      try: () =>
        manager.streams.info(options.stream).catch((
          error: unknown
        ) => (apiCode(error) === STREAM_NOT_FOUND ? undefined : Promise.reject(error))),
      catch: failedOrRefused(options, `stream ${options.stream}`)
    })
    if (info === undefined) {
      yield* Effect.tryPromise({
        try: () =>
          manager.streams.add({
            name: options.stream,
            subjects: [options.subject],
            num_replicas: options.replicas,
            storage: StorageType.File
          }),
        catch: failedOrRefused(options, `creating stream ${options.stream} (${options.replicas} replicas; --replicas)`)
      })
      return
    }
    const subjects = info.config.subjects ?? []
    if (!subjects.some((s) => subjectMatches(s, options.subject))) {
      return yield* new MirrorStreamMismatch({ stream: options.stream, subject: options.subject, subjects })
    }
  })
