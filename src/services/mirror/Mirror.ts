/**
 * Mirror: carries a topic's total order, exactly once and in offset order, into a NATS
 * JetStream stream (docs/mirror.md). Each message becomes one stream message whose
 * `Nats-Msg-Id` is `regionId/topic/generation/offset` and which expects the stream's last sequence and
 * (past a session's first publish, whose predecessor it read) last message id to be those of
 * the offset before it (`Nats-Expected-Last-Sequence`, `Nats-Expected-Last-Msg-Id`): a fenced,
 * de-duplicated writer. On start,
 * and after any failure, it reads the stream's last message and continues at the offset after
 * it. It reads the topic as a named consumer, so the region keeps what it has not mirrored.
 */
import { Context, Data, type Effect, Schema } from "effect"
import type { TopicsRemoteError } from "../log/Topics.js"
import type { SubscribeError, SubscriptionError } from "../net/Subscriber.js"

/** The JetStream headers a mirrored message carries (docs/mirror.md, "The mapping"). */
export const MirrorHeaders = {
  /** JetStream's de-duplication id: `regionId/topic/generation/offset`. */
  msgId: "Nats-Msg-Id",
  /** The message's offset in the topic's total order, decimal. */
  offset: "Cxlog-Offset",
  /** When it was published: ms since the epoch, decimal. */
  timestamp: "Cxlog-Timestamp",
  /** Its key as text, when the key is UTF-8 without control characters or surrounding spaces. */
  key: "Cxlog-Key",
  /** Its key in base64, otherwise. */
  keyBase64: "Cxlog-Key-Base64",
  /** Its headers as JSON: `[{"name","value"} | {"name","valueBase64"}, …]`, in the order given. */
  headers: "Cxlog-Headers"
} as const

/**
 * `Nats-Msg-Id` of offset `offset`: unique per region, topic and offset — and per generation of
 * the topic, so a topic deleted and created again under its name, whose offsets start again at 0,
 * is another log to the stream, never continued in it nor de-duplicated against it.
 */
export const mirrorMessageId = (regionId: string, topic: string, generation: number, offset: number): string =>
  `${regionId}/${topic}/${generation}/${offset}`

/** Publishes a mirror keeps in flight unless told otherwise. */
export const DEFAULT_MIRROR_IN_FLIGHT = 256

/** The subject a topic is mirrored to unless told otherwise. */
export const defaultMirrorSubject = (topic: string): string => `cxlog.${topic}`

export interface MirrorOptions {
  readonly topic: string
  /** The region's identity (its creation time, `CxlMemoryShape` superblock): part of every message id. */
  readonly regionId: string
  /** JetStream servers, `nats://HOST:PORT` or `HOST:PORT`; the client fails over among them. */
  readonly servers: ReadonlyArray<string>
  readonly stream: string
  readonly subject: string
  /** Replicas of a stream the mirror creates (an existing stream keeps its own). */
  readonly replicas: number
  /** The named consumer it reads as (holds retention until a message is in the stream). */
  readonly consumer: string
  /** Where an empty stream starts (a new consumer's first offset). */
  readonly from: number | "earliest" | "latest"
  /** Messages published and not yet acknowledged by JetStream, at most. */
  readonly maxInFlight: number
  /** How long one publish or stream request may take before it counts as failed. */
  readonly requestTimeoutMs: number
  /** How long JetStream may stay unreachable before the mirror gives up (`MirrorUnavailable`). */
  readonly retryForMs: number
  /** Stop once every offset below this is in the stream (a bench, a test); default: run until interrupted. */
  readonly until?: number
  /** Called with the mirror's state whenever it changes, and every `statusEveryMs` meanwhile. */
  readonly onStatus?: (status: MirrorStatus) => void
  readonly statusEveryMs?: number
}

/**
 * A mirror's state. `stopped`: it ended as asked (`until` reached, or interrupted: its process
 * stopped by a signal). `gone` is never written by a mirror: it is how a status file reads whose
 * process ended while it ran, without saying so (SIGKILL, a crash).
 */
export const MirrorState = Schema.Literal(
  "starting",
  "mirroring",
  "mirror-unavailable",
  "behind-retention",
  "fenced",
  "stopped",
  "failed",
  "gone"
)
export type MirrorState = typeof MirrorState.Type

/** What a mirror reports about itself (metrics, `cxlog topics`, its status file). */
export class MirrorStatus extends Schema.Class<MirrorStatus>("MirrorStatus")({
  topic: Schema.String,
  regionId: Schema.String,
  stream: Schema.String,
  subject: Schema.String,
  servers: Schema.Array(Schema.String),
  consumer: Schema.String,
  pid: Schema.Number,
  state: MirrorState,
  /** The first offset not yet in the stream (every offset below it is, once). */
  mirrored: Schema.Number,
  /** The topic's end when last looked at, and the offsets between. */
  end: Schema.Number,
  lagOffsets: Schema.Number,
  /** Age of the oldest message not yet in the stream (0 when caught up). */
  lagSeconds: Schema.Number,
  /** The stream sequence of the last message the mirror appended or found. */
  streamSequence: Schema.Number,
  retries: Schema.Number,
  /** Why it is unavailable, stopped, failed or gone. */
  detail: Schema.optional(Schema.String),
  updatedAtMs: Schema.Number
}) {}

