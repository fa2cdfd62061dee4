/**
 * One remote subscriber connection to a broker: the socket reading into its `ReceiveBuffer`
 * (`Connection`, whose pulls wait for whole frames), the handshake that subscribes over it
 * (`open`: SUBSCRIBE, a CHALLENGE answered, the SUBSCRIBED and the broker's proof checked),
 * what a broker's ERROR frame means, and `subscribeAny`, the first broker that takes a request.
 */
import { Effect, Either } from "effect"
import { connect, type Socket } from "node:net"
import { ConsumerBusy, ConsumerCutOff, ConsumerTableFull } from "../../services/log/Consumers.js"
import { LogOutOfRange } from "../../services/log/LogReader.js"
import { TopicDeleted, TopicNotFound } from "../../services/log/Topics.js"
import {
  type SubscribeError,
  SubscriberBrokersUnreachable,
  SubscriberConnectionFailed,
  type SubscriptionError
} from "../../services/net/Subscriber.js"
import { brokerAcceptanceProblem, clientProofAsync, type Credentials, CREDENTIALS_HINT, newNonce } from "./Auth.js"
import { type BrokerAddress, formatAddress, isBrokerAddress } from "./BrokerAddress.js"
import { type ClientSecurity, dialBroker, notDialed } from "./ClientConnection.js"
import {
  authFrame,
  AuthProof,
  Challenge,
  decodeControl,
  ErrorBody,
  fatalWireErrors,
  KEEPALIVE_DELAY_MS,
  WireViolation
} from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"
import { ReceiveBuffer } from "./ReceiveBuffer.js"
import { brokerClosedText, type MadeWith, socketFailureText } from "./SocketFailure.js"
import { Subscribe, Subscribed, subscribeFrame } from "./SubscribeFrames.js"

const ACCEPTED = [
  FrameType.CHALLENGE,
  FrameType.SUBSCRIBED,
  FrameType.STREAM,
  FrameType.DATA,
  FrameType.ENDED,
  FrameType.ERROR
]

/**
 * One subscriber connection: a plain TCP socket reads straight into its `ReceiveBuffer` (a TLS
 * socket's chunks are copied in), and a pull waiting for input is woken only once a whole frame
 * is there. Reading pauses while the unread bytes fill the buffer.
 */
export class Connection {
  private ended = false
  private failure: string | undefined
  private wake: (() => void) | undefined
  private paused = false
  /** A frame came: a close from now on is not a refusal of how the connection was made. */
  private answered = false

  /**
   * `unanswered`: how the connection was made, for what a close before the broker's first frame
   * says (a plain one to a broker that serves TLS; one with a client certificate it may refuse).
   */
  constructor(
    readonly socket: Socket,
    readonly broker: string,
    readonly input: ReceiveBuffer,
    copying: boolean,
    private readonly unanswered?: MadeWith
  ) {
    if (copying) {
      socket.on("data", (chunk: Buffer) => {
        input.land(chunk)
        if (!this.received()) socket.pause()
      })
    }
    const end = () => {
      this.ended = true
      this.notify()
    }
    socket.on("end", end)
    socket.on("close", end)
    socket.on("error", (error) => {
      this.failure ??= socketFailureText(error)
      end()
    })
  }

  /** After input arrived: wakes a pull waiting for a whole frame; false (pause reading) once the unread bytes fill the buffer. */
  received(): boolean {
    if (this.wake !== undefined && this.input.frameReady) this.notify()
    if (!this.input.full) return true
    this.paused = true
    return false
  }

  /** Reading goes on once the pulls took enough of the unread bytes. */
  resumeIfRoom(): void {
    if (!this.paused || this.input.full) return
    this.paused = false
    this.socket.resume()
  }

