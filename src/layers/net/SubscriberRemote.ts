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
import { Effect, Either, ExecutionStrategy, Exit, Layer, Option, Scope, Stream } from "effect"
import { connect, type Socket } from "node:net"
import { LogOutOfRange } from "../../services/log/LogReader.js"
import { LogCorrupt, TopicNotFound } from "../../services/log/Topics.js"
import { ConsumerBusy, ConsumerCutOff, ConsumerTableFull } from "../../services/log/Consumers.js"
import {
  CommitRejected,
  type SubscribeError,
  Subscriber,
  SubscriberBrokersUnreachable,
  SubscriberConnectionFailed,
  type SubscriberBatch,
  type SubscriberShape,
  type Subscription,
  type SubscriptionError
} from "../../services/net/Subscriber.js"
import { type BrokerAddress, type ClientSecurity, dialBroker, formatAddress } from "./ClientConnection.js"
import { brokerAcceptanceProblem, clientProofAsync, type Credentials, newNonce } from "./Auth.js"
import { AuthProof, authFrame, Challenge, decodeControl, ErrorBody, fatalWireErrors, KEEPALIVE_DELAY_MS, PROTOCOL_VERSION, WireViolation } from "./Control.js"
import { crc32c } from "../../native/Crc32c.js"
import { type Frame, FrameType } from "./Frame.js"
import { ReceiveBuffer } from "./ReceiveBuffer.js"
import { commitFrame, creditFrame, MAX_CREDIT, Subscribe, subscribeFrame, Subscribed } from "./SubscribeFrames.js"
import { autoCommitPolicy } from "./Subscriber.js"
import { BatchView } from "./SubscriberBatch.js"

export interface RemoteSubscriberOptions {
  readonly brokers: ReadonlyArray<BrokerAddress>
  /** DATA frames the broker may send ahead of what this subscriber has pulled (≤ 4096). Default 256. */
  readonly credit?: number
  /** How long a broker may take to connect and answer SUBSCRIBE. Default 5 s. */
  readonly connectTimeoutMs?: number
  /** Received bytes held before reading pauses (the rest waits in the kernel), and the size of each of the two receive buffers. Default 2 MiB (a region's largest batch by default, 1 MiB, fits with its header). */
  readonly bufferBytes?: number
  /** Upper bound of one DATA payload (the brokers' `maxBatchBytes`). Default 64 MiB. */
  readonly maxBatchBytes?: number
  /** Answer a broker's CHALLENGE as this user (it needs the right to read the topic); without it, only a broker without authentication accepts. */
  readonly credentials?: Credentials | undefined
  /** Also take a broker that authenticates nobody although this subscriber holds credentials (ClientSecurity `insecure`). */
  readonly insecure?: boolean | undefined
  /** Connect with TLS (the brokers' CA, and a client certificate when they ask for one), as publishers do. */
  readonly tls?: ClientSecurity["tls"]
}

const ACCEPTED = [FrameType.CHALLENGE, FrameType.SUBSCRIBED, FrameType.DATA, FrameType.ERROR]

/** How long a client waits, after a DATA frame failed its crc32c, for the error frame that explains it. */
const TORN_GRACE_MS = 5_000

/**
 * One subscriber connection: a plain TCP socket reads straight into its `ReceiveBuffer` (a TLS
 * socket's chunks are copied in), and a pull waiting for input is woken only once a whole frame
 * is there. Reading pauses while the unread bytes fill the buffer.
 */
class Connection {
  private ended = false
  private failure: string | undefined
  private wake: (() => void) | undefined
  private paused = false

