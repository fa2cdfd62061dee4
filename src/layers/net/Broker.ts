/**
 * The TCP broker over the log core (see services/net/Broker.ts for the behaviour). A batch's path:
 * `accept` → `serve` → `session` (handshake) → `receive` → `append` → the log, and back as
 * `acknowledge` → ACK frame. The socket reads in place (`adopt`: Node's `onread` with the
 * buffer chosen per read): a frame header into the reader's 32 bytes, a BATCH payload straight
 * into the Blog space the appender reserved for it (`place` → `Appender.tryReserve`), so the
 * only copy of a payload is the kernel's, into where it will live, and no Buffer is made per
 * read. Past the handshake each read is handled right in the read callback (`receive`): the
 * frame's crc and messages checked, and the batch committed (`append`: `tryAppendWith`, which
 * finds the payload already in place). Only when the log has no room does the connection's
 * fiber take over: it waits in `appendWaiting` with reading stopped, then hands back.
 *
 * What one connection may hold: a frame header, one frame's payload (≤ 4 KiB before the
 * handshake: the reader refuses any frame but HELLO from its header; ≤ `maxBatchBytes` after it,
 * in its own buffer only when a batch could not be received in place), and `writeBufferBytes`
 * of output; the kernel's socket buffer holds the rest, since reading stops whenever nothing
 * consumes. Sessions that exchange nothing for `idleTimeoutMs` are closed, and connections
 * past `maxConnections` (kept below the process's open-file limit) are refused with an ERROR frame.
 */
import { Config, type ConfigError, Effect, Either, FiberSet, Layer, Metric, Option, type Scope } from "effect"
import { readFileSync } from "node:fs"
import { createServer, isIPv4, type Server, Socket, type SocketConstructorOpts } from "node:net"
import { createServer as createTlsServer, DEFAULT_CIPHERS, type TlsOptions } from "node:tls"
import {
  brokerAckFrames,
  brokerBatches,
  brokerBytes,
  brokerConnections,
  brokerFencedFrames,
  brokerRejected
} from "../../Metrics.js"
import { Broker, BrokerListenFailed, type BrokerLog, type BrokerOptions, type BrokerShape, type BrokerStats } from "../../services/net/Broker.js"
import { AckTracker, type SessionWatch } from "../../services/log/AckTracker.js"
import { Appender, type AppendError, type AppendReceipt, type BatchHeader, BatchRejected } from "../../services/log/Appender.js"
import { type AckLevel, TopicNotFound, Topics } from "../../services/log/Topics.js"
import { LogReader } from "../../services/log/LogReader.js"
import { Consumers } from "../../services/log/Consumers.js"
import { type AuthServer, CredentialError, RateBudget, type UserRecord } from "./Auth.js"
import * as Auth from "./Auth.js"
import { checkBatchPayload } from "./BatchPayload.js"
import {
  errorFrame,
  Hello,
  PROTOCOL_VERSION,
  sessionFencedFrame,
  Welcome,
  welcomeFrame,
  decodeControl,
  type WireErrorCode,
  WireViolation
} from "./Control.js"
import { ackEncoder, type Frame, FRAME_HEADER_BYTES, type FrameHeader, FrameType, frameTypeName, MAX_ACK_ORDERS } from "./Frame.js"
import { InPlaceFrameReader } from "./FrameReader.js"
import { subscriptionServer } from "./SubscriptionServer.js"

interface Settings {
  readonly host: string
  readonly port: number
  readonly maxBatchBytes: number
  readonly ackIntervalMs: number
  readonly handshakeTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxConnections: number
  readonly writeBufferBytes: number
}

/** See `BrokerOptions.idleTimeoutMs`. */
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60_000

const settingsOf = (options: BrokerOptions): Settings => ({
  host: options.host ?? "127.0.0.1",
  port: options.port ?? 0,
  maxBatchBytes: options.maxBatchBytes ?? 1 << 20,
  ackIntervalMs: options.ackIntervalMs ?? 0,
  handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5_000,
  idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
  maxConnections: options.maxConnections ?? 1024,
  writeBufferBytes: options.writeBufferBytes ?? 1 << 20
})

/**
 * The batches a connection carried that its ACKs have not covered yet, in arrival order: batch
 * seq and where it went (PBR position), so an ACK can name each one's total order.
 */
class Carried {
  /** The highest batch seq carried (-1: none). */
  highest = -1
  private seqs: Array<number> = []
  private pbrSeqs: Array<number> = []
  /** Scratch for one ACK's (batch seq, total order) pairs. */
  orders = new Float64Array(32)

  /** Whether some batch carried awaits its ACK. */
  get inFlight(): boolean {
    return this.seqs.length > 0
  }

  /** Called once by the next `add` (the ACK tracker waiting for a batch to acknowledge), then cleared. */
  onCarried: (() => void) | undefined = undefined

  add(batchSeq: number, pbrSeq: number): void {
    if (batchSeq > this.highest) this.highest = batchSeq
    this.seqs.push(batchSeq)
    this.pbrSeqs.push(pbrSeq)
    const carried = this.onCarried
    if (carried !== undefined) {
      this.onCarried = undefined
      carried()
    }
  }

  /**
   * Takes the batches below `frontier` (an ACK up to it covers them) and writes the pairs of
   * those with a known total order into `orders` (grown as needed); returns how many pairs, or
   * -1 when no batch carried is below `frontier` (then an ACK up to it would cover none of ours).
   */
  take(frontier: number, orderOf: (pbrSeq: number) => number | undefined): number {
    let pairs = 0
    const { seqs, pbrSeqs } = this
    let kept = 0
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!
      if (seq >= frontier) {
        // Resends can arrive out of order: keep it for a later ACK.
        seqs[kept] = seq
        pbrSeqs[kept++] = pbrSeqs[i]!
        continue
      }
      const order = orderOf(pbrSeqs[i]!)
      if (order === undefined) continue
      if (2 * pairs + 2 > this.orders.length) {
        const grown = new Float64Array(this.orders.length * 2)
        grown.set(this.orders)
        this.orders = grown
      }
      this.orders[2 * pairs] = seq
      this.orders[2 * pairs + 1] = order
      pairs++
    }
    if (kept === seqs.length) return -1
    seqs.length = kept
    pbrSeqs.length = kept
    return pairs
  }
}

/** The session a connection carries once its handshake registered or attached it. */
interface ConnectionSession {
  readonly topic: string
  readonly clientId: number
  readonly sessionEpoch: number
  readonly ackLevel: AckLevel
  /** ACK 2: the ordered frontier is acknowledged too, at level 1 (the HELLO asked for it). */
  readonly orderedAcks: boolean
  /** The rate budgets its batches draw on (the connection's and its user's); empty: unlimited. */
  readonly budgets: ReadonlyArray<{ readonly budget: RateBudget; readonly of: "messages" | "bytes"; readonly whose: string }>
}

