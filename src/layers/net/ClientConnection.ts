/**
 * The client side of one broker connection: connects, sends HELLO, waits for WELCOME, then
 * opens sessions (SESSION_OPEN, one per topic), sends their batches (each a frame the publisher
 * built around its payload; a burst's frames in one write) and reports the broker's
 * SESSION_OPENED, ENDED, ACK, SESSION_FENCED and ERROR frames. Any failure ends in exactly one
 * `onClosed`, with a `ConnectionClosed` that names the broker's ERROR code when it sent one
 * (`too-many-connections`, `idle-timeout`, …), so a refusal is told apart from a broker that is down.
 */
import { Data, Either } from "effect"
import { connect, isIP, Socket } from "node:net"
import { connect as connectTls, type SecureContext } from "node:tls"
import { brokerAcceptanceProblem, clientProofAsync, type Credentials, CREDENTIALS_HINT, newNonce } from "./Auth.js"
import {
  addressText,
  type BrokerAddress,
  formatAddress,
  InvalidBrokerAddress,
  isBrokerAddress
} from "./BrokerAddress.js"
import { clientSecureContext, type ClientTls } from "./ClientTls.js"
import {
  authFrame,
  AuthProof,
  Challenge,
  closeFrame,
  decodeControl,
  ErrorBody,
  Hello,
  helloFrame,
  KEEPALIVE_DELAY_MS,
  type SessionLimits,
  SessionOpen,
  SessionOpened,
  sessionOpenFrame,
  Welcome,
  type WireErrorCode,
  WireViolation
} from "./Control.js"
import { ACK_ORDER_BYTES, FrameType } from "./Frame.js"
import { FrameReader } from "./FrameReader.js"
import { forgetSessionToken, keepSessionToken, sessionToken } from "./SessionTokens.js"
import { brokerClosedText, socketFailureText } from "./SocketFailure.js"

/** How long a clean close waits for the broker to close its side. */
const CLOSE_GRACE_MS = 5_000

/**
 * Why a broker connection ended: the code of the broker's ERROR frame, or what the client saw
 * itself — `unreachable` (the connection failed or broke), `closed` (the broker closed without
 * an ERROR), `no-welcome` (no WELCOME within the connect timeout), `timeout` (a request
 * connection's READY, or a call's answer, did not come in time: RequestLink.ts), `bad-frame` (the
 * broker sent a frame this client cannot read).
 */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly broker: string
  readonly code: WireErrorCode | "unreachable" | "closed" | "no-welcome" | "timeout" | "bad-frame"
  readonly detail: string
}> {
  override get message() {
    return `broker ${this.broker}: ${this.code}: ${this.detail}`
  }
}

export interface ConnectionEvents {
  readonly onWelcome: (welcome: Welcome) => void
  /** The session `sessionId` is open under `sessionEpoch` (the one registered, or attached to). */
  /** `limits`: the topic's own batch and message limits, where the broker says them. */
  readonly onSessionOpened: (sessionId: number, sessionEpoch: number, limits: SessionLimits) => void
  /** The session `sessionId` is over (refused, or ended by the log); the connection goes on. */
  readonly onSessionEnded: (sessionId: number, error: ErrorBody) => void
  /**
   * `orders`: pairs (batch seq, total order), f64 LE, of batches this connection carried; a view
   * valid during the call. `level`: the ACK level the frontier is at (1 for the ordered frontier
   * of an ACK 2 session when the HELLO asked for `orderedAcks`).
   */
  readonly onAck: (sessionId: number, sessionEpoch: number, acked: number, orders: Uint8Array, level: number) => void
  readonly onFenced: (sessionId: number, sessionEpoch: number, committed: number) => void
  /** The broker's ERROR frame; the connection closes right after (`onClosed` with its code). */
  readonly onBrokerError: (error: ErrorBody) => void
  /** Exactly once, unless `close` or `end` was called first; `reason` is `closed.message`. */
  readonly onClosed: (reason: string, closed: ConnectionClosed) => void
}

/** How a client proves who it is and protects the connection (docs/security.md). */
export interface ClientSecurity {
  /** Answer the broker's CHALLENGE as this user; without it, only a broker without authentication accepts. */
  readonly credentials?: Credentials
  /**
   * Also take a broker that authenticates nobody (`--insecure`) although this client holds
   * credentials (which it then uses with brokers that do ask): without it such a broker is
   * refused `auth-failed`, since it may as well be an impostor. A broker that sends a CHALLENGE
   * must still prove that it holds the user's keys.
   */
  readonly insecure?: boolean
  /** Connect with TLS, verifying the broker against `ca` (PEM; default Node's CAs) and presenting `cert` and `key` when given. */
  readonly tls?: ClientTls
}

