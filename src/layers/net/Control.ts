/**
 * The JSON bodies of control frames (HELLO, WELCOME, SESSION_OPEN, SESSION_OPENED, ERROR and
 * ENDED), validated with Schema on receipt, and the error codes a broker sends before it closes a
 * connection (ERROR) or ends one of its sessions (ENDED).
 */
import { Data, Either, Option, ParseResult, Schema, SchemaAST } from "effect"
import { firstFailure, issueWords } from "../../SchemaIssues.js"
import { AckLevel, TopicDeleted } from "../../services/log/Topics.js"
import { ACK_ORDER_BYTES, encodeFrame, FrameType } from "./Frame.js"

/** The handshake protocol this build speaks; a HELLO or SUBSCRIBE with another one gets `version-mismatch`. */
export const PROTOCOL_VERSION = 7

/**
 * When TCP keepalive starts probing an idle connection, on both sides (Node then probes once a
 * second; ten unanswered fail the socket). A peer host that vanished (power loss, partition: no
 * FIN or RST) is noticed only this way: a subscriber waiting on an idle topic, or a publisher
 * with nothing in flight, sends and receives nothing that could fail.
 */
export const KEEPALIVE_DELAY_MS = 60_000

const U32 = Schema.Int.pipe(Schema.between(0, 2 ** 32 - 1))

/**
 * client → broker, the first frame of a publisher's connection: who it is and at what ACK level
 * its sessions are acknowledged. Its sessions, one per topic, are opened with SESSION_OPEN.
 */
export class Hello extends Schema.Class<Hello>("Hello")({
  protocol: Schema.Int,
  clientId: U32,
  ackLevel: AckLevel,
  /**
   * ACK 2 sessions: also acknowledge the ordered frontier (ACK frames at level 1), so the
   * publisher can hold batches the log ordered, while they wait for the disk, outside its send window.
   */
  orderedAcks: Schema.optional(Schema.Boolean),
  /** The user to authenticate as, and the client's fresh nonce (both, or neither: a broker without authentication). */
  user: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))),
  nonce: Schema.optional(Schema.String.pipe(Schema.minLength(16), Schema.maxLength(255)))
}) {}

/**
 * client → broker, SESSION_OPEN's body: the topic of the session the header names. Its header's
 * epoch 0 registers a new session (SESSION_OPENED says the epoch the log handed out); another
 * attaches to that registered session (a publisher's further connections, and reconnections).
 */
export class SessionOpen extends Schema.Class<SessionOpen>("SessionOpen")({
  topic: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255)),
  /** Attaching under a user: the token the session's SESSION_OPENED carried, proving the user registered it (Auth.ts). */
  sessionToken: Schema.optional(Schema.String.pipe(Schema.maxLength(255)))
}) {}

/** broker → client, SESSION_OPENED's body when it has one. */
export class SessionOpened extends Schema.Class<SessionOpened>("SessionOpened")({
  /** Registered under a user, from a broker whose credential file has a session key: the session's token, for attaching it again. */
  sessionToken: Schema.optional(Schema.String.pipe(Schema.maxLength(255))),
  /** The largest batch payload the topic takes (its own, below the broker's): the client seals the topic's batches within it. */
  maxBatchBytes: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** The largest message the topic takes (value, key and headers): the client refuses a larger one before sending it. */
  maxMessageBytes: Schema.optional(Schema.Int.pipe(Schema.positive()))
}) {}

/**
 * The most PBKDF2 rounds a client derives for a CHALLENGE: a broker (or an impostor) asking for
 * more would make every client burn seconds of CPU per connection; 150× the default.
 */
export const MAX_CHALLENGE_ITERATIONS = 600_000

/** broker → client: authenticate as the HELLO's user (see Auth.ts). */
export class Challenge extends Schema.Class<Challenge>("Challenge")({
  salt: Schema.String.pipe(Schema.maxLength(255)),
  iterations: Schema.Int.pipe(Schema.between(1, MAX_CHALLENGE_ITERATIONS)),
  /** The broker's fresh nonce: a proof is good for this handshake only. */
  nonce: Schema.String.pipe(Schema.maxLength(255))
}) {}

/** client → broker: the answer to the CHALLENGE. */
export class AuthProof extends Schema.Class<AuthProof>("AuthProof")({
  proof: Schema.String.pipe(Schema.maxLength(255))
}) {}

/** broker → client: the handshake is accepted; sessions may be opened. */
export class Welcome extends Schema.Class<Welcome>("Welcome")({
  protocol: Schema.Int,
  brokerId: Schema.Int.pipe(Schema.nonNegative()),
  /** The largest batch payload this broker accepts. */
  maxBatchBytes: Schema.Int.pipe(Schema.positive()),
  /** The most sessions the connection may hold open at once (one more is refused `too-many-sessions`). */
  maxSessions: Schema.Int.pipe(Schema.positive()),
  /** After a CHALLENGE: the broker's proof that it holds the user's keys (the client checks it). */
  serverSignature: Schema.optional(Schema.String.pipe(Schema.maxLength(255)))
}) {}