/** Whether `host` is a loopback address (a broker beyond it needs TLS and authentication). */
const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || (isIPv4(host) && host.startsWith("127."))

/** What a user holds on this broker: its live connections and its rate budgets. */
interface UserUse {
  connections: number
  messages: RateBudget | undefined
  bytes: RateBudget | undefined
}

/** How long a TLS client may take over its handshake (Node's default is 2 minutes); past it the connection is dropped as failed. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000
/** How long a rejected connection may take to read its error frame before it is destroyed. */
const REJECT_GRACE_MS = 1_000
/** Sessions whose owning user a broker remembers (a few MB at most); far above a region's session lines. */
const MAX_SESSION_OWNERS = 65_536
/**
 * Open files the broker process keeps beside its connections (region, doorbell, stdio,
 * libuv's own, the listener, refused connections in their grace period): `maxConnections`
 * stays this far below the open-file limit, so the connection past it still gets its ERROR
 * frame instead of an accept that fails (EMFILE) and a silently dropped connection.
 */
const RESERVED_FILES = 64

/** The process's soft limit of open files (Linux: /proc/self/limits); undefined where unknown or unlimited. */
const openFileLimit = (): number | undefined => {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}
/**
 * Upper bound of one wait for frontier progress; its expiry only re-reads. The wake itself
 * comes from the doorbell: the sequencer rings every listener after each round that moved a
 * frontier, so an idle connection's tracker sleeps without wake-ups. The bound is a backstop
 * (a head that died between publishing a frontier and ringing) and costs one wake a minute.
 */
const PROGRESS_WAIT_MS = 60_000
/** How long a fenced ACK 2 session waits for the durable tier to cover what was ordered before the broker gives up on it. */
const FENCE_DURABLE_WAIT_MS = 10_000

/** `receive` outcomes besides a batch waiting for room or a violation: every received byte is handled; the input is over. */
const IDLE = "idle" as const
const DONE = "done" as const

/** Node's TCP handle, as far as reading in place needs it (not in Node's typings). */
interface ReadHandle {
  useUserBuffer(buffer: Uint8Array): void
}
const handleOf = (socket: Socket): ReadHandle | null => (socket as unknown as { _handle: ReadHandle | null })._handle

/** Where input goes once a connection stops taking it (read and dropped). */
const DROPPED = new Uint8Array(4096)

/** A TLS socket's link to its TLS session (Node's TLSWrap, which is also its handle) and to its TCP socket; absent on plain sockets. */
interface TlsLink {
  ssl?: unknown
  _parent?: Socket
}

/**
 * A connection's input, read in place: the accepted socket's handle is taken over by a socket
 * that reads with Node's `onread` into the buffer `reader.buffer()` names for each read (no
 * Buffer per read, no stream machinery). Reading runs only while someone consumes: a direct
 * consumer called from the read callback itself (it returns false to stop reading), or the
 * connection's fiber waiting in `read`; otherwise it is stopped, and the kernel holds the rest.
 *
 * A TLS connection is taken over once its handshake is done: its handle is the TLS session
 * (a stream like the TCP one), which decrypts each record into the buffer named for it, split
 * across buffers where a record straddles frames, so a payload still reaches the log in one
 * copy, made by Node's C++, and no Buffer is made per record. Unlike TCP, a TLS read that
 * stops reading still delivers the rest of the records already received: they land where
 * `reader.buffer()` says (its stash once a frame waits for `next()`).
 */
const adopt = (raw: Socket, reader: InPlaceFrameReader) => {
  let ended = false
  let dropping = false
  let waiting: (() => void) | undefined
  let direct: (() => boolean) | undefined
  const onRead = (n: number): boolean => {
    if (dropping) return true
    reader.filled(n)
    if (direct !== undefined) return direct()
    if (waiting !== undefined) {
      const wake = waiting
      waiting = undefined
      wake()
    }
    // The fiber takes it from here and asks for more with `read`.
    return false
  }
  // A plain connection was accepted paused (`pauseOnConnect`): nothing was read yet. A TLS one,
  // past its handshake, may hold decrypted input already: that goes to the reader first. Then the
  // handle moves to a socket made with `onread` (Node offers that option only to sockets it constructs).
  const tls = (raw as TlsLink).ssl !== undefined
  for (let chunk: Buffer | null = tls ? raw.read() : null; chunk !== null; chunk = raw.read()) {
    for (let at = 0; at < chunk.length;) {
      const into = reader.buffer()
      const n = Math.min(into.length, chunk.length - at)
      into.set(chunk.subarray(at, at + n))
      reader.filled(n)
      at += n
    }
  }
  const handle = handleOf(raw)
  ;(raw as unknown as { _handle: ReadHandle | null })._handle = null
  // The TLS session goes with the handle: closing the old socket must not end it, closing the new one does.
  if (tls) (raw as TlsLink).ssl = null
  raw.destroy()
  const socket = new Socket({
    handle,
    allowHalfOpen: true,
    onread: { buffer: () => (dropping ? DROPPED : reader.buffer()), callback: onRead }
  } as SocketConstructorOpts)
  if (tls) (socket as TlsLink).ssl = handle
  const onEnd = () => {
    ended = true
    if (waiting !== undefined) {
      const wake = waiting
      waiting = undefined
      wake()
    } else if (direct !== undefined) {
      direct()
    }
  }
  socket.on("end", onEnd)
  socket.on("close", onEnd)
  // A read that resumes into a buffer the reader has since moved on from lands in its stash (its own memory).
  const resume = () => {
    if (ended || socket.destroyed) return
    socket.resume()
  }
  return {
    socket,
    /** Whether the peer has finished (or the input was stopped). */
    ended: () => ended,
    /** Whether the consumer is waiting for input (the broker holds up nothing of this client's). */
    starved: () => waiting !== undefined || direct !== undefined,
    /**
     * The reader's payload was evicted from the log's space outside a read callback: the next
     * read must not go there. (Node keeps each buffer set this way until the socket closes, so
     * a connection does this at most once: see `revoked`.)
     */
    aim: () => handleOf(socket)?.useUserBuffer(dropping ? DROPPED : reader.buffer()),
    /** Resumes once more input was read (or the input ended). */
    read: Effect.async<void>((wake) => {
      if (ended) return wake(Effect.void)
      waiting = () => wake(Effect.void)
      resume()
      return Effect.sync(() => {
        waiting = undefined
      })
    }),
    /** While set, `consume` is called from the read callback after each read and at the end; unset, reading stops. */
    setDirect: (consume: (() => boolean) | undefined) => {
      direct = consume
      if (consume !== undefined) resume()
      else socket.pause()
    },
    /**
     * Stops taking input: later data is read and dropped, so a rejected socket goes as soon as
     * its client closes its side, and leaves no unread input behind (whose reset could discard
     * the ERROR frame before the client reads it).
     */
    stop: () => {
      const wasEnded = ended
      dropping = true
      direct = undefined
      // The read already aimed goes to the reader (its own memory, or log space it still holds: anyone taking that revokes it first).
      if (!wasEnded && !socket.destroyed) socket.resume()
      onEnd()
    }
  }
}

