/**
 * The TCP broker over `BrokerLog` (see services/Broker.ts for the behaviour). Receive path:
 * once a connection is past its handshake, each socket chunk is handled right in the
 * socket's data callback — frame headers parsed in place, the batch checked, and its
 * payload gathered from the chunk(s) it arrived in straight into the log's space
 * (`tryAppendWith`), so the only copy is chunk → region and no fiber runs per batch. Only
 * when the log has no room does the connection's fiber take over: it waits in `appendWith`
 * while later chunks queue (the socket is paused past `readBufferBytes`), then hands back.
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
import { type AppendTimeout, BrokerLog, type BrokerLogShape, type LogCorrupt, type UnknownTopic } from "../services/BrokerLog.js"
import { checkBatchPieces, gatherPieces } from "../wire/BatchPayload.js"
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
import { type Frame, FrameType, payloadPieces } from "../wire/Frame.js"
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

/** `drain` outcomes besides a batch waiting for room or a violation: every received byte is handled; the input is over. */
const IDLE = "idle" as const
const DONE = "done" as const

/** Resumes after the event loop has polled I/O once more, so every batch already received is appended first. */
const nextLoopTurn = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * Received chunks of one socket, handed out in order; pauses the socket past `highWater`
 * bytes. A chunk is taken by the connection's fiber (`next`), or, while a direct consumer
 * is set, handed to it from the data callback itself.
 */
