/**
 * The Mirror over any Subscriber (the region in place, or brokers over TCP). `run` is a loop of
 * sessions: a session connects to JetStream, reads where the stream ends, joins the topic's
 * named consumer there and publishes in offset order through the in-flight window
 * (MirrorWindow), committing the consumer as JetStream acknowledges. Whatever fails in a
 * session on JetStream's side ends it; the next one resumes from the stream's last message, so
 * an offset is in the stream once whatever failed when. Sessions are retried with backoff for
 * up to `retryForMs` of unavailability; what retrying cannot cure fails `run`.
 */
import { Effect, Exit, Layer, Metric } from "effect"
import {
  mirrorLagMessages,
  mirrorLagSeconds,
  mirrorOffset,
  mirrorPublishLatency,
  mirrorRetries,
  mirrorUnavailable
} from "../../Metrics.js"
import { ConsumerNameInvalid } from "../../services/log/Consumers.js"
import { TopicDeleted, Topics, type TopicsShape } from "../../services/log/Topics.js"
import {
  Mirror,
  MirrorBehindRetention,
  type MirrorError,
  MirrorFromPastEnd,
  MirrorGap,
  type MirrorOptions,
  type MirrorState,
  MirrorStatus,
  MirrorUnavailable
} from "../../services/mirror/Mirror.js"
import { Subscriber, type SubscriberShape, type Subscription } from "../../services/net/Subscriber.js"
import { consumerNameBytes } from "../log/Consumers.js"
import { JetStreamFailed, openTarget } from "./JetStreamTarget.js"
import { continuesThisLog } from "./MirrorContinuity.js"
import { writeMirrorStatus } from "./MirrorStatusFile.js"
import { awaitWindow, drained, hasRoom, inFlight, makeWindow, type MirrorWindow, publishOne } from "./MirrorWindow.js"

const STATUS_EVERY_MS = 500
const WATCH_EVERY_MS = 50
const RETRY_FIRST_MS = 100
const RETRY_MAX_MS = 2_000
const INTERRUPTED = "interrupted: its process was stopped (SIGTERM, SIGINT, SIGHUP) or its caller ended the run"

/** What `run` knows of itself, shared by its sessions and its status fiber. */
interface MirrorRun {
  readonly options: MirrorOptions
  state: MirrorState
  detail: string | undefined
  mirrored: number
  end: number
  streamSequence: number
  retries: number
  /** Retries in the current outage (the backoff's exponent). */
  attempts: number
  /** When JetStream was first found unreachable in the current outage. */
  unavailableSince: number | undefined
  /** The last time everything ordered was in the stream. */
  caughtUpAt: number
  window: MirrorWindow | undefined
  readonly metrics: ReturnType<typeof taggedMetrics>
}

const taggedMetrics = (options: MirrorOptions) => {
  const tag = <M extends Metric.Metric<any, any, any>>(m: M): M =>
    Metric.tagged(Metric.tagged(m, "topic", options.topic), "stream", options.stream) as M
  return {
    offset: tag(mirrorOffset),
    lagMessages: tag(mirrorLagMessages),
    lagSeconds: tag(mirrorLagSeconds),
    unavailable: tag(mirrorUnavailable),
    retries: tag(mirrorRetries),
    latency: tag(mirrorPublishLatency)
  }
}

const lagSeconds = (run: MirrorRun, now: number): number => {
  const w = run.window
  if (w !== undefined && inFlight(w) > 0) return Math.max(0, now - w.timestamps[w.done % w.capacity]!) / 1000
  return run.end > run.mirrored ? (now - run.caughtUpAt) / 1000 : 0
}

/** Reports the run's state: the caller's callback, the status file, the gauges. */
const report = (run: MirrorRun): void => {
  const now = Date.now()
  if (run.window !== undefined) {
    run.mirrored = run.window.mirrored
    run.streamSequence = run.window.baseSequence + run.window.done
  }
  if (run.end <= run.mirrored) run.caughtUpAt = now
  const o = run.options
  const status = new MirrorStatus({
    topic: o.topic,
    regionId: o.regionId,
    stream: o.stream,
    subject: o.subject,
    servers: o.servers,
    consumer: o.consumer,
    pid: process.pid,
    state: run.state,
    mirrored: run.mirrored,
    end: Math.max(run.end, run.mirrored),
    lagOffsets: Math.max(0, run.end - run.mirrored),
    lagSeconds: lagSeconds(run, now),
    streamSequence: run.streamSequence,
    retries: run.retries,
    ...(run.detail === undefined ? {} : { detail: run.detail }),
    updatedAtMs: now
  })
  run.metrics.offset.unsafeUpdate(status.mirrored, [])
  run.metrics.lagMessages.unsafeUpdate(status.lagOffsets, [])
  run.metrics.lagSeconds.unsafeUpdate(status.lagSeconds, [])
  run.metrics.unavailable.unsafeUpdate(run.state === "mirror-unavailable" ? 1 : 0, [])
  // The file first: whoever the callback tells of a state (a log line, the bench) finds it there too.
  try {
    writeMirrorStatus(status)
  } catch {
    // A status file that cannot be written (no private directory) leaves the metrics and the callback.
  }
  o.onStatus?.(status)
}

