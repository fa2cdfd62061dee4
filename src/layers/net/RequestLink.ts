/**
 * A client's request connection to a broker: the piece an admin link (AdminClient.ts) and a
 * consumer groups' link (groups/GroupLink.ts) are both made of, so that each opens, matches answers
 * to requests and breaks the same way. `openRequestLink` dials a broker, sends the kind's opening
 * frame, answers its CHALLENGE and checks the broker's proof in the kind's READY
 * (RequestHandshake.ts), all within the connect timeout, or fails `ConnectionClosed` saying why.
 * The link then carries any number of calls at once: each request has its id, its REPLY or
 * FAILURE names that id, and each call is bounded by the request timeout. A link that breaks fails its calls in flight (whether a change was made is
 * then unknown) and no later call goes over it. What a kind carries besides answers (a groups'
 * member frames) goes to its `other` handler.
 */
import { Effect, Either, type ParseResult, Schema } from "effect"
import type { RpcMethod } from "../../services/control/Rpc.js"
import type { Credentials } from "./Auth.js"
import { type BrokerAddress, formatAddress } from "./BrokerAddress.js"
import { type ClientSecurity, ConnectionClosed, dialBroker } from "./ClientConnection.js"
import { decodeControl, ErrorBody, PROTOCOL_VERSION, WireViolation } from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"
import { FrameReader } from "./FrameReader.js"
import { requestHandshake } from "./RequestHandshake.js"
import { type RequestFrames, RequestOpen, requestOpenFrame, RequestReady } from "./RequestProtocol.js"

/** A request link's options with their defaults applied. */
export interface RequestLinkSettings {
  readonly connectTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly credentials: Credentials | undefined
  readonly insecure: boolean
  readonly tls: ClientSecurity["tls"]
}

/** What one kind of request connection is: its frames, and the error its service's calls fail with. */
export interface RequestLinkKind<E> {
  readonly frames: RequestFrames
  readonly requestFrame: <P, PI>(
    id: number,
    operation: { readonly tag: string; readonly payload: Schema.Schema<P, PI> },
    input: P
  ) => Uint8Array
  /** What an answer is called in the errors ("an admin answer"). */
  readonly answerName: string
  /** The service's error for a call that got no answer it can read. */
  readonly unavailable: (reason: string) => E
  /** Why a call failed when the link broke (or timed out) under it. */
  readonly unanswered: (failed: ConnectionClosed, tag: string) => string
  /** The kind's other frames, besides answers, and where they go once the link is open. */
  readonly others?: ReadonlyArray<FrameType>
  readonly other?: (frame: Frame) => void
  /** Told once when the open link breaks, after its calls in flight failed. */
  readonly broken?: (failed: ConnectionClosed) => void
  /**
   * An answer of operation `tag` as the operation's success Schema would decode it, read without
   * the Schema when it is plainly well formed (a hot operation's); undefined: decode it.
   */
  readonly plainAnswer?: (tag: string, body: unknown) => unknown
}

export interface RequestLink<E> {
  readonly broker: string
  /** Whether the link still carries calls. */
  readonly open: () => boolean
  /** Calls `method` with `input`: its result, its typed error, or the kind's unavailable error (no answer, or one that does not decode). */
  readonly call: <P, PI, S, SI, F, FI>(
    method: RpcMethod<string, P, PI, S, SI, F, FI>,
    input: P
  ) => Effect.Effect<S, F | E>
  /** Sends a request no answer comes to: its id, or undefined when the link is broken. */
  readonly send: <P, PI>(
    operation: { readonly tag: string; readonly payload: Schema.Schema<P, PI> },
    input: P
  ) => number | undefined
  readonly close: () => void
}

/** A request's answer as it came: the reply's or the failure's JSON, parsed. */
interface Answer {
  readonly failed: boolean
  readonly body: unknown
}

const decoder = new TextDecoder("utf-8", { fatal: true })