  private notify(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  failed(code: string, detail: string): SubscriberConnectionFailed {
    return new SubscriberConnectionFailed({ broker: this.broker, code, detail })
  }

  /** Why no frame can come any more, once the stream ended or broke. */
  gone(): SubscriberConnectionFailed | undefined {
    if (!this.ended || this.input.frameReady) return undefined
    const detail = this.failure ??
      (this.input.midFrame
        ? "the connection ended inside a frame"
        : brokerClosedText(this.answered ? undefined : this.unanswered))
    return this.failed(this.failure === undefined ? "closed" : "unreachable", detail)
  }

  /**
   * The next frame (its payload valid until the next call), or a failure once the stream ended or
   * broke. While it waits, `due.run` runs whenever `due.inMs()` says it is due (an auto-commit).
   */
  next(timeoutMs: number | undefined, due?: Due): Effect.Effect<Frame, SubscriberConnectionFailed> {
    return Effect.suspend(() => {
      this.input.release()
      const frame = this.input.next()
      this.resumeIfRoom()
      if (frame instanceof WireViolation) return Effect.fail(this.failed("bad-frame", frame.message))
      if (frame !== undefined) {
        this.answered = true
        return Effect.succeed(frame)
      }
      return Effect.zipRight(this.waitForFrame(timeoutMs, due), this.next(timeoutMs, due))
    })
  }

  /**
   * Resumes once a whole frame is in (or the stream ended: `gone` says why), running `due.run`
   * when it is due meanwhile; fails after `timeoutMs` without one. One callback wait, ended by
   * input, by what is due or by the bound: no fibers raced per wait (a wait per batch).
   */
  waitForFrame(timeoutMs: number | undefined, due?: Due): Effect.Effect<void, SubscriberConnectionFailed> {
    return Effect.suspend(() => {
      const gone = this.gone()
      if (gone !== undefined) return Effect.fail(gone)
      if (this.input.frameReady) return Effect.void
      const dueInMs = due?.inMs() ?? Infinity
      if (dueInMs <= 0) return due!.run
      const timesOut = timeoutMs !== undefined && timeoutMs <= dueInMs
      const limitMs = Math.min(dueInMs, timeoutMs ?? Infinity)
      return Effect.async<void, SubscriberConnectionFailed>((resume) => {
        const timer = limitMs === Infinity ? undefined : setTimeout(() => {
          this.wake = undefined
          resume(timesOut ? Effect.fail(this.failed("timeout", `no frame within ${timeoutMs} ms`)) : Effect.void)
        }, limitMs)
        this.wake = () => {
          clearTimeout(timer)
          resume(Effect.void)
        }
        return Effect.sync(() => {
          this.wake = undefined
          clearTimeout(timer)
        })
      })
    })
  }
}

export interface Due {
  readonly inMs: () => number
  readonly run: Effect.Effect<void>
}

/** What an ERROR frame means to a subscriber. */
const brokerError = (connection: Connection, request: Subscribe, frame: Frame): SubscribeError => {
  const decoded = decodeControl(ErrorBody, frame.payload, "internal")
  if (Either.isLeft(decoded)) return connection.failed("bad-frame", `undecodable ERROR: ${decoded.left.message}`)
  const body = decoded.right
  // A multi-topic subscription's errors name the topic of the stream they are about.
  const topic = body.topic ?? request.topic ?? ""
  if (body.code === "unknown-topic") return new TopicNotFound({ name: topic })
  if (body.code === "topic-deleted") return new TopicDeleted({ name: topic })
  const name = request.consumer ?? ""
  if (body.code === "consumer-busy") return new ConsumerBusy({ topic, name, pid: 0 })
  if (body.code === "consumer-table-full") return new ConsumerTableFull({ topic, slots: 0 })
  if (body.code === "consumer-cut-off" && body.committed !== undefined && body.earliest !== undefined) {
    return new ConsumerCutOff({ topic, name, committed: body.committed, earliest: body.earliest })
  }
  if (
    body.code === "out-of-range" && body.requested !== undefined && body.earliest !== undefined &&
    body.end !== undefined
  ) {
    return new LogOutOfRange({
      topic,
      requested: body.requested,
      earliest: body.earliest,
      end: body.end,
      ...(request.consumer === undefined ? {} : { consumer: request.consumer })
    })
  }
  return connection.failed(body.code, body.message)
}

/** A broker's ERROR in mid-stream (where an unknown topic can only mean a broken stream). */
export const streamError = (connection: Connection, request: Subscribe, frame: Frame): SubscriptionError => {
  const e = brokerError(connection, request, frame)
  return e._tag === "LogOutOfRange" || e._tag === "LogCorrupt" || e._tag === "HeadUnavailable" ||
      e._tag === "SubscriberConnectionFailed" ||
      e._tag === "ConsumerCutOff" || e._tag === "TopicDeleted"
    ? e
    : connection.failed("bad-frame", e.message)
}

/** A remote Subscriber's options with their defaults applied. */
export interface Settings {
  readonly brokers: ReadonlyArray<BrokerAddress>
  /** DATA frames the broker may send ahead of what the subscription pulled. */
  readonly credit: number
  readonly connectTimeoutMs: number
  readonly bufferBytes: number
  readonly maxBatchBytes: number
  readonly credentials: Credentials | undefined
  readonly insecure: boolean
  readonly tls: ClientSecurity["tls"]
}

/**
 * Connects to one broker and subscribes: the connection and the broker's SUBSCRIBED. With
 * credentials the SUBSCRIBE names the user, a CHALLENGE is answered, and the SUBSCRIBED must
 * carry the broker's proof that it holds the user's keys (unless `insecure` and no CHALLENGE came).
 */
const open = (address: BrokerAddress, subscribe: Subscribe, options: Settings) =>
  Effect.gen(function*() {
    const { credentials } = options
    const nonce = credentials === undefined ? undefined : newNonce()
    const request = credentials === undefined || nonce === undefined
      ? subscribe
      : new Subscribe({ ...subscribe, user: credentials.user, nonce })
    const connection = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const input = new ReceiveBuffer({
          accept: ACCEPTED,
          maxBatchBytes: options.maxBatchBytes,
          bufferBytes: options.bufferBytes
        })
        const broker = formatAddress(address)
        if (options.tls !== undefined) {
          const { socket, ready } = dialBroker(address, options.tls)
          socket.on(ready, () => socket.write(subscribeFrame(request)))
          return new Connection(socket, broker, input, true, options.tls)
        }
        // Plain TCP reads into the receive buffer itself (onread): no Buffer per read, frames parsed where they landed.
        let connection: Connection | undefined
        const socket = !isBrokerAddress(address) ? notDialed(address).socket : connect({
          host: address.host,
          port: address.port,
          noDelay: true,
          // As dialBroker's sockets: an idle topic sends nothing, so only keepalive finds a broker host that vanished.
          keepAlive: true,
          keepAliveInitialDelay: KEEPALIVE_DELAY_MS,
          onread: {
            buffer: () => input.target(),
            callback: (n: number, into: Uint8Array) => {
              input.filled(into, n)
              return connection!.received()
            }
          }
        })
        socket.on("connect", () => socket.write(subscribeFrame(request)))
        // Flowing, so that the end of the stream is seen (no 'data' events: reads go to the callback).
        socket.resume()
        connection = new Connection(socket, broker, input, false, "plain")
        return connection
      }),
      (connection) => Effect.sync(() => connection.socket.destroy())
    )
    let expectedSignature: string | undefined
    let frame = yield* connection.next(options.connectTimeoutMs)
    const challenged = frame.type === FrameType.CHALLENGE
    if (challenged) {
      if (credentials === undefined || nonce === undefined) {
        return yield* connection.failed(
          "auth-required",
          `the broker requires authentication and this subscriber has no credentials: ${CREDENTIALS_HINT}`
        )
      }
      const challenge = decodeControl(Challenge, frame.payload, "bad-handshake")
      if (Either.isLeft(challenge)) {
        return yield* connection.failed("bad-frame", `bad CHALLENGE: ${challenge.left.message}`)
      }
      const answer = yield* Effect.tryPromise({
        try: () => clientProofAsync(credentials, nonce, challenge.right),
        catch: (e) => e as Error
      }).pipe(
        Effect.mapError((e) =>
          connection.failed("bad-frame", `cannot derive the proof for the CHALLENGE: ${e.message}`)
        )
      )
      expectedSignature = answer.serverSignature
      connection.socket.write(authFrame(0, new AuthProof({ proof: answer.proof })))
      frame = yield* connection.next(options.connectTimeoutMs)
    }
    if (frame.type === FrameType.ERROR) return yield* Effect.fail(brokerError(connection, request, frame))
    if (frame.type !== FrameType.SUBSCRIBED) {
      return yield* connection.failed("bad-frame", "the broker did not answer with SUBSCRIBED")
    }
    const subscribed = decodeControl(Subscribed, frame.payload, "internal")
    if (Either.isLeft(subscribed)) {
      return yield* connection.failed("bad-frame", `bad SUBSCRIBED: ${subscribed.left.message}`)
    }
    const { earliest, end, start } = subscribed.right
    if (request.topic !== undefined && (start === undefined || earliest === undefined || end === undefined)) {
      return yield* connection.failed("bad-frame", "a one-topic SUBSCRIBED without its start and window")
    }
    const problem = brokerAcceptanceProblem({
      answer: "SUBSCRIBED",
      credentials,
      insecure: options.insecure,
      challenged,
      expectedSignature,
      signature: subscribed.right.serverSignature
    })
    if (problem !== undefined) {
      return yield* connection.failed("auth-failed", `the broker ${problem}`)
    }
    return { connection, subscribed: subscribed.right }
  })

/** Errors that another broker would answer the same way: no point trying the next one. */
const definitive = (e: SubscribeError) =>
  e._tag !== "SubscriberConnectionFailed"
    ? e._tag !== "SubscriberBrokersUnreachable"
    : (fatalWireErrors as ReadonlySet<string>).has(e.code)

/** The first broker that takes the subscription (in the given order). */
export const subscribeAny = (settings: Settings, request: Subscribe) =>
  Effect.gen(function*() {
    const refusals: Array<{ address: string; reason: string }> = []
    for (const address of settings.brokers) {
      const attempt = yield* Effect.either(open(address, request, settings))
      if (Either.isRight(attempt)) return attempt.right
      if (definitive(attempt.left)) return yield* Effect.fail(attempt.left)
      refusals.push({ address: formatAddress(address), reason: attempt.left.message })
    }
    return yield* new SubscriberBrokersUnreachable({ brokers: refusals })
  })