/**
 * An address no socket can be opened to (Node's `connect` would throw): a socket that fails at
 * once with `InvalidBrokerAddress`, as a connection that failed, so every client reports it as such.
 */
export const notDialed = (address: unknown): { readonly socket: Socket; readonly ready: "connect" } => {
  const socket = new Socket()
  process.nextTick(() => socket.destroy(new InvalidBrokerAddress({ address: addressText(address) })))
  return { socket, ready: "connect" }
}

/** One read's worth of a plain TCP connection's receive buffer (reused for every read). */
const RECEIVE_BUFFER_BYTES = 64 << 10

/**
 * Opens a TCP connection to a broker, under TLS when `tls` is given (verifying the broker's
 * certificate for its address), and says which event means it is ready for the first frame.
 * With `onChunk`, a plain TCP connection reads into one buffer of its own, reused for every
 * read (Node's `onread`: no copy, allocation or stream 'data' event per read, only a view); `onChunk` must be done
 * with a chunk when it returns. Under TLS it is not called (read the socket's data events).
 * Keepalive is on (`KEEPALIVE_DELAY_MS`), under TLS on the TCP socket beneath.
 */
export const dialBroker = (
  address: BrokerAddress,
  tls: ClientSecurity["tls"],
  onChunk?: (chunk: Buffer) => void
): { readonly socket: Socket; readonly ready: "connect" | "secureConnect" } =>
  !isBrokerAddress(address)
    ? notDialed(address)
    : tls === undefined
    ? {
      socket: connect({
        host: address.host,
        port: address.port,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: KEEPALIVE_DELAY_MS,
        ...(onChunk === undefined ? {} : {
          onread: {
            buffer: Buffer.allocUnsafe(RECEIVE_BUFFER_BYTES),
            callback: (bytes: number, buffer: Uint8Array) => {
              onChunk(Buffer.from(buffer.buffer, buffer.byteOffset, bytes))
              return true
            }
          }
        })
      }),
      ready: "connect"
    }
    : dialTls(address, clientSecureContext(tls))

/**
 * Under TLS, over a TCP socket made here: TLS's own socket cannot turn Nagle's algorithm off,
 * which holds a batch's last record back. The context is made first, so that options it refuses
 * throw before any socket exists: a socket no one listens to ends the process with its first error.
 */
const dialTls = (address: BrokerAddress, secureContext: SecureContext) => ({
  socket: connectTls({
    socket: connect({
      host: address.host,
      port: address.port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: KEEPALIVE_DELAY_MS
    }),
    // The name the broker's certificate must carry.
    host: address.host,
    ...(isIP(address.host) === 0 ? { servername: address.host } : {}),
    secureContext
  }),
  ready: "secureConnect" as const
})

export interface ClientConnection {
  /**
   * Opens session `sessionId` (greater than any before it on this connection) of `topic`:
   * registers a new one (`sessionEpoch` undefined) or attaches to that one; `onSessionOpened` or
   * `onSessionEnded` follows.
   */
  readonly openSession: (sessionId: number, topic: string, sessionEpoch: number | undefined) => void
  /**
   * Sends a batch frame (header and payload in one buffer); `onWritten` runs once its bytes are
   * handed to the kernel, or with an error once the connection dropped them (exactly once
   * either way). A synchronous burst's frames after its first go out in one write.
   */
  readonly sendBatch: (frame: Buffer, onWritten: (error: Error | null | undefined) => void) => void
  /** Ends session `sessionId` cleanly: sends CLOSE (it sent `batches` batches) after everything written before. */
  readonly closeSession: (sessionId: number, topic: string, sessionEpoch: number, batches: number) => void
  /** Ends the connection once what was written is sent; no event follows. */
  readonly end: () => void
  readonly close: () => void
}

/** One connection's state: what its frame handling, its end and its calls share. */
interface Connection {
  readonly address: BrokerAddress
  readonly hello: Hello
  readonly events: ConnectionEvents
  readonly security: ClientSecurity
  readonly nonce: string | undefined
  readonly socket: Socket
  readonly welcomeTimer: ReturnType<typeof setTimeout>
  readonly reader: FrameReader
  /** The topics of sessions being opened (their SESSION_OPENED may carry a token to keep). */
  readonly opening: Map<number, string>
  closed: boolean
  welcomed: boolean
  /** Whether the broker sent a CHALLENGE: a client with credentials takes a WELCOME only with its proof (Auth.ts `brokerAcceptanceProblem`). */
  challenged: boolean
  /** The broker's signature the WELCOME must carry (once this client's proof is derived and sent). */
  expectedSignature: string | undefined
}

