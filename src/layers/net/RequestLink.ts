/**
 * A client's request connection to a broker: the piece an admin link (AdminClient.ts) and a
 * consumer groups' link (groups/GroupLink.ts) are both made of, so that each opens, matches answers
 * to requests and breaks the same way. `openRequestLink` dials a broker, sends the kind's opening
 * frame, answers its CHALLENGE and checks the broker's proof in the kind's READY
 * (RequestHandshake.ts), all within the connect timeout, or fails `ConnectionClosed` saying why.
 * The link then carries any number of calls at once: each request has its id, its REPLY or
 * FAILURE names that id, and each call is bounded by the request timeout, which its request
 * carries: the broker ends what it asks the head for it before that (RequestAccept.ts). A link that breaks fails its calls in flight (whether a change was made is
 * then unknown) and no later call goes over it. What a kind carries besides answers (a groups'
 * member frames) goes to its `other` handler.
 */
import { Effect, Either, type ParseResult, Schema } from "effect"
import type { Socket } from "node:net"
import type { RpcMethod } from "../../services/control/Rpc.js"
import type { Credentials } from "./Auth.js"
import { type BrokerAddress, formatAddress } from "./BrokerAddress.js"
import { type ClientSecurity, ConnectionClosed, dialBroker } from "./ClientConnection.js"
import { decodeControl, ErrorBody, PROTOCOL_VERSION, WireViolation } from "./Control.js"
import { type Frame, FrameType } from "./Frame.js"
import { FrameReader } from "./FrameReader.js"
import { requestHandshake } from "./RequestHandshake.js"
import { type RequestFrames, RequestOpen, requestOpenFrame, RequestReady } from "./RequestProtocol.js"
import { brokerClosedText, socketFailureText } from "./SocketFailure.js"

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
  /** Request `id`, carrying `timeoutMs`, the client's bound on its answer, when it waits for one. */
  readonly requestFrame: <P, PI>(
    id: number,
    operation: { readonly tag: string; readonly payload: Schema.Schema<P, PI> },
    input: P,
    timeoutMs?: number
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

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** A link's state, opening or open: what its frame handling, its calls and its end share. */
interface LinkState<E> {
  readonly broker: string
  readonly settings: RequestLinkSettings
  readonly kind: RequestLinkKind<E>
  readonly socket: Socket
  readonly reader: FrameReader
  readonly handshake: ReturnType<typeof requestHandshake>
  readonly connectTimer: ReturnType<typeof setTimeout>
  /** Ends the open: with the link once READY came, or with why it failed. */
  readonly resume: (opened: Effect.Effect<RequestLink<E>, ConnectionClosed>) => void
  readonly pending: Map<number, (answer: Answer | ConnectionClosed) => void>
  nextId: number
  /** Whether the broker sent a frame: a close before it may be a TLS broker refusing this client (`brokerClosedText`). */
  answered: boolean
  ready: boolean
  failure: ConnectionClosed | undefined
}

/** Opens a request link of `kind` to `address`, within the connect timeout. */
export const openRequestLink = <E>(
  address: BrokerAddress,
  settings: RequestLinkSettings,
  kind: RequestLinkKind<E>
): Effect.Effect<RequestLink<E>, ConnectionClosed> =>
  Effect.async<RequestLink<E>, ConnectionClosed>((resume) => {
    const { credentials } = settings
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
    const handshake = requestHandshake({
      credentials,
      insecure: settings.insecure,
      answer: frames.readyName,
      write: (frame) => socket.write(frame),
      fail: (refusal) => fail(link, refusal.code, refusal.detail),
      ended: () => link.failure !== undefined
    })
    const { nonce } = handshake
    const connectTimer = setTimeout(
      () => fail(link, "timeout", `no ${frames.readyName} within ${settings.connectTimeoutMs} ms`),
      settings.connectTimeoutMs
    )
    const link: LinkState<E> = {
      broker: formatAddress(address),
      settings,
      kind,
      socket,
      reader,
      handshake,
      connectTimer,
      resume,
      pending: new Map(),
      nextId: 1,
      answered: false,
      ready: false,
      failure: undefined
    }
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
    socket.on("error", (error) => fail(link, "unreachable", socketFailureText(error)))
    socket.on(
      "close",
      () => fail(link, "closed", brokerClosedText(link.answered ? undefined : settings.tls ?? "plain"))
    )
    if (settings.tls !== undefined) socket.on("data", receive)
    function receive(chunk: Buffer) {
      receiveFrames(link, chunk)
    }
    // Interrupted while opening: the socket goes.
    return Effect.sync(() => {
      if (!link.ready) fail(link, "closed", "the open was interrupted")
    })
  })

/** Ends the link once: the open waiting, or every call in flight and the kind, learn why. */
const fail = <E>(link: LinkState<E>, code: ConnectionClosed["code"], detail: string) => {
  if (link.failure !== undefined) return
  const failure = new ConnectionClosed({ broker: link.broker, code, detail })
  link.failure = failure
  clearTimeout(link.connectTimer)
  link.socket.destroy()
  if (!link.ready) return link.resume(Effect.fail(failure))
  for (const settle of link.pending.values()) settle(failure)
  link.pending.clear()
  link.kind.broken?.(failure)
}

/** Reads `chunk`'s frames (the handshake's, answers, the kind's others) until one ends the link. */
const receiveFrames = <E>(link: LinkState<E>, chunk: Buffer) => {
  const { reader, kind, handshake } = link
  const { frames } = kind
  reader.push(chunk)
  for (let frame = reader.next(); frame !== undefined && link.failure === undefined; frame = reader.next()) {
    if (frame instanceof WireViolation) return fail(link, "bad-frame", frame.message)
    link.answered = true
    switch (frame.type) {
      case FrameType.CHALLENGE: {
        const refused = handshake.challenge(frame.payload, link.ready)
        if (refused !== undefined) return fail(link, refused.code, refused.detail)
        break
      }
      case frames.ready: {
        if (link.ready) return fail(link, "bad-frame", `a second ${frames.readyName}`)
        const accepted = decodeControl(RequestReady, frame.payload, "bad-handshake")
        if (Either.isLeft(accepted)) {
          return fail(link, "bad-frame", `bad ${frames.readyName}: ${accepted.left.message}`)
        }
        const refused = handshake.readyProblem(accepted.right.serverSignature)
        if (refused !== undefined) return fail(link, refused.code, refused.detail)
        link.ready = true
        clearTimeout(link.connectTimer)
        link.resume(Effect.succeed(openedLink(link)))
        break
      }
      case frames.reply:
      case frames.failure: {
        let body: unknown
        try {
          body = JSON.parse(decoder.decode(frame.payload))
        } catch (error) {
          return fail(link, "bad-frame", `${kind.answerName} that is not JSON: ${(error as Error).message}`)
        }
        link.pending.get(frame.seq)?.({ failed: frame.type === frames.failure, body })
        break
      }
      case FrameType.ERROR: {
        const error = decodeControl(ErrorBody, frame.payload, "internal")
        if (Either.isLeft(error)) return fail(link, "bad-frame", `undecodable ERROR: ${error.left.message}`)
        return fail(link, error.right.code, error.right.message)
      }
      default:
        kind.other?.(frame)
    }
  }
}

/** The calls an open link carries. */
const openedLink = <E>(link: LinkState<E>): RequestLink<E> => {
  const { broker, kind, socket } = link
  return {
    broker,
    open: () => link.failure === undefined,
    call: <P, PI, S, SI, F, FI>(method: RpcMethod<string, P, PI, S, SI, F, FI>, input: P) =>
      ask(link, method, input).pipe(
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
      if (link.failure !== undefined) return undefined
      const id = link.nextId++
      socket.write(kind.requestFrame(id, operation, input))
      return id
    },
    close: () => fail(link, "closed", "closed by this client")
  }
}

/** The answer to request `method`, or why none came. */
const ask = <E, P, PI>(
  link: LinkState<E>,
  method: { readonly tag: string; readonly payload: Schema.Schema<P, PI> },
  input: P
) =>
  Effect.async<Answer, ConnectionClosed>((settle) => {
    if (link.failure !== undefined) return settle(Effect.fail(link.failure))
    const id = link.nextId++
    const { requestTimeoutMs } = link.settings
    const timer = setTimeout(() => {
      link.pending.delete(id)
      settle(
        Effect.fail(
          new ConnectionClosed({
            broker: link.broker,
            code: "timeout",
            detail: `no answer to ${method.tag} within ${requestTimeoutMs} ms`
          })
        )
      )
    }, requestTimeoutMs)
    link.pending.set(id, (answer) => {
      clearTimeout(timer)
      link.pending.delete(id)
      settle(answer instanceof ConnectionClosed ? Effect.fail(answer) : Effect.succeed(answer))
    })
    link.socket.write(link.kind.requestFrame(id, method, input, requestTimeoutMs))
    // Interrupted: its answer, when it comes, is dropped.
    return Effect.sync(() => {
      clearTimeout(timer)
      link.pending.delete(id)
    })
  })