export const WireErrorCode = Schema.Literal(
  "bad-magic",
  "version-mismatch",
  "bad-frame-type",
  "oversized",
  "truncated",
  "bad-crc",
  "bad-handshake",
  "unknown-topic",
  "topic-deleted",
  "unexpected-frame",
  "session-mismatch",
  "bad-batch",
  "append-failed",
  "handshake-timeout",
  "idle-timeout",
  "session-table-full",
  "too-many-sessions",
  "unknown-session",
  "too-many-connections",
  "slow-consumer",
  "bad-subscribe",
  "out-of-range",
  "consumer-busy",
  "consumer-table-full",
  "consumer-cut-off",
  "bad-commit",
  "auth-required",
  "auth-failed",
  "forbidden",
  "rate-limited",
  "durability-unavailable",
  "region-full",
  "internal"
)
export type WireErrorCode = typeof WireErrorCode.Type

/** Errors a publisher cannot cure by reconnecting: its configuration is wrong. */
export const fatalWireErrors: ReadonlySet<WireErrorCode> = new Set([
  "unknown-topic",
  "topic-deleted",
  "version-mismatch",
  "bad-handshake",
  "session-table-full",
  "auth-required",
  "auth-failed",
  "forbidden",
  // ACK 2 of a topic whose copy on disk stopped: no broker can give it.
  "durability-unavailable"
])

/** broker → client: why the connection is being closed. */
export class ErrorBody extends Schema.Class<ErrorBody>("ErrorBody")({
  code: WireErrorCode,
  message: Schema.String,
  /** `out-of-range`: the offset asked for (or being read) and the window the topic holds, [earliest, end). */
  requested: Schema.optional(Schema.Number),
  earliest: Schema.optional(Schema.Number),
  end: Schema.optional(Schema.Number),
  /** `consumer-cut-off`: the consumer's committed offset (and in `earliest`, the oldest offset held). */
  committed: Schema.optional(Schema.Number),
  /** On a multi-topic subscription: the topic whose stream the error is of. */
  topic: Schema.optional(Schema.String)
}) {}

/** A protocol violation seen on a connection: becomes an ERROR frame, then the connection closes. */
export class WireViolation extends Data.TaggedError("WireViolation")<{
  readonly code: WireErrorCode
  readonly detail: string
}> {
  override get message() {
    return `${this.code}: ${this.detail}`
  }
}

/** A session's topic was deleted: what a broker tells its publisher (the session ends, the connection goes on). */
export const topicDeleted = (topic: string) =>
  new WireViolation({ code: "topic-deleted", detail: new TopicDeleted({ name: topic }).message })

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** The longest account of a body that did not decode (a hostile value in it is cut there). */
const MAX_DETAIL_CHARS = 300

/**
 * Why a control body did not decode, in one line for the peer: the first field that is wrong
 * and how (`Hello.clientId: Expected a number between 0 and 4294967295, actual -1`), or what is
 * wrong with the body as a whole; never Schema's tree of its own transformations.
 */
export const describeDecodeFailure = (schema: Schema.Schema.AnyNoContext, error: ParseResult.ParseError): string => {
  const body = Option.getOrElse(SchemaAST.getIdentifierAnnotation(SchemaAST.typeAST(schema.ast)), () => "the body")
  const failure = firstFailure(error.issue)
  const words = issueWords(failure.issue)
  const detail = failure.path.length > 0
    ? `${body}.${failure.path.map(String).join(".")}: ${words}`
    : failure.issue._tag === "Type" && failure.issue.message === undefined
    ? `${body}: expected a JSON object, ${/actual .*$/s.exec(words)?.[0] ?? "got something else"}`
    : `${body}: ${words}`
  const line = detail.replace(/\s*\n\s*/g, " ")
  return line.length <= MAX_DETAIL_CHARS ? line : `${line.slice(0, MAX_DETAIL_CHARS - 1)}…`
}

/** Decodes a control frame's JSON payload with `schema`; any failure is a `WireViolation` with `code`, its detail one line. */
/** Each schema's JSON decoder, made once: `Schema.parseJson` builds a new schema each call, and a request per chunk of messages is a hot path. */
const jsonDecoders = new WeakMap<Schema.Schema.Any, (text: string) => Either.Either<unknown, ParseResult.ParseError>>()
const jsonDecoder = <A, I>(schema: Schema.Schema<A, I>): (text: string) => Either.Either<A, ParseResult.ParseError> => {
  let decoder = jsonDecoders.get(schema)
  if (decoder === undefined) jsonDecoders.set(schema, decoder = Schema.decodeUnknownEither(Schema.parseJson(schema)))
  return decoder as (text: string) => Either.Either<A, ParseResult.ParseError>
}

export const decodeControl = <A, I>(
  schema: Schema.Schema<A, I>,
  payload: Uint8Array,
  code: WireErrorCode
): Either.Either<A, WireViolation> => {
  let text: string
  try {
    text = textDecoder.decode(payload)
  } catch {
    return Either.left(new WireViolation({ code, detail: "payload is not UTF-8" }))
  }
  return jsonDecoder(schema)(text).pipe(
    Either.mapLeft((error) => new WireViolation({ code, detail: describeDecodeFailure(schema, error) }))
  )
}