export const openConnection = (
  address: BrokerAddress,
  hello: Hello,
  events: ConnectionEvents,
  connectTimeoutMs: number,
  security: ClientSecurity = {}
): ClientConnection => {
  const { credentials, tls } = security
  const nonce = credentials === undefined ? undefined : newNonce()
  /**
   * Whether a synchronous burst of writes is under way (it ends in a microtask), and whether its
   * frames past the first are being gathered for one write (uncorked when it ends).
   */
  let inBurst = false
  let corked = false
  const { socket, ready } = dialBroker(address, tls, receive)
  const endBurst = () => {
    inBurst = false
    if (!corked) return
    corked = false
    socket.uncork()
  }
  const welcomeTimer = setTimeout(
    () => finish(c, "no-welcome", `no WELCOME within ${connectTimeoutMs} ms`),
    connectTimeoutMs
  )
  welcomeTimer.unref()
  const c: Connection = {
    address,
    hello,
    events,
    security,
    nonce,
    socket,
    welcomeTimer,
    reader: new FrameReader({
      accept: [
        FrameType.WELCOME,
        FrameType.CHALLENGE,
        FrameType.SESSION_OPENED,
        FrameType.ENDED,
        FrameType.ACK,
        FrameType.SESSION_FENCED,
        FrameType.ERROR
      ],
      maxBatchBytes: 0
    }),
    opening: new Map(),
    closed: false,
    welcomed: false,
    challenged: false,
    expectedSignature: undefined
  }

  const introduce = () => {
    if (credentials === undefined) return void socket.write(helloFrame(hello))
    socket.write(helloFrame(new Hello({ ...hello, user: credentials.user, ...(nonce === undefined ? {} : { nonce }) })))
  }
  socket.on(ready, introduce)
  socket.on("error", (error) => finish(c, "unreachable", socketFailureText(error)))
  socket.on("close", () =>
    finish(
      c,
      "closed",
      brokerClosedText(c.welcomed ? undefined : tls ?? "plain")
    ))
  // Plain TCP reads go straight to `receive` (onread); TLS delivers data events.
  if (tls !== undefined) socket.on("data", receive)
  function receive(chunk: Buffer) {
    receiveFrames(c, chunk)
  }

  /**
   * Writes `frame`: the first of a synchronous burst at once, the rest of the burst gathered into
   * one write at its end (a lone frame takes the plain write, which costs less than a gathered one).
   */
  const write = (frame: Buffer, onWritten?: (error: Error | null | undefined) => void) => {
    if (!inBurst) {
      inBurst = true
      queueMicrotask(endBurst)
    } else if (!corked) {
      corked = true
      socket.cork()
    }
    socket.write(frame, onWritten)
  }

  return {
    openSession: (sessionId, topic, sessionEpoch) => {
      if (c.closed) return
      c.opening.set(sessionId, topic)
      const token = credentials === undefined || sessionEpoch === undefined
        ? undefined
        : sessionToken({ user: credentials.user, topic, clientId: hello.clientId, sessionEpoch })
      write(
        sessionOpenFrame(
          sessionId,
          sessionEpoch ?? 0,
          new SessionOpen({ topic, ...(token === undefined ? {} : { sessionToken: token }) })
        )
      )
    },
    sendBatch: (frame, onWritten) => {
      if (c.closed) return queueMicrotask(() => onWritten(new Error("connection closed")))
      write(frame, onWritten)
    },
    closeSession: (sessionId, topic, sessionEpoch, batches) => {
      if (c.closed) return
      if (credentials !== undefined) {
        forgetSessionToken({ user: credentials.user, topic, clientId: hello.clientId, sessionEpoch })
      }
      write(closeFrame(sessionId, sessionEpoch, batches))
    },
    end: () => {
      if (c.closed) return
      c.closed = true
      clearTimeout(welcomeTimer)
      socket.end()
      // The broker closes its side once it has read everything; don't wait on it for ever.
      setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref()
    },
    close: () => {
      if (c.closed) return
      c.closed = true
      clearTimeout(welcomeTimer)
      socket.destroy()
    }
  }
}

/** Ends the connection once, telling `onClosed` why. */
const finish = (c: Connection, code: ConnectionClosed["code"], detail: string) => {
  if (c.closed) return
  c.closed = true
  clearTimeout(c.welcomeTimer)
  c.socket.destroy()
  const error = new ConnectionClosed({ broker: formatAddress(c.address), code, detail })
  c.events.onClosed(error.message, error)
}