/** Opens a request link of `kind` to `address`, within the connect timeout. */
export const openRequestLink = <E>(
  address: BrokerAddress,
  settings: RequestLinkSettings,
  kind: RequestLinkKind<E>
): Effect.Effect<RequestLink<E>, ConnectionClosed> =>
  Effect.async<RequestLink<E>, ConnectionClosed>((resume) => {
    const broker = formatAddress(address)
    const { credentials } = settings
    const pending = new Map<number, (answer: Answer | ConnectionClosed) => void>()
    let nextId = 1
    let ready = false
    let failure: ConnectionClosed | undefined
    const { frames } = kind
    const reader = new FrameReader({
      accept: [
        FrameType.CHALLENGE,
        frames.ready,
        frames.reply,
        frames.failure,
        ...(kind.others ?? []),
        FrameType.ERROR
      ],
      maxBatchBytes: 0
    })
    const { socket, ready: connected } = dialBroker(address, settings.tls, receive)
    /** Ends the link once: the open waiting, or every call in flight and the kind, learn why. */
    const fail = (code: ConnectionClosed["code"], detail: string) => {
      if (failure !== undefined) return
      failure = new ConnectionClosed({ broker, code, detail })
      clearTimeout(connectTimer)
      socket.destroy()
      if (!ready) return resume(Effect.fail(failure))
      for (const settle of pending.values()) settle(failure)
      pending.clear()
      kind.broken?.(failure)
    }
    const handshake = requestHandshake({
      credentials,
      insecure: settings.insecure,
      answer: frames.readyName,
      write: (frame) => socket.write(frame),
      fail: (refusal) => fail(refusal.code, refusal.detail),
      ended: () => failure !== undefined
    })
    const { nonce } = handshake
    const connectTimer = setTimeout(
      () => fail("timeout", `no ${frames.readyName} within ${settings.connectTimeoutMs} ms`),
      settings.connectTimeoutMs
    )
    socket.on(connected, () =>
      socket.write(
        requestOpenFrame(
          frames,
          new RequestOpen({
            protocol: PROTOCOL_VERSION,
            ...(credentials === undefined || nonce === undefined ? {} : { user: credentials.user, nonce })
          })
        )
      ))
    socket.on("error", (error) => fail("unreachable", error.message))
    socket.on("close", () => fail("closed", "the broker closed the connection"))
    if (settings.tls !== undefined) socket.on("data", receive)

    /** The answer to request `method`, or why none came. */
    const ask = <P, PI>(method: { readonly tag: string; readonly payload: Schema.Schema<P, PI> }, input: P) =>
      Effect.async<Answer, ConnectionClosed>((settle) => {
        if (failure !== undefined) return settle(Effect.fail(failure))
        const id = nextId++
        const timer = setTimeout(() => {
          pending.delete(id)
          settle(
            Effect.fail(
              new ConnectionClosed({
                broker,
                code: "timeout",
                detail: `no answer to ${method.tag} within ${settings.requestTimeoutMs} ms`
              })
            )
          )
        }, settings.requestTimeoutMs)
        pending.set(id, (answer) => {
          clearTimeout(timer)
          pending.delete(id)
          settle(answer instanceof ConnectionClosed ? Effect.fail(answer) : Effect.succeed(answer))
        })
        socket.write(kind.requestFrame(id, method, input))
        // Interrupted: its answer, when it comes, is dropped.
        return Effect.sync(() => {
          clearTimeout(timer)
          pending.delete(id)
        })
      })

    const link: RequestLink<E> = {
      broker,
      open: () => failure === undefined,
      call: <P, PI, S, SI, F, FI>(method: RpcMethod<string, P, PI, S, SI, F, FI>, input: P) =>
        ask(method, input).pipe(
          Effect.mapError((failed) => kind.unavailable(kind.unanswered(failed, method.tag))),
          Effect.flatMap((answer): Effect.Effect<S, F | E> => {
            const unreadable = (e: ParseResult.ParseError) =>
              Effect.fail(
                kind.unavailable(
                  `broker ${broker} answered ${method.tag} with what this client cannot read: ${e.message}`
                )
              )
            if (answer.failed) {
              const error = Schema.decodeUnknownEither(method.failure)(answer.body)
              return Either.isRight(error) ? Effect.fail(error.right) : unreadable(error.left)
            }
            const plain = kind.plainAnswer?.(method.tag, answer.body)
            if (plain !== undefined) return Effect.succeed(plain as S)
            const result = Schema.decodeUnknownEither(method.success)(answer.body)
            return Either.isRight(result) ? Effect.succeed(result.right) : unreadable(result.left)
          })
        ),
      send: (operation, input) => {
        if (failure !== undefined) return undefined
        const id = nextId++
        socket.write(kind.requestFrame(id, operation, input))
        return id
      },
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
          case frames.ready: {
            if (ready) return fail("bad-frame", `a second ${frames.readyName}`)
            const accepted = decodeControl(RequestReady, frame.payload, "bad-handshake")
            if (Either.isLeft(accepted)) return fail("bad-frame", `bad ${frames.readyName}: ${accepted.left.message}`)
            const refused = handshake.readyProblem(accepted.right.serverSignature)
            if (refused !== undefined) return fail(refused.code, refused.detail)
            ready = true
            clearTimeout(connectTimer)
            resume(Effect.succeed(link))
            break
          }
          case frames.reply:
          case frames.failure: {
            let body: unknown
            try {
              body = JSON.parse(decoder.decode(frame.payload))
            } catch (error) {
              return fail("bad-frame", `${kind.answerName} that is not JSON: ${(error as Error).message}`)
            }
            pending.get(frame.seq)?.({ failed: frame.type === frames.failure, body })
            break
          }
          case FrameType.ERROR: {
            const error = decodeControl(ErrorBody, frame.payload, "internal")
            if (Either.isLeft(error)) return fail("bad-frame", `undecodable ERROR: ${error.left.message}`)
            return fail(error.right.code, error.right.message)
          }
          default:
            kind.other?.(frame)
        }
      }
    }
    // Interrupted while opening: the socket goes.
    return Effect.sync(() => {
      if (!ready) fail("closed", "the open was interrupted")
    })
  })
