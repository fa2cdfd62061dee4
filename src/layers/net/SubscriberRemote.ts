/**
 * The remote Subscriber: reads a topic over TCP from any broker (docs/protocol.md,
 * "Subscribing"). It tries the brokers in the order given until one answers SUBSCRIBED; each
 * pull then takes the next DATA frame from the socket's input (a view of the received bytes,
 * valid until the next pull), checks its crc32c and framing, and hands it out. It grants
 * credit as it consumes — half its window at a time — so the broker sends only as fast as this
 * subscriber reads, and input it has not pulled stays in the kernel (reading pauses past
 * `bufferBytes`).
 *
 * A DATA frame whose crc32c does not match is a batch the broker's retention reclaimed while
 * sending it: the broker's `out-of-range` ERROR follows, and the pull fails with
 * `LogOutOfRange`; the torn batch is never delivered.
 */
import { Effect, Either, Layer, Option, Stream } from "effect"
import { connect, type Socket } from "node:net"
import { LogOutOfRange } from "../../services/log/LogReader.js"
import { LogCorrupt, TopicNotFound } from "../../services/log/Topics.js"
import {
  type SubscribeError,
  Subscriber,
  SubscriberBrokersUnreachable,
  SubscriberConnectionFailed,
  type SubscriberShape,
  type Subscription,
  type SubscriptionError
} from "../../services/net/Subscriber.js"
import { type BrokerAddress, formatAddress } from "./ClientConnection.js"
import { decodeControl, ErrorBody, PROTOCOL_VERSION } from "./Control.js"
import { crc32c } from "./Crc32c.js"
import { type Frame, FrameType } from "./Frame.js"
import { FrameReader } from "./FrameReader.js"
import { creditFrame, MAX_CREDIT, Subscribe, subscribeFrame, Subscribed } from "./SubscribeFrames.js"
import { BatchView } from "./SubscriberBatch.js"

export interface RemoteSubscriberOptions {
  readonly brokers: ReadonlyArray<BrokerAddress>
  /** DATA frames the broker may send ahead of what this subscriber has pulled (≤ 4096). Default 256. */
  readonly credit?: number
  /** How long a broker may take to connect and answer SUBSCRIBE. Default 5 s. */
  readonly connectTimeoutMs?: number
  /** Received bytes held before reading pauses. Default 8 MiB. */
  readonly bufferBytes?: number
  /** Upper bound of one DATA payload (the brokers' `maxBatchBytes`). Default 64 MiB. */
  readonly maxBatchBytes?: number
}

/** How long a client waits, after a DATA frame failed its crc32c, for the error frame that explains it. */
const TORN_GRACE_MS = 5_000

/** One subscriber connection: frames in order, as the pulls want them. */
class Connection {
  private readonly reader: FrameReader
  private readonly chunks: Array<Buffer> = []
  private queued = 0
  private ended = false
  private failure: string | undefined
  private wake: (() => void) | undefined

