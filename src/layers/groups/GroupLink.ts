/**
 * The client's side of a consumer groups' connection (GroupProtocol.ts): `openGroupLink` dials a
 * broker, sends GROUP, answers its CHALLENGE and checks the broker's proof in GROUP_READY, as an
 * admin link does (AdminClient.ts). The link then carries calls (each request has its id, bounded
 * by the request timeout) and its members' frames: GROUP_DELIVERY and GROUP_LEFT go to the member
 * they name. A link that breaks fails its calls in flight with `GroupsUnavailable` and tells each
 * member; no later call goes over it.
 */
import { Effect, Either, type ParseResult, Schema } from "effect"
import type { RpcMethod } from "../../services/control/Rpc.js"
import { GroupsUnavailable } from "../../services/groups/ConsumerGroups.js"
import type { Credentials } from "../net/Auth.js"
import { type BrokerAddress, formatAddress } from "../net/BrokerAddress.js"
import { type ClientSecurity, dialBroker } from "../net/ClientConnection.js"
import { decodeControl, ErrorBody, PROTOCOL_VERSION, type WireErrorCode, WireViolation } from "../net/Control.js"
import { type Frame, FrameType } from "../net/Frame.js"
import { FrameReader } from "../net/FrameReader.js"
import { requestHandshake } from "../net/RequestHandshake.js"
import { GroupOpen, groupOpenFrame, GroupReady, groupRequestFrame } from "./GroupProtocol.js"

export interface GroupLinkSettings {
  readonly connectTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly credentials: Credentials | undefined
  readonly insecure: boolean
  readonly tls: ClientSecurity["tls"]
}

/** What a member the link carries is told: its frames, and the link breaking. */
export interface LinkMember {
  readonly frame: (frame: Frame) => void
  readonly broken: (why: GroupsUnavailable) => void
}

export interface GroupLink {
  readonly broker: string
  /** Whether the link still carries calls. */
  readonly open: () => boolean
  /** Calls `method` with `input`: its result, its typed error, or `GroupsUnavailable` (no answer, or one that does not decode). */
  readonly call: <P, PI, S, SI, F, FI>(
    method: RpcMethod<string, P, PI, S, SI, F, FI>,
    input: P
  ) => Effect.Effect<S, F | GroupsUnavailable>
  /**
   * Sends a request no answer comes to (a join): its id, whose member frames go to `member`
   * until `forget`; undefined when the link is broken.
   */
  readonly send: <P, PI, S, SI, F, FI>(
    method: RpcMethod<string, P, PI, S, SI, F, FI>,
    input: P,
    member: LinkMember
  ) => number | undefined
  readonly forget: (id: number) => void
  /** Closes the link: its calls and members fail `GroupsUnavailable`. */
  readonly close: () => void
}

/** Why a link could not open: a refusal every broker would give ends a search for one. */
export interface LinkRefused {
  readonly code: WireErrorCode | "unreachable" | "closed" | "timeout" | "bad-frame"
  readonly error: GroupsUnavailable
}

interface Answer {
  readonly failed: boolean
  readonly body: unknown
}

const decoder = new TextDecoder("utf-8", { fatal: true })