  constructor(readonly socket: Socket, readonly broker: string, readonly input: ReceiveBuffer, copying: boolean) {
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
      this.failure ??= error.message
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
    const detail = this.failure ?? (this.input.midFrame ? "the connection ended inside a frame" : "the broker closed the connection")
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
      if (frame !== undefined) return Effect.succeed(frame)
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

interface Due {
  readonly inMs: () => number
  readonly run: Effect.Effect<void>
}

/** What an ERROR frame means to a subscriber. */
const brokerError = (connection: Connection, request: Subscribe, frame: Frame): SubscribeError => {
  const decoded = decodeControl(ErrorBody, frame.payload, "internal")
  if (Either.isLeft(decoded)) return connection.failed("bad-frame", `undecodable ERROR: ${decoded.left.message}`)
  const body = decoded.right
  const topic = request.topic
  if (body.code === "unknown-topic") return new TopicNotFound({ name: topic })
  const name = request.consumer ?? ""
  if (body.code === "consumer-busy") return new ConsumerBusy({ topic, name, pid: 0 })
  if (body.code === "consumer-table-full") return new ConsumerTableFull({ topic, slots: 0 })
  if (body.code === "consumer-cut-off" && body.committed !== undefined && body.earliest !== undefined) {
    return new ConsumerCutOff({ topic, name, committed: body.committed, earliest: body.earliest })
  }
  if (body.code === "out-of-range" && body.requested !== undefined && body.earliest !== undefined && body.end !== undefined) {
    return new LogOutOfRange({ topic, requested: body.requested, earliest: body.earliest, end: body.end })
  }
  return connection.failed(body.code, body.message)
}

/** A broker's ERROR in mid-stream (where an unknown topic can only mean a broken stream). */
const streamError = (connection: Connection, request: Subscribe, frame: Frame): SubscriptionError => {
  const e = brokerError(connection, request, frame)
  return e._tag === "LogOutOfRange" || e._tag === "LogCorrupt" || e._tag === "HeadUnavailable" || e._tag === "SubscriberConnectionFailed" ||
      e._tag === "ConsumerCutOff"
    ? e
    : connection.failed("bad-frame", e.message)
}

interface Settings {
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
    const request = credentials === undefined || nonce === undefined ? subscribe : new Subscribe({ ...subscribe, user: credentials.user, nonce })
    const connection = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const input = new ReceiveBuffer({ accept: ACCEPTED, maxBatchBytes: options.maxBatchBytes, bufferBytes: options.bufferBytes })
        const broker = formatAddress(address)
        if (options.tls !== undefined) {
          const { socket, ready } = dialBroker(address, options.tls)
          socket.on(ready, () => socket.write(subscribeFrame(request)))
          return new Connection(socket, broker, input, true)
        }
        // Plain TCP reads into the receive buffer itself (onread): no Buffer per read, frames parsed where they landed.
        let connection: Connection | undefined
        const socket = connect({
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
        connection = new Connection(socket, broker, input, false)
        return connection
      }),
      (connection) => Effect.sync(() => connection.socket.destroy())
    )
    let expectedSignature: string | undefined
    let frame = yield* connection.next(options.connectTimeoutMs)
    const challenged = frame.type === FrameType.CHALLENGE
    if (challenged) {
      if (credentials === undefined || nonce === undefined) {
        return yield* connection.failed("auth-required", "the broker requires authentication and this subscriber has no credentials (--secret-file / CXLOG_SECRET_FILE)")
      }
      const challenge = decodeControl(Challenge, frame.payload, "bad-handshake")
      if (Either.isLeft(challenge)) return yield* connection.failed("bad-frame", `bad CHALLENGE: ${challenge.left.message}`)
      const answer = yield* Effect.tryPromise({
        try: () => clientProofAsync(credentials, nonce, challenge.right),
        catch: (e) => e as Error
      }).pipe(Effect.mapError((e) => connection.failed("bad-frame", `cannot derive the proof for the CHALLENGE: ${e.message}`)))
      expectedSignature = answer.serverSignature
      connection.socket.write(authFrame(0, new AuthProof({ proof: answer.proof })))
      frame = yield* connection.next(options.connectTimeoutMs)
    }
    if (frame.type === FrameType.ERROR) return yield* Effect.fail(brokerError(connection, request, frame))
    if (frame.type !== FrameType.SUBSCRIBED) return yield* connection.failed("bad-frame", "the broker did not answer with SUBSCRIBED")
    const subscribed = decodeControl(Subscribed, frame.payload, "internal")
    if (Either.isLeft(subscribed)) return yield* connection.failed("bad-frame", `bad SUBSCRIBED: ${subscribed.left.message}`)
    const problem = brokerAcceptanceProblem({
      answer: "SUBSCRIBED",
      credentials,
      insecure: options.insecure,
      challenged,
      expectedSignature,
      signature: subscribed.right.serverSignature
    })
    if (problem !== undefined) return yield* connection.failed("auth-failed", `the broker ${problem}`)
    return { connection, subscribed: subscribed.right }
  })

/** How often a subscription whose broker is gone asks the brokers again. */
const FAILOVER_RETRY_MS = 100

/** The connection ended or failed under the subscription (not a frame or an error its broker sent). */
const brokerGone = (e: SubscriberConnectionFailed) => e.code === "closed" || e.code === "unreachable"

/** Errors that another broker would answer the same way: no point trying the next one. */
const definitive = (e: SubscribeError) =>
  e._tag !== "SubscriberConnectionFailed" ? e._tag !== "SubscriberBrokersUnreachable" : (fatalWireErrors as ReadonlySet<string>).has(e.code)

