/**
 * One remote subscription over its state record (`RemoteState`: the live connection, which a
 * failover replaces, and the offsets delivered, received and committed): `take` turns the next
 * DATA frame into the batch view, `pull` and `poll` hand batches out (granting CREDIT as they
 * go), `commitAt` and the auto-commit policy send COMMITs, and `failOver` moves the
 * subscription to the next broker that takes it when its broker is gone.
 */
import { Effect, ExecutionStrategy, Exit, Option, Scope, Stream } from "effect"
import { crc32c } from "../../native/Crc32c.js"
import { LogCorrupt } from "../../services/log/Topics.js"
import {
  type SubscribeOptions,
  type SubscriberBatch,
  SubscriberConnectionFailed,
  type SubscriberShape,
  type Subscription,
  type SubscriptionError
} from "../../services/net/Subscriber.js"
import { PROTOCOL_VERSION, WireViolation } from "./Control.js"
import { FrameType } from "./Frame.js"
import { commitFrame, creditFrame, Subscribe, type Subscribed } from "./SubscribeFrames.js"
import { BatchView } from "./SubscriberBatch.js"
import { type Connection, type Due, type Settings, streamError, subscribeAny } from "./SubscriberConnection.js"
import { commitRefusal } from "./SubscriptionCommits.js"
import { brokerGone, subscribeElsewhere } from "./SubscriptionFailover.js"
import { autoCommitPolicy } from "./TopicReader.js"

/** How long a client waits, after a DATA frame failed its crc32c, for the error frame that explains it. */
const TORN_GRACE_MS = 5_000

interface RemoteState {
  readonly settings: Settings
  readonly topic: string
  readonly request: Subscribe
  /** The subscription's scope: every connection's own scope is forked from it. */
  readonly scope: Scope.Scope
  /** Subscribed as a named consumer: it commits. */
  readonly named: boolean
  readonly policy: ReturnType<typeof autoCommitPolicy>
  /** The batch handed out, re-aimed at each DATA frame. */
  readonly view: BatchView
  /** The live connection's own scope (and its refused siblings'): closed as soon as a failover replaces it. */
  connectionScope: Scope.CloseableScope
  connection: Connection
  /** The next offset to hand out. */
  position: number
  /** DATA frames taken since the last CREDIT. */
  consumed: number
  /** What this subscription committed (it never goes back, not even when a failover's broker starts below it). */
  committed: number
  committedAt: number
  handedOut: boolean
  /**
   * The connection's broker accepts a COMMIT only up to what it sent: after a failover it
   * starts at the consumer's committed offset (a COMMIT lost with the old broker is not in
   * it) and re-sends what was delivered already. So a connection is sent commits up to the
   * end of what it received itself (`received`), and the rest of `committed` once it re-sent that far.
   */
  commitSent: number
  received: number
}

/** A one-topic SUBSCRIBED's start and window (`subscribeAny` checked that it has them). */
export const windowOf = (subscribed: Subscribed) => ({
  start: subscribed.start ?? 0,
  earliest: subscribed.earliest ?? 0,
  end: subscribed.end ?? 0
})

/** The window a broker holds, as its SUBSCRIBED from the end says. */
export const bounds = (settings: Settings, topic: string) =>
  Effect.scoped(subscribeAny(settings, new Subscribe({ protocol: PROTOCOL_VERSION, topic, from: "latest", credit: 1 })))
    .pipe(
      Effect.map(({ subscribed }) => ({ earliest: windowOf(subscribed).earliest, end: windowOf(subscribed).end }))
    )

/** Grants CREDIT for what was taken, half the window at a time. */
const grant = (s: RemoteState): void => {
  s.consumed++
  if (s.consumed * 2 < s.settings.credit) return
  s.connection.socket.write(creditFrame(s.consumed))
  s.consumed = 0
}

const sendCommit = (s: RemoteState): void => {
  const offset = Math.min(s.committed, s.received)
  if (offset <= s.commitSent) return
  s.connection.socket.write(commitFrame(offset))
  s.commitSent = offset
}

/** A COMMIT frame: the broker commits it in order with what it reads of this connection. */
const commitAt = (s: RemoteState, offset: number) =>
  Effect.suspend(() => {
    const refused = commitRefusal(s.named, s.topic, offset, s.committed, s.position)
    if (refused !== undefined) return Effect.fail(refused)
    s.committed = offset
    s.committedAt = performance.now()
    sendCommit(s)
    return Effect.void
  })