type Intake = ReturnType<typeof adopt>

/** The broker's TLS server options from its PEM files (read once, at start), or why not. */
const secureContextOf = (tls: NonNullable<BrokerOptions["tls"]>): TlsOptions => ({
  cert: readFileSync(tls.cert),
  key: readFileSync(tls.key),
  ...(tls.clientCa === undefined ? {} : { ca: readFileSync(tls.clientCa), requestCert: true }),
  rejectUnauthorized: true,
  // AES-128-GCM first: as safe for this use and about a third cheaper per byte than Node's preferred AES-256-GCM.
  ciphers: `TLS_AES_128_GCM_SHA256:${DEFAULT_CIPHERS}`,
  honorCipherOrder: true
})

/** An append the log refused: a batch it rejects is one the broker should have refused itself (internal). */
const appendFailed = (e: AppendError) =>
  new WireViolation({ code: e._tag === "BatchRejected" ? "internal" : "append-failed", detail: e.message })

/** The log's header for a BATCH frame. */
const headerOf = (frame: Frame): BatchHeader => ({
  clientId: frame.clientId,
  sessionEpoch: frame.sessionEpoch,
  batchSeq: frame.seq,
  messageCount: frame.messageCount,
  payloadBytes: frame.payloadBytes,
  crc32c: frame.crc32c
})

/** Writes a frame's payload into the log's space for it, unless it was received right there. */
const fillFrom = (payload: Uint8Array) => (dst: Uint8Array): void => {
  if (dst.buffer !== payload.buffer || dst.byteOffset !== payload.byteOffset) dst.set(payload)
}

/** Why a frame past the handshake is not one of this session's BATCH or CLOSE frames (undefined when it is). */
const sessionViolation = (frame: Frame, session: ConnectionSession): WireViolation | undefined => {
  if (frame.type === FrameType.HELLO) return new WireViolation({ code: "unexpected-frame", detail: "only BATCH and CLOSE frames follow the handshake" })
  if (frame.clientId === session.clientId && frame.sessionEpoch === session.sessionEpoch) return undefined
  return new WireViolation({
    code: "session-mismatch",
    detail: `${frameTypeName(frame.type)} of session ${frame.clientId}/${frame.sessionEpoch} on a connection of ${session.clientId}/${session.sessionEpoch}`
  })
}

