/**
 * Rpc frames: a 12-byte header — kind (u8), the client's reply-ring reader slot + 1 (u8 at +1,
 * requests and retries only; 0 = unknown), tag length (u16 at +2), the client's address (u32 at
 * +4, `clientAddress`), request id (u32 at +8) — then, in a request or retry with a deadline
 * (kinds `requestUntil`, `retryUntil`), the caller's deadline (f64 at +12: wall-clock ms, past
 * which the server does not run it), then the method or notice tag, then the payload as JSON of
 * the Schema-encoded value. A request or retry without a deadline (kinds `request`, `retry`: a
 * call with no bound, or a client of a build before deadlines) has none of those 8 bytes.
 */
import type { ParseResult, Schema } from "effect"
import { firstIssueLine } from "../../SchemaIssues.js"
import { type AnyRpcMethod, RpcProtocolError } from "../../services/control/Rpc.js"
import { readU32, writeU32 } from "../region/LittleEndian.js"
import { type JsonCodec, jsonCodec } from "./JsonCodec.js"

/**
 * `retry`: a request sent again by a client whose reply reader was reaped (RpcReplyMemo.ts).
 * `requestUntil` and `retryUntil` are `request` and `retry` carrying their caller's deadline; read,
 * they decode as `request` and `retry` with `deadlineMs` set.
 */
export const Kind = {
  request: 1,
  success: 2,
  failure: 3,
  protocolError: 4,
  notice: 5,
  retry: 6,
  requestUntil: 7,
  retryUntil: 8
} as const
export const HEADER_BYTES = 12
/** The deadline's bytes after the header, in a `requestUntil` or `retryUntil` frame. */
const DEADLINE_BYTES = 8
/** Where a deadline is encoded before it is copied into a frame: no view made per frame. */
const deadlineBytes = new Uint8Array(DEADLINE_BYTES)
const deadlineScratch = new DataView(deadlineBytes.buffer)
/** Addressee of a notice meant for every client. */
export const ALL_CLIENTS = 0xffffffff

export const encoder = new TextEncoder()
export const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** Reader slots a one-byte header field can name. */
const MAX_NAMED_SLOT = 254

export interface WireFrame {
  readonly kind: number
  /** The requesting client's reader slot on the reply ring, -1 if unknown. */
  readonly replySlot: number
  readonly client: number
  readonly requestId: number
  /** A request's or retry's deadline (wall-clock ms; Infinity when it has none). */
  readonly deadlineMs: number
  readonly tag: string
  readonly json: string
}

/**
 * Tags' UTF-8 bytes: the method and notice names the code defines, encoded once. A tag read off
 * the wire (an unknown method's, echoed in its error reply) comes as bytes and is not kept: a
 * buggy client sending made-up names must not grow this for good.
 */
const tagBytes = new Map<string, Uint8Array>()
const tagBytesOf = (tag: string | Uint8Array) => {
  if (typeof tag !== "string") return tag
  let bytes = tagBytes.get(tag)
  if (bytes === undefined) tagBytes.set(tag, bytes = encoder.encode(tag))
  return bytes
}

/** How many tags' encodings are kept (tests). */
export const cachedTags = (): number => tagBytes.size

/**
 * A frame to send, written straight into a ring where it fits now (no copy, no allocation),
 * or materialized with `frameBytes` when it must wait.
 */
export interface OutFrame {
  readonly kind: number
  readonly client: number
  readonly requestId: number
  readonly tag: Uint8Array
  readonly json: string
  readonly replySlot: number
  /** A request's or retry's deadline (wall-clock ms), written only when finite. */
  readonly deadlineMs: number
  /** Where the tag starts: after the header, and the deadline when there is one. */
  readonly tagAt: number
  readonly length: number
}

/** The kind a request or retry is sent as: with its deadline when it has one. */
const kindSent = (kind: number, deadlineMs: number) =>
  deadlineMs === Infinity
    ? kind
    : kind === Kind.request
    ? Kind.requestUntil
    : kind === Kind.retry
    ? Kind.retryUntil
    : kind

export const outFrame = (
  kind: number,
  client: number,
  requestId: number,
  tag: string | Uint8Array,
  json: string,
  replySlot = -1,
  deadlineMs = Infinity
): OutFrame => {
  const tagged = tagBytesOf(tag)
  const sent = kindSent(kind, deadlineMs)
  const tagAt = sent === Kind.requestUntil || sent === Kind.retryUntil ? HEADER_BYTES + DEADLINE_BYTES : HEADER_BYTES
  return {
    kind: sent,
    client,
    requestId,
    tag: tagged,
    json,
    replySlot,
    deadlineMs,
    tagAt,
    length: tagAt + tagged.length + Buffer.byteLength(json, "utf8")
  }
}