/** Pulling again means what was handed out before is processed: committed when the policy says so, also while waiting. */
const uncommitted = (s: RemoteState) => s.named && s.handedOut && s.position > s.committed

/** What was handed out is due to be committed now (at a pull, before it takes the next batch). */
const commitDue = (s: RemoteState) =>
  uncommitted(s) &&
  (s.position - s.committed >= s.policy.everyMessages || performance.now() - s.committedAt >= s.policy.intervalMs)

/** The auto-commit a pull runs while it waits for a frame. */
const dueOf = (s: RemoteState): Due => ({
  inMs: () => (uncommitted(s) ? Math.max(0, s.committedAt + s.policy.intervalMs - performance.now()) : Infinity),
  run: Effect.suspend(() => (uncommitted(s) ? Effect.orDie(commitAt(s, s.position)) : Effect.void))
})

/**
 * The connection broke (its broker died, stopped or the network failed): the subscription
 * goes on at the next broker that takes it (SubscriptionFailover.ts) from `position`
 * (a named consumer's new broker starts at its committed offset; what this subscription
 * already delivered is skipped, and what it committed is sent again as the new broker
 * re-sends it).
 */
const failOver = (s: RemoteState, broken: SubscriberConnectionFailed) =>
  Effect.gen(function*() {
    s.connection.socket.destroy()
    const again = s.named ? s.request : new Subscribe({ ...s.request, from: s.position, fromTime: undefined })
    const taken = yield* subscribeElsewhere(s.scope, s.settings, again, broken)
    const replaced = s.connectionScope
    s.connectionScope = taken.scope
    s.connection = taken.connection
    s.commitSent = s.received = windowOf(taken.subscribed).start
    s.consumed = 0
    return yield* Scope.close(replaced, Exit.void)
  })

/**
 * The next DATA frame received, as the view (re-aimed), when a whole one is in; "torn"
 * when it failed its crc32c; or the failure its frame means.
 */
const take = (s: RemoteState): BatchView | undefined | SubscriptionError | "torn" => {
  const connection = s.connection
  const view = s.view
  for (;;) {
    const frame = connection.input.next()
    if (frame === undefined) return undefined
    if (frame instanceof WireViolation) return connection.failed("bad-frame", frame.message)
    if (frame.type === FrameType.ERROR) {
      const e = streamError(connection, s.request, frame)
      // Cut for holding its broker up (it pulled nothing for the broker's idle timeout): the stream ends
      // here, and the next pull fails over as when a broker goes.
      return e._tag === "SubscriberConnectionFailed" && e.code === "idle-timeout" ? undefined : e
    }
    if (frame.type !== FrameType.DATA) return connection.failed("bad-frame", `unexpected frame type ${frame.type}`)
    if (crc32c(frame.payload, 0, frame.payload.length) !== frame.crc32c) return "torn"
    grant(s)
    s.received = frame.seq + frame.messageCount
    if (s.commitSent < s.committed) sendCommit(s)
    // A batch wholly before the start (the first one may begin before it) has nothing to deliver.
    if (frame.seq + frame.messageCount <= s.position) continue
    const malformed = view.aim(
      frame.payload,
      frame.messageCount,
      frame.seq,
      s.position,
      frame.clientId,
      frame.sessionEpoch
    )
    if (malformed !== undefined) {
      return new LogCorrupt({ reason: `topic ${s.topic}: batch at offset ${frame.seq}: ${malformed}` })
    }
    if (view.offset !== s.position) {
      return new LogCorrupt({
        reason: `topic ${s.topic}: broker ${connection.broker} sent offset ${view.offset}, expected ${s.position}`
      })
    }
    s.position = view.offset + view.count
    return view
  }
}

/** A DATA frame failed its crc32c (torn while the broker sent it): its out-of-range ERROR explains it; anything else is a broken stream. */
const tornThen = (s: RemoteState): Effect.Effect<never, SubscriptionError> =>
  Effect.flatMap(
    Effect.suspend(() => s.connection.next(TORN_GRACE_MS)),
    (after) => after.type === FrameType.ERROR ? Effect.fail(streamError(s.connection, s.request, after)) : tornThen(s)
  )

