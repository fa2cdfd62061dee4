/**
 * A broker's listening server and each connection it takes: TLS handshake bookkeeping
 * (`listener`), the connection limit and the in-place frame reader's wiring (`accept`), and the
 * connection's fiber with its handshake and idle timers (`serve`), which runs its `session`.
 */
import { Effect, Either } from "effect"
import { readFileSync } from "node:fs"
import { createServer, type Server, type Socket } from "node:net"
import { createSecureContext, createServer as createTlsServer, DEFAULT_CIPHERS, type TlsOptions } from "node:tls"
import { brokerConnections } from "../../Metrics.js"
import type { BrokerOptions } from "../../services/net/Broker.js"
import { adopt, type Intake, type TlsLink } from "./BrokerIntake.js"
import { session } from "./BrokerSession.js"
import { type BrokerState, countRejection, type PublisherConnection, reject } from "./BrokerState.js"
import { caProblem } from "./CertificateAuthority.js"
import { WireViolation } from "./Control.js"
import { type Frame, FRAME_HEADER_BYTES, type FrameHeader, FrameType } from "./Frame.js"
import { InPlaceFrameReader } from "./FrameReader.js"

/** How long a TLS client may take over its handshake (Node's default is 2 minutes); past it the connection is dropped as failed. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000

/** The broker's TLS server options from its PEM files (read once, at start), or why not. */
export const secureContextOf = (tls: NonNullable<BrokerOptions["tls"]>): TlsOptions => {
  const clientCa = tls.clientCa === undefined ? undefined : readFileSync(tls.clientCa)
  // Node would take it and then refuse every client's certificate, each as one its CA does not sign.
  const caUnusable = clientCa === undefined ? undefined : caProblem(clientCa)
  if (caUnusable !== undefined) throw new Error(`its client CA ${tls.clientCa} ${caUnusable}`)
  const options: TlsOptions = {
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ...(clientCa === undefined ? {} : { ca: clientCa, requestCert: true }),
    rejectUnauthorized: true,
    // AES-128-GCM first: as safe for this use and about a third cheaper per byte than Node's preferred AES-256-GCM.
    ciphers: `TLS_AES_128_GCM_SHA256:${DEFAULT_CIPHERS}`,
    honorCipherOrder: true
  }
  // Made here once to be checked (a key that is not the certificate's, a PEM that does not parse),
  // so the broker refuses to start naming its files rather than throwing where it listens.
  createSecureContext(options)
  return options
}

/**
 * The broker's server, plain or TLS (`secure`), handing each connection to `accept`. Accepted
 * paused, so nothing is read before `adopt` takes the handle over. With TLS, a connection is
 * handed over once its TLS handshake is done (and its client certificate checked).
 */
export const listener = (broker: BrokerState, secure: TlsOptions | undefined): Server => {
  const server: Server = secure === undefined
    ? createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true })
    : createTlsServer({ ...secure, allowHalfOpen: true, noDelay: true, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS })
  if (secure !== undefined) {
    server.on("tlsClientError", (error, tls: Socket) => {
      // Node leaves the socket of a failed or timed-out handshake open.
      tls.destroy()
      countRejection(broker, "auth-failed")
      broker.run(Effect.logDebug(`broker ${broker.brokerId}: a TLS handshake failed: ${error.message}`))
    })
    // A client that gives up mid-handshake (it refused the broker's certificate) only half-closes: its
    // connection waits for the handshake timeout, and the broker's close must not wait for it.
    server.on("connection", (tcp: Socket) => {
      broker.handshaking.add(tcp)
      tcp.once("close", () => broker.handshaking.delete(tcp))
    })
    server.on("secureConnection", (tls: Socket) => broker.handshaking.delete((tls as TlsLink)._parent!))
  }
  server.on(secure === undefined ? "connection" : "secureConnection", (raw: Socket) => accept(broker, raw))
  return server
}