export const make = (options: BrokerOptions): Effect.Effect<BrokerShape, BrokerListenFailed, BrokerLog | Scope.Scope> =>
  Effect.gen(function*() {
    const appender = yield* Appender
    const acks = yield* AckTracker
    const topics = yield* Topics
    const { brokerId } = appender
    // A broker given the process's LogReader serves subscribers too (SubscriptionServer.ts).
    const requested = settingsOf(options)
    const fileLimit = openFileLimit()
    const settings: Settings = fileLimit !== undefined && requested.maxConnections > fileLimit - RESERVED_FILES
      ? { ...requested, maxConnections: Math.max(1, fileLimit - RESERVED_FILES) }
      : requested
    if (settings.maxConnections < requested.maxConnections) {
      yield* Effect.logWarning(
        `broker ${brokerId}: serving at most ${settings.maxConnections} connections, not ${requested.maxConnections}: the process may open ${fileLimit} files (ulimit -n)`
      )
    }
    const refuse = (reason: string) => new BrokerListenFailed({ host: settings.host, port: settings.port, reason })
    const auth: AuthServer | undefined = options.credentials === undefined ? undefined : yield* Effect.try({
      try: () => Auth.AuthServer.open(options.credentials!),
      catch: (e) => refuse(e instanceof CredentialError ? e.message : `credentials ${options.credentials}: ${String(e)}`)
    })
    const secure = options.tls === undefined ? undefined : yield* Effect.try({
      try: () => secureContextOf(options.tls!),
      catch: (e) => refuse(`cannot load its TLS certificate or key: ${(e as Error).message}`)
    })
    /** Per user: live connections and rate budgets, shared by all its connections to this broker. */
    const userUse = new Map<string, UserUse>()
    /** The user's use, its budgets at the rates its record names now (a `cxlog user add` that changed them applies from its next connection). */
    const useOf = (user: UserRecord): UserUse => {
      const { messagesPerSecond = 0, bytesPerSecond = 0 } = user.limits ?? {}
      const budget = (current: RateBudget | undefined, perSecond: number) =>
        perSecond <= 0 ? undefined : current?.perSecond === perSecond ? current : new RateBudget(perSecond)
      const use = userUse.get(user.name) ?? { connections: 0, messages: undefined, bytes: undefined }
      use.messages = budget(use.messages, messagesPerSecond)
      use.bytes = budget(use.bytes, bytesPerSecond)
      userUse.set(user.name, use)
      return use
    }
    /** One of the user's connections to this broker, publisher or subscriber, for the scope's life; refused past its limit. */
    const holdConnection = (user: UserRecord) =>
      Effect.gen(function*() {
        const use = useOf(user)
        const limit = user.limits?.connections ?? 0
        if (limit > 0 && use.connections >= limit) {
          return yield* new WireViolation({ code: "too-many-connections", detail: `user ${user.name} may hold ${limit} connections to this broker` })
        }
        use.connections++
        yield* Effect.addFinalizer(() => Effect.sync(() => void use.connections--))
        return use
      })
    // A broker given the process's LogReader serves subscribers too (SubscriptionServer.ts).
    const subscriptions = subscriptionServer({
      brokerId,
      reader: Option.getOrUndefined(yield* Effect.serviceOption(LogReader)),
      consumers: Option.getOrUndefined(yield* Effect.serviceOption(Consumers)),
      auth,
      holdConnection,
      idleTimeoutMs: settings.idleTimeoutMs
    })
    if (!isLoopback(settings.host) && options.insecure !== true && (auth === undefined || secure === undefined)) {
      return yield* refuse(
        `refusing to serve beyond loopback without ${secure === undefined ? "TLS" : ""}${secure === undefined && auth === undefined ? " and " : ""}${
          auth === undefined ? "authentication" : ""
        }: give --tls-cert and --tls-key with authentication on (a credential file), or --insecure (docs/security.md)`
      )
    }
    // Authentication is the default, as `cxlog broker`'s: an open broker is asked for by name.
    if (auth === undefined && options.insecure !== true) {
      return yield* refuse("no credentials: give `credentials` (a credential file: docs/security.md), or `insecure: true` to let every client in")
    }
    const sockets = new Set<Socket>()
    /** TLS: connections whose handshake is not done yet (their TCP sockets). */
    const handshaking = new Set<Socket>()
    /** What each connection holds of its client's input, for `stats().queuedBytes`. */
    const held = new Set<() => number>()
    const counts = { accepted: 0, batches: 0, messages: 0, bytes: 0, ackFrames: 0, fencedFrames: 0 }
    /** Every connection's ACKs are encoded into one buffer: each is written before the next is encoded. */
    const ackFrames = ackEncoder()
    const rejected: Partial<Record<WireErrorCode, number>> = {}
    const run = yield* FiberSet.makeRuntime<never>()

    const countRejection = (code: WireErrorCode) => {
      rejected[code] = (rejected[code] ?? 0) + 1
      brokerRejected.pipe(Metric.tagged("code", code)).unsafeUpdate(1, [])
    }

    /** Sends the error frame and closes the connection once it is flushed and the client closed its side, or after a grace period. */
    const reject = (socket: Socket, violation: WireViolation) => {
      if (socket.destroyed || socket.writableEnded) return
      countRejection(violation.code)
      socket.end(errorFrame(violation.code, violation.detail))
      setTimeout(() => socket.destroy(), REJECT_GRACE_MS).unref()
    }

    const welcome = (sessionEpoch: number, serverSignature: string | undefined, sessionToken: string | undefined) =>
      welcomeFrame(
        new Welcome({
          protocol: PROTOCOL_VERSION,
          brokerId,
          maxBatchBytes: settings.maxBatchBytes,
          sessionEpoch,
          ...(serverSignature === undefined ? {} : { serverSignature }),
          ...(sessionToken === undefined ? {} : { sessionToken })
        })
      )
    // Accepted paused, so nothing is read before `adopt` takes the handle over. With TLS, a
    // connection is handed over once its TLS handshake is done (and its client certificate checked).
    const server: Server = secure === undefined
      ? createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true })
      : createTlsServer({ ...secure, allowHalfOpen: true, noDelay: true, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS })
    if (secure !== undefined) {
      server.on("tlsClientError", (error, tls: Socket) => {
        // Node leaves the socket of a failed or timed-out handshake open.
        tls.destroy()
        countRejection("auth-failed")
        run(Effect.logDebug(`broker ${brokerId}: a TLS handshake failed: ${error.message}`))
      })
      // A client that gives up mid-handshake (it refused the broker's certificate) only half-closes: its
      // connection waits for the handshake timeout, and the broker's close must not wait for it.
      server.on("connection", (tcp: Socket) => {
        handshaking.add(tcp)
        tcp.once("close", () => handshaking.delete(tcp))
      })
      server.on("secureConnection", (tls: Socket) => handshaking.delete((tls as TlsLink)._parent!))
    }
    /** A new connection: served (one fiber of the broker's scope), or refused past `maxConnections`. */
    const accept = (raw: Socket) => {
      counts.accepted++
      raw.on("error", () => {})
      raw.setNoDelay(true)
      if (sockets.size >= settings.maxConnections) {
        reject(raw, new WireViolation({ code: "too-many-connections", detail: `this broker serves at most ${settings.maxConnections} connections` }))
        // Its HELLO is read and dropped: the socket goes as soon as the client, told, closes.
        raw.resume()
        return
      }
      /** The session once the handshake is done: BATCH frames are admitted and received in place from then on. */
      let current: ConnectionSession | undefined
      /** The Blog space the batch being read was placed in (until it is committed or revoked). */
      let reserved: Uint8Array | undefined
      let firstFrame = true
      let subscribing = false
      /** Cleared once another connection's append took this one's space mid-batch: from then on it receives into its own buffer. */
      let inPlace = true
      const revoked = () => {
        const view = reserved
        reserved = undefined
        // Another append takes the space while this batch is still arriving: what arrived moves to the reader's own
        // buffer, and so does the rest. Re-aiming a read costs Node a buffer record kept until the socket closes, so
        // a connection that collides with another on this topic stops receiving in place (one record at most).
        if (view !== undefined && reader.evict(view)) {
          inPlace = false
          intake.aim()
        }
      }
      const reader = new InPlaceFrameReader({
        accept: [FrameType.HELLO, FrameType.AUTH, FrameType.BATCH, FrameType.CLOSE, FrameType.SUBSCRIBE, FrameType.CREDIT, FrameType.COMMIT],
        maxBatchBytes: settings.maxBatchBytes,
        // Before the handshake a BATCH is refused from its header: none of its payload is read.
        admit: (type) => {
          const opening = firstFrame
          firstFrame = false
          // A SUBSCRIBE opens a subscriber connection (AUTH, CREDIT and COMMIT frames follow it); it is nothing else.
          if (type === FrameType.SUBSCRIBE && opening) subscribing = true
          if (subscribing) {
            return opening || type === FrameType.CREDIT || type === FrameType.COMMIT || type === FrameType.AUTH
              ? undefined
              : new WireViolation({ code: "unexpected-frame", detail: "only AUTH, CREDIT and COMMIT frames follow a SUBSCRIBE" })
          }
          if (type === FrameType.SUBSCRIBE || type === FrameType.CREDIT || type === FrameType.COMMIT) {
            return new WireViolation({ code: "unexpected-frame", detail: "SUBSCRIBE opens a subscriber connection, CREDIT and COMMIT frames follow it" })
          }
          return current !== undefined || type === FrameType.HELLO || type === FrameType.AUTH
            ? undefined
            : new WireViolation({ code: "unexpected-frame", detail: "the first frame must be HELLO" })
        },
        place: (header: FrameHeader) => {
          if (current === undefined || !inPlace) return undefined
          const view = appender.tryReserve(current.topic, header.payloadBytes, FRAME_HEADER_BYTES, revoked)
          if (!(view instanceof Uint8Array)) return undefined
          reserved = view
          return view
        }
      })
      const intake = adopt(raw, reader)
      const socket = intake.socket
      socket.on("error", () => {})
      // Held until it closes: besides counting it, this keeps a taken-over TLS session (a weak
      // native object once its TLSSocket is gone) reachable while the TCP stream still feeds it.
      sockets.add(socket)
      brokerConnections.unsafeUpdate(sockets.size, [])
      socket.once("close", () => {
        sockets.delete(socket)
        brokerConnections.unsafeUpdate(sockets.size, [])
      })
      run(serve(socket, intake, reader, (session) => {
        current = session
      }))
    }
    server.on(secure === undefined ? "connection" : "secureConnection", accept)

    const serve = (socket: Socket, intake: Intake, reader: InPlaceFrameReader, started: (session: ConnectionSession) => void) =>
      Effect.gen(function*() {
        const holds = () => reader.heldBytes
        held.add(holds)
        yield* Effect.addFinalizer(() => Effect.sync(() => held.delete(holds)))
        /** The next frame, reading until the reader completes one; undefined once the stream ended between frames. */
        const nextFrame: Effect.Effect<Frame | undefined, WireViolation> = Effect.gen(function*() {
          for (;;) {
            const frame = reader.next()
            if (frame instanceof WireViolation) return yield* Effect.fail(frame)
            if (frame !== undefined) return frame
            if (intake.ended()) {
              if (reader.midFrame) return yield* new WireViolation({ code: "truncated", detail: "the connection ended inside a frame" })
              return undefined
            }
            yield* intake.read
          }
        })
        // Plain timers, not Effect timeouts: they cost nothing per connection beyond themselves.
        const handshakeTimer = setTimeout(() => {
          reject(socket, new WireViolation({ code: "handshake-timeout", detail: `no HELLO within ${settings.handshakeTimeoutMs} ms` }))
          intake.stop()
        }, settings.handshakeTimeoutMs)
        yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(handshakeTimer)))
        /**
         * Nothing read or written for `idleTimeoutMs` past the handshake: closed with `idle-timeout`,
         * even with batches still awaiting their ACK, since that long without one means ordering
         * has stalled far past any flush timeout, and closing loses nothing (the publisher sends
         * them again on another connection or after reconnecting; the log drops what it already
         * has). Not idle while the broker itself holds the client up: a batch waits for log room.
         *
         * Checked every quarter timeout from the socket's byte counts, not with Node's socket
         * timeout, which re-arms its timer on every read and write (a cost per batch and per ACK):
         * four checks in a row that saw no bytes move close it, between 1 and 1¼ timeouts after
         * the last byte.
         */
        let idleTimer: ReturnType<typeof setTimeout> | undefined
        let bytesSeen = -1
        let quietChecks = 0
        const checkIdle = () => {
          idleTimer = undefined
          if (socket.writableEnded || socket.destroyed) return
          const bytes = socket.bytesRead + socket.bytesWritten
          quietChecks = bytes !== bytesSeen || !intake.starved() ? 0 : quietChecks + 1
          bytesSeen = bytes
          if (quietChecks < 4) return void (idleTimer = setTimeout(checkIdle, settings.idleTimeoutMs / 4).unref())
          reject(socket, new WireViolation({ code: "idle-timeout", detail: `nothing sent or received for ${settings.idleTimeoutMs} ms` }))
          intake.stop()
        }
        yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(idleTimer)))
        /** The HELLO is accepted: batches are admitted (and received in place) and the idle timeout runs from here. */
        const handshakeDone = (session: ConnectionSession) => {
          clearTimeout(handshakeTimer)
          started(session)
          if (settings.idleTimeoutMs > 0) checkIdle()
        }
        const subscribed = () => clearTimeout(handshakeTimer)
        const outcome = yield* Effect.either(Effect.scoped(session(socket, intake, reader, nextFrame, handshakeDone, subscribed)))
        intake.stop()
        if (Either.isLeft(outcome)) {
          yield* Effect.logDebug(`broker ${brokerId}: closing a connection: ${outcome.left.message}`)
          reject(socket, outcome.left)
        } else if (!socket.writableEnded) {
          socket.destroy()
        }
      }).pipe(
        Effect.scoped,
        Effect.catchAllCause((cause) =>
          Effect.logWarning(`broker ${brokerId}: connection failed`, cause).pipe(
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
        if (frame.clientId !== hello.clientId || frame.sessionEpoch !== (hello.sessionEpoch ?? 0)) {
          return yield* new WireViolation({ code: "bad-handshake", detail: "the HELLO header and body name different sessions" })
        }
        // Who it is comes first: an unauthenticated client learns nothing, not even which topics exist.
        const authenticated = auth === undefined
          ? undefined
          : yield* Auth.authenticate(auth, hello, "publish", hello.topic, { send: (frame) => void send(socket, frame), next: nextFrame })
        if (authenticated === null) return undefined
        const unknownTopic = (e: { readonly message: string }) => new WireViolation({ code: "unknown-topic", detail: e.message })
        yield* topics.lookup(hello.topic).pipe(Effect.mapError(unknownTopic))
        const budgets: Array<ConnectionSession["budgets"][number]> = []
        const { messagesPerSecond = 0, bytesPerSecond = 0 } = options.limits ?? {}
        if (messagesPerSecond > 0) budgets.push({ budget: new RateBudget(messagesPerSecond), of: "messages", whose: "the connection's" })
        if (bytesPerSecond > 0) budgets.push({ budget: new RateBudget(bytesPerSecond), of: "bytes", whose: "the connection's" })
        if (authenticated !== undefined) {
          const use = yield* holdConnection(authenticated.user)
          const whose = `user ${authenticated.user.name}'s`
          if (use.messages !== undefined) budgets.push({ budget: use.messages, of: "messages", whose })
          if (use.bytes !== undefined) budgets.push({ budget: use.bytes, of: "bytes", whose })
        }
        const user = authenticated?.user.name
        const sessionEpoch = hello.sessionEpoch === undefined
          ? yield* registerSession(hello)
          : yield* attachSession(hello, hello.sessionEpoch, user)
        if (user !== undefined) claimSession(hello.topic, hello.clientId, sessionEpoch, user)
        const token = user === undefined ? undefined : auth?.sessionToken(hello.topic, hello.clientId, sessionEpoch, user)
        send(socket, welcome(sessionEpoch, authenticated?.serverSignature, token))
        return { topic: hello.topic, clientId: hello.clientId, sessionEpoch, ackLevel: hello.ackLevel, orderedAcks: hello.ackLevel === 2 && hello.orderedAcks === true, budgets }
      })

    /** A HELLO without an epoch: the log registers a new session and hands out its epoch. */
    const registerSession = (hello: Hello) =>
      appender.registerSession(hello.topic, hello.clientId).pipe(
        Effect.mapError((e) =>
          e._tag === "SessionTableFull"
            ? new WireViolation({ code: "session-table-full", detail: e.message })
            : new WireViolation({ code: "unknown-topic", detail: e.message })
        )
      )

    /**
     * Which user holds each session an authenticated connection registered or attached here, so
     * another user (who learns a session's id and epoch from any DATA frame) cannot attach to it
     * and have its batches taken for the owner's. A session this broker does not know (registered
     * through another broker, or before a restart) is attached only with its token (the WELCOME
     * that registered it carried it), when the credential file has a session key (docs/security.md).
     */
    const sessionOwners = new Map<string, string>()
    const sessionKey = (topic: string, clientId: number, sessionEpoch: number) => `${topic}/${clientId}/${sessionEpoch}`
    const claimSession = (topic: string, clientId: number, sessionEpoch: number, user: string) => {
      const key = sessionKey(topic, clientId, sessionEpoch)
      if (sessionOwners.has(key)) return
      // Bounded: the oldest claims go first (their sessions ended long ago, or are claimed again on their next attach).
      if (sessionOwners.size >= MAX_SESSION_OWNERS) sessionOwners.delete(sessionOwners.keys().next().value!)
      sessionOwners.set(key, user)
    }

    /** A HELLO naming an epoch: it must be a session the log registered (a fenced or ended one learns so from its ACK tracker), of this user. */
    const attachSession = (hello: Hello, sessionEpoch: number, user: string | undefined) =>
      Effect.gen(function*() {
        const owner = user === undefined ? undefined : sessionOwners.get(sessionKey(hello.topic, hello.clientId, sessionEpoch))
        const foreign = owner === undefined
          ? user !== undefined && auth !== undefined && !auth.sessionTokenMatches(hello.topic, hello.clientId, sessionEpoch, user, hello.sessionToken)
          : owner !== user
        if (foreign) {
          return yield* new WireViolation({
            code: "forbidden",
            detail: `session ${hello.clientId}/${sessionEpoch} on topic ${hello.topic} belongs to another user${
              owner === undefined ? " (its token does not match)" : ""
            }: user ${user} may attach only its own sessions`
          })
        }
        const known = yield* acks.sessionAcks(hello.topic, hello.clientId, sessionEpoch).pipe(
          Effect.mapError((e) => new WireViolation({ code: e._tag === "TopicNotFound" ? "unknown-topic" : "internal", detail: e.message }))
        )
        if (known.known) return sessionEpoch
        return yield* new WireViolation({
          code: "unknown-session",
          detail: `session ${hello.clientId}/${sessionEpoch} is not registered on topic ${hello.topic} (it was never, or it ended and its line was reused): register a new one`
        })
      })

    const session = (
      socket: Socket,
      intake: Intake,
      reader: InPlaceFrameReader,
      nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
      handshakeDone: (session: ConnectionSession) => void,
      subscribed: () => void
    ) =>
      Effect.gen(function*() {
        const first = yield* nextFrame
        if (first === undefined) return
        if (first.type === FrameType.SUBSCRIBE) return yield* subscriptions(socket, first, nextFrame, subscribed)
        let opening: Frame | undefined = first
        const session = yield* handshake(socket, Effect.suspend(() => {
          const frame = opening
          opening = undefined
          return frame === undefined ? nextFrame : Effect.succeed(frame)
        }))
        if (session === undefined) return
        handshakeDone(session)
        const carried = new Carried()
        yield* Effect.forkScoped(acknowledge(socket, session, carried))
        const batches = batchStream(socket, intake, reader, session, carried)
        for (;;) {
          const outcome = batches.receive()
          // Caught up: from here the data callback receives; this fiber sleeps until it cannot.
          const stop = outcome === IDLE ? yield* batches.direct : outcome
          if (stop === DONE) return
          if (stop instanceof WireViolation) return yield* Effect.fail(stop)
          if (stop.type === FrameType.CLOSE) {
            // After every batch this connection carried: the log releases the session once they are ordered.
            sessionOwners.delete(sessionKey(session.topic, session.clientId, session.sessionEpoch))
            return yield* appender.closeSession(session.topic, session.clientId, session.sessionEpoch, stop.seq).pipe(
              Effect.mapError(appendFailed),
              Effect.asVoid
            )
          }
          yield* batches.appendWaiting(stop)
        }
      })

    /**
     * The batch frames of one connection after its handshake. `receive` handles every frame
     * already received without waiting: it stops at the end of the input (`IDLE`), at the end
     * of the stream or of the connection (`DONE`), at a violation, at a CLOSE, or at a batch
     * the log has no room for now (returned: `appendWaiting` waits for room and appends it).
     */
    const batchStream = (socket: Socket, intake: Intake, reader: InPlaceFrameReader, session: ConnectionSession, carried: Carried) => {
      const counted = (frame: Frame, receipt: AppendReceipt) => {
        // Level 0 gets no ACKs, so nothing would ever take what it carried.
        if (session.ackLevel > 0) carried.add(frame.seq, receipt.pbrSeq)
        counts.batches++
        counts.messages += frame.messageCount
        counts.bytes += frame.payloadBytes
        brokerBatches.unsafeUpdate(1, [])
        brokerBytes.unsafeUpdate(frame.payloadBytes, [])
      }

      /** The first rate budget this batch would overdraw, as the connection's ERROR; undefined when all allow it. */
      const overLimit = (frame: Frame): WireViolation | undefined => {
        for (const { budget, of, whose } of session.budgets) {
          if (budget.take(of === "messages" ? frame.messageCount : frame.payloadBytes)) continue
          return new WireViolation({ code: "rate-limited", detail: `over ${whose} limit of ${budget.perSecond} ${of} a second` })
        }
        return undefined
      }

      /** Append: a checked batch into the log without waiting (usually already in place); "wait" when the log has no room now. */
      const append = (frame: Frame): "wait" | WireViolation | undefined => {
        if (session.budgets.length > 0) {
          const limited = overLimit(frame)
          if (limited !== undefined) return limited
        }
        const malformed = checkBatchPayload(frame.payload, frame.messageCount)
        if (malformed !== undefined) return new WireViolation({ code: "bad-batch", detail: malformed })
        const appended = appender.tryAppendWith(session.topic, headerOf(frame), fillFrom(frame.payload))
        if (appended === "wait") return appended
        if (appended instanceof TopicNotFound || appended instanceof BatchRejected) return appendFailed(appended)
        counted(frame, appended)
        return undefined
      }

      /** Receive: the frames read so far → `append`, until something stops it. */
      const receive = (): Frame | typeof IDLE | typeof DONE | WireViolation => {
        for (;;) {
          // The ACK tracker dropped the connection (slow consumer): append nothing more.
          if (socket.writableEnded) return DONE
          const frame = reader.next()
          if (frame === undefined) {
            if (!intake.ended()) return IDLE
            return reader.midFrame ? new WireViolation({ code: "truncated", detail: "the connection ended inside a frame" }) : DONE
          }
          if (frame instanceof WireViolation) return frame
          const wrong = sessionViolation(frame, session)
          if (wrong !== undefined) return wrong
          if (frame.type === FrameType.CLOSE) return frame
          const appended = append(frame)
          // Waiting for room, a payload received in the log's space is copied out: that space is anyone's until then.
          if (appended === "wait") return reader.inPlace ? { ...frame, payload: frame.payload.slice() } : frame
          if (appended !== undefined) return appended
        }
      }

      return {
        receive,
        /** Lets the read callback `receive` after each read; resumes with the first stop that is not `IDLE` (reading stopped). */
        direct: Effect.async<Frame | typeof DONE | WireViolation>((resume) => {
          let stopped = false
          const onInput = (): boolean => {
            if (stopped) return false
            let stop: ReturnType<typeof receive>
            try {
              stop = receive()
            } catch (error) {
              stop = new WireViolation({ code: "internal", detail: `receiving a batch failed: ${String(error)}` })
            }
            if (stop === IDLE) return true
            stopped = true
            intake.setDirect(undefined)
            resume(Effect.succeed(stop))
            return false
          }
          // Frames the last read completed first; then each read as it comes.
          if (onInput()) intake.setDirect(onInput)
          return Effect.sync(() => {
            stopped = true
            intake.setDirect(undefined)
          })
        }),
        /** Appends a batch the log had no room for, waiting for room (reading stopped meanwhile). */
        appendWaiting: (frame: Frame) =>
          appender.appendWith(session.topic, headerOf(frame), fillFrom(frame.payload)).pipe(
            Effect.mapError(appendFailed),
            Effect.map((receipt) => counted(frame, receipt))
          )
      }
    }

    /**
     * Sends the cumulative ACK of batches 0..frontier-1 with the total orders of the `pairs`
     * batches in `orders`; false once the connection is gone. Past one frame's worth of pairs,
     * the first frames repeat the previous frontier (`before`), so the publisher learns every
     * order before the frontier covers its batch.
     */
    const sendAck = (socket: Socket, session: ConnectionSession, before: number, frontier: number, orders: Float64Array, pairs: number): boolean => {
      for (let from = 0; ; from += MAX_ACK_ORDERS) {
        const count = Math.min(MAX_ACK_ORDERS, pairs - from)
        const last = from + count >= pairs
        const frame = ackFrames.encode(session.clientId, session.sessionEpoch, last ? frontier : before, session.ackLevel, orders, from, count)
        const sent = send(socket, frame)
        ackFrames.written(socket)
        if (!sent) return false
        counts.ackFrames++
        brokerAckFrames.unsafeUpdate(1, [])
        if (last) return true
      }
    }

    /**
     * Acknowledge: this connection's ACK tracker, run from callbacks (no fiber per wake). It
     * re-reads the session's frontier whenever the topic's progress moves (a standing wait on
     * the doorbell, woken by the rounds that order this broker's batches) and sends the
     * cumulative ACK if it advanced past what this connection was sent and covers a batch this
     * connection carried. After an ACK with batches still in flight it re-checks only after
     * `ackIntervalMs` (0: the next event-loop turn, in which every batch already received is
     * appended), so a fast stream gets one ACK per interval or turn, not one per batch. With
     * nothing in flight it leaves the doorbell and waits for the next batch (`Carried.onCarried`),
     * so rounds for other connections do not wake its process; a fence is then seen with that
     * batch or at the idle check every PROGRESS_WAIT_MS.
     */
    const acknowledge = (socket: Socket, session: ConnectionSession, carried: Carried) =>
      Effect.gen(function*() {
        const { clientId, sessionEpoch, topic } = session
        const totalOrder = yield* acks.totalOrders(topic)
        // Resolved once: a wake re-reads the session line with plain calls.
        const watch = yield* acks.watch(topic, clientId, sessionEpoch, brokerId)
        yield* Effect.async<void>((resume) => {
          const stop = trackAcks(socket, session, carried, watch, (pbrSeq) => totalOrder(brokerId, pbrSeq), () => resume(Effect.void))
          return Effect.sync(stop)
        })
      }).pipe(
        Effect.catchAll((error) =>
          Effect.logWarning(`broker ${brokerId}: ACK tracker stopped: ${error.message}`).pipe(
            Effect.zipRight(Effect.sync(() => reject(socket, new WireViolation({ code: "internal", detail: error.message }))))
          )
        )
      )

    /** `acknowledge`'s callbacks; calls `ended` once the tracker is over, returns the function that stops it. */
    const trackAcks = (
      socket: Socket,
      session: ConnectionSession,
      carried: Carried,
      watch: SessionWatch,
      orderOf: (pbrSeq: number) => number | undefined,
      ended: () => void
    ): () => void => {
      const { ackLevel, clientId, sessionEpoch, topic } = session
      let seen = watch.progress()
      let acked = 0
      let orderedSent = 0
      /** When the session was first seen fenced with batches ordered but not yet on disk (ACK 2). */
      let fencedAt: number | undefined
      let over = false
      /** The standing progress wait while one is registered, and its bound. */
      let standing: (() => void) | undefined
      let standingMs = PROGRESS_WAIT_MS
      /** Set between an ACK and the re-check after `ackIntervalMs` (a timer) or the loop turn (an immediate). */
      let pauseTimer: ReturnType<typeof setTimeout> | undefined
      let pauseTurn: ReturnType<typeof setImmediate> | undefined
      const moved = () => pauseTurn === undefined && pauseTimer === undefined && watch.progress() !== seen
      const onProgress = () => step()
      const boundMs = () => standingMs
      const leave = () => {
        standing?.()
        standing = undefined
      }
      /** Waits for progress, bounded by `ms`; true if it already moved (the re-check after registering). */
      const stand = (ms: number): boolean => {
        if (standing !== undefined && ms !== standingMs) leave()
        standingMs = ms
        if (standing === undefined) standing = watch.standing(moved, onProgress, boundMs)
        return moved()
      }
      const afterPause = () => {
        pauseTimer = undefined
        pauseTurn = undefined
        step()
      }
      // An idle connection's backstop: one check a PROGRESS_WAIT_MS, not a timer per idle spell.
      const idleCheck = setInterval(() => {
        if (carried.onCarried !== undefined) step()
      }, PROGRESS_WAIT_MS)
      idleCheck.unref()
      const stop = () => {
        if (over) return
        over = true
        leave()
        clearInterval(idleCheck)
        clearTimeout(pauseTimer)
        if (pauseTurn !== undefined) clearImmediate(pauseTurn)
        carried.onCarried = undefined
      }
      const end = () => {
        stop()
        ended()
      }
      /** One look at the frontiers: what to send and how to wait next. */
      const pass = (): "end" | "sent" | "wait" | { readonly boundMs: number } => {
        const frontiers = watch.acks()
        if (!frontiers.known) {
          // Released and its line reused: where it ended is no longer known.
          reject(socket, new WireViolation({ code: "unknown-session", detail: `session ${clientId}/${sessionEpoch} ended and its record was reused` }))
          return "end"
        }
        const frontier = ackLevel === 2 ? frontiers.replicated : frontiers.ordered
        let sent = false
        // Only a frontier past one of this connection's batches: under order 5 the session's frontier
        // also moves with the batches other brokers carry, and their brokers acknowledge those.
        const pairs = ackLevel > 0 && frontier > acked ? carried.take(frontier, orderOf) : -1
        if (pairs >= 0) {
          const before = acked
          acked = frontier
          if (!sendAck(socket, session, before, frontier, carried.orders, pairs)) return "end"
          sent = true
        }
        if (session.orderedAcks && frontiers.ordered > Math.max(orderedSent, acked) && carried.highest >= orderedSent) {
          // Ordered, not on disk yet: the publisher keeps them for resend, outside its send window.
          orderedSent = frontiers.ordered
          const ordered = ackFrames.encode(clientId, sessionEpoch, frontiers.ordered, 1, carried.orders, 0, 0)
          const delivered = send(socket, ordered)
          ackFrames.written(socket)
          if (!delivered) return "end"
          sent = true
        }
        const failure = ackLevel === 2 ? watch.durableFailure() : undefined
        if (failure !== undefined) {
          // Level 2 will not move again: the publisher gets a typed refusal, not an ACK timeout (what was acked is on disk).
          const why = failure === "disk-full" ? "the head's data directory is full" : "the head stopped writing it"
          reject(socket, new WireViolation({ code: "durability-unavailable", detail: `topic ${topic}: its copy on disk stopped (${why}); ACK 2 cannot be given` }))
          return "end"
        }
        if (frontiers.fenced && ackLevel === 2 && frontiers.replicated < frontiers.ordered) {
          // The fence's frontier is what the publisher counts as done: at ACK 2 it must be on disk as well.
          fencedAt ??= performance.now()
          const leftMs = FENCE_DURABLE_WAIT_MS - (performance.now() - fencedAt)
          if (leftMs > 0) return { boundMs: leftMs }
          reject(socket, new WireViolation({
            code: "durability-unavailable",
            detail: `session ${clientId}/${sessionEpoch} of topic ${topic} ended with batches ${frontiers.replicated}..${frontiers.ordered - 1} ordered but not on disk within ${FENCE_DURABLE_WAIT_MS} ms`
          }))
          return "end"
        }
        if (frontiers.fenced) {
          // Fenced, or released (closed or idle): the publisher replays what is past the frontier in a new session.
          if (send(socket, sessionFencedFrame(clientId, sessionEpoch, frontiers.ordered))) {
            counts.fencedFrames++
            brokerFencedFrames.unsafeUpdate(1, [])
          }
          return "end"
        }
        return sent ? "sent" : "wait"
      }
      const step = (): void => {
        try {
          for (;;) {
            if (over) return
            // Read before the frontiers: a frontier that moves after this read moves the progress past it.
            seen = watch.progress()
            const next = pass()
            if (next === "end") return end()
            if (typeof next === "object") {
              if (stand(next.boundMs)) continue
              return
            }
            if (ackLevel > 0 && !carried.inFlight) {
              // Nothing to acknowledge: off the doorbell until a batch comes.
              leave()
              carried.onCarried = step
              return
            }
            if (next === "sent") {
              stand(PROGRESS_WAIT_MS)
              if (settings.ackIntervalMs > 0) pauseTimer = setTimeout(afterPause, settings.ackIntervalMs)
              else pauseTurn = setImmediate(afterPause)
              return
            }
            if (stand(PROGRESS_WAIT_MS)) continue
            return
          }
        } catch (error) {
          run(Effect.logWarning(`broker ${brokerId}: ACK tracker stopped: ${String(error)}`))
          reject(socket, new WireViolation({ code: "internal", detail: String(error) }))
          end()
        }
      }
      step()
      return stop
    }

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
          for (const socket of handshaking) socket.destroy()
        })
    )
    server.on("error", (error) => run(Effect.logError(`broker ${brokerId}: server error: ${error.message}`)))
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : settings.port
    yield* Effect.logDebug(`broker ${brokerId} listening on ${settings.host}:${port}`)

    return {
      brokerId,
      host: settings.host,
      port,
      stats: (): BrokerStats => {
        let queuedBytes = 0
        for (const holds of held) queuedBytes += holds()
        return { connections: sockets.size, ...counts, queuedBytes, rejected: { ...rejected } }
      }
    }
  })