/** The next batch already received (the one handed out before is done with), undefined if none, or the failure a frame means. */
const takeNow = (s: RemoteState): BatchView | undefined | Effect.Effect<never, SubscriptionError> => {
  s.connection.input.release()
  const taken = take(s)
  s.connection.resumeIfRoom()
  if (taken === "torn") return tornThen(s)
  return taken === undefined || taken instanceof BatchView ? taken : Effect.fail(taken)
}

/**
 * The subscription's pull, made once: the next batch at once when a whole frame is in (no
 * Effect steps beyond the pull's own), else after one wait for a frame, failing over when the
 * broker is gone.
 */
const pullOf = (s: RemoteState): Effect.Effect<BatchView, SubscriptionError> => {
  const due = dueOf(s)
  const pull: Effect.Effect<BatchView, SubscriptionError> = Effect.suspend(() => {
    if (commitDue(s)) return Effect.zipRight(Effect.orDie(commitAt(s, s.position)), pull)
    const taken = takeNow(s)
    if (taken instanceof BatchView) {
      s.handedOut = true
      return Effect.succeed(taken)
    }
    if (taken !== undefined) return taken
    return Effect.zipRight(
      s.connection.waitForFrame(undefined, due).pipe(
        Effect.catchAll((broken) => (brokerGone(broken) ? failOver(s, broken) : Effect.fail(broken)))
      ),
      pull
    )
  })
  return pull
}

/**
 * A pull, then every further batch already received, each handed to `onBatch` as soon as
 * the one before returned (so it is done with: its bytes may go). Stops before a commit
 * falls due (the next pull makes it), and fails with what a frame after them means.
 */
const poll = (
  s: RemoteState,
  pull: Effect.Effect<BatchView, SubscriptionError>,
  onBatch: (batch: SubscriberBatch) => void
): Effect.Effect<number, SubscriptionError> =>
  Effect.flatMap(pull, (first) => {
    onBatch(first)
    let n = 1
    for (;;) {
      if (commitDue(s)) return Effect.succeed(n)
      const taken = takeNow(s)
      if (taken === undefined) return Effect.succeed(n)
      if (!(taken instanceof BatchView)) return taken
      onBatch(taken)
      n++
    }
  })

/** The state of a subscription its first broker took (`subscribed` over `connection`, in `connectionScope`). */
const newRemoteState = (
  settings: Settings,
  request: Subscribe,
  scope: Scope.Scope,
  connectionScope: Scope.CloseableScope,
  opened: { readonly connection: Connection; readonly subscribed: Subscribed },
  subscribeOptions: SubscribeOptions
): RemoteState => ({
  settings,
  topic: request.topic!,
  request,
  scope,
  named: subscribeOptions.consumer !== undefined,
  policy: autoCommitPolicy(subscribeOptions.autoCommit),
  view: new BatchView(request.topic!),
  connectionScope,
  connection: opened.connection,
  position: windowOf(opened.subscribed).start,
  consumed: 0,
  committed: windowOf(opened.subscribed).start,
  committedAt: performance.now(),
  handedOut: false,
  commitSent: windowOf(opened.subscribed).start,
  received: windowOf(opened.subscribed).start
})

/** A subscription to `topic` through the first broker that takes it, failing over to the others. */
export const subscribeRemote = (settings: Settings): SubscriberShape["subscribe"] => (topic, subscribeOptions = {}) =>
  Effect.gen(function*() {
    const request = new Subscribe({
      protocol: PROTOCOL_VERSION,
      topic,
      from: subscribeOptions.from ?? "earliest",
      ...(subscribeOptions.fromTime === undefined ? {} : { fromTime: subscribeOptions.fromTime }),
      credit: settings.credit,
      ...(subscribeOptions.consumer === undefined ? {} : { consumer: subscribeOptions.consumer })
    })
    const scope = yield* Effect.scope
    const connectionScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const opened = yield* Scope.extend(subscribeAny(settings, request), connectionScope)
    const s = newRemoteState(settings, request, scope, connectionScope, opened, subscribeOptions)
    const pull = pullOf(s)
    const subscription: Subscription = {
      topic,
      start: windowOf(opened.subscribed).start,
      batches: Stream.repeatEffectOption(Effect.mapError(pull, Option.some)),
      pull,
      poll: (onBatch) => poll(s, pull, onBatch),
      position: () => s.position,
      lag: Effect.map(bounds(settings, topic), (held) => Math.max(0, held.end - s.position)),
      consumer: subscribeOptions.consumer,
      commit: (offset) => Effect.suspend(() => commitAt(s, offset ?? s.position))
    }
    return subscription
  })