const makeInbox = (socket: Socket, highWater: number) => {
  const chunks: Array<Buffer> = []
  let queued = 0
  let handedOut = 0
  let paused = false
  let ended = false
  let waiting: (() => void) | undefined
  let direct: (() => void) | undefined
  const deliver = () => {
    if (chunks.length === 0 && !ended) return
    if (waiting !== undefined) {
      const wake = waiting
      waiting = undefined
      wake()
    } else if (direct !== undefined) {
      direct()
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
    /** The next queued chunk now, if any (the previous one is consumed). */
    takeNow: (): Buffer | undefined => (chunks.length > 0 ? take() : undefined),
    /** Whether the peer has finished (or the inbox was stopped). */
    ended: () => ended,
    /**
     * While set, `consume` is called from the data callback whenever a chunk arrives or the
     * stream ends (it takes the chunks with `takeNow`); unset it to go back to `next`.
     */
    setDirect: (consume: (() => void) | undefined) => {
      direct = consume
    },
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

type Inbox = ReturnType<typeof makeInbox>

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
        const reader = new FrameReader({ accept: [FrameType.HELLO, FrameType.BATCH], maxBatchBytes: settings.maxBatchBytes, gatherBatches: true })
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
        const outcome = yield* Effect.either(Effect.scoped(session(socket, inbox, reader, nextFrame, handshakeTimer)))
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

    const session = (
      socket: Socket,
      inbox: Inbox,
      reader: FrameReader,
      nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
      handshakeTimer: ReturnType<typeof setTimeout>
    ) =>
      Effect.gen(function*() {
        const hello = yield* handshake(socket, nextFrame)
        clearTimeout(handshakeTimer)
        if (hello === undefined) return
        const received = { highest: -1 }
        yield* Effect.forkScoped(ackTracker(socket, log, hello, received))
        const batches = batchStream(socket, inbox, reader, hello, received)
        for (;;) {
          const drained = batches.drain()
          // Caught up: from here the data callback appends; this fiber sleeps until it cannot.
          const stop = drained === IDLE ? yield* batches.direct : drained
          if (stop === DONE) return
          if (stop instanceof WireViolation) return yield* Effect.fail(stop)
          yield* batches.appendWaiting(stop)
        }
      })

    /**
     * The batch frames of one connection after its handshake. `drain` handles every frame
     * already received without waiting: it stops at the end of the input (`IDLE`), at the end
     * of the stream or of the connection (`DONE`), at a violation, or at a batch the log has
     * no room for now (returned: `appendWaiting` waits for room and appends it).
     */
    const batchStream = (socket: Socket, inbox: Inbox, reader: FrameReader, hello: Hello, received: { highest: number }) => {
      const count = (frame: Frame) => {
        if (frame.seq > received.highest) received.highest = frame.seq
        counts.batches++
        counts.messages += frame.messageCount
        counts.bytes += frame.payloadBytes
        brokerBatches.unsafeUpdate(1, [])
        brokerBytes.unsafeUpdate(frame.payloadBytes, [])
      }
      const headerOf = (frame: Frame) => ({
        clientId: frame.clientId,
        sessionEpoch: frame.sessionEpoch,
        batchSeq: frame.seq,
        messageCount: frame.messageCount,
        payloadBytes: frame.payloadBytes,
        crc32c: frame.crc32c
      })
      const fillFrom = (frame: Frame) => {
        const pieces = frame.pieces
        return pieces === undefined ? (dst: Uint8Array) => dst.set(frame.payload) : (dst: Uint8Array) => gatherPieces(pieces, dst)
      }
      const appendFailed = (e: UnknownTopic | AppendTimeout | LogCorrupt) =>
        new WireViolation({ code: e._tag === "LogCorrupt" ? "internal" : "append-failed", detail: e.message })

      const drain = (): Frame | typeof IDLE | typeof DONE | WireViolation => {
        for (;;) {
          // The ACK tracker dropped the connection (slow consumer): append nothing more.
          if (socket.writableEnded) return DONE
          const frame = reader.next()
          if (frame === undefined) {
            const chunk = inbox.takeNow()
            if (chunk !== undefined) {
              reader.push(chunk)
              continue
            }
            if (!inbox.ended()) return IDLE
            return reader.midFrame ? new WireViolation({ code: "truncated", detail: "the connection ended inside a frame" }) : DONE
          }
          if (frame instanceof WireViolation) return frame
          if (frame.type !== FrameType.BATCH) return new WireViolation({ code: "unexpected-frame", detail: "only BATCH frames follow the handshake" })
          if (frame.clientId !== hello.clientId || frame.sessionEpoch !== hello.sessionEpoch) {
            return new WireViolation({
              code: "session-mismatch",
              detail: `batch of session ${frame.clientId}/${frame.sessionEpoch} on a connection of ${hello.clientId}/${hello.sessionEpoch}`
            })
          }
          const malformed = checkBatchPieces(payloadPieces(frame), frame.messageCount)
          if (malformed !== undefined) return new WireViolation({ code: "bad-batch", detail: malformed })
          const appended = log.tryAppendWith(hello.topic, headerOf(frame), fillFrom(frame))
          if (appended === false) return frame
          if (appended !== true) return appendFailed(appended)
          count(frame)
        }
      }

      return {
        drain,
        /** Lets the data callback drain as chunks arrive; resumes with the first stop that is not `IDLE`. */
        direct: Effect.async<Frame | typeof DONE | WireViolation>((resume) => {
          const consume = () => {
            let stop: ReturnType<typeof drain>
            try {
              stop = drain()
            } catch (error) {
              stop = new WireViolation({ code: "internal", detail: `receiving a batch failed: ${String(error)}` })
            }
            if (stop === IDLE) return
            inbox.setDirect(undefined)
            resume(Effect.succeed(stop))
          }
          inbox.setDirect(consume)
          // Chunks that arrived between the fiber's last drain and now.
          consume()
          return Effect.sync(() => inbox.setDirect(undefined))
        }),
        /** Appends a batch the log had no room for, waiting for room (later chunks queue meanwhile). */
        appendWaiting: (frame: Frame) =>
          log.appendWith(hello.topic, headerOf(frame), fillFrom(frame)).pipe(
            Effect.mapError(appendFailed),
            Effect.map(() => count(frame))
          )
      }
    }

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
