/**
 * A broker's side of a request connection's opening (admin: AdminServer.ts; consumer groups:
 * groups/GroupServer.ts): the first frame's RequestOpen read and its protocol checked, the user
 * authenticated as on every connection and counted against its limit, then the kind's READY. And
 * the wait for each later request, bounded by the idle timeout, and the bound its client waits for
 * a request's answer. Written once, so that every kind admits its clients, drops idle ones and keeps
 * to their bounds the same way.
 */
import { Effect, type Scope } from "effect"
import type { Socket } from "node:net"
import { withCallerDeadline } from "../../services/control/CallerDeadline.js"
import { TopicForbidden } from "../../services/log/Topics.js"
import { authenticate, type AuthServer, revokedSinceSignIn, type UserRecord } from "./Auth.js"
import { decodeControl, KEEPALIVE_DELAY_MS, PROTOCOL_VERSION, WireViolation } from "./Control.js"
import type { Frame } from "./Frame.js"
import { type RequestFrames, RequestOpen, RequestReady, requestReadyFrame } from "./RequestProtocol.js"

/** What the broker lends a request connection's opening: who it is, and its users. */
export interface RequestAcceptContext {
  readonly brokerId: number
  /** The broker's authentication, when it authenticates its clients. */
  readonly auth: AuthServer | undefined
  /** Counts the connection against its user's limit for the scope's life. */
  readonly holdConnection: (user: UserRecord) => Effect.Effect<unknown, WireViolation, Scope.Scope>
}

/** An open request connection: who signed in, and what each of its requests is held to. */
export interface AcceptedRequestConnection {
  /** The user as it signed in (undefined when the broker authenticates nobody). */
  readonly user: UserRecord | undefined
  /**
   * The user as the credential file has it now: a request is held to the rights of the moment, as
   * a publisher's later sessions are (a `cxlog user add` that narrows them holds for the next
   * request); refused `TopicForbidden` once the user was removed or given another secret.
   */
  readonly userNow: Effect.Effect<UserRecord | undefined, TopicForbidden>
}

/** `user`, signed in to `auth`, as the credential file has it now (`AcceptedRequestConnection.userNow`). */
const userAsItStands = (auth: AuthServer, user: UserRecord): Effect.Effect<UserRecord, TopicForbidden> =>
  Effect.suspend(() => {
    const now = auth.current(user)
    return now === undefined
      ? Effect.fail(new TopicForbidden({ user: user.name, reason: revokedSinceSignIn(user) }))
      : Effect.succeed(now)
  })

/**
 * Opens the connection whose first frame is `first`: who signed in once READY went out, `opened`
 * run just before; null when the authentication ended the connection.
 */
export const acceptRequestConnection = (
  frames: RequestFrames,
  context: RequestAcceptContext,
  connection: {
    readonly socket: Socket
    readonly first: Frame
    readonly nextFrame: Effect.Effect<Frame | undefined, WireViolation>
    readonly opened: () => void
  }
): Effect.Effect<AcceptedRequestConnection | null, WireViolation, Scope.Scope> =>
  Effect.gen(function*() {
    const { socket } = connection
    // A vanished host (no FIN) would otherwise hold what the connection holds until the broker restarts.
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS)
    const open = yield* decodeControl(RequestOpen, connection.first.payload, "bad-handshake")
    if (open.protocol !== PROTOCOL_VERSION) {
      return yield* new WireViolation({
        code: "version-mismatch",
        detail: `protocol ${open.protocol}, this broker speaks ${PROTOCOL_VERSION}`
      })
    }
    const authenticated = context.auth === undefined
      ? undefined
      : yield* authenticate(context.auth, open, undefined, {
        send: (frame) => void socket.write(frame),
        next: connection.nextFrame
      })
    if (authenticated === null) return null
    if (authenticated !== undefined) yield* context.holdConnection(authenticated.user)
    connection.opened()
    socket.write(
      requestReadyFrame(
        frames,
        new RequestReady({
          protocol: PROTOCOL_VERSION,
          brokerId: context.brokerId,
          ...(authenticated === undefined ? {} : { serverSignature: authenticated.serverSignature })
        })
      )
    )
    return authenticated === undefined || context.auth === undefined
      ? { user: undefined, userNow: Effect.succeed(undefined) }
      : { user: authenticated.user, userNow: userAsItStands(context.auth, authenticated.user) }
  })

/** `next` (a wait for the connection's next frame), failing `idle-timeout` when it waits over `idleMs` (0: it may wait for ever). */
export const nextWithinIdle = <A>(
  next: Effect.Effect<A, WireViolation>,
  idleMs: number
): Effect.Effect<A, WireViolation> =>
  idleMs > 0
    ? next.pipe(
      Effect.timeoutFail({
        duration: idleMs,
        onTimeout: () => new WireViolation({ code: "idle-timeout", detail: `no request for ${idleMs} ms` })
      })
    )
    : next

/**
 * Kept back from a client's bound for its answer's way back: the broker's own bound ends this much
 * earlier, so the answer it gives then (that the head never read the change, say) reaches the
 * client before the client gives up on its own, even from a busy broker. A quarter of the bound,
 * at most a second.
 */
const replyMarginMs = (timeoutMs: number) => Math.min(Math.ceil(timeoutMs / 4), 1_000)

/**
 * `answering` a request whose client waits `timeoutMs` for the answer (undefined: a client that sent
 * no bound): what it asks the head's coordinator is bounded to end, its margin for the answer kept,
 * before the client gives up, counted from `arrivedAtMs`, when the broker read the request (one
 * sent behind a slow request waited meanwhile: RequestReadAhead.ts). So a change the head has not
 * read by then is never made, and the client is told so (control/CallerDeadline.ts).
 */
export const withinClientBound =
  (timeoutMs: number | undefined, arrivedAtMs: number) =>
  <A, E, R>(answering: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    timeoutMs === undefined
      ? answering
      : withCallerDeadline(arrivedAtMs + timeoutMs - replyMarginMs(timeoutMs))(answering)