const behind = (run: MirrorRun, next: number, earliest: number, reason: string) => {
  run.state = "behind-retention"
  return new MirrorBehindRetention({ topic: run.options.topic, stream: run.options.stream, next, earliest, reason })
}

/** The region side's errors: retention lost is `MirrorBehindRetention`, the rest as they are. */
const fromSubscription =
  (run: MirrorRun) => <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.catchIf(
      effect,
      (e): e is Extract<E, { readonly _tag: "LogOutOfRange" | "ConsumerCutOff" }> =>
        e._tag === "LogOutOfRange" || e._tag === "ConsumerCutOff",
      (e) => {
        const x = e as unknown as {
          readonly _tag: string
          readonly requested?: number
          readonly committed?: number
          readonly earliest: number
          readonly message: string
        }
        return Effect.fail(behind(run, x.requested ?? x.committed ?? run.mirrored, x.earliest, x.message))
      }
    ) as Effect.Effect<A, Exclude<E, { readonly _tag: "LogOutOfRange" | "ConsumerCutOff" }> | MirrorBehindRetention, R>

/** Pulls batches and publishes every message from `next` on (up to `until`) through the window; stops at a failure. */
const publishLoop = (
  run: MirrorRun,
  subscription: Subscription,
  w: MirrorWindow,
  target: Parameters<typeof publishOne>[1],
  next: number
) =>
  Effect.gen(function*() {
    const until = run.options.until ?? Infinity
    for (;;) {
      const batch = yield* subscription.pull.pipe(fromSubscription(run))
      for (const message of batch) {
        if (message.offset < next) continue
        if (message.offset >= until || w.failure !== undefined) return yield* Effect.never
        if (inFlight(w) >= w.capacity) yield* awaitWindow(w, hasRoom)
        if (w.failure !== undefined) return yield* Effect.never
        publishOne(w, target, message)
      }
      if (w.failure !== undefined) return yield* Effect.never
    }
  })

/**
 * Waits until every publish of the session settled (each is bounded by the request timeout from
 * its send, and none is sent after the failure), then fails with the session's failure.
 */
const endAtFailure = (run: MirrorRun, w: MirrorWindow, failure: string) =>
  Effect.gen(function*() {
    const boundMs = 2 * run.options.requestTimeoutMs
    const deadline = Date.now() + boundMs
    while (!drained(w)) {
      if (Date.now() > deadline) {
        return yield* new JetStreamFailed({
          reason: `${failure}; ${w.sent - w.settled} publishes still unanswered ${boundMs} ms later`
        })
      }
      yield* Effect.sleep(WATCH_EVERY_MS)
    }
    return yield* new JetStreamFailed({ reason: failure })
  })

/**
 * Commits what JetStream holds to the consumer; ends the session at a failure (once every publish
 * settled) or at `until`. An outage ends once JetStream takes one of the session's writes, or once
 * nothing ordered is left to write: a session it refuses from the first publish on goes on
 * backing off and counting towards `retryForMs`.
 */
const watchLoop = (run: MirrorRun, subscription: Subscription, w: MirrorWindow) =>
  Effect.gen(function*() {
    let committed = subscription.start
    for (;;) {
      yield* Effect.sleep(WATCH_EVERY_MS)
      if (w.mirrored > committed) {
        yield* subscription.commit(w.mirrored).pipe(
          fromSubscription(run),
          Effect.catchTag("CommitRejected", (e) => Effect.die(e))
        )
        committed = w.mirrored
      }
      if (run.unavailableSince !== undefined && (w.done > 0 || w.mirrored >= run.end)) {
        run.unavailableSince = undefined
        run.attempts = 0
      }
      if (w.failure !== undefined) return yield* endAtFailure(run, w, w.failure)
      if (run.options.until !== undefined && w.mirrored >= run.options.until) return
    }
  })

/**
 * One session: resume from the stream's end, mirror until a failure (or `until`). The topic's
 * generation, looked up first (a missing topic, or a `from` past its end, makes no stream), is part of every message id; read
 * again once subscribed, it says the subscription reads that generation (one created again in
 * between is the deletion the subscription would have failed with).
 */
