/**
 * The frames of a subscriber connection (docs/protocol.md, "Subscribing"): SUBSCRIBE and
 * SUBSCRIBED carry Schema-validated JSON; CREDIT and DATA are bare headers (DATA's payload is
 * a stored batch, sent from where it lies).
 */
import { Schema } from "effect"
import { encodeFrame, FrameType, writeFrameHeader } from "./Frame.js"

/** Most DATA frames a client may have outstanding (its credit): bounds what a broker queues per subscriber. */
export const MAX_CREDIT = 4096

const Offset = Schema.Int.pipe(Schema.between(0, 2 ** 53 - 1))

/** client → broker, the first frame of a subscriber connection. */
export class Subscribe extends Schema.Class<Subscribe>("Subscribe")({
  protocol: Schema.Int,
  topic: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255)),
  from: Schema.Union(Offset, Schema.Literal("earliest", "latest")),
  /** In place of `from`: the first message stamped at or after this time (ms since the epoch). */
  fromTime: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.nonNegative())),
  /** DATA frames the broker may send before the client's first CREDIT. */
  credit: Schema.Int.pipe(Schema.between(1, MAX_CREDIT)),
  /** Read as this named consumer (`from` then only places a new one). */
  consumer: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))),
  /** The user to authenticate as, and the client's fresh nonce (as in HELLO; see Auth.ts). */
  user: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))),
  nonce: Schema.optional(Schema.String.pipe(Schema.minLength(16), Schema.maxLength(255)))
}) {}

/** broker → client: the subscription runs; DATA frames follow as credit allows. */
export class Subscribed extends Schema.Class<Subscribed>("Subscribed")({
  protocol: Schema.Int,
  brokerId: Schema.Int.pipe(Schema.nonNegative()),
  /** Offset of the first message the stream delivers. */
  start: Offset,
  /** The window held when it started: [earliest, end). */
  earliest: Offset,
  end: Offset,
  /** After a CHALLENGE: the broker's proof that it holds the user's keys (the client checks it). */
  serverSignature: Schema.optional(Schema.String.pipe(Schema.maxLength(255)))
}) {}

const textEncoder = new TextEncoder()
const json = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  textEncoder.encode(JSON.stringify(Schema.encodeSync(schema)(value)))
const bare = { clientId: 0, sessionEpoch: 0, seq: 0, messageCount: 0 }

export const subscribeFrame = (subscribe: Subscribe): Buffer =>
  encodeFrame({ ...bare, type: FrameType.SUBSCRIBE }, json(Subscribe, subscribe))

export const subscribedFrame = (subscribed: Subscribed): Buffer =>
  encodeFrame({ ...bare, type: FrameType.SUBSCRIBED }, json(Subscribed, subscribed))

export const creditFrame = (frames: number): Buffer => encodeFrame({ ...bare, type: FrameType.CREDIT, seq: frames })

export const commitFrame = (offset: number): Buffer => encodeFrame({ ...bare, type: FrameType.COMMIT, seq: offset })

/**
 * Writes a DATA header for a stored batch into the first 32 bytes of `frame` (fixed offsets, no
 * header object per batch): `offset` is its first message's offset, its crc32c the batch's own
 * (the publisher's).
 */
export const writeDataHeader = (
  frame: Buffer,
  clientId: number,
  sessionEpoch: number,
  offset: number,
  messageCount: number,
  payloadBytes: number,
  crc32c: number
): void => writeFrameHeader(frame, FrameType.DATA, clientId, sessionEpoch, offset, messageCount, payloadBytes, crc32c)