/** Reads `chunk`'s frames and reports each, until one ends the connection. */
const receiveFrames = (c: Connection, chunk: Buffer) => {
  const { reader, events, hello } = c
  const { credentials } = c.security
  reader.push(chunk)
  for (let frame = reader.next(); frame !== undefined && !c.closed; frame = reader.next()) {
    if (frame instanceof WireViolation) return finish(c, "bad-frame", frame.message)
    switch (frame.type) {
      case FrameType.CHALLENGE: {
        if (credentials === undefined || c.nonce === undefined) {
          return finish(
            c,
            "auth-required",
            `the broker requires authentication and this client has no credentials: ${CREDENTIALS_HINT}`
          )
        }
        if (c.welcomed || c.challenged) return finish(c, "bad-frame", "an unexpected CHALLENGE")
        c.challenged = true
        const challenge = decodeControl(Challenge, frame.payload, "bad-handshake")
        if (Either.isLeft(challenge)) return finish(c, "bad-frame", `bad CHALLENGE: ${challenge.left.message}`)
        clientProofAsync(credentials, c.nonce, challenge.right).then(
          (answer) => {
            if (c.closed) return
            c.expectedSignature = answer.serverSignature
            c.socket.write(authFrame(hello.clientId, new AuthProof({ proof: answer.proof })))
          },
          (error: Error) => finish(c, "bad-frame", `cannot derive the proof for the CHALLENGE: ${error.message}`)
        )
        break
      }
      case FrameType.WELCOME: {
        const welcome = decodeControl(Welcome, frame.payload, "bad-handshake")
        if (Either.isLeft(welcome)) return finish(c, "bad-frame", `bad WELCOME: ${welcome.left.message}`)
        const problem = brokerAcceptanceProblem({
          answer: "WELCOME",
          credentials,
          insecure: c.security.insecure === true,
          challenged: c.challenged,
          expectedSignature: c.expectedSignature,
          signature: welcome.right.serverSignature
        })
        if (problem !== undefined) {
          const detail = `broker ${formatAddress(c.address)} ${problem}`
          events.onBrokerError(new ErrorBody({ code: "auth-failed", message: detail }))
          return finish(c, "auth-failed", detail)
        }
        c.welcomed = true
        clearTimeout(c.welcomeTimer)
        events.onWelcome(welcome.right)
        break
      }
      case FrameType.SESSION_OPENED: {
        const topic = c.opening.get(frame.clientId)
        if (!c.welcomed || topic === undefined) {
          return finish(c, "bad-frame", "a SESSION_OPENED of no session being opened")
        }
        c.opening.delete(frame.clientId)
        let limits: SessionLimits = {}
        if (frame.payload.length > 0) {
          const opened = decodeControl(SessionOpened, frame.payload, "bad-handshake")
          if (Either.isLeft(opened)) return finish(c, "bad-frame", `bad SESSION_OPENED: ${opened.left.message}`)
          if (credentials !== undefined && opened.right.sessionToken !== undefined) {
            const owner = { user: credentials.user, topic, clientId: hello.clientId, sessionEpoch: frame.sessionEpoch }
            keepSessionToken(owner, opened.right.sessionToken)
          }
          const { maxBatchBytes, maxMessageBytes } = opened.right
          limits = {
            ...(maxBatchBytes === undefined ? {} : { maxBatchBytes }),
            ...(maxMessageBytes === undefined ? {} : { maxMessageBytes })
          }
        }
        events.onSessionOpened(frame.clientId, frame.sessionEpoch, limits)
        break
      }
      case FrameType.ENDED: {
        const error = decodeControl(ErrorBody, frame.payload, "internal")
        if (Either.isLeft(error)) return finish(c, "bad-frame", `undecodable ENDED: ${error.left.message}`)
        c.opening.delete(frame.clientId)
        events.onSessionEnded(frame.clientId, error.right)
        break
      }
      case FrameType.ACK:
        if (frame.payload.length % ACK_ORDER_BYTES !== 0) {
          return finish(
            c,
            "bad-frame",
            `an ACK payload of ${frame.payload.length} bytes is not (batch seq, total order) pairs`
          )
        }
        if (c.welcomed) events.onAck(frame.clientId, frame.sessionEpoch, frame.seq, frame.payload, frame.messageCount)
        break
      case FrameType.SESSION_FENCED:
        if (c.welcomed) events.onFenced(frame.clientId, frame.sessionEpoch, frame.seq)
        break
      case FrameType.ERROR: {
        const error = decodeControl(ErrorBody, frame.payload, "internal")
        if (Either.isLeft(error)) return finish(c, "bad-frame", `undecodable ERROR: ${error.left.message}`)
        events.onBrokerError(error.right)
        return finish(c, error.right.code, error.right.message)
      }
    }
  }
}
