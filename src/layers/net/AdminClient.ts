/**
 * The client's side of an admin connection (AdminProtocol.ts): `openAdminLink` dials a broker,
 * sends ADMIN, answers its CHALLENGE and checks the broker's proof in ADMIN_READY; the link then
 * carries any number of calls at once (each request has its id, answered in order), each bounded
 * by the request timeout. A link that breaks fails its calls in flight with `TopicsUnavailable`
 * (whether a change was made is then unknown), and no later call goes over it.
 */
import { Data, Effect, Either, type ParseResult, Schema } from "effect"
import type { RpcMethod } from "../../services/control/Rpc.js"
import { TopicsUnavailable } from "../../services/log/Topics.js"
import { AdminOpen, adminOpenFrame, AdminReady, adminRequestFrame } from "./AdminProtocol.js"
import type { Credentials } from "./Auth.js"
import { type BrokerAddress, formatAddress } from "./BrokerAddress.js"
import { type ClientSecurity, dialBroker } from "./ClientConnection.js"
import { decodeControl, ErrorBody, PROTOCOL_VERSION, type WireErrorCode, WireViolation } from "./Control.js"
import { FrameType } from "./Frame.js"
import { FrameReader } from "./FrameReader.js"
import { requestHandshake } from "./RequestHandshake.js"

/** An admin client's options with their defaults applied. */
export interface AdminSettings {
  readonly connectTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly credentials: Credentials | undefined
  readonly insecure: boolean
  readonly tls: ClientSecurity["tls"]
}

/** Why a link could not open or broke: the broker's ERROR code, or what the client saw itself. */
export class AdminLinkFailed extends Data.TaggedError("AdminLinkFailed")<{
  readonly broker: string
  readonly code: WireErrorCode | "unreachable" | "closed" | "timeout" | "bad-frame"
  readonly detail: string
}> {
  override get message() {
    return `broker ${this.broker}: ${this.code}: ${this.detail}`
  }
}

/** A request's answer as it came: the reply's or the failure's JSON, parsed. */
interface Answer {
  readonly failed: boolean
  readonly body: unknown
}

export interface AdminLink {
  readonly broker: string
  /** Whether the link still carries calls. */
  readonly open: () => boolean
  /** Calls `method` with `input`: its result, its typed error, or `TopicsUnavailable` (no answer, or an answer that does not decode). */
  readonly call: <P, PI, S, SI, F, FI>(
    method: RpcMethod<string, P, PI, S, SI, F, FI>,
    input: P
  ) => Effect.Effect<S, F | TopicsUnavailable>
  readonly close: () => void
}

const decoder = new TextDecoder("utf-8", { fatal: true })

