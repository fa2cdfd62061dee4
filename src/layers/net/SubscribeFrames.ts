/**
 * The frames of a subscriber connection (docs/protocol.md, "Subscribing"): SUBSCRIBE,
 * SUBSCRIBED and an opening STREAM carry Schema-validated JSON; CREDIT, COMMIT, a switching
 * STREAM and DATA are bare headers (DATA's payload is a stored batch, sent from where it lies).
 */
import { Schema } from "effect"
import { MAX_SELECTION } from "../../services/log/TopicPattern.js"
import { encodeFrame, FrameType, writeFrameHeader } from "./Frame.js"

/** Most DATA frames a client may have outstanding (its credit): bounds what a broker queues per subscriber. */
export const MAX_CREDIT = 4096

const Offset = Schema.Int.pipe(Schema.between(0, 2 ** 53 - 1))

const Name = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))

/** Where one topic of a multi-topic subscription goes on (a failover's SUBSCRIBE names each topic's). */
export const TopicPosition = Schema.Struct({ topic: Name, offset: Offset })

/**
 * client → broker, the first frame of a subscriber connection: one `topic`, or `topics` (names
 * and patterns, services/log/TopicPattern.ts) read over this one connection as streams.
 */
export class Subscribe extends Schema.Class<Subscribe>("Subscribe")({
  protocol: Schema.Int,
  topic: Schema.optional(Name),
  /** Several topics: names and patterns (a subscription names one of `topic` and `topics`). */
  topics: Schema.optional(Schema.Array(Name).pipe(Schema.minItems(1), Schema.maxItems(MAX_SELECTION))),
  /** A multi-topic subscription going on elsewhere: where each topic it read goes on (else `from`). */
  positions: Schema.optional(Schema.Array(TopicPosition).pipe(Schema.maxItems(4096))),
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

/** broker → client: the subscription runs; DATA frames follow as credit allows (a multi-topic one's behind STREAM frames). */
export class Subscribed extends Schema.Class<Subscribed>("Subscribed")({
  protocol: Schema.Int,
  brokerId: Schema.Int.pipe(Schema.nonNegative()),
  /** One topic: offset of the first message the stream delivers (a multi-topic subscription's streams say theirs). */
  start: Schema.optional(Offset),
  /** One topic: the window held when it started, [earliest, end). */
  earliest: Schema.optional(Offset),
  end: Schema.optional(Offset),
  /** Several topics: the STREAM frames that follow it at once, one per topic it reads from the start. */
  streams: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  /** Several topics: how many topics its patterns matched then that its user may not read. */
  unreadable: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  /** After a CHALLENGE: the broker's proof that it holds the user's keys (the client checks it). */
  serverSignature: Schema.optional(Schema.String.pipe(Schema.maxLength(255)))
}) {}

/** broker → client, a STREAM frame's body when it opens a stream of a multi-topic subscription: its topic and where it starts. */
export class StreamStart extends Schema.Class<StreamStart>("StreamStart")({
  topic: Name,
  /** Offset of the first message the stream delivers. */
  start: Offset,
  /** The window held when it started: [earliest, end). */
  earliest: Offset,
  end: Offset
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

/** A COMMIT of `offset`; on a multi-topic subscription, of stream `stream`'s topic. */
export const commitFrame = (offset: number, stream = 0): Buffer =>
  encodeFrame({ ...bare, type: FrameType.COMMIT, clientId: stream, seq: offset })

/** A STREAM frame: `start` opens stream `stream`; without it, the DATA frames after it are that stream's. */
export const streamFrame = (stream: number, start?: StreamStart): Buffer =>
  encodeFrame(
    { ...bare, type: FrameType.STREAM, clientId: stream },
    start === undefined ? undefined : json(StreamStart, start)
  )

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
