/** A server's replies to a request: the handler's exit encoded with the method's Schemas, a protocol error, a deferred reply's handle. */
import { Cause, Effect, Either, Exit, Option, type ParseResult } from "effect"
import {
  type AnyRpcMethod,
  type DeferredReply,
  DeferredReplyTypeId,
  isSharedReply,
  RpcHandlerDefect,
  RpcProtocolError
} from "../../services/control/Rpc.js"
import { describe, Kind, outFrame, toJson } from "./RpcFrames.js"
import { type ReplyChannel, sendReply } from "./RpcReplyChannel.js"

/**
 * Who a reply goes to: the client (its request ring's index), the address its reply frame names
 * (`clientAddress`, as its request named it), its request, and its reader slot on the reply ring
 * (-1: unknown).
 */
export interface Requester {
  readonly client: number
  readonly addressee: number
  readonly requestId: number
  readonly replySlot: number
}

export const protocolError = (
  channel: ReplyChannel,
  to: Requester,
  tag: string | Uint8Array,
  error: RpcProtocolError
): void =>
  sendReply(
    channel,
    outFrame(Kind.protocolError, to.addressee, to.requestId, tag, Either.getOrThrow(toJson(RpcProtocolError, error))),
    to
  )

/**
 * Encodings of values marked `sharedReply` (they never change again), per value: a barrier
 * release answers every participant with one object, encoded once. Any other value is encoded
 * for every reply, so one a handler changes and returns again is sent as it is now.
 */
const sharedJson = new WeakMap<
  object,
  { readonly schema: object; readonly json: Either.Either<string, ParseResult.ParseError> }
>()
const successJson = (method: AnyRpcMethod, value: unknown) => {
  if (typeof value !== "object" || value === null || !isSharedReply(value)) return toJson(method.success, value)
  const cached = sharedJson.get(value)
  if (cached !== undefined && cached.schema === method.success) return cached.json
  const json = toJson(method.success, value)
  sharedJson.set(value, { schema: method.success, json })
  return json
}

/**
 * The reply to a handler's exit, encoded with the method's Schemas. A success or typed failure too
 * large for the reply ring becomes a defect reply saying so: the ring would never take it, and its
 * caller would wait out its bound for a reply dropped on the server.
 */
export const reply = (
  channel: ReplyChannel,
  method: AnyRpcMethod,
  to: Requester,
  exit: Exit.Exit<unknown, unknown>
): void => {
  const { addressee, requestId } = to
  const defect = (defect: string) =>
    protocolError(channel, to, method.tag, new RpcHandlerDefect({ method: method.tag, requestId, defect }))
  const sendFitting = (kind: number, what: string, json: string) => {
    const frame = outFrame(kind, addressee, requestId, method.tag, json)
    return frame.length > channel.writer.maxFrameBytes
      ? defect(
        `a ${frame.length}-byte ${what} exceeds the reply ring's ${channel.writer.maxFrameBytes}-byte frame limit`
      )
      : sendReply(channel, frame, to)
  }
  if (Exit.isSuccess(exit)) {
    const json = successJson(method, exit.value)
    if (Either.isLeft(json)) return defect(`the reply does not encode: ${describe(json.left)}`)
    return sendFitting(Kind.success, "reply", json.right)
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return defect(Cause.pretty(exit.cause).slice(0, 1000))
  const json = toJson(method.failure, failure.value)
  if (Either.isLeft(json)) return defect(`the failure does not encode: ${describe(json.left)}`)
  return sendFitting(Kind.failure, "failure", json.right)
}

/** The handle of a reply a handler took over: the first completion replies, later ones do nothing. */
export const deferredReply = (
  channel: ReplyChannel,
  method: AnyRpcMethod,
  to: Requester
): DeferredReply<unknown, unknown> => {
  let done = false
  const completeNow = (exit: Exit.Exit<unknown, unknown>) => {
    if (done) return
    done = true
    reply(channel, method, to, exit)
  }
  return {
    [DeferredReplyTypeId]: DeferredReplyTypeId,
    client: to.client,
    requestId: to.requestId,
    succeed: (value) => Effect.sync(() => completeNow(Exit.succeed(value))),
    fail: (error) => Effect.sync(() => completeNow(Exit.fail(error))),
    unsafeComplete: (outcome) =>
      completeNow(Either.isRight(outcome) ? Exit.succeed(outcome.right) : Exit.fail(outcome.left))
  }
}