/** Opens an admin link to `address` (ADMIN, the CHALLENGE answered, ADMIN_READY and the broker's proof), within the connect timeout. */
export const openAdminLink = (
  address: BrokerAddress,
  settings: AdminSettings
): Effect.Effect<AdminLink, AdminLinkFailed> =>
  Effect.async<AdminLink, AdminLinkFailed>((resume) => {
    const broker = formatAddress(address)
    const { credentials } = settings
    const pending = new Map<number, (answer: Answer | AdminLinkFailed) => void>()
    let nextId = 1
    let ready = false
    let failure: AdminLinkFailed | undefined
    const reader = new FrameReader({
      accept: [
        FrameType.CHALLENGE,
        FrameType.ADMIN_READY,
        FrameType.ADMIN_REPLY,
        FrameType.ADMIN_FAILURE,
        FrameType.ERROR
      ],
      maxBatchBytes: 0
    })
    const { socket, ready: connected } = dialBroker(address, settings.tls, receive)
    /** Ends the link once: the open waiting, or every call in flight, learns why. */
    const fail = (code: AdminLinkFailed["code"], detail: string) => {
      if (failure !== undefined) return
      failure = new AdminLinkFailed({ broker, code, detail })
      clearTimeout(connectTimer)
      socket.destroy()
      if (!ready) return resume(Effect.fail(failure))
      for (const settle of pending.values()) settle(failure)
      pending.clear()
    }
    const handshake = requestHandshake({
      credentials,
      insecure: settings.insecure,
      answer: "ADMIN_READY",
      write: (frame) => socket.write(frame),
      fail: (refusal) => fail(refusal.code, refusal.detail),
      ended: () => failure !== undefined
    })
    const { nonce } = handshake
    const connectTimer = setTimeout(
      () => fail("timeout", `no ADMIN_READY within ${settings.connectTimeoutMs} ms`),
      settings.connectTimeoutMs
    )
    socket.on(connected, () =>
      socket.write(
        adminOpenFrame(
          new AdminOpen({
            protocol: PROTOCOL_VERSION,
            ...(credentials === undefined || nonce === undefined ? {} : { user: credentials.user, nonce })
          })
        )
      ))
    socket.on("error", (error) => fail("unreachable", error.message))
    socket.on("close", () => fail("closed", "the broker closed the connection"))
    if (settings.tls !== undefined) socket.on("data", receive)

    const link: AdminLink = {
      broker,
      open: () => failure === undefined,
      call: <P, PI, S, SI, F, FI>(method: RpcMethod<string, P, PI, S, SI, F, FI>, input: P) =>
        Effect.async<Answer, AdminLinkFailed>((settle) => {
          if (failure !== undefined) return settle(Effect.fail(failure))
          const id = nextId++
          const timer = setTimeout(() => {
            pending.delete(id)
            settle(
              Effect.fail(
                new AdminLinkFailed({
                  broker,
                  code: "timeout",
                  detail: `no answer within ${settings.requestTimeoutMs} ms`
                })
              )
            )
          }, settings.requestTimeoutMs)
          pending.set(id, (answer) => {
            clearTimeout(timer)
            pending.delete(id)
            settle(answer instanceof AdminLinkFailed ? Effect.fail(answer) : Effect.succeed(answer))
          })
          socket.write(adminRequestFrame(id, method, input))
          // Interrupted: its answer, when it comes, is dropped.
          return Effect.sync(() => {
            clearTimeout(timer)
            pending.delete(id)
          })
        }).pipe(
          Effect.mapError((e) =>
            new TopicsUnavailable({
              reason: `${e.message} (${method.tag} was asked: whether it was done is unknown)`
            })
          ),
          Effect.flatMap((answer): Effect.Effect<S, F | TopicsUnavailable> => {
            const unreadable = (e: ParseResult.ParseError) =>
              Effect.fail(
                new TopicsUnavailable({
                  reason: `broker ${broker} answered ${method.tag} with what this client cannot read: ${e.message}`
                })
              )
            if (answer.failed) {
              const error = Schema.decodeUnknownEither(method.failure)(answer.body)
              return Either.isRight(error) ? Effect.fail(error.right) : unreadable(error.left)
            }
            const result = Schema.decodeUnknownEither(method.success)(answer.body)
            return Either.isRight(result) ? Effect.succeed(result.right) : unreadable(result.left)
          })
        ),
      close: () => fail("closed", "closed by this client")
    }

    function receive(chunk: Buffer) {
      reader.push(chunk)
      for (let frame = reader.next(); frame !== undefined && failure === undefined; frame = reader.next()) {
        if (frame instanceof WireViolation) return fail("bad-frame", frame.message)
        switch (frame.type) {
          case FrameType.CHALLENGE: {
            const refused = handshake.challenge(frame.payload, ready)
            if (refused !== undefined) return fail(refused.code, refused.detail)
            break
          }
          case FrameType.ADMIN_READY: {
            if (ready) return fail("bad-frame", "a second ADMIN_READY")
            const accepted = decodeControl(AdminReady, frame.payload, "bad-handshake")
            if (Either.isLeft(accepted)) return fail("bad-frame", `bad ADMIN_READY: ${accepted.left.message}`)
            const refused = handshake.readyProblem(accepted.right.serverSignature)
            if (refused !== undefined) return fail(refused.code, refused.detail)
            ready = true
            clearTimeout(connectTimer)
            resume(Effect.succeed(link))
            break
          }
          case FrameType.ADMIN_REPLY:
          case FrameType.ADMIN_FAILURE: {
            let body: unknown
            try {
              body = JSON.parse(decoder.decode(frame.payload))
            } catch (error) {
              return fail("bad-frame", `an admin answer that is not JSON: ${(error as Error).message}`)
            }
            pending.get(frame.seq)?.({ failed: frame.type === FrameType.ADMIN_FAILURE, body })
            break
          }
          case FrameType.ERROR: {
            const error = decodeControl(ErrorBody, frame.payload, "internal")
            if (Either.isLeft(error)) return fail("bad-frame", `undecodable ERROR: ${error.left.message}`)
            return fail(error.right.code, error.right.message)
          }
        }
      }
    }
    // Interrupted while opening: the socket goes.
    return Effect.sync(() => {
      if (!ready) fail("closed", "the open was interrupted")
    })
  })