export const layer = (options: BrokerOptions): Layer.Layer<Broker, BrokerListenFailed, BrokerLog> => Layer.scoped(Broker, make(options))

/**
 * Options from `CXLOG_BROKER_HOST` (127.0.0.1), `CXLOG_BROKER_PORT` (7400), `CXLOG_MAX_BATCH_BYTES`,
 * `CXLOG_ACK_INTERVAL_MS`, `CXLOG_BROKER_IDLE_TIMEOUT_MS` (10 minutes; 0: never), `CXLOG_BROKER_MAX_CONNECTIONS` (1024),
 * `CXLOG_CREDENTIALS` and `CXLOG_INSECURE` (`cxlog broker`'s variables: one of them is needed).
 */
export const config: Config.Config<BrokerOptions> = Config.all({
  host: Config.string("CXLOG_BROKER_HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("CXLOG_BROKER_PORT").pipe(Config.withDefault(7400)),
  maxBatchBytes: Config.integer("CXLOG_MAX_BATCH_BYTES").pipe(Config.withDefault(1 << 20)),
  ackIntervalMs: Config.number("CXLOG_ACK_INTERVAL_MS").pipe(Config.withDefault(0)),
  idleTimeoutMs: Config.number("CXLOG_BROKER_IDLE_TIMEOUT_MS").pipe(Config.withDefault(DEFAULT_IDLE_TIMEOUT_MS)),
  maxConnections: Config.integer("CXLOG_BROKER_MAX_CONNECTIONS").pipe(Config.withDefault(1024)),
  credentials: Config.option(Config.string("CXLOG_CREDENTIALS")),
  insecure: Config.boolean("CXLOG_INSECURE").pipe(Config.withDefault(false))
}).pipe(Config.map(({ credentials, ...options }) => (Option.isSome(credentials) ? { ...options, credentials: credentials.value } : options)))

export const layerConfig: Layer.Layer<Broker, BrokerListenFailed | ConfigError.ConfigError, BrokerLog> = Layer.scoped(
  Broker,
  Effect.flatMap(config, make)
)
