/**
 * A multi-topic subscription a broker serves (docs/protocol.md, "Several topics on one
 * subscription"): its SUBSCRIBE names topics and patterns; each topic read is a stream of the
 * connection, opened by a STREAM frame with its topic and start, each with its own cursor (and
 * named consumer's lease) and a `Served` record of its own (ServedSubscription.ts: DATA frames
 * from where batches lie, the check that none was reclaimed while the kernel took it, commits).
 * Streams take turns: a round sends up to a round's worth of one stream's batches, behind a
 * STREAM frame when the stream changes; the credit is the connection's, shared by its streams.
 * When no stream has anything the broker waits for any of them. Its patterns are matched against
 * the region's topics again every DISCOVERY_MS: a topic that appeared meanwhile (and the user may
 * read) becomes a stream, read from its first message. A topic deleted while read ends its stream
 * with an ENDED frame (`topic-deleted`); the others go on.
 */
import { Effect, Either, ExecutionStrategy, Exit, Scope } from "effect"
import type { Socket } from "node:net"
import { ConsumerCutOff } from "../../services/log/Consumers.js"
import type { ConsumersShape } from "../../services/log/Consumers.js"
import { type LogBatchView, LogOutOfRange, type LogReaderShape } from "../../services/log/LogReader.js"
import { InvalidTopicPattern, parseSelection, type TopicSelection } from "../../services/log/TopicPattern.js"
import { type LogCorrupt, type TopicDeleted, type TopicsShape, withinRegion } from "../../services/log/Topics.js"
import { authorize, type AuthServer, type UserRecord } from "./Auth.js"
import { endedFrame, PROTOCOL_VERSION, WireViolation } from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"
import {
  commit,
  cutOff,
  EMPTY,
  flushedOf,
  idleWatch,
  newServed,
  outOfRange,
  reclaimed,
  ROUND_BATCHES,
  roundWritten,
  sendBatch,
  type Served,
  WAIT_SLICE_MS
} from "./ServedSubscription.js"
import { MAX_CREDIT, streamFrame, StreamStart, type Subscribe, Subscribed, subscribedFrame } from "./SubscribeFrames.js"
import { openTopic, refuse, refuseCutOff, refuseOutOfRange } from "./SubscriptionOpen.js"

/** How often the broker matches a subscription's patterns against the region's topics again. */
export const DISCOVERY_MS = 250

interface Stream {
  readonly id: number
  readonly topic: string
  readonly served: Served
  readonly scope: Scope.CloseableScope
  /** Made once: the stream's callback for its rounds' last write. */
  readonly written: () => void
}

export interface ServeTopicsContext {
  readonly socket: Socket
  readonly reader: LogReaderShape
  readonly consumers: ConsumersShape | undefined
  readonly topics: TopicsShape | undefined
  readonly request: Subscribe
  /** The user it authenticated as (undefined: the broker authenticates nobody). */
  readonly user: UserRecord | undefined
  /** The credential file it authenticated by: a topic found later is checked against the user's rights then. */
  readonly auth: AuthServer | undefined
  readonly brokerId: number
  readonly serverSignature: string | undefined
  readonly idleTimeoutMs: number
  readonly nextFrame: Effect.Effect<Frame | undefined, WireViolation>
  readonly subscribed: () => void
}

/** Serves a SUBSCRIBE with `topics` until the client closes; fails with the violation the broker should send. */
export const serveTopics = (c: ServeTopicsContext): Effect.Effect<void, WireViolation, Scope.Scope> =>
  Effect.catchAll(serve(c), (e) => {
    if (e instanceof LogOutOfRange) return Effect.sync(() => refuseOutOfRange(c.socket, e, e.topic))
    if (e instanceof ConsumerCutOff) return Effect.sync(() => refuseCutOff(c.socket, e, e.topic))
    if (e instanceof WireViolation) return Effect.fail(e)
    return Effect.fail(new WireViolation({ code: "internal", detail: e.message }))
  })

/** A subscription's streams and where its sending is, shared by its discovery, rounds and credit. */
interface Serving {
  readonly c: ServeTopicsContext
  readonly selection: TopicSelection
  /** Where a topic starts: where a failover's SUBSCRIBE says it went on, else as the request says. */
  readonly positions: ReadonlyMap<string, number>
  readonly scope: Scope.Scope
  readonly streams: Array<Stream>
  readonly byTopic: Map<string, Stream>
  readonly byId: Map<number, Stream>
  nextId: number
  discoveredAt: number
  credit: number
  creditArrived: (() => void) | undefined
  /** The stream whose DATA frames the client takes now (a STREAM frame switches it). */
  sending: number
  /** Where the turn is: the stream after the last one that sent. */
  turn: number
  /** Topics the patterns matched at the last look that the user may not read. */
  unreadable: number
}