/** Writes `frame`'s header, deadline, tag and payload at `bytes[at]` (`frame.length` bytes). */
export const writeFrameAt = (bytes: Uint8Array, at: number, frame: OutFrame) => {
  const { replySlot, tag, tagAt } = frame
  bytes[at] = frame.kind
  bytes[at + 1] = replySlot >= 0 && replySlot <= MAX_NAMED_SLOT ? replySlot + 1 : 0
  bytes[at + 2] = tag.length & 0xff
  bytes[at + 3] = tag.length >>> 8
  writeU32(bytes, at + 4, frame.client)
  writeU32(bytes, at + 8, frame.requestId)
  if (tagAt > HEADER_BYTES) {
    deadlineScratch.setFloat64(0, frame.deadlineMs, true)
    bytes.set(deadlineBytes, at + HEADER_BYTES)
  }
  bytes.set(tag, at + tagAt)
  encoder.encodeInto(frame.json, bytes.subarray(at + tagAt + tag.length, at + frame.length))
}

export const frameBytes = (frame: OutFrame): Uint8Array => {
  const bytes = new Uint8Array(frame.length)
  writeFrameAt(bytes, 0, frame)
  return bytes
}

/**
 * What a client names itself in its requests, and the server its replies: its slot (the low 16
 * bits) and its request ring's writer occurrence (the high 16). A client that took a dead one's
 * slot starts its request ids over, so without the occurrence it would take the replies the dead
 * one's requests still get as its own. A slot past 16 bits is named alone.
 */
export const clientAddress = (slot: number, occurrence: number): number =>
  slot > 0xffff ? slot : (slot | ((occurrence & 0xffff) << 16)) >>> 0

/** The slot a client address names (-1 for every client's). */
export const slotOfAddress = (address: number): number => (address === ALL_CLIENTS ? -1 : address & 0xffff)

/** The addressee of a frame, read from its header without decoding it (-1 when too short). */
export const addresseeOf = (frame: Uint8Array): number => (frame.length < HEADER_BYTES ? -1 : readU32(frame, 4))

/** Reads a frame (copying out of the ring); undefined when the header is malformed. */
export const decodeFrame = (frame: Uint8Array): WireFrame | undefined => {
  if (frame.length < HEADER_BYTES) return undefined
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const sent = view.getUint8(0)
  const tagLength = view.getUint16(2, true)
  const until = sent === Kind.requestUntil || sent === Kind.retryUntil
  const tagAt = until ? HEADER_BYTES + DEADLINE_BYTES : HEADER_BYTES
  if (sent < Kind.request || sent > Kind.retryUntil || tagAt + tagLength > frame.length) return undefined
  const deadlineMs = until ? view.getFloat64(HEADER_BYTES, true) : Infinity
  // A deadline that is not a number bounds nothing a server could compare: the frame is malformed.
  if (Number.isNaN(deadlineMs)) return undefined
  return {
    kind: sent === Kind.requestUntil ? Kind.request : sent === Kind.retryUntil ? Kind.retry : sent,
    replySlot: view.getUint8(1) - 1,
    client: view.getUint32(4, true),
    requestId: view.getUint32(8, true),
    deadlineMs,
    tag: decoder.decode(frame.subarray(tagAt, tagAt + tagLength)),
    json: decoder.decode(frame.subarray(tagAt + tagLength))
  }
}

/** A Schema's JSON codec, built once per Schema: building one compiles the Schema, far costlier than a call. */
const codecs = new WeakMap<object, JsonCodec>()
const codec = (schema: AnyRpcMethod["payload"] | typeof RpcProtocolError): JsonCodec => {
  let found = codecs.get(schema)
  if (found === undefined) {
    found = jsonCodec(schema as Schema.Schema<unknown, unknown>)
    codecs.set(schema, found)
  }
  return found
}
export const toJson = (schema: AnyRpcMethod["payload"] | typeof RpcProtocolError, value: unknown) =>
  codec(schema).encode(value)
export const fromJson = (schema: AnyRpcMethod["payload"] | typeof RpcProtocolError, text: string) =>
  codec(schema).decode(text)
/** A Schema issue for an error reply: its first field that is wrong and how, kept short enough for the reply ring. */
export const describe = (error: ParseResult.ParseError) => firstIssueLine(error).slice(0, 1000)
