/**
 * A remote subscription to several topics over one connection (docs/protocol.md, "Several
 * topics on one subscription"): the SUBSCRIBE names topics and patterns, the broker opens a
 * stream per topic it reads (a STREAM frame with its topic and start; a pattern's topics created
 * later join as the broker finds them), and DATA frames belong to the stream the last STREAM
 * frame named. Each stream keeps its topic's position, view and commits (COMMIT names the stream);
 * the credit is the connection's. When the broker goes, the subscription goes on at the next one
 * that takes it, each topic from its position (a named consumer's from its committed offset). A
 * topic deleted while read ends its stream (ENDED): it leaves the subscription when a pattern
 * matched it, and fails it (`TopicDeleted`) when the selection names it.
 */
import { Effect, Either, ExecutionStrategy, Exit, Option, Scope, Stream } from "effect"
import { crc32c } from "../../native/Crc32c.js"
import { InvalidTopicPattern, parseSelection, type TopicSelection } from "../../services/log/TopicPattern.js"
import { LogCorrupt, TopicDeleted } from "../../services/log/Topics.js"
import {
  CommitRejected,
  type SubscribeOptions,
  type SubscriberBatch,
  SubscriberConnectionFailed,
  type SubscriberShape,
  type SubscriptionError,
  type TopicsSubscription
} from "../../services/net/Subscriber.js"
import { decodeControl, ErrorBody, PROTOCOL_VERSION, WireViolation } from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"
import { bounds } from "./RemoteSubscription.js"
import { commitFrame, creditFrame, StreamStart, Subscribe } from "./SubscribeFrames.js"
import { BatchView } from "./SubscriberBatch.js"
import { type Connection, type Due, type Settings, streamError, subscribeAny } from "./SubscriberConnection.js"
import { commitRefusal } from "./SubscriptionCommits.js"
import { brokerGone, subscribeElsewhere } from "./SubscriptionFailover.js"
import { autoCommitPolicy } from "./TopicReader.js"

/** One topic's stream: where it is, what it committed, its view. */
interface TopicStream {
  readonly topic: string
  /** Its id on the current connection (a failover's broker gives it another). */
  id: number
  readonly view: BatchView
  /** The next offset to hand out. */
  position: number
  committed: number
  committedAt: number
  /** Commits sent on the current connection, up to what it received itself (as RemoteSubscription's). */
  commitSent: number
  received: number
}

interface TopicsState {
  readonly settings: Settings
  readonly selection: TopicSelection
  readonly request: Subscribe
  readonly scope: Scope.Scope
  readonly named: boolean
  readonly policy: ReturnType<typeof autoCommitPolicy>
  connectionScope: Scope.CloseableScope
  connection: Connection
  /** Every topic read, by topic (kept across failovers) and by the current connection's stream id. */
  readonly byTopic: Map<string, TopicStream>
  byId: Map<number, TopicStream>
  /** The stream DATA frames belong to now (the last STREAM frame's). */
  sending: TopicStream | undefined
  /** The stream whose batch was handed out last (a pull means it is processed). */
  handedOut: TopicStream | undefined
  /** DATA frames taken since the last CREDIT. */
  consumed: number
}

const grant = (s: TopicsState): void => {
  s.consumed++
  if (s.consumed * 2 < s.settings.credit) return
  s.connection.socket.write(creditFrame(s.consumed))
  s.consumed = 0
}

const sendCommit = (s: TopicsState, stream: TopicStream): void => {
  const offset = Math.min(stream.committed, stream.received)
  if (offset <= stream.commitSent || stream.id === 0) return
  s.connection.socket.write(commitFrame(offset, stream.id))
  stream.commitSent = offset
}

const commitAt = (s: TopicsState, stream: TopicStream, offset: number) =>
  Effect.suspend(() => {
    const refused = commitRefusal(s.named, stream.topic, offset, stream.committed, stream.position)
    if (refused !== undefined) return Effect.fail(refused)
    stream.committed = offset
    stream.committedAt = performance.now()
    sendCommit(s, stream)
    return Effect.void
  })

/** What was handed out is processed: due to be committed now (at a pull, before the next batch). */
const commitDue = (s: TopicsState) => {
  const stream = s.handedOut
  if (!s.named || stream === undefined || stream.position <= stream.committed) return undefined
  const due = stream.position - stream.committed >= s.policy.everyMessages ||
    performance.now() - stream.committedAt >= s.policy.intervalMs
  return due ? stream : undefined
}

const dueOf = (s: TopicsState): Due => ({
  inMs: () => {
    const stream = s.handedOut
    if (!s.named || stream === undefined || stream.position <= stream.committed) return Infinity
    return Math.max(0, stream.committedAt + s.policy.intervalMs - performance.now())
  },
  run: Effect.suspend(() => {
    const stream = s.handedOut
    return s.named && stream !== undefined && stream.position > stream.committed
      ? Effect.orDie(commitAt(s, stream, stream.position))
      : Effect.void
  })
})