/** A new connection: served (one fiber of the broker's scope), or refused past `maxConnections`. */
const accept = (broker: BrokerState, raw: Socket) => {
  const { appender, settings, sockets } = broker
  broker.counts.accepted++
  raw.on("error", () => {})
  raw.setNoDelay(true)
  if (sockets.size >= settings.maxConnections) {
    reject(
      broker,
      raw,
      new WireViolation({
        code: "too-many-connections",
        detail: `this broker serves at most ${settings.maxConnections} connections`
      })
    )
    // Its HELLO is read and dropped: the socket goes as soon as the client, told, closes.
    raw.resume()
    return
  }
  /** The publisher's connection once its handshake is done: BATCH frames are admitted and received in place from then on. */
  let current: PublisherConnection | undefined
  /** The Blog space the batch being read was placed in (until it is committed or revoked). */
  let reserved: Uint8Array | undefined
  let firstFrame = true
  let subscribing = false
  let administering = false
  let grouping = false
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
    accept: [
      FrameType.HELLO,
      FrameType.AUTH,
      FrameType.SESSION_OPEN,
      FrameType.BATCH,
      FrameType.CLOSE,
      FrameType.SUBSCRIBE,
      FrameType.CREDIT,
      FrameType.COMMIT,
      FrameType.ADMIN,
      FrameType.ADMIN_REQUEST,
      FrameType.GROUP,
      FrameType.GROUP_REQUEST
    ],
    maxBatchBytes: settings.maxBatchBytes,
    // Before the handshake a BATCH is refused from its header: none of its payload is read.
    admit: (type) => {
      const opening = firstFrame
      firstFrame = false
      // A SUBSCRIBE opens a subscriber connection (AUTH, CREDIT and COMMIT frames follow it); it is nothing else.
      if (type === FrameType.SUBSCRIBE && opening) subscribing = true
      // An ADMIN opens an admin connection (AUTH and ADMIN_REQUEST frames follow it).
      if (type === FrameType.ADMIN && opening) administering = true
      if (administering) {
        return opening || type === FrameType.ADMIN_REQUEST || type === FrameType.AUTH
          ? undefined
          : new WireViolation({
            code: "unexpected-frame",
            detail: "only AUTH and ADMIN_REQUEST frames follow an ADMIN"
          })
      }
      // A GROUP opens a consumer groups' connection (AUTH and GROUP_REQUEST frames follow it).
      if (type === FrameType.GROUP && opening) grouping = true
      if (grouping) {
        return opening || type === FrameType.GROUP_REQUEST || type === FrameType.AUTH
          ? undefined
          : new WireViolation({
            code: "unexpected-frame",
            detail: "only AUTH and GROUP_REQUEST frames follow a GROUP"
          })
      }
      if (type === FrameType.GROUP || type === FrameType.GROUP_REQUEST) {
        return new WireViolation({
          code: "unexpected-frame",
          detail: "GROUP opens a consumer groups' connection, GROUP_REQUEST frames follow it"
        })
      }
      if (type === FrameType.ADMIN || type === FrameType.ADMIN_REQUEST) {
        return new WireViolation({
          code: "unexpected-frame",
          detail: "ADMIN opens an admin connection, ADMIN_REQUEST frames follow it"
        })
      }
      if (subscribing) {
        return opening || type === FrameType.CREDIT || type === FrameType.COMMIT || type === FrameType.AUTH
          ? undefined
          : new WireViolation({
            code: "unexpected-frame",
            detail: "only AUTH, CREDIT and COMMIT frames follow a SUBSCRIBE"
          })
      }
      if (type === FrameType.SUBSCRIBE || type === FrameType.CREDIT || type === FrameType.COMMIT) {
        return new WireViolation({
          code: "unexpected-frame",
          detail: "SUBSCRIBE opens a subscriber connection, CREDIT and COMMIT frames follow it"
        })
      }
      return current !== undefined || type === FrameType.HELLO || type === FrameType.AUTH
        ? undefined
        : new WireViolation({ code: "unexpected-frame", detail: "the first frame must be HELLO" })
    },
    place: (header: FrameHeader) => {
      // The batch's session (its id in the client id field): one that ended has its payload read and dropped.
      const session = current === undefined || !inPlace ? undefined : current.sessions.get(header.clientId)
      if (session === undefined) return undefined
      const view = appender.tryReserve(session.topic, header.payloadBytes, FRAME_HEADER_BYTES, revoked)
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
  broker.run(serve(broker, socket, intake, reader, (connection) => {
    current = connection
  }))
}

/**
 * A connection's fiber, in the broker's scope: it runs the connection's `session` under the
 * handshake timeout, then the idle timeout, and closes the connection with the ERROR that ended
 * it, if any. `started` hands the session to `accept`'s reader once its HELLO is accepted.
 */
const serve = (
  broker: BrokerState,
  socket: Socket,
  intake: Intake,
  reader: InPlaceFrameReader,
  started: (connection: PublisherConnection) => void
) =>
  Effect.gen(function*() {
    const { held, settings } = broker
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
          if (reader.midFrame) {
            return yield* new WireViolation({ code: "truncated", detail: "the connection ended inside a frame" })
          }
          return undefined
        }
        yield* intake.read
      }
    })
    // Plain timers, not Effect timeouts: they cost nothing per connection beyond themselves.
    const handshakeTimer = setTimeout(() => {
      reject(
        broker,
        socket,
        new WireViolation({
          code: "handshake-timeout",
          detail:
            `the handshake (HELLO, then AUTH when the broker authenticates) did not finish within ${settings.handshakeTimeoutMs} ms`
        })
      )
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
      reject(
        broker,
        socket,
        new WireViolation({ code: "idle-timeout", detail: `nothing sent or received for ${settings.idleTimeoutMs} ms` })
      )
      intake.stop()
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(idleTimer)))
    /** The HELLO is accepted: sessions and batches are admitted (and received in place) and the idle timeout runs from here. */
    const handshakeDone = (connection: PublisherConnection) => {
      clearTimeout(handshakeTimer)
      started(connection)
      if (settings.idleTimeoutMs > 0) checkIdle()
    }
    const subscribed = () => clearTimeout(handshakeTimer)
    const outcome = yield* Effect.either(
      Effect.scoped(session(broker, socket, intake, reader, nextFrame, handshakeDone, subscribed))
    )
    intake.stop()
    if (Either.isLeft(outcome)) {
      yield* Effect.logDebug(`broker ${broker.brokerId}: closing a connection: ${outcome.left.message}`)
      reject(broker, socket, outcome.left)
    } else if (!socket.writableEnded) {
      socket.destroy()
    }
  }).pipe(
    Effect.scoped,
    Effect.catchAllCause((cause) =>
      Effect.logWarning(`broker ${broker.brokerId}: connection failed`, cause).pipe(
        Effect.zipRight(
          Effect.sync(() =>
            reject(broker, socket, new WireViolation({ code: "internal", detail: "internal broker error" }))
          )
        )
      )
    ),
    Effect.onInterrupt(() => Effect.sync(() => socket.destroy()))
  )