export interface MirrorShape {
  /**
   * Mirrors until interrupted (or `until` is reached). Fails only with what retrying cannot
   * cure: a foreign writer, a gap, data behind retention, JetStream gone past `retryForMs`.
   */
  readonly run: (options: MirrorOptions) => Effect.Effect<void, MirrorError>
}

export class Mirror extends Context.Tag("cxlog/Mirror")<Mirror, MirrorShape>() {}

/** The stream's last message was not written by this mirror (another region, topic or writer): nothing is written. */
export class MirrorStreamForeign extends Data.TaggedError("MirrorStreamForeign")<{
  readonly stream: string
  readonly sequence: number
  readonly found: string
  readonly expected: string
}> {
  override get message() {
    return `stream ${this.stream}: its last message (sequence ${this.sequence}) is ${this.found}, not this mirror's (${this.expected}…): another region, another generation of the topic (deleted and created again) or another writer appended it; nothing was written (mirror to a stream of its own)`
  }
}

/** The region's consumer has moved past what the stream holds (the stream was purged or replaced): mirroring on would leave a gap. */
export class MirrorGap extends Data.TaggedError("MirrorGap")<{
  readonly stream: string
  readonly topic: string
  readonly streamNext: number
  readonly consumerCommitted: number
}> {
  override get message() {
    return `stream ${this.stream} ends before offset ${this.streamNext} of topic ${this.topic}, but the mirror's consumer committed up to ${this.consumerCommitted}: offsets ${this.streamNext}..${
      this.consumerCommitted - 1
    } would be missing (delete the consumer to start the stream afresh)`
  }
}

/** The region no longer holds the next offset to mirror: the mirror fell behind retention (or was cut off for holding it). */
export class MirrorBehindRetention extends Data.TaggedError("MirrorBehindRetention")<{
  readonly topic: string
  readonly stream: string
  /** The first offset the stream lacks. */
  readonly next: number
  /** The oldest offset the region still holds. */
  readonly earliest: number
  readonly reason: string
}> {
  override get message() {
    return `topic ${this.topic}: the mirror to stream ${this.stream} is behind retention: it needs offset ${this.next}, the region holds offsets from ${this.earliest} on (${this.reason}); offsets ${this.next}..${
      this.earliest - 1
    } cannot be mirrored`
  }
}

/**
 * `from` names an offset past the topic's end: nothing is there to mirror, and the region refuses
 * to read there. Refused before any stream is made, where it read as a mirror behind retention.
 */
export class MirrorFromPastEnd extends Data.TaggedError("MirrorFromPastEnd")<{
  readonly topic: string
  readonly stream: string
  readonly from: number
  /** The topic's end: the offset its next message will have. */
  readonly end: number
}> {
  override get message() {
    return `topic ${this.topic} ends at offset ${this.end}: the mirror to stream ${this.stream} cannot start at offset ${this.from}, past its end; nothing was written (--from: an offset below ${
      this.end + 1
    }, earliest or latest)`
  }
}

/** JetStream stayed unreachable (or refused the stream) for longer than the mirror retries. */
export class MirrorUnavailable extends Data.TaggedError("MirrorUnavailable")<{
  readonly servers: ReadonlyArray<string>
  readonly stream: string
  readonly retriedMs: number
  readonly retries: number
  readonly reason: string
}> {
  override get message() {
    return `mirror-unavailable: JetStream at ${
      this.servers.join(",")
    } (stream ${this.stream}) did not take messages for ${
      Math.round(this.retriedMs / 1000)
    } s, ${this.retries} retries: ${this.reason} (--retry-for)`
  }
}

/** The stream exists but does not take the mirror's subject. */
export class MirrorStreamMismatch extends Data.TaggedError("MirrorStreamMismatch")<
  { readonly stream: string; readonly subject: string; readonly subjects: ReadonlyArray<string> }
> {
  override get message() {
    return `stream ${this.stream} takes subjects ${this.subjects.join(", ")}, not ${this.subject} (--subject)`
  }
}

/** JetStream refused the stream the mirror needs for a reason retrying cannot cure: its name, subject or replicas. */
export class MirrorStreamRefused extends Data.TaggedError("MirrorStreamRefused")<{
  readonly stream: string
  readonly reason: string
  readonly hint: string
}> {
  override get message() {
    return `stream ${this.stream}: JetStream refused it: ${this.reason}; nothing was written (${this.hint})`
  }
}

/**
 * The servers answer, and say JetStream is not enabled there (no server takes its API, or not for
 * this account): their configuration, which no retry cures, not an outage.
 */
export class MirrorJetStreamDisabled extends Data.TaggedError("MirrorJetStreamDisabled")<{
  readonly servers: ReadonlyArray<string>
  readonly reason: string
}> {
  override get message() {
    return `JetStream is not enabled at ${
      this.servers.join(",")
    }: ${this.reason}; nothing was written (start nats-server with -js, or give its configuration a jetstream block; for an account, enable JetStream for it)`
  }
}

export type MirrorError =
  | TopicsRemoteError
  | MirrorJetStreamDisabled
  | MirrorStreamRefused
  | MirrorStreamForeign
  | MirrorGap
  | MirrorBehindRetention
  | MirrorFromPastEnd
  | MirrorUnavailable
  | MirrorStreamMismatch
  | Exclude<SubscribeError | SubscriptionError, { readonly _tag: "LogOutOfRange" | "ConsumerCutOff" }>
