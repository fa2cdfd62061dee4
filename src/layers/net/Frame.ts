/**
 * Wire frames: every frame, in both directions, is a fixed 32-byte little-endian header
 * followed by `payloadBytes` of payload whose crc32c the header carries.
 *
 * | offset | size | field                                                             |
 * |-------:|-----:|-------------------------------------------------------------------|
 * |      0 |   u8 | frame type (FrameType)                                            |
 * |      1 |   u8 | wire version (WIRE_VERSION)                                       |
 * |      2 |  u16 | magic 0x5843 ("CX")                                               |
 * |      4 |  u32 | client id; on a publisher's session frames (BATCH, ACK,           |
 * |        |      | SESSION_FENCED, CLOSE, SESSION_*) the session's id on the         |
 * |        |      | connection, on a multi-topic subscription's the stream's          |
 * |      8 |  u32 | session epoch                                                     |
 * |     12 |  u32 | sequence, low 32 bits  (BATCH: batch seq; ACK: acked count;       |
 * |     16 |  u32 | sequence, high 21 bits  SESSION_FENCED: committed frontier;       |
 * |        |      |                         CLOSE: batches the session sent)          |
 * |     20 |  u32 | message count (ACK: the ack level)                                |
 * |     24 |  u32 | payload bytes                                                     |
 * |     28 |  u32 | crc32c of the payload (0 for an empty payload)                    |
 *
 * An ACK's payload (protocol 3) names the total order of batches the connection carried:
 * pairs (batch seq, total order of its first message), each two little-endian f64.
 */
import { crc32c } from "../../native/Crc32c.js"

export const FRAME_HEADER_BYTES = 32
export const WIRE_VERSION = 1
export const FRAME_MAGIC = 0x5843
/** Control frames (HELLO, WELCOME, ERROR, CHALLENGE, AUTH) carry small JSON bodies. */
export const MAX_CONTROL_PAYLOAD_BYTES = 4096
/** Bytes of one (batch seq, total order) pair in an ACK payload. */
export const ACK_ORDER_BYTES = 16
/** An ACK names at most 256 batches' orders; more go in further ACK frames. */
export const MAX_ACK_PAYLOAD_BYTES = 4096
/** An admin reply names every topic of a region described: up to 16 MiB (a region holds 16 384 objects by default). */
export const MAX_ADMIN_REPLY_BYTES = 16 << 20
/** Sequences travel as two u32 halves and stay below 2^53. */
export const MAX_SEQUENCE = 2 ** 53 - 1