const serve = (c: ServeTopicsContext) =>
  Effect.gen(function*() {
    const { request, socket } = c
    const selection = parseSelection(request.topics ?? [])
    if (selection instanceof InvalidTopicPattern) {
      return yield* new WireViolation({ code: "bad-subscribe", detail: selection.message })
    }
    if (selection.patterns.length > 0 && c.topics === undefined) {
      return yield* new WireViolation({ code: "bad-subscribe", detail: "this broker matches no patterns" })
    }
    const denied = c.user === undefined
      ? undefined
      : selection.names.map((name) => authorize(c.user!, "read", name)).find((why) => why !== undefined) ??
        (request.consumer === undefined ? undefined : authorize(c.user, "consume", request.consumer))
    if (denied !== undefined) return yield* new WireViolation({ code: "forbidden", detail: denied })
    const positions = new Map((request.positions ?? []).map((p) => [p.topic, p.offset]))
    const scope = yield* Effect.scope
    const s: Serving = {
      c,
      selection,
      positions,
      scope,
      streams: [],
      byTopic: new Map(),
      byId: new Map(),
      nextId: 1,
      discoveredAt: -Infinity,
      credit: request.credit,
      creditArrived: undefined,
      sending: 0,
      turn: 0,
      unreadable: 0
    }
    for (const name of selection.names) {
      const opened = yield* Effect.either(openStream(s, name, false))
      if (Either.isRight(opened)) continue
      // Which of the topics it names is not there: the client's error names it.
      if (opened.left instanceof WireViolation && opened.left.code === "unknown-topic") {
        return refuse(socket, "unknown-topic", opened.left.detail, name)
      }
      return yield* Effect.fail(opened.left)
    }
    yield* discover(s, false)
    c.subscribed()
    socket.write(
      subscribedFrame(
        new Subscribed({
          protocol: PROTOCOL_VERSION,
          brokerId: c.brokerId,
          streams: s.streams.length,
          ...(s.unreadable === 0 ? {} : { unreadable: s.unreadable }),
          ...(c.serverSignature === undefined ? {} : { serverSignature: c.serverSignature })
        })
      )
    )
    for (const stream of s.streams) yield* announce(c, stream)
    yield* Effect.raceFirst(
      readCredits(s),
      Effect.raceFirst(sendRounds(s), idleWatch(socket, () => s.credit, c.idleTimeoutMs))
    )
  })

/** Opens a stream of `topic` (from its first message when a pattern found it later); tells the client once subscribed. */
const openStream = (s: Serving, topic: string, later: boolean) =>
  Effect.gen(function*() {
    const { c } = s
    const { request } = c
    const own = yield* Scope.fork(s.scope, ExecutionStrategy.sequential)
    const known = s.positions.get(topic)
    const start = known !== undefined
      ? { from: known }
      : later
      ? { from: "earliest" as const }
      : { from: request.from, fromTime: request.fromTime }
    const opened = yield* Scope.extend(openTopic(c.reader, c.consumers, topic, start, request.consumer), own).pipe(
      Effect.tapError(() => Scope.close(own, Exit.void))
    )
    const served = newServed(c.socket, c.reader, topic, opened.cursor, opened.lease, 0)
    const stream: Stream = { id: s.nextId++, topic, served, scope: own, written: () => roundWritten(served) }
    s.streams.push(stream)
    s.byTopic.set(topic, stream)
    s.byId.set(stream.id, stream)
    return stream
  })

const announce = (c: ServeTopicsContext, stream: Stream) =>
  Effect.map(c.reader.bounds(stream.topic).pipe(Effect.orDie), (held) =>
    void c.socket.write(
      streamFrame(
        stream.id,
        new StreamStart({ topic: stream.topic, start: stream.served.cursor.position(), ...held })
      )
    ))

/** A stream whose topic was deleted: it ends (ENDED topic-deleted), the others go on. */
const endStream = (s: Serving, stream: Stream, code: WireViolation["code"], detail: string) =>
  Effect.suspend(() => {
    s.streams.splice(s.streams.indexOf(stream), 1)
    s.byTopic.delete(stream.topic)
    s.byId.delete(stream.id)
    s.c.socket.write(endedFrame(stream.id, 0, code, detail, { topic: stream.topic }))
    return Scope.close(stream.scope, Exit.void)
  })

/**
 * Topics the patterns match (and the user may read: it counts those it may not) that are no stream
 * yet: each becomes one, by the user's rights as they are now (none once it may no longer join the
 * subscription's named consumer).
 */