  constructor(readonly socket: Socket, readonly broker: string, private readonly bufferBytes: number, maxBatchBytes: number) {
    this.reader = new FrameReader({ accept: [FrameType.SUBSCRIBED, FrameType.DATA, FrameType.ERROR], maxBatchBytes })
    socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.queued += chunk.length
      if (this.queued >= this.bufferBytes) socket.pause()
      this.notify()
    })
    const end = () => {
      this.ended = true
      this.notify()
    }
    socket.on("end", end)
    socket.on("close", end)
    socket.on("error", (error) => {
      this.failure ??= error.message
      end()
    })
  }

  private notify(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  failed(code: string, detail: string): SubscriberConnectionFailed {
    return new SubscriberConnectionFailed({ broker: this.broker, code, detail })
  }

  /** The next frame (its payload valid until the next call), or a failure once the stream ended or broke. */
  next(timeoutMs: number | undefined): Effect.Effect<Frame, SubscriberConnectionFailed> {
    return Effect.suspend(() => {
      for (;;) {
        const frame = this.reader.next()
        if (frame !== undefined) {
          if (!("payload" in frame)) return Effect.fail(this.failed("bad-frame", frame.message))
          return Effect.succeed(frame)
        }
        const chunk = this.chunks.shift()
        if (chunk === undefined) break
        this.queued -= chunk.length
        if (this.queued < this.bufferBytes && this.socket.isPaused()) this.socket.resume()
        this.reader.push(chunk)
      }
      if (this.ended) {
        const detail = this.failure ?? (this.reader.midFrame ? "the connection ended inside a frame" : "the broker closed the connection")
        return Effect.fail(this.failed(this.failure === undefined ? "closed" : "unreachable", detail))
      }
      const arrived = Effect.async<void>((resume) => {
        this.wake = () => resume(Effect.void)
        return Effect.sync(() => {
          this.wake = undefined
        })
      })
      const waited = timeoutMs === undefined
        ? arrived
        : arrived.pipe(Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => this.failed("timeout", `no frame within ${timeoutMs} ms`) }))
      return Effect.zipRight(waited, this.next(timeoutMs))
    })
  }
}

/** What an ERROR frame means to a subscriber. */
const brokerError = (connection: Connection, topic: string, frame: Frame): SubscribeError => {
  const decoded = decodeControl(ErrorBody, frame.payload, "internal")
  if (Either.isLeft(decoded)) return connection.failed("bad-frame", `undecodable ERROR: ${decoded.left.message}`)
  const body = decoded.right
  if (body.code === "unknown-topic") return new TopicNotFound({ name: topic })
  if (body.code === "out-of-range" && body.requested !== undefined && body.earliest !== undefined && body.end !== undefined) {
    return new LogOutOfRange({ topic, requested: body.requested, earliest: body.earliest, end: body.end })
  }
  return connection.failed(body.code, body.message)
}

/** A broker's ERROR in mid-stream (where an unknown topic can only mean a broken stream). */
const streamError = (connection: Connection, topic: string, frame: Frame): SubscriptionError => {
  const e = brokerError(connection, topic, frame)
  return e._tag === "TopicNotFound" || e._tag === "SubscriberBrokersUnreachable" ? connection.failed("bad-frame", e.message) : e
}

/** Connects to one broker and subscribes: the connection and the broker's SUBSCRIBED. */
const open = (address: BrokerAddress, request: Subscribe, options: Required<Omit<RemoteSubscriberOptions, "brokers">>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const socket = connect({ host: address.host, port: address.port, noDelay: true })
      socket.on("connect", () => socket.write(subscribeFrame(request)))
      return new Connection(socket, formatAddress(address), options.bufferBytes, options.maxBatchBytes)
    }),
    (connection) => Effect.sync(() => connection.socket.destroy())
  ).pipe(
    Effect.flatMap((connection) =>
      Effect.flatMap(connection.next(options.connectTimeoutMs), (frame): Effect.Effect<{ connection: Connection; subscribed: Subscribed }, SubscribeError> => {
        if (frame.type === FrameType.ERROR) return Effect.fail(brokerError(connection, request.topic, frame))
        if (frame.type !== FrameType.SUBSCRIBED) return Effect.fail(connection.failed("bad-frame", "the first frame is not SUBSCRIBED"))
        const subscribed = decodeControl(Subscribed, frame.payload, "internal")
        if (Either.isLeft(subscribed)) return Effect.fail(connection.failed("bad-frame", `bad SUBSCRIBED: ${subscribed.left.message}`))
        return Effect.succeed({ connection, subscribed: subscribed.right })
      })
    )
  )

/** Errors that another broker would answer the same way: no point trying the next one. */
const definitive = (e: SubscribeError) => e._tag === "TopicNotFound" || e._tag === "LogOutOfRange"

