/**
 * The TCP broker over `BrokerLog` (see services/Broker.ts for the behaviour). Receive path:
 * socket chunks are queued (the socket is paused past `readBufferBytes`), frame headers are
 * parsed in place, and a batch payload is handed to `append` as a view of its chunk, so the
 * only copy is the log's own (chunk → region); a batch that straddles chunks is first
 * reassembled into the connection's one reusable buffer.
 */
import { Config, type ConfigError, Duration, Effect, Either, FiberSet, Layer, Metric, type Scope } from "effect"
import { createServer, type Server, type Socket } from "node:net"
import {
  brokerAckFrames,
  brokerBatches,
  brokerBytes,
  brokerConnections,
  brokerFencedFrames,
  brokerRejected
} from "../Metrics.js"
import { Broker, BrokerListenFailed, type BrokerOptions, type BrokerShape, type BrokerStats } from "../services/Broker.js"
import { BrokerLog, type BrokerLogShape } from "../services/BrokerLog.js"
import { checkBatchPayload } from "../wire/BatchPayload.js"
import {
  ackFrame,
  errorFrame,
  Hello,
  PROTOCOL_VERSION,
  sessionFencedFrame,
  Welcome,
  welcomeFrame,
  decodeControl,
  type WireErrorCode,
  WireViolation
} from "../wire/Control.js"
import { type Frame, FrameType } from "../wire/Frame.js"
import { FrameReader } from "../wire/FrameReader.js"

interface Settings {
  readonly host: string
  readonly port: number
  readonly maxBatchBytes: number
  readonly ackIntervalMs: number
  readonly handshakeTimeoutMs: number
  readonly maxConnections: number
  readonly readBufferBytes: number
  readonly writeBufferBytes: number
}

const settingsOf = (options: BrokerOptions): Settings => ({
  host: options.host ?? "127.0.0.1",
  port: options.port ?? 0,
  maxBatchBytes: options.maxBatchBytes ?? 1 << 20,
  ackIntervalMs: options.ackIntervalMs ?? 0,
  handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5_000,
  maxConnections: options.maxConnections ?? 1024,
  readBufferBytes: options.readBufferBytes ?? 1 << 20,
  writeBufferBytes: options.writeBufferBytes ?? 1 << 20
})

/** How long a rejected connection may take to read its error frame before it is destroyed. */
const REJECT_GRACE_MS = 1_000
/** Upper bound of one wait for frontier progress (the ACK tracker re-reads after it). */
const PROGRESS_WAIT_MS = 1_000

/** Resumes after the event loop has polled I/O once more, so every batch already received is appended first. */
const nextLoopTurn = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** Received chunks of one socket, handed to its connection fiber in order; pauses the socket past `highWater` bytes. */
const makeInbox = (socket: Socket, highWater: number) => {
  const chunks: Array<Buffer> = []
  let queued = 0
  let handedOut = 0
  let paused = false
  let ended = false
  let waiting: (() => void) | undefined
  const deliver = () => {
    if (waiting !== undefined && (chunks.length > 0 || ended)) {
      const wake = waiting
      waiting = undefined
      wake()
    }
  }
  const onData = (chunk: Buffer) => {
    chunks.push(chunk)
    queued += chunk.length
    if (queued > highWater && !paused) {
      paused = true
      socket.pause()
    }
    deliver()
  }
  const onEnd = () => {
    ended = true
    deliver()
  }
  socket.on("data", onData)
  socket.on("end", onEnd)
  socket.on("close", onEnd)
  /** The previous chunk has been consumed entirely when the next one is asked for. */
  const take = (): Buffer | undefined => {
    queued -= handedOut
    handedOut = 0
    if (paused && !ended && queued <= highWater / 2) {
      paused = false
      socket.resume()
    }
    const chunk = chunks.shift()
    if (chunk !== undefined) handedOut = chunk.length
    return chunk
  }
  return {
    /** Bytes received and not yet consumed (the chunk being parsed included). */
    queued: () => queued,
    /** The next chunk, or `undefined` once the peer has finished (or the inbox was stopped). */
    next: Effect.suspend(() =>
      chunks.length > 0 || ended
        ? Effect.succeed(take())
        : Effect.async<Buffer | undefined>((resume) => {
          waiting = () => resume(Effect.succeed(take()))
          return Effect.sync(() => {
            waiting = undefined
          })
        })
    ),
    /** Stops reading: later data is ignored. */
    stop: () => {
      ended = true
      chunks.length = 0
      socket.off("data", onData)
      socket.pause()
      deliver()
    }
  }
}