export const openGroupLink = (
  address: BrokerAddress,
  settings: GroupLinkSettings
): Effect.Effect<GroupLink, LinkRefused> =>
  Effect.async<GroupLink, LinkRefused>((resume) => {
    const broker = formatAddress(address)
    const { credentials } = settings
    const pending = new Map<number, (answer: Answer | GroupsUnavailable) => void>()
    const members = new Map<number, LinkMember>()
    let nextId = 1
    let ready = false
    let failure: GroupsUnavailable | undefined
    const reader = new FrameReader({
      accept: [
        FrameType.CHALLENGE,
        FrameType.GROUP_READY,
        FrameType.GROUP_REPLY,
        FrameType.GROUP_FAILURE,
        FrameType.GROUP_DELIVERY,
        FrameType.GROUP_LEFT,
        FrameType.ERROR
      ],
      maxBatchBytes: 0
    })
    const { socket, ready: connected } = dialBroker(address, settings.tls, receive)
    /** Ends the link once: the open waiting, every call in flight and every member learn why. */
    const fail = (code: LinkRefused["code"], detail: string) => {
      if (failure !== undefined) return
      failure = new GroupsUnavailable({ reason: `broker ${broker}: ${code}: ${detail}` })
      clearTimeout(connectTimer)
      socket.destroy()
      if (!ready) return resume(Effect.fail({ code, error: failure }))
      for (const settle of pending.values()) settle(failure)
      pending.clear()
      for (const member of members.values()) member.broken(failure)
      members.clear()
    }
    const handshake = requestHandshake({
      credentials,
      insecure: settings.insecure,
      answer: "GROUP_READY",
      write: (frame) => socket.write(frame),
      fail: (refusal) => fail(refusal.code, refusal.detail),
      ended: () => failure !== undefined
    })
    const { nonce } = handshake
    const connectTimer = setTimeout(
      () => fail("timeout", `no GROUP_READY within ${settings.connectTimeoutMs} ms`),
      settings.connectTimeoutMs
    )
    socket.on(connected, () =>
      socket.write(
        groupOpenFrame(
          new GroupOpen({
            protocol: PROTOCOL_VERSION,
            ...(credentials === undefined || nonce === undefined ? {} : { user: credentials.user, nonce })
          })
        )
      ))
    socket.on("error", (error) => fail("unreachable", error.message))
    socket.on("close", () => fail("closed", "the broker closed the connection"))
    if (settings.tls !== undefined) socket.on("data", receive)

    const link: GroupLink = {
      broker,
      open: () => failure === undefined,
      call: <P, PI, S, SI, F, FI>(method: RpcMethod<string, P, PI, S, SI, F, FI>, input: P) =>
        Effect.async<Answer, GroupsUnavailable>((settle) => {
          if (failure !== undefined) return settle(Effect.fail(failure))
          const id = nextId++
          const timer = setTimeout(() => {
            pending.delete(id)
            settle(
              Effect.fail(
                new GroupsUnavailable({
                  reason: `broker ${broker}: no answer to ${method.tag} within ${settings.requestTimeoutMs} ms`
                })
              )
            )
          }, settings.requestTimeoutMs)
          pending.set(id, (answer) => {
            clearTimeout(timer)
            pending.delete(id)
            settle(answer instanceof GroupsUnavailable ? Effect.fail(answer) : Effect.succeed(answer))
          })
          socket.write(groupRequestFrame(id, method, input))
          // Interrupted: its answer, when it comes, is dropped.
          return Effect.sync(() => {
            clearTimeout(timer)
            pending.delete(id)
          })
        }).pipe(
          Effect.flatMap((answer): Effect.Effect<S, F | GroupsUnavailable> => {
            const unreadable = (e: ParseResult.ParseError) =>
              Effect.fail(
                new GroupsUnavailable({
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
      send: (method, input, member) => {
        if (failure !== undefined) return undefined
        const id = nextId++
        members.set(id, member)
        socket.write(groupRequestFrame(id, method, input))
        return id
      },
      forget: (id) => void members.delete(id),
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
          case FrameType.GROUP_READY: {
            if (ready) return fail("bad-frame", "a second GROUP_READY")
            const accepted = decodeControl(GroupReady, frame.payload, "bad-handshake")
            if (Either.isLeft(accepted)) return fail("bad-frame", `bad GROUP_READY: ${accepted.left.message}`)
            const refused = handshake.readyProblem(accepted.right.serverSignature)
            if (refused !== undefined) return fail(refused.code, refused.detail)
            ready = true
            clearTimeout(connectTimer)
            resume(Effect.succeed(link))
            break
          }
          case FrameType.GROUP_REPLY:
          case FrameType.GROUP_FAILURE: {
            let body: unknown
            try {
              body = JSON.parse(decoder.decode(frame.payload))
            } catch (error) {
              return fail("bad-frame", `a groups' answer that is not JSON: ${(error as Error).message}`)
            }
            pending.get(frame.seq)?.({ failed: frame.type === FrameType.GROUP_FAILURE, body })
            break
          }
          case FrameType.GROUP_DELIVERY:
          case FrameType.GROUP_LEFT: {
            members.get(frame.clientId)?.frame(frame)
            if (frame.type === FrameType.GROUP_LEFT) members.delete(frame.clientId)
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