const session = (run: MirrorRun, subscriber: SubscriberShape, topics: TopicsShape) =>
  Effect.gen(function*() {
    const o = run.options
    const { generation } = yield* topics.lookup(o.topic)
    if (typeof o.from === "number") {
      // The region refuses to read past the end; asked first, so no stream is made for a start that cannot be.
      const { end } = yield* subscriber.bounds(o.topic).pipe(fromSubscription(run))
      if (o.from > end) return yield* new MirrorFromPastEnd({ topic: o.topic, stream: o.stream, from: o.from, end })
    }
    // The log's rule for the consumer's name, asked before the stream is made: the subscribe below found it out after.
    const named = consumerNameBytes(o.consumer)
    if (named instanceof ConsumerNameInvalid) return yield* named
    const target = yield* openTarget(o, generation)
    const end = yield* target.end
    if (end.otherRegion !== undefined) {
      yield* continuesThisLog(subscriber, o, end.offset!, end.otherRegion).pipe(fromSubscription(run))
    }
    const resume = end.offset === undefined ? undefined : end.offset + 1
    // Known before the region is asked: a mirror refused there (behind retention) still says where it stands.
    if (resume !== undefined) run.mirrored = resume
    run.streamSequence = end.sequence
    const subscription = yield* subscriber.subscribe(o.topic, {
      consumer: o.consumer,
      from: resume ?? o.from,
      autoCommit: "off"
    }).pipe(fromSubscription(run))
    if ((yield* topics.lookup(o.topic)).generation !== generation) return yield* new TopicDeleted({ name: o.topic })
    const next = resume ?? subscription.start
    if (subscription.start > next) {
      run.state = "failed"
      return yield* new MirrorGap({
        stream: o.stream,
        topic: o.topic,
        streamNext: next,
        consumerCommitted: subscription.start
      })
    }
    // The first publish expects the stream's last sequence alone: the message there was just read and is
    // ours, and JetStream keeps the last message id in memory only, rebuilt after a restart only while
    // that message is younger than the stream's duplicate window, so after a longer outage an expected id
    // is refused for good (#34). Once the first is stored, JetStream knows its id for the ones after it.
    const w = makeWindow(o.maxInFlight, end.sequence, next, undefined, (latencyUs) =>
      run.metrics.latency.unsafeUpdate(latencyUs, []))
    run.window = w
    run.state = "mirroring"
    run.detail = undefined
    report(run)
    if (o.until !== undefined && next >= o.until) {
      return
    }
    yield* Effect.raceFirst(publishLoop(run, subscription, w, target, next), watchLoop(run, subscription, w))
  }).pipe(Effect.scoped)

const runMirror = (
  subscriber: SubscriberShape,
  topics: TopicsShape,
  options: MirrorOptions
): Effect.Effect<void, MirrorError> =>
  Effect.gen(function*() {
    const run: MirrorRun = {
      options,
      state: "starting",
      detail: undefined,
      mirrored: 0,
      end: 0,
      streamSequence: 0,
      retries: 0,
      attempts: 0,
      unavailableSince: undefined,
      caughtUpAt: Date.now(),
      window: undefined,
      metrics: taggedMetrics(options)
    }
    // Interrupted (its process stopping: SIGTERM, Ctrl-C), it says so: its status file would
    // otherwise still say it runs, and read as a mirror gone without a word (killed, crashed).
    yield* Effect.addFinalizer((exit) =>
      Exit.isInterrupted(exit)
        ? Effect.sync(() => {
          run.state = "stopped"
          run.detail = INTERRUPTED
          report(run)
        })
        : Effect.void
    )
    const refresh = subscriber.bounds(options.topic).pipe(
      Effect.map((b) => (run.end = b.end)),
      Effect.ignore,
      Effect.zipRight(Effect.sync(() => report(run)))
    )
    yield* refresh.pipe(
      Effect.zipRight(Effect.sleep(options.statusEveryMs ?? STATUS_EVERY_MS)),
      Effect.forever,
      Effect.forkScoped
    )
    for (;;) {
      const outcome = yield* session(run, subscriber, topics).pipe(Effect.either)
      if (outcome._tag === "Right") {
        run.state = "stopped"
        yield* refresh
        return
      }
      const error = outcome.left
      if (error._tag !== "JetStreamFailed") {
        if (run.state !== "behind-retention") run.state = error._tag === "MirrorStreamForeign" ? "fenced" : "failed"
        run.detail = error.message
        yield* refresh
        return yield* Effect.fail(error)
      }
      const now = Date.now()
      run.unavailableSince ??= now
      run.retries++
      run.attempts++
      run.metrics.retries.unsafeUpdate(1, [])
      run.state = "mirror-unavailable"
      run.detail = error.reason
      // What the failed session stored stands: its window's count, before the window goes.
      report(run)
      run.window = undefined
      if (now - run.unavailableSince > options.retryForMs) {
        run.state = "failed"
        yield* refresh
        return yield* new MirrorUnavailable({
          servers: options.servers,
          stream: options.stream,
          retriedMs: now - run.unavailableSince,
          retries: run.retries,
          reason: error.reason
        })
      }
      yield* Effect.logWarning(
        `mirror ${options.topic} → ${options.stream}: ${error.reason}; resuming from the stream's last message (retry ${run.retries})`
      )
      yield* Effect.sleep(Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(10, run.attempts - 1)))
    }
  }).pipe(Effect.scoped)

export const make = Effect.map(
  Effect.all([Subscriber, Topics]),
  ([subscriber, topics]) => Mirror.of({ run: (options) => runMirror(subscriber, topics, options) })
)

/**
 * The Mirror over whichever Subscriber and Topics are provided: the region's (SubscriberLayers.layer
 * and TopicsLayers.layer, read in place) or the brokers' (SubscriberRemoteLayers.layerRemote and
 * TopicsRemoteLayers.layerRemote; a description needs only the right to read the topic).
 */
export const layer: Layer.Layer<Mirror, never, Subscriber | Topics> = Layer.effect(Mirror, make)