export const makeRemote = (options: RemoteSubscriberOptions): SubscriberShape => {
  const settings = {
    credit: Math.min(MAX_CREDIT, Math.max(1, options.credit ?? 256)),
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    bufferBytes: options.bufferBytes ?? 2 << 20,
    maxBatchBytes: options.maxBatchBytes ?? 64 << 20,
    credentials: options.credentials,
    insecure: options.insecure === true,
    tls: options.tls
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
      const request = new Subscribe({
        protocol: PROTOCOL_VERSION,
        topic,
        from: subscribeOptions.from ?? "earliest",
        credit: settings.credit,
        ...(subscribeOptions.consumer === undefined ? {} : { consumer: subscribeOptions.consumer })
      })
      const scope = yield* Effect.scope
      /** The live connection's own scope (and its refused siblings'): closed as soon as a failover replaces it. */
      let connectionScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const opened = yield* Scope.extend(subscribeAny(request), connectionScope)
      const subscribed = opened.subscribed
      let connection = opened.connection
      let position = subscribed.start
      /** DATA frames taken since the last CREDIT. */
      let consumed = 0
      const grant = () => {
        consumed++
        if (consumed * 2 < settings.credit) return
        connection.socket.write(creditFrame(consumed))
        consumed = 0
      }
      const named = subscribeOptions.consumer !== undefined
      const policy = autoCommitPolicy(subscribeOptions.autoCommit)
      /** What this subscription committed (it never goes back, not even when a failover's broker starts below it). */
      let committed = subscribed.start
      let committedAt = performance.now()
      let handedOut = false
      /**
       * The connection's broker accepts a COMMIT only up to what it sent: after a failover it
       * starts at the consumer's committed offset (a COMMIT lost with the old broker is not in
       * it) and re-sends what was delivered already. So a connection is sent commits up to the
       * end of what it received itself, and the rest of `committed` once it re-sent that far.
       */
      let commitSent = subscribed.start
      let received = subscribed.start
      const sendCommit = () => {
        const offset = Math.min(committed, received)
        if (offset <= commitSent) return
        connection.socket.write(commitFrame(offset))
        commitSent = offset
      }
      /** A COMMIT frame: the broker commits it in order with what it reads of this connection. */
      const commitAt = (offset: number) =>
        Effect.suspend(() => {
          if (!named) return Effect.fail(new CommitRejected({ topic, reason: "an anonymous subscription has nothing to commit (subscribe with a consumer name)" }))
          if (!Number.isSafeInteger(offset) || offset < committed || offset > position) {
            return Effect.fail(new CommitRejected({ topic, reason: `offset ${offset} is outside [${committed}, ${position}] (committed, delivered)` }))
          }
          committed = offset
          committedAt = performance.now()
          sendCommit()
          return Effect.void
        })
      /** Pulling again means what was handed out before is processed: committed when the policy says so, also while waiting. */
      const uncommitted = () => named && handedOut && position > committed
      const due = {
        inMs: () => (uncommitted() ? Math.max(0, committedAt + policy.intervalMs - performance.now()) : Infinity),
        run: Effect.suspend(() => (uncommitted() ? Effect.orDie(commitAt(position)) : Effect.void))
      }
      /**
       * The connection broke (its broker died, stopped or the network failed): the subscription
       * goes on at the next broker that takes it — any broker serves any topic — from `position`
       * (a named consumer's new broker starts at its committed offset; what this subscription
       * already delivered is skipped, and what it committed is sent again as the new broker
       * re-sends it). Tried until `connectTimeoutMs` has passed.
       */
      const failOver = (broken: SubscriberConnectionFailed) =>
        Effect.gen(function*() {
          connection.socket.destroy()
          const again = named ? request : new Subscribe({ ...request, from: position })
          const deadline = performance.now() + settings.connectTimeoutMs
          for (;;) {
            const attemptScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
            const attempt = yield* Effect.either(Scope.extend(subscribeAny(again), attemptScope))
            if (Either.isRight(attempt)) {
              const replaced = connectionScope
              connectionScope = attemptScope
              connection = attempt.right.connection
              commitSent = received = attempt.right.subscribed.start
              consumed = 0
              return yield* Scope.close(replaced, Exit.void)
            }
            yield* Scope.close(attemptScope, Exit.void)
            const e = attempt.left
            if (e._tag === "LogOutOfRange" || e._tag === "LogCorrupt" || e._tag === "HeadUnavailable") return yield* Effect.fail(e)
            // The old broker may not have released a named consumer yet, or every broker is restarting.
            const passing = e._tag === "SubscriberBrokersUnreachable" || e._tag === "ConsumerBusy"
            if (!passing || performance.now() >= deadline) {
              return yield* new SubscriberConnectionFailed({
                broker: broken.broker,
                code: broken.code,
                detail: `${broken.detail}; no other broker took the subscription over: ${e.message}`
              })
            }
            yield* Effect.sleep(FAILOVER_RETRY_MS)
          }
        })
      const view = new BatchView(topic)
      /**
       * The next DATA frame received, as the view (re-aimed), when a whole one is in; "torn"
       * when it failed its crc32c; or the failure its frame means.
       */
      const take = (): BatchView | undefined | SubscriptionError | "torn" => {
        for (;;) {
          const frame = connection.input.next()
          if (frame === undefined) return undefined
          if (frame instanceof WireViolation) return connection.failed("bad-frame", frame.message)
          if (frame.type === FrameType.ERROR) {
            const e = streamError(connection, request, frame)
            // Cut for holding its broker up (it pulled nothing for the broker's idle timeout): the stream ends
            // here, and the next pull fails over as when a broker goes.
            return e._tag === "SubscriberConnectionFailed" && e.code === "idle-timeout" ? undefined : e
          }
          if (frame.type !== FrameType.DATA) return connection.failed("bad-frame", `unexpected frame type ${frame.type}`)
          if (crc32c(frame.payload, 0, frame.payload.length) !== frame.crc32c) return "torn"
          grant()
          received = frame.seq + frame.messageCount
          if (commitSent < committed) sendCommit()
          // A batch wholly before the start (the first one may begin before it) has nothing to deliver.
          if (frame.seq + frame.messageCount <= position) continue
          const malformed = view.aim(frame.payload, frame.messageCount, frame.seq, position, frame.clientId, frame.sessionEpoch)
          if (malformed !== undefined) return new LogCorrupt({ reason: `topic ${topic}: batch at offset ${frame.seq}: ${malformed}` })
          if (view.offset !== position) {
            return new LogCorrupt({ reason: `topic ${topic}: broker ${connection.broker} sent offset ${view.offset}, expected ${position}` })
          }
          position = view.offset + view.count
          return view
        }
      }
      /** A DATA frame failed its crc32c (torn while the broker sent it): its out-of-range ERROR explains it; anything else is a broken stream. */
      const tornThen = (): Effect.Effect<never, SubscriptionError> =>
        Effect.flatMap(Effect.suspend(() => connection.next(TORN_GRACE_MS)), (after) =>
          after.type === FrameType.ERROR ? Effect.fail(streamError(connection, request, after)) : tornThen())
      /** What was handed out is due to be committed now (at a pull, before it takes the next batch). */
      const commitDue = () => uncommitted() && (position - committed >= policy.everyMessages || performance.now() - committedAt >= policy.intervalMs)
      /**
       * The next batch: at once when a whole frame is in (no Effect steps beyond the pull's own),
       * else after one wait for a frame, failing over when the broker is gone.
       */
      /** The next batch already received (the one handed out before is done with), undefined if none, or the failure a frame means. */
      const takeNow = (): BatchView | undefined | Effect.Effect<never, SubscriptionError> => {
        connection.input.release()
        const taken = take()
        connection.resumeIfRoom()
        if (taken === "torn") return tornThen()
        return taken === undefined || taken instanceof BatchView ? taken : Effect.fail(taken)
      }
      const pull: Effect.Effect<BatchView, SubscriptionError> = Effect.suspend(() => {
        if (commitDue()) return Effect.zipRight(Effect.orDie(commitAt(position)), pull)
        const taken = takeNow()
        if (taken instanceof BatchView) {
          handedOut = true
          return Effect.succeed(taken)
        }
        if (taken !== undefined) return taken
        return Effect.zipRight(
          connection.waitForFrame(undefined, due).pipe(
            Effect.catchAll((broken) => (brokerGone(broken) ? failOver(broken) : Effect.fail(broken)))
          ),
          pull
        )
      })
      /**
       * A pull, then every further batch already received, each handed to `onBatch` as soon as
       * the one before returned (so it is done with: its bytes may go). Stops before a commit
       * falls due (the next pull makes it), and fails with what a frame after them means.
       */
      const poll = (onBatch: (batch: SubscriberBatch) => void): Effect.Effect<number, SubscriptionError> =>
        Effect.flatMap(pull, (first) => {
          onBatch(first)
          let n = 1
          for (;;) {
            if (commitDue()) return Effect.succeed(n)
            const taken = takeNow()
            if (taken === undefined) return Effect.succeed(n)
            if (!(taken instanceof BatchView)) return taken
            onBatch(taken)
            n++
          }
        })
      const subscription: Subscription = {
        topic,
        start: subscribed.start,
        batches: Stream.repeatEffectOption(Effect.mapError(pull, Option.some)),
        pull,
        poll,
        position: () => position,
        lag: Effect.map(bounds(topic), (held) => Math.max(0, held.end - position)),
        consumer: subscribeOptions.consumer,
        commit: (offset) => Effect.suspend(() => commitAt(offset ?? position))
      }
      return subscription
    })

  return { subscribe, bounds }
}

/** The remote Subscriber over `options.brokers`. */
export const layerRemote = (options: RemoteSubscriberOptions): Layer.Layer<Subscriber> => Layer.succeed(Subscriber, makeRemote(options))
