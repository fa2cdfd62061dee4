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
import { InvalidTopicPattern, parseSelection } from "../../services/log/TopicPattern.js"
import { type LogCorrupt, type TopicDeleted, type TopicsShape, withinRegion } from "../../services/log/Topics.js"
import { authorize, type UserRecord } from "./Auth.js"
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
    /** Where a topic starts: where a failover's SUBSCRIBE says it went on, else as the request says. */
    const positions = new Map((request.positions ?? []).map((p) => [p.topic, p.offset]))
    const scope = yield* Effect.scope
    const streams: Array<Stream> = []
    const byTopic = new Map<string, Stream>()
    const byId = new Map<number, Stream>()
    let nextId = 1
    /** Opens a stream of `topic` (from its first message when a pattern found it later); tells the client once subscribed. */
    const open = (topic: string, later: boolean) =>
      Effect.gen(function*() {
        const own = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const known = positions.get(topic)
        const start = known !== undefined
          ? { from: known }
          : later
          ? { from: "earliest" as const }
          : { from: request.from, fromTime: request.fromTime }
        const opened = yield* Scope.extend(openTopic(c.reader, c.consumers, topic, start, request.consumer), own).pipe(
          Effect.tapError(() => Scope.close(own, Exit.void))
        )
        const served = newServed(socket, c.reader, topic, opened.cursor, opened.lease, 0)
        const stream: Stream = { id: nextId++, topic, served, scope: own, written: () => roundWritten(served) }
        streams.push(stream)
        byTopic.set(topic, stream)
        byId.set(stream.id, stream)
        return stream
      })
    const announce = (stream: Stream) =>
      Effect.map(c.reader.bounds(stream.topic).pipe(Effect.orDie), (held) =>
        void socket.write(
          streamFrame(
            stream.id,
            new StreamStart({ topic: stream.topic, start: stream.served.cursor.position(), ...held })
          )
        ))
    /** A stream whose topic was deleted: it ends (ENDED topic-deleted), the others go on. */
    const end = (stream: Stream, code: WireViolation["code"], detail: string) =>
      Effect.suspend(() => {
        streams.splice(streams.indexOf(stream), 1)
        byTopic.delete(stream.topic)
        byId.delete(stream.id)
        socket.write(endedFrame(stream.id, 0, code, detail, { topic: stream.topic }))
        return Scope.close(stream.scope, Exit.void)
      })
    for (const name of selection.names) {
      const opened = yield* Effect.either(open(name, false))
      if (Either.isRight(opened)) continue
      // Which of the topics it names is not there: the client's error names it.
      if (opened.left instanceof WireViolation && opened.left.code === "unknown-topic") {
        return refuse(socket, "unknown-topic", opened.left.detail, name)
      }
      return yield* Effect.fail(opened.left)
    }
    let discoveredAt = -Infinity
    /** Topics the patterns match (and the user may read) that are no stream yet: each becomes one. */
    const discover = (later: boolean) =>
      Effect.gen(function*() {
        discoveredAt = performance.now()
        if (selection.patterns.length === 0) return []
        const found: Array<Stream> = []
        for (const info of yield* withinRegion(c.topics!.list)) {
          const readable = c.user === undefined || authorize(c.user, "read", info.name) === undefined
          if (byTopic.has(info.name) || !readable || !selection.patterns.some((p) => p.matches(info.name))) continue
          const opened = yield* Effect.either(open(info.name, later))
          if (Either.isRight(opened)) found.push(opened.right)
          // Deleted since it was listed: not there to read.
          else if (!(opened.left instanceof WireViolation && opened.left.code === "unknown-topic")) {
            return yield* Effect.fail(opened.left)
          }
        }
        return found
      })
    yield* discover(false)
    c.subscribed()
    socket.write(
      subscribedFrame(
        new Subscribed({
          protocol: PROTOCOL_VERSION,
          brokerId: c.brokerId,
          streams: streams.length,
          ...(c.serverSignature === undefined ? {} : { serverSignature: c.serverSignature })
        })
      )
    )
    for (const stream of streams) yield* announce(stream)

    let credit = request.credit
    let creditArrived: (() => void) | undefined
    const readCredits = Effect.gen(function*() {
      for (;;) {
        const frame = yield* c.nextFrame
        if (frame === undefined) return
        if (frame.type === FrameType.COMMIT) {
          const stream = byId.get(frame.clientId)
          // A stream that ended meanwhile: its commit has nothing left to move.
          if (stream === undefined) continue
          yield* commit(stream.served, frame.seq)
          continue
        }
        credit = Math.min(MAX_CREDIT, credit + frame.seq)
        const wake = creditArrived
        creditArrived = undefined
        wake?.()
      }
    })
    const awaitCredit = Effect.async<void>((resume) => {
      if (credit > 0) return resume(Effect.void)
      creditArrived = () => resume(Effect.void)
      return Effect.sync(() => {
        creditArrived = undefined
      })
    })
    /** The stream whose DATA frames the client takes now (a STREAM frame switches it). */
    let sending = 0
    /** Where the turn is: the stream after the last one that sent. */
    let turn = 0
    /** One round of `stream`: up to a round's worth of its batches, behind a STREAM frame when it was not the one sending; how many. */
    const round = (stream: Stream) => {
      const served = stream.served
      const send = (b: LogBatchView) => {
        if (sending !== stream.id) {
          socket.write(streamFrame(stream.id))
          sending = stream.id
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
        return served.cursor.pollBatches(send, Math.min(credit, ROUND_BATCHES)).pipe(
          Effect.ensuring(endRound),
          Effect.tap((n) =>
            Effect.gen(function*() {
              if (n === 0) return
              credit -= n
              // Until the kernel has them, the writes still point into the log's space.
              if (socket.writableLength > 0) yield* flushedOf(served)
              const gone = reclaimed(served)
              if (gone >= 0) return yield* outOfRange(served, gone)
            })
          )
        )
      })
    }
    const sendRounds = Effect.gen(function*() {
      for (;;) {
        if (socket.destroyed || socket.writableEnded) return
        if (credit === 0) {
          yield* awaitCredit
          continue
        }
        if (selection.patterns.length > 0 && performance.now() - discoveredAt >= DISCOVERY_MS) {
          for (const stream of yield* discover(true)) yield* announce(stream)
        }
        let sent = false
        for (let k = 0; k < streams.length && !sent; k++) {
          const stream = streams[(turn + k) % streams.length]!
          const n = yield* round(stream).pipe(
            Effect.catchTag("TopicDeleted", (e) => Effect.as(end(stream, "topic-deleted", e.message), 0))
          )
          if (n > 0) {
            turn = streams.indexOf(stream) + 1
            sent = true
          }
        }
        if (sent) continue
        const waitMs = selection.patterns.length > 0 ? DISCOVERY_MS : WAIT_SLICE_MS
        if (streams.length === 0) yield* Effect.sleep(waitMs)
        else yield* Effect.raceAll(streams.map((stream) => stream.served.cursor.awaitMore(waitMs)))
      }
    })
    yield* Effect.raceFirst(readCredits, Effect.raceFirst(sendRounds, idleWatch(socket, () => credit, c.idleTimeoutMs)))
  })