const encodeJson = <A, I>(schema: Schema.Schema<A, I>, value: A): Uint8Array =>
  textEncoder.encode(JSON.stringify(Schema.encodeSync(schema)(value)))

export const helloFrame = (hello: Hello): Buffer =>
  encodeFrame(
    { type: FrameType.HELLO, clientId: hello.clientId, sessionEpoch: 0, seq: 0, messageCount: 0 },
    encodeJson(Hello, hello)
  )

/** SESSION_OPEN of session `sessionId`: registers a new session of `open.topic` (`sessionEpoch` 0) or attaches to that one. */
export const sessionOpenFrame = (sessionId: number, sessionEpoch: number, open: SessionOpen): Buffer =>
  encodeFrame(
    { type: FrameType.SESSION_OPEN, clientId: sessionId, sessionEpoch, seq: 0, messageCount: 0 },
    encodeJson(SessionOpen, open)
  )

export const sessionOpenedFrame = (
  sessionId: number,
  sessionEpoch: number,
  sessionToken: string | undefined,
  limits: SessionLimits
): Buffer =>
  encodeFrame(
    { type: FrameType.SESSION_OPENED, clientId: sessionId, sessionEpoch, seq: 0, messageCount: 0 },
    encodeJson(
      SessionOpened,
      new SessionOpened({ ...limits, ...(sessionToken === undefined ? {} : { sessionToken }) })
    )
  )

/** A topic's limits as a session learns them (each where the broker said it). */
export interface SessionLimits {
  readonly maxBatchBytes?: number
  readonly maxMessageBytes?: number
}

/** ENDED of the session or stream `id`: why it is over (its connection goes on). Built without Schema, as `errorFrame`. */
export const endedFrame = (
  id: number,
  sessionEpoch: number,
  code: WireErrorCode,
  message: string,
  extra?: Pick<ErrorBody, "requested" | "earliest" | "end" | "committed" | "topic">
): Buffer =>
  encodeFrame(
    { type: FrameType.ENDED, clientId: id, sessionEpoch, seq: 0, messageCount: 0 },
    textEncoder.encode(JSON.stringify({ code, message: message.slice(0, 500), ...extra }))
  )

export const challengeFrame = (challenge: Challenge): Buffer =>
  encodeFrame(
    { type: FrameType.CHALLENGE, clientId: 0, sessionEpoch: 0, seq: 0, messageCount: 0 },
    encodeJson(Challenge, challenge)
  )

export const authFrame = (clientId: number, proof: AuthProof): Buffer =>
  encodeFrame(
    { type: FrameType.AUTH, clientId, sessionEpoch: 0, seq: 0, messageCount: 0 },
    encodeJson(AuthProof, proof)
  )

export const welcomeFrame = (welcome: Welcome): Buffer =>
  encodeFrame(
    { type: FrameType.WELCOME, clientId: 0, sessionEpoch: 0, seq: 0, messageCount: 0 },
    encodeJson(Welcome, welcome)
  )

/** Built without Schema: brokers send these to hostile input at a high rate, and the type already fixes the shape. */
export const errorFrame = (
  code: WireErrorCode,
  message: string,
  extra?: Pick<ErrorBody, "requested" | "earliest" | "end" | "committed" | "topic">
): Buffer =>
  encodeFrame(
    { type: FrameType.ERROR, clientId: 0, sessionEpoch: 0, seq: 0, messageCount: 0 },
    textEncoder.encode(JSON.stringify({ code, message: message.slice(0, 500), ...extra }))
  )

/**
 * The ACK of session `sessionId`: `orders`: (batch seq, total order) pairs, flat, at most
 * `MAX_ACK_ORDERS` of them; `count` pairs from `from` are sent.
 */
export const ackFrame = (
  sessionId: number,
  sessionEpoch: number,
  acked: number,
  level: AckLevel,
  orders?: Float64Array,
  from = 0,
  count = 0
): Buffer => {
  const payload = orders === undefined || count === 0
    ? undefined
    : new Uint8Array(orders.buffer, orders.byteOffset + from * ACK_ORDER_BYTES, count * ACK_ORDER_BYTES)
  return encodeFrame(
    { type: FrameType.ACK, clientId: sessionId, sessionEpoch, seq: acked, messageCount: level },
    payload
  )
}

export const closeFrame = (sessionId: number, sessionEpoch: number, batches: number): Buffer =>
  encodeFrame({ type: FrameType.CLOSE, clientId: sessionId, sessionEpoch, seq: batches, messageCount: 0 })

export const sessionFencedFrame = (sessionId: number, sessionEpoch: number, committed: number): Buffer =>
  encodeFrame({ type: FrameType.SESSION_FENCED, clientId: sessionId, sessionEpoch, seq: committed, messageCount: 0 })