export const FrameType = {
  /** client → broker: JSON handshake (Handshake.Hello). */
  HELLO: 1,
  /** broker → client: JSON handshake accepted (Handshake.Welcome). */
  WELCOME: 2,
  /** client → broker: one batch; the payload is the batch's messages. */
  BATCH: 3,
  /**
   * broker → client: batches 0..seq-1 of the session are acknowledged at the session's level;
   * the payload gives the total order of those this connection carried (see above).
   */
  ACK: 4,
  /** broker → client: the session is fenced; seq = its committed frontier (batches 0..seq-1 are in the order). */
  SESSION_FENCED: 5,
  /** broker → client: JSON error (Handshake.ErrorBody); the broker closes the connection after it. */
  ERROR: 6,
  /**
   * client → broker: the session is done; seq = the number of batches it sent. The log
   * releases the session once they are all ordered; the connection and its other sessions go on.
   */
  CLOSE: 7,
  /** client → broker, the first frame of a subscriber connection: JSON (Subscription.Subscribe). */
  SUBSCRIBE: 8,
  /** broker → client: JSON (Subscription.Subscribed): where the stream starts and the bounds held. */
  SUBSCRIBED: 9,
  /** client → broker: seq = further DATA frames the client can take (credit-based flow control). */
  CREDIT: 10,
  /**
   * broker → client: one batch of the total order, its payload the batch's messages as stored;
   * seq = offset of its first message, client id and epoch its session's, crc32c its own.
   */
  DATA: 11,
  /** broker → client (protocol 4): the user's salt and iterations and the broker's nonce (Auth.ts). */
  CHALLENGE: 12,
  /** client → broker (protocol 4): the proof answering the CHALLENGE. */
  AUTH: 13,
  /**
   * client → broker, on a named consumer's connection: seq = the offset to commit (the first
   * message not processed); on a multi-topic subscription the client id field names the stream.
   */
  COMMIT: 14,
  /**
   * client → broker (protocol 7): opens a session on the connection under the session id in the
   * client id field (ids increase along a connection); epoch: the session to attach, 0 to
   * register a new one. JSON (Control.SessionOpen): its topic.
   */
  SESSION_OPEN: 15,
  /** broker → client: the session named is open under the epoch in the header; JSON (Control.SessionOpened), or none. */
  SESSION_OPENED: 16,
  /**
   * broker → client: the session (a publisher's connection) or stream (a multi-topic
   * subscription) named in the client id field is over, for the reason its JSON ErrorBody gives;
   * the connection and its other sessions or streams go on.
   */
  ENDED: 17,
  /**
   * broker → client, on a multi-topic subscription: the DATA frames that follow are the stream's
   * named in the client id field; with a JSON payload (SubscribeFrames.StreamStart) it opens the
   * stream: its topic and where it starts.
   */
  STREAM: 18,
  /** client → broker, the first frame of an admin connection: JSON (RequestProtocol.RequestOpen). */
  ADMIN: 20,
  /** broker → client: JSON (RequestProtocol.RequestReady): the admin connection takes requests. */
  ADMIN_READY: 21,
  /** client → broker: seq = the request's id; JSON (AdminProtocol.AdminRequest): an operation and its input. */
  ADMIN_REQUEST: 22,
  /** broker → client: seq = the request's id; JSON: the operation's result. */
  ADMIN_REPLY: 23,
  /** broker → client: seq = the request's id; JSON: the operation's typed error (`_tag` and its fields). */
  ADMIN_FAILURE: 24,
  /** client → broker, the first frame of a consumer groups' connection: JSON (RequestProtocol.RequestOpen). */
  GROUP: 25,
  /** broker → client: JSON (RequestProtocol.RequestReady): the groups' connection takes requests. */
  GROUP_READY: 26,
  /** client → broker: seq = the request's id; JSON (GroupProtocol.GroupRequest): an operation and its input. */
  GROUP_REQUEST: 27,
  /** broker → client: seq = the request's id; JSON: the operation's result. */
  GROUP_REPLY: 28,
  /** broker → client: seq = the request's id; JSON: the operation's typed error (`_tag` and its fields). */
  GROUP_FAILURE: 29,
  /**
   * broker → client: the messages handed to a member the connection joined; client id = the
   * member (its join's request id), seq = the id of the frame's first delivery, message count =
   * how many. Payload: the deliveries, binary (GroupDeliveryFrame.ts).
   */
  GROUP_DELIVERY: 30,
  /** broker → client: the member named in the client id field left the group; JSON: why (its typed error), or none. */
  GROUP_LEFT: 31
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export const frameTypeName = (type: number): string =>
  Object.entries(FrameType).find(([, value]) => value === type)?.[0] ?? `type-${type}`

export interface FrameHeader {
  readonly type: FrameType
  readonly clientId: number
  readonly sessionEpoch: number
  readonly seq: number
  readonly messageCount: number
  readonly payloadBytes: number
  readonly crc32c: number
}

export interface Frame extends FrameHeader {
  /** A view of the payload: valid until the reader that produced it is advanced. */
  readonly payload: Uint8Array
}

const TWO_32 = 2 ** 32

/** Writes a header at `offset` of `target` (which must have 32 bytes there). */
export const writeHeader = (target: Uint8Array, offset: number, header: FrameHeader): void => {
  const view = new DataView(target.buffer, target.byteOffset + offset, FRAME_HEADER_BYTES)
  view.setUint8(0, header.type)
  view.setUint8(1, WIRE_VERSION)
  view.setUint16(2, FRAME_MAGIC, true)
  view.setUint32(4, header.clientId, true)
  view.setUint32(8, header.sessionEpoch, true)
  view.setUint32(12, header.seq % TWO_32, true)
  view.setUint32(16, Math.floor(header.seq / TWO_32), true)
  view.setUint32(20, header.messageCount, true)
  view.setUint32(24, header.payloadBytes, true)
  view.setUint32(28, header.crc32c, true)
}

/** A complete frame (header + payload) in one buffer; the crc is computed here. */
export const encodeFrame = (
  fields: Omit<FrameHeader, "payloadBytes" | "crc32c">,
  payload: Uint8Array = new Uint8Array(0)
): Buffer => {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length)
  writeHeader(out, 0, { ...fields, payloadBytes: payload.length, crc32c: crc32c(payload, 0, payload.length) })
  out.set(payload, FRAME_HEADER_BYTES)
  return out
}

/** An ACK's most (batch seq, total order) pairs. */
export const MAX_ACK_ORDERS = MAX_ACK_PAYLOAD_BYTES / ACK_ORDER_BYTES

/**
 * Writes a header into the first 32 bytes of `frame` with fixed offsets (no header object or
 * DataView per frame): the bytes `writeHeader` writes. The publisher stamps each batch's
 * frame this way before every send of it.
 */
export const writeFrameHeader = (
  frame: Buffer,
  type: FrameType,
  clientId: number,
  sessionEpoch: number,
  seq: number,
  messageCount: number,
  payloadBytes: number,
  crc: number
): void => {
  frame[0] = type
  frame[1] = WIRE_VERSION
  frame.writeUInt16LE(FRAME_MAGIC, 2)
  writeHeaderFields(frame, clientId, sessionEpoch, seq, messageCount, payloadBytes, crc)
}

/** A header's bytes 4..31 (`word20`: a batch's message count, an ACK's level). */
const writeHeaderFields = (
  frame: Buffer,
  clientId: number,
  sessionEpoch: number,
  seq: number,
  word20: number,
  payloadBytes: number,
  crc: number
): void => {
  frame.writeUInt32LE(clientId, 4)
  frame.writeUInt32LE(sessionEpoch, 8)
  frame.writeUInt32LE(seq % TWO_32, 12)
  frame.writeUInt32LE(Math.floor(seq / TWO_32), 16)
  frame.writeUInt32LE(word20, 20)
  frame.writeUInt32LE(payloadBytes, 24)
  frame.writeUInt32LE(crc, 28)
}

export const sequenceOf = (low: number, high: number): number => high * TWO_32 + low