/** A STREAM frame: a new stream of the connection (JSON), or the stream the DATA frames after it are of. */
const onStream = (s: TopicsState, frame: Frame): SubscriptionError | undefined => {
  if (frame.payload.length === 0) {
    s.sending = s.byId.get(frame.clientId)
    return s.sending === undefined
      ? s.connection.failed("bad-frame", `a STREAM frame naming stream ${frame.clientId}, which was never opened`)
      : undefined
  }
  const decoded = decodeControl(StreamStart, frame.payload, "internal")
  if (Either.isLeft(decoded)) return s.connection.failed("bad-frame", `bad STREAM: ${decoded.left.message}`)
  const { start, topic } = decoded.right
  const known = s.byTopic.get(topic)
  const stream: TopicStream = known ?? {
    topic,
    id: frame.clientId,
    view: new BatchView(topic),
    position: start,
    committed: start,
    committedAt: performance.now(),
    commitSent: start,
    received: start
  }
  stream.id = frame.clientId
  // On a failover's connection a stream starts where it went on (a named consumer's at its committed offset).
  stream.commitSent = stream.received = start
  s.byTopic.set(topic, stream)
  s.byId.set(stream.id, stream)
  return undefined
}

/** An ENDED frame: its stream's topic was deleted; the stream leaves (the subscription fails if it names the topic). */
const onEnded = (s: TopicsState, frame: Frame): SubscriptionError | undefined => {
  const stream = s.byId.get(frame.clientId)
  if (stream === undefined) return undefined
  s.byId.delete(stream.id)
  s.byTopic.delete(stream.topic)
  if (s.sending === stream) s.sending = undefined
  if (s.handedOut === stream) s.handedOut = undefined
  const body = decodeControl(ErrorBody, frame.payload, "internal")
  const deleted = Either.isRight(body) && body.right.code === "topic-deleted"
  if (!deleted) return s.connection.failed("bad-frame", `the stream of topic ${stream.topic} ended unexpectedly`)
  return s.selection.names.includes(stream.topic) ? new TopicDeleted({ name: stream.topic }) : undefined
}

/** The next DATA frame received, as its stream's view; "torn"; undefined when none is whole; or the failure a frame means. */
const take = (s: TopicsState): BatchView | undefined | SubscriptionError | "torn" => {
  const connection = s.connection
  for (;;) {
    const frame = connection.input.next()
    if (frame === undefined) return undefined
    if (frame instanceof WireViolation) return connection.failed("bad-frame", frame.message)
    if (frame.type === FrameType.ERROR) {
      const e = streamError(connection, s.request, frame)
      return e._tag === "SubscriberConnectionFailed" && e.code === "idle-timeout" ? undefined : e
    }
    if (frame.type === FrameType.STREAM) {
      const wrong = onStream(s, frame)
      if (wrong !== undefined) return wrong
      continue
    }
    if (frame.type === FrameType.ENDED) {
      const ended = onEnded(s, frame)
      if (ended !== undefined) return ended
      continue
    }
    if (frame.type !== FrameType.DATA) return connection.failed("bad-frame", `unexpected frame type ${frame.type}`)
    const stream = s.sending
    if (stream === undefined) return connection.failed("bad-frame", "a DATA frame before any STREAM frame")
    if (crc32c(frame.payload, 0, frame.payload.length) !== frame.crc32c) return "torn"
    grant(s)
    stream.received = frame.seq + frame.messageCount
    if (stream.commitSent < stream.committed) sendCommit(s, stream)
    if (frame.seq + frame.messageCount <= stream.position) continue
    const view = stream.view
    const malformed = view.aim(
      frame.payload,
      frame.messageCount,
      frame.seq,
      stream.position,
      frame.clientId,
      frame.sessionEpoch
    )
    if (malformed !== undefined) {
      return new LogCorrupt({ reason: `topic ${stream.topic}: batch at offset ${frame.seq}: ${malformed}` })
    }
    if (view.offset !== stream.position) {
      return new LogCorrupt({
        reason:
          `topic ${stream.topic}: broker ${connection.broker} sent offset ${view.offset}, expected ${stream.position}`
      })
    }
    stream.position = view.offset + view.count
    s.handedOut = stream
    return view
  }
}

/** The STREAM frames that follow a SUBSCRIBED at once (its `streams`): the topics read from the start. */
const openStreams = (s: TopicsState, count: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < count; i++) {
      const frame = yield* s.connection.next(s.settings.connectTimeoutMs)
      if (frame.type !== FrameType.STREAM || frame.payload.length === 0) {
        return yield* s.connection.failed("bad-frame", "a SUBSCRIBED not followed by the STREAM frames it announced")
      }
      const wrong = onStream(s, frame)
      if (wrong !== undefined) return yield* Effect.fail(wrong)
    }
  })