export const makeRemote = (options: RemoteSubscriberOptions): SubscriberShape => {
  const settings = {
    credit: Math.min(MAX_CREDIT, Math.max(1, options.credit ?? 256)),
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    bufferBytes: options.bufferBytes ?? 8 << 20,
    maxBatchBytes: options.maxBatchBytes ?? 64 << 20
  }
  /** The first broker that takes the subscription (in the given order). */
  const subscribeAny = (request: Subscribe) =>
    Effect.gen(function*() {
      const refusals: Array<{ address: string; reason: string }> = []
      for (const address of options.brokers) {
        const attempt = yield* Effect.either(open(address, request, settings))
        if (Either.isRight(attempt)) return attempt.right
        if (definitive(attempt.left)) return yield* Effect.fail(attempt.left)
        refusals.push({ address: formatAddress(address), reason: attempt.left.message })
      }
      return yield* new SubscriberBrokersUnreachable({ brokers: refusals })
    })

  /** The window a broker holds, as its SUBSCRIBED from the end says. */
  const bounds: SubscriberShape["bounds"] = (topic) =>
    Effect.scoped(subscribeAny(new Subscribe({ protocol: PROTOCOL_VERSION, topic, from: "latest", credit: 1 }))).pipe(
      Effect.map(({ subscribed }) => ({ earliest: subscribed.earliest, end: subscribed.end }))
    )

  const subscribe: SubscriberShape["subscribe"] = (topic, subscribeOptions = {}) =>
    Effect.gen(function*() {
      const request = new Subscribe({ protocol: PROTOCOL_VERSION, topic, from: subscribeOptions.from ?? "earliest", credit: settings.credit })
      const { connection, subscribed } = yield* subscribeAny(request)
      const view = new BatchView(topic)
      let position = subscribed.start
      /** DATA frames taken since the last CREDIT. */
      let consumed = 0
      const grant = () => {
        consumed++
        if (consumed * 2 < settings.credit) return
        connection.socket.write(creditFrame(consumed))
        consumed = 0
      }
      const pull: Effect.Effect<BatchView, SubscriptionError> = Effect.gen(function*() {
        for (;;) {
          const frame = yield* connection.next(undefined)
          if (frame.type === FrameType.ERROR) return yield* Effect.fail(streamError(connection, topic, frame))
          if (frame.type !== FrameType.DATA) return yield* connection.failed("bad-frame", `unexpected frame type ${frame.type}`)
          if (crc32c(frame.payload, 0, frame.payload.length) !== frame.crc32c) {
            // Torn while the broker sent it: its out-of-range ERROR explains it (anything else is a broken stream).
            for (;;) {
              const after = yield* connection.next(TORN_GRACE_MS)
              if (after.type === FrameType.ERROR) return yield* Effect.fail(streamError(connection, topic, after))
            }
          }
          grant()
          // A batch wholly before the start (the first one may begin before it) has nothing to deliver.
          if (frame.seq + frame.messageCount <= position) continue
          const malformed = view.aim(frame.payload, frame.messageCount, frame.seq, position, frame.clientId, frame.sessionEpoch)
          if (malformed !== undefined) return yield* new LogCorrupt({ reason: `topic ${topic}: batch at offset ${frame.seq}: ${malformed}` })
          if (view.offset !== position) {
            return yield* new LogCorrupt({ reason: `topic ${topic}: broker ${connection.broker} sent offset ${view.offset}, expected ${position}` })
          }
          position = view.offset + view.count
          return view
        }
      })
      const subscription: Subscription = {
        topic,
        start: subscribed.start,
        batches: Stream.repeatEffectOption(Effect.mapError(pull, Option.some)),
        position: () => position,
        lag: Effect.map(bounds(topic), (held) => Math.max(0, held.end - position))
      }
      return subscription
    })

  return { subscribe, bounds }
}

/** The remote Subscriber over `options.brokers`. */
export const layerRemote = (options: RemoteSubscriberOptions): Layer.Layer<Subscriber> => Layer.succeed(Subscriber, makeRemote(options))