export const make = (options: BrokerOptions = {}): Effect.Effect<BrokerShape, BrokerListenFailed, BrokerLog | Scope.Scope> =>
  Effect.gen(function*() {
    const log = yield* BrokerLog
    const settings = settingsOf(options)
    const sockets = new Set<Socket>()
    const inboxes = new Set<{ readonly queued: () => number }>()
    const counts = { accepted: 0, batches: 0, messages: 0, bytes: 0, ackFrames: 0, fencedFrames: 0 }
    const rejected: Partial<Record<WireErrorCode, number>> = {}
    const run = yield* FiberSet.makeRuntime<never>()

    const countRejection = (code: WireErrorCode) => {
      rejected[code] = (rejected[code] ?? 0) + 1
      brokerRejected.pipe(Metric.tagged("code", code)).unsafeUpdate(1, [])
    }

    /** Sends the error frame, stops reading, and destroys the socket once it is flushed (or after a grace period). */
    const reject = (socket: Socket, violation: WireViolation) => {
      if (socket.destroyed || socket.writableEnded) return
      countRejection(violation.code)
      socket.end(errorFrame(violation.code, violation.detail))
      setTimeout(() => socket.destroy(), REJECT_GRACE_MS).unref()
    }

    const welcome = welcomeFrame(new Welcome({ protocol: PROTOCOL_VERSION, brokerId: log.brokerId, maxBatchBytes: settings.maxBatchBytes }))
    const server: Server = createServer({ noDelay: true, allowHalfOpen: true })
    server.on("connection", (socket) => {
      counts.accepted++
      socket.on("error", () => {})
      if (sockets.size >= settings.maxConnections) {
        reject(socket, new WireViolation({ code: "too-many-connections", detail: `this broker serves at most ${settings.maxConnections} connections` }))
        return
      }
      sockets.add(socket)
      brokerConnections.unsafeUpdate(sockets.size, [])
      socket.once("close", () => {
        sockets.delete(socket)
        brokerConnections.unsafeUpdate(sockets.size, [])
      })
      run(serve(socket))
    })

    const serve = (socket: Socket) =>
      Effect.gen(function*() {
        const inbox = makeInbox(socket, settings.readBufferBytes)
        inboxes.add(inbox)
        yield* Effect.addFinalizer(() => Effect.sync(() => inboxes.delete(inbox)))
        const reader = new FrameReader({ accept: [FrameType.HELLO, FrameType.BATCH], maxBatchBytes: settings.maxBatchBytes })
        /** Waits for chunks until the reader completes a frame, the stream ends, or the input is bad. */
        const pull = Effect.gen(function*() {
          for (;;) {
            const chunk = yield* inbox.next
            if (chunk === undefined) {
              if (reader.midFrame) return yield* new WireViolation({ code: "truncated", detail: "the connection ended inside a frame" })
              return undefined
            }
            reader.push(chunk)
            const frame = reader.next()
            if (frame instanceof WireViolation) return yield* Effect.fail(frame)
            if (frame !== undefined) return frame
          }
        })
        // Fast path: the next frame is already in the current chunk.
        const nextFrame = Effect.suspend(() => {
          const frame = reader.next()
          if (frame === undefined) return pull
          return frame instanceof WireViolation ? Effect.fail(frame) : Effect.succeed(frame)
        })
        // A plain timer, not an Effect timeout: it costs nothing per connection beyond itself.
        const handshakeTimer = setTimeout(() => {
          reject(socket, new WireViolation({ code: "handshake-timeout", detail: `no HELLO within ${settings.handshakeTimeoutMs} ms` }))
          inbox.stop()
        }, settings.handshakeTimeoutMs)
        yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(handshakeTimer)))
        const outcome = yield* Effect.either(Effect.scoped(session(socket, nextFrame, handshakeTimer)))
        inbox.stop()
        if (Either.isLeft(outcome)) {
          yield* Effect.logDebug(`broker ${log.brokerId}: closing a connection: ${outcome.left.message}`)
          reject(socket, outcome.left)
        } else if (!socket.writableEnded) {
          socket.destroy()
        }
      }).pipe(
        Effect.scoped,
        Effect.catchAllCause((cause) =>
          Effect.logWarning(`broker ${log.brokerId}: connection failed`, cause).pipe(
            Effect.zipRight(Effect.sync(() => reject(socket, new WireViolation({ code: "internal", detail: "internal broker error" }))))
          )
        ),
        Effect.onInterrupt(() => Effect.sync(() => socket.destroy()))
      )

    /** Writes a frame unless the client stopped reading (then the connection is dropped). */
    const send = (socket: Socket, frame: Buffer): boolean => {
      if (socket.destroyed || socket.writableEnded) return false
      if (socket.writableLength > settings.writeBufferBytes) {
        reject(socket, new WireViolation({ code: "slow-consumer", detail: "the client does not read its ACK frames" }))
        return false
      }
      socket.write(frame)
      return true
    }

    const handshake = (socket: Socket, nextFrame: Effect.Effect<Frame | undefined, WireViolation>) =>
      Effect.gen(function*() {
        const frame = yield* nextFrame
        if (frame === undefined) return undefined
        if (frame.type !== FrameType.HELLO) return yield* new WireViolation({ code: "unexpected-frame", detail: "the first frame must be HELLO" })
        const hello = yield* decodeControl(Hello, frame.payload, "bad-handshake")
        if (hello.protocol !== PROTOCOL_VERSION) {
          return yield* new WireViolation({ code: "version-mismatch", detail: `protocol ${hello.protocol}, this broker speaks ${PROTOCOL_VERSION}` })
        }
        if (frame.clientId !== hello.clientId || frame.sessionEpoch !== hello.sessionEpoch) {
          return yield* new WireViolation({ code: "bad-handshake", detail: "the HELLO header and body name different sessions" })
        }
        yield* log.topic(hello.topic).pipe(Effect.mapError((e) => new WireViolation({ code: "unknown-topic", detail: e.message })))
        send(socket, welcome)
        return hello
      })

    const session = (socket: Socket, nextFrame: Effect.Effect<Frame | undefined, WireViolation>, handshakeTimer: ReturnType<typeof setTimeout>) =>
      Effect.gen(function*() {
        const hello = yield* handshake(socket, nextFrame)
        clearTimeout(handshakeTimer)
        if (hello === undefined) return
        const received = { highest: -1 }
        yield* Effect.forkScoped(ackTracker(socket, log, hello, received))
        for (;;) {
          const frame = yield* nextFrame
          // Done, or the ACK tracker dropped the connection (slow consumer): append nothing more.
          if (frame === undefined || socket.writableEnded) return
          if (frame.type !== FrameType.BATCH) return yield* new WireViolation({ code: "unexpected-frame", detail: "only BATCH frames follow the handshake" })
          if (frame.clientId !== hello.clientId || frame.sessionEpoch !== hello.sessionEpoch) {
            return yield* new WireViolation({
              code: "session-mismatch",
              detail: `batch of session ${frame.clientId}/${frame.sessionEpoch} on a connection of ${hello.clientId}/${hello.sessionEpoch}`
            })
          }
          const malformed = checkBatchPayload(frame.payload, frame.messageCount)
          if (malformed !== undefined) return yield* new WireViolation({ code: "bad-batch", detail: malformed })
          yield* log.append(hello.topic, {
            clientId: frame.clientId,
            sessionEpoch: frame.sessionEpoch,
            batchSeq: frame.seq,
            messageCount: frame.messageCount,
            payloadBytes: frame.payloadBytes,
            crc32c: frame.crc32c
          }, frame.payload).pipe(
            Effect.mapError((e) => new WireViolation({ code: e._tag === "LogCorrupt" ? "internal" : "append-failed", detail: e.message }))
          )
          if (frame.seq > received.highest) received.highest = frame.seq
          counts.batches++
          counts.messages += frame.messageCount
          counts.bytes += frame.payloadBytes
          brokerBatches.unsafeUpdate(1, [])
          brokerBytes.unsafeUpdate(frame.payloadBytes, [])
        }
      })

    /**
     * This connection's ACK tracker: re-reads the session's frontier whenever the topic's
     * progress moves and sends the cumulative ACK if it advanced past what this connection
     * was sent and covers a batch this connection carried; after sending it waits
     * `ackIntervalMs` (0: one event-loop turn, in which every batch already received is
     * appended), so a fast stream gets one ACK per interval or turn, not one per batch.
     */
    const ackTracker = (socket: Socket, log: BrokerLogShape, hello: Hello, received: { highest: number }) =>
      Effect.gen(function*() {
        let seen = log.progress(hello.topic)
        let acked = 0
        for (;;) {
          const acks = yield* log.sessionAcks(hello.topic, hello.clientId, hello.sessionEpoch)
          const frontier = hello.ackLevel === 2 ? acks.replicated : acks.ordered
          let sent = false
          if (hello.ackLevel > 0 && frontier > acked && received.highest >= acked) {
            acked = frontier
            if (!send(socket, ackFrame(hello.clientId, hello.sessionEpoch, frontier, hello.ackLevel))) return
            counts.ackFrames++
            brokerAckFrames.unsafeUpdate(1, [])
            sent = true
          }
          if (acks.fenced) {
            if (send(socket, sessionFencedFrame(hello.clientId, hello.sessionEpoch, acks.ordered))) {
              counts.fencedFrames++
              brokerFencedFrames.unsafeUpdate(1, [])
            }
            return
          }
          if (sent) yield* settings.ackIntervalMs > 0 ? Effect.sleep(Duration.millis(settings.ackIntervalMs)) : nextLoopTurn
          seen = yield* log.awaitProgress(hello.topic, seen, PROGRESS_WAIT_MS)
        }
      }).pipe(
        Effect.catchAll((error) =>
          Effect.logWarning(`broker ${log.brokerId}: ACK tracker stopped: ${error.message}`).pipe(
            Effect.zipRight(Effect.sync(() => reject(socket, new WireViolation({ code: "internal", detail: error.message }))))
          )
        )
      )

    yield* Effect.acquireRelease(
      Effect.async<void, BrokerListenFailed>((resume) => {
        const onError = (error: Error) => resume(Effect.fail(new BrokerListenFailed({ host: settings.host, port: settings.port, reason: error.message })))
        server.once("error", onError)
        server.listen(settings.port, settings.host, () => {
          server.off("error", onError)
          resume(Effect.void)
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          for (const socket of sockets) socket.destroy()
        })
    )
    server.on("error", (error) => run(Effect.logError(`broker ${log.brokerId}: server error: ${error.message}`)))
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : settings.port
    yield* Effect.logDebug(`broker ${log.brokerId} listening on ${settings.host}:${port}`)

    return {
      brokerId: log.brokerId,
      host: settings.host,
      port,
      stats: (): BrokerStats => {
        let queuedBytes = 0
        for (const inbox of inboxes) queuedBytes += inbox.queued()
        return { connections: sockets.size, ...counts, queuedBytes, rejected: { ...rejected } }
      }
    }
  })

export const layer = (options: BrokerOptions = {}): Layer.Layer<Broker, BrokerListenFailed, BrokerLog> => Layer.scoped(Broker, make(options))

/** Options from `CXLOG_BROKER_HOST` (127.0.0.1), `CXLOG_BROKER_PORT` (7400), `CXLOG_MAX_BATCH_BYTES`, `CXLOG_ACK_INTERVAL_MS`. */
export const config: Config.Config<BrokerOptions> = Config.all({
  host: Config.string("CXLOG_BROKER_HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("CXLOG_BROKER_PORT").pipe(Config.withDefault(7400)),
  maxBatchBytes: Config.integer("CXLOG_MAX_BATCH_BYTES").pipe(Config.withDefault(1 << 20)),
  ackIntervalMs: Config.number("CXLOG_ACK_INTERVAL_MS").pipe(Config.withDefault(0))
})

export const layerConfig: Layer.Layer<Broker, BrokerListenFailed | ConfigError.ConfigError, BrokerLog> = Layer.scoped(
  Broker,
  Effect.flatMap(config, make)
)