/** The request that goes on where the subscription is: each topic read from its position. */
const resumed = (s: TopicsState): Subscribe =>
  new Subscribe({
    ...s.request,
    fromTime: undefined,
    positions: [...s.byTopic.values()].map((stream) => ({ topic: stream.topic, offset: stream.position }))
  })

/** The broker is gone: the next that takes the subscription goes on with it, each topic from its position (SubscriptionFailover.ts). */
const failOver = (s: TopicsState, broken: SubscriberConnectionFailed) =>
  Effect.gen(function*() {
    s.connection.socket.destroy()
    const taken = yield* subscribeElsewhere(s.scope, s.settings, resumed(s), broken)
    const replaced = s.connectionScope
    s.connectionScope = taken.scope
    s.connection = taken.connection
    s.byId = new Map()
    s.sending = undefined
    s.consumed = 0
    for (const stream of s.byTopic.values()) stream.id = 0
    yield* Scope.close(replaced, Exit.void)
    return yield* openStreams(s, taken.subscribed.streams ?? 0)
  })

const pullOf = (s: TopicsState): Effect.Effect<BatchView, SubscriptionError> => {
  const due = dueOf(s)
  const pull: Effect.Effect<BatchView, SubscriptionError> = Effect.suspend(() => {
    const committing = commitDue(s)
    if (committing !== undefined) {
      return Effect.zipRight(Effect.orDie(commitAt(s, committing, committing.position)), pull)
    }
    s.connection.input.release()
    const taken = take(s)
    s.connection.resumeIfRoom()
    if (taken instanceof BatchView) return Effect.succeed(taken)
    if (taken === "torn") {
      return Effect.flatMap(
        s.connection.next(5_000),
        (after) => after.type === FrameType.ERROR ? Effect.fail(streamError(s.connection, s.request, after)) : pull
      )
    }
    if (taken !== undefined) return Effect.fail(taken)
    return Effect.zipRight(
      s.connection.waitForFrame(undefined, due).pipe(
        Effect.catchAll((broken) => (brokerGone(broken) ? failOver(s, broken) : Effect.fail(broken)))
      ),
      pull
    )
  })
  return pull
}

/** A subscription to `entries` (topic names and patterns) through the first broker that takes it, failing over to the others. */
export const subscribeTopicsRemote = (settings: Settings): SubscriberShape["subscribeTopics"] =>
(
  entries,
  options: SubscribeOptions = {}
) =>
  Effect.gen(function*() {
    const selection = parseSelection(entries)
    if (selection instanceof InvalidTopicPattern) return yield* selection
    const request = new Subscribe({
      protocol: PROTOCOL_VERSION,
      topics: [...entries],
      from: options.from ?? "earliest",
      ...(options.fromTime === undefined ? {} : { fromTime: options.fromTime }),
      credit: settings.credit,
      ...(options.consumer === undefined ? {} : { consumer: options.consumer })
    })
    const scope = yield* Effect.scope
    const connectionScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const opened = yield* Scope.extend(subscribeAny(settings, request), connectionScope)
    const s: TopicsState = {
      settings,
      selection,
      request,
      scope,
      named: options.consumer !== undefined,
      policy: autoCommitPolicy(options.autoCommit),
      connectionScope,
      connection: opened.connection,
      byTopic: new Map(),
      byId: new Map(),
      sending: undefined,
      handedOut: undefined,
      consumed: 0
    }
    yield* openStreams(s, opened.subscribed.streams ?? 0)
    const pull = pullOf(s)
    const subscription: TopicsSubscription = {
      selection: entries,
      topics: () => [...s.byTopic.keys()],
      unreadableMatches: opened.subscribed.unreadable ?? 0,
      batches: Stream.repeatEffectOption(Effect.mapError(pull, Option.some)),
      pull,
      poll: (onBatch: (batch: SubscriberBatch) => void) => Effect.map(pull, (batch) => (onBatch(batch), 1)),
      position: (topic) => s.byTopic.get(topic)?.position,
      lag: Effect.map(
        Effect.forEach([...s.byTopic.values()], (stream) =>
          Effect.map(bounds(settings, stream.topic), (held) => Math.max(0, held.end - stream.position))),
        (lags) =>
          lags.reduce((sum, lag) => sum + lag, 0)
      ),
      consumer: options.consumer,
      commit: (to) =>
        Effect.suspend(() => {
          if (to === undefined) {
            return Effect.forEach([...s.byTopic.values()], (stream) => commitAt(s, stream, stream.position), {
              discard: true
            })
          }
          const stream = s.byTopic.get(to.topic)
          return stream === undefined
            ? Effect.fail(new CommitRejected({ topic: to.topic, reason: "this subscription does not read it" }))
            : commitAt(s, stream, to.offset ?? stream.position)
        })
    }
    return subscription
  })