const discover = (s: Serving, later: boolean) =>
  Effect.gen(function*() {
    const { c, selection } = s
    s.discoveredAt = performance.now()
    if (selection.patterns.length === 0) return []
    const found: Array<Stream> = []
    // The user's rights as they are now, read once a pass (undefined: removed, or the file unusable: nothing more).
    const user = c.user === undefined || c.auth === undefined ? c.user : c.auth.current(c.user)
    if (c.user !== undefined && user === undefined) return found
    // A topic found joins the named consumer there: a user no longer allowed to be it joins none.
    const consumer = c.request.consumer
    const mayJoin = user === undefined || consumer === undefined || authorize(user, "consume", consumer) === undefined
    s.unreadable = 0
    for (const info of yield* withinRegion(c.topics!.list)) {
      if (s.byTopic.has(info.name) || !selection.patterns.some((p) => p.matches(info.name))) continue
      if (user !== undefined && authorize(user, "read", info.name) !== undefined) {
        s.unreadable++
        continue
      }
      if (!mayJoin) continue
      const opened = yield* Effect.either(openStream(s, info.name, later))
      if (Either.isRight(opened)) found.push(opened.right)
      // Deleted since it was listed: not there to read.
      else if (!(opened.left instanceof WireViolation && opened.left.code === "unknown-topic")) {
        return yield* Effect.fail(opened.left)
      }
    }
    return found
  })

/** The client's frames: COMMITs, each to its stream, and CREDITs, which wake the rounds waiting for credit. */
const readCredits = (s: Serving) =>
  Effect.gen(function*() {
    for (;;) {
      const frame = yield* s.c.nextFrame
      if (frame === undefined) return
      if (frame.type === FrameType.COMMIT) {
        const stream = s.byId.get(frame.clientId)
        // A stream that ended meanwhile: its commit has nothing left to move.
        if (stream === undefined) continue
        yield* commit(stream.served, frame.seq)
        continue
      }
      s.credit = Math.min(MAX_CREDIT, s.credit + frame.seq)
      const wake = s.creditArrived
      s.creditArrived = undefined
      wake?.()
    }
  })

/** One round of `stream`: up to a round's worth of its batches, behind a STREAM frame when it was not the one sending; how many. */
const round = (s: Serving, stream: Stream) => {
  const { socket } = s.c
  const served = stream.served
  const send = (b: LogBatchView) => {
    if (s.sending !== stream.id) {
      socket.write(streamFrame(stream.id))
      s.sending = stream.id
    }
    sendBatch(served, b)
  }
  const endRound = Effect.sync(() => {
    if (served.frames > 0) {
      served.unwritten++
      socket.write(EMPTY, stream.written)
    }
    socket.uncork()
  })
  return Effect.suspend((): Effect.Effect<number, TopicDeleted | LogCorrupt | LogOutOfRange | ConsumerCutOff> => {
    if (served.lease?.cutOff()) return cutOff(served, served.lease)
    served.frames = 0
    socket.cork()
    return served.cursor.pollBatches(send, Math.min(s.credit, ROUND_BATCHES)).pipe(
      Effect.ensuring(endRound),
      Effect.tap((n) =>
        Effect.gen(function*() {
          if (n === 0) return
          s.credit -= n
          // Until the kernel has them, the writes still point into the log's space.
          if (socket.writableLength > 0) yield* flushedOf(served)
          const gone = reclaimed(served)
          if (gone >= 0) return yield* outOfRange(served, gone)
        })
      )
    )
  })
}

/** The streams' rounds, in turn while there is credit; with nothing to send, a wait for any of them. */
const sendRounds = (s: Serving) => {
  const { c, selection, streams } = s
  const { socket } = c
  const awaitCredit = Effect.async<void>((resume) => {
    if (s.credit > 0) return resume(Effect.void)
    s.creditArrived = () => resume(Effect.void)
    return Effect.sync(() => {
      s.creditArrived = undefined
    })
  })
  return Effect.gen(function*() {
    for (;;) {
      if (socket.destroyed || socket.writableEnded) return
      if (s.credit === 0) {
        yield* awaitCredit
        continue
      }
      if (selection.patterns.length > 0 && performance.now() - s.discoveredAt >= DISCOVERY_MS) {
        for (const stream of yield* discover(s, true)) yield* announce(c, stream)
      }
      let sent = false
      for (let k = 0; k < streams.length && !sent; k++) {
        const stream = streams[(s.turn + k) % streams.length]!
        const n = yield* round(s, stream).pipe(
          Effect.catchTag("TopicDeleted", (e) => Effect.as(endStream(s, stream, "topic-deleted", e.message), 0))
        )
        if (n > 0) {
          s.turn = streams.indexOf(stream) + 1
          sent = true
        }
      }
      if (sent) continue
      const waitMs = selection.patterns.length > 0 ? DISCOVERY_MS : WAIT_SLICE_MS
      if (streams.length === 0) yield* Effect.sleep(waitMs)
      else yield* Effect.raceAll(streams.map((stream) => stream.served.cursor.awaitMore(waitMs)))
    }
  })
}
