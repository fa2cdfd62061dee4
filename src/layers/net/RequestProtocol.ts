/**
 * What every request connection (docs/protocol.md: "Administering topics", AdminProtocol.ts;
 * "Consumer groups", groups/GroupProtocol.ts) says alike, each kind with its own frame types:
 * the first frame's body (RequestOpen: the protocol, and the user to authenticate as with its
 * nonce, as HELLO's), the broker's acceptance (RequestReady) and a request's envelope
 * (`{ "operation", "input" }`). Defined once, so the kinds open and frame requests the same way.
 */
import { Schema } from "effect"
import { encodeFrame, FrameType } from "./Frame.js"

/** The kinds of request connection: each one's frames are named by it (ADMIN, ADMIN_READY, …). */
export type RequestKindName = "ADMIN" | "GROUP"

/** A kind's frame types: it opens with `open`, is accepted by `ready`; each `request` gets one `reply` or `failure`. */
export const requestFrames = <K extends RequestKindName>(name: K) => ({
  readyName: `${name}_READY` as const,
  open: FrameType[name],
  ready: FrameType[`${name}_READY`],
  request: FrameType[`${name}_REQUEST`],
  reply: FrameType[`${name}_REPLY`],
  failure: FrameType[`${name}_FAILURE`]
})
export type RequestFrames = ReturnType<typeof requestFrames<RequestKindName>>

/** client → broker, the first frame of a request connection: the protocol, and the user to authenticate as with its nonce (as HELLO's). */
export class RequestOpen extends Schema.Class<RequestOpen>("RequestOpen")({
  protocol: Schema.Int,
  user: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))),
  nonce: Schema.optional(Schema.String.pipe(Schema.minLength(16), Schema.maxLength(255)))
}) {}

/** broker → client: the connection is open for requests. */
export class RequestReady extends Schema.Class<RequestReady>("RequestReady")({
  protocol: Schema.Int,
  brokerId: Schema.Int.pipe(Schema.nonNegative()),
  /** After a CHALLENGE: the broker's proof that it holds the user's keys (the client checks it). */
  serverSignature: Schema.optional(Schema.String.pipe(Schema.maxLength(255)))
}) {}

/**
 * One request's body, named `identifier` in its decode errors: which operation, its input (decoded
 * by the operation's own Schema), and the client's bound on the call, when it has one: how long it
 * waits for the answer from sending it (RequestAccept.ts's `withinClientBound`).
 */
export const requestBody = (identifier: string) =>
  Schema.Struct({
    operation: Schema.String.pipe(Schema.maxLength(100)),
    input: Schema.Unknown,
    timeoutMs: Schema.optional(Schema.Number.pipe(Schema.positive(), Schema.finite()))
  }).annotations({ identifier })

const textEncoder = new TextEncoder()
const bare = { clientId: 0, sessionEpoch: 0, seq: 0, messageCount: 0 }

export const requestOpenFrame = (frames: RequestFrames, open: RequestOpen): Buffer =>
  encodeFrame(
    { ...bare, type: frames.open },
    textEncoder.encode(JSON.stringify(Schema.encodeSync(RequestOpen)(open)))
  )

export const requestReadyFrame = (frames: RequestFrames, ready: RequestReady): Buffer =>
  encodeFrame(
    { ...bare, type: frames.ready },
    textEncoder.encode(JSON.stringify(Schema.encodeSync(RequestReady)(ready)))
  )
