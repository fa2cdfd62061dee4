/**
 * Subscriber: reads a topic's total order as a `Stream` of batches, wherever the reader is —
 * in the process that maps the region (`layer`, over its `LogReader`), over TCP from any
 * broker (`layerRemote`), or over the in-memory log (`layerMemory`). One interface for all.
 *
 * A batch is a zero-copy view — of the region, or of the socket's receive buffer — valid until
 * the next pull of its stream; `copy()` keeps one. A local reader's view lies in the region,
 * where retention may reuse the bytes of a reader that does not hold it: everything read of a
 * batch, a `copy()` included, is confirmed intact by the next pull, which fails with
 * `LogOutOfRange` instead when the batch was reclaimed meanwhile. A remote batch arrives
 * checked (its crc32c) and stays intact. Anonymous subscribers hold no retention: one that
 * falls behind the retained window gets `LogOutOfRange`, naming the oldest offset still held,
 * never skipped or torn data.
 */
import { Context, Data, type Effect, type Scope, type Stream } from "effect"
import type { ConsumerCutOff, ConsumerError } from "../log/Consumers.js"
import type { HeadUnavailable } from "../log/HeadWatch.js"
import type { LogOutOfRange } from "../log/LogReader.js"
import type { InvalidTopicPattern } from "../log/TopicPattern.js"
import type { LogCorrupt, TopicDeleted, TopicNotFound } from "../log/Topics.js"

/** One header of a message: its name, and its value as a zero-copy view (valid as long as its batch). */
export interface MessageHeader {
  readonly name: string
  readonly value: Uint8Array
}

const utf8 = new TextDecoder("utf-8", { ignoreBOM: true })

/** The value of the first header named `name`, as UTF-8 text; undefined when the message has none of that name. */
export const headerText = (headers: ReadonlyArray<MessageHeader> | undefined, name: string): string | undefined => {
  const found = headers?.find((h) => h.name === name)
  return found === undefined ? undefined : utf8.decode(found.value)
}

/**
 * One message of a batch; the same object is reused for every message of a subscription, and
 * its views (`payload`, `key`, header values) are valid as long as the batch: `copy()` keeps one.
 */
export interface SubscriberMessage {
  /** The topic it was published to. */
  readonly topic: string
  /** Its offset in the topic's total order. */
  readonly offset: number
  /** When it was published (taken at `publish`): ms since the epoch. */
  readonly timestamp: number
  /** The parts its record carries (`MessageFlags` in BatchPayload.ts: bit 1 key, bit 2 headers). */
  readonly flags: number
  /** Its key, if it was published with one (a zero-copy view). */
  readonly key: Uint8Array | undefined
  /** Its headers in the order given, if any (names decoded as UTF-8, values zero-copy views). */
  readonly headers: ReadonlyArray<MessageHeader> | undefined
  /** A zero-copy view of the value. */
  readonly payload: Uint8Array
  /**
   * The value where it lies, `bytes[valueOffset, valueOffset + valueLength)`: for loops that
   * read every message without taking a view of each (`payload` is one, made when asked for).
   */
  readonly bytes: Uint8Array
  readonly valueOffset: number
  readonly valueLength: number
  /** An independent copy of this message (its bytes included), valid for ever. */
  readonly copy: () => SubscriberMessage
}

/** Consecutive messages of the total order (one batch as it was published, less any before the subscription's start). */
export interface SubscriberBatch {
  readonly topic: string
  /** Offset of the first message delivered in this batch. */
  readonly offset: number
  /** Messages delivered: offsets `offset … offset + count - 1`. */
  readonly count: number
  /** `count`, as an array's. */
  readonly length: number
  /** The publisher session that wrote the batch. */
  readonly clientId: number
  readonly sessionEpoch: number
  /** Payload bytes of the messages delivered (their record headers included). */
  readonly bytes: number
  /** Each message in order; `message` is reused, so keep `message.copy()` (or `copy()` the batch), not the object. */
  readonly forEach: (onMessage: (message: SubscriberMessage) => void) => void
  /** The same, as an iterator (one reused message object: `[...batch]` holds it `count` times; use `toArray` or `map`). */
  readonly [Symbol.iterator]: () => Iterator<SubscriberMessage>
  /** What `f` makes of each message, in order (`f` sees the reused message: take what you need of it). */
  readonly map: <T>(f: (message: SubscriberMessage, index: number) => T) => Array<T>
  /** Each message as a copy that owns its bytes, valid for ever. */
  readonly toArray: () => Array<SubscriberMessage>
  /** An independent copy, valid for ever (it owns its bytes). */
  readonly copy: () => SubscriberBatch
}

export interface SubscribeOptions {
  /**
   * A message offset, "earliest" held, or "latest" (only what comes next). Default "earliest".
   * With `consumer`, where a new consumer starts; an existing one resumes at its committed offset.
   */
  readonly from?: number | "earliest" | "latest"
  /**
   * In place of `from` (both given: `InvalidSubscribeOptions`): the first message stamped at or after this time (ms since the epoch, its
   * publisher's clock); before every retained message, the earliest; after them all, the end.
   * With `consumer`, where a new consumer starts, as `from`.
   */
  readonly fromTime?: number
  /**
   * Read as this named consumer of the topic (services/log/Consumers.ts): its committed offset
   * holds retention, one member reads at a time, and the next member resumes where it committed.
   * A consumer whose hold kept publishers waiting past the brokers' bound (CXLOG_CONSUMER_HOLD_MS)
   * is cut off: its member's next pull or commit fails with `ConsumerCutOff`.
   */
  readonly consumer?: string
  /**
   * When a named consumer commits by itself: once `everyMessages` were delivered or `intervalMs`
   * (default 100) passed since the last commit, everything delivered before the current pull is
   * committed — at that pull, or while it waits (pulling again means the batch before was
   * processed). Its commits are what releases retention, so the interval bounds how fast it can
   * read through a log that holds little (Blog bytes per broker per interval). "off": only
   * `commit()`. What a member pulled after its last commit is delivered again to the next one.
   */
  readonly autoCommit?: "off" | { readonly everyMessages?: number; readonly intervalMs?: number }
}

export interface Subscription {
  readonly topic: string
  /** Where the subscription started (its first offset). */
  readonly start: number
  /**
   * The batches from `start` on, in order, without end (until the subscription's scope closes
   * or it fails). Each is valid until the next pull; pull one at a time (no read-ahead operators).
   */
  readonly batches: Stream.Stream<SubscriberBatch, SubscriptionError>
  /**
   * The next batch, as one Effect: what `batches` streams, for loops that should not pay a Stream
   * step per batch (about ten times a plain Effect's). The same rules: valid until the next pull.
   */
  readonly pull: Effect.Effect<SubscriberBatch, SubscriptionError>
  /**
   * Pulls the batches at hand (at least one: waits for it), handing each to `onBatch`, valid
   * during the call; returns how many. For loops that read everything: a remote subscription
   * takes all the frames received without an Effect step per batch; a local one hands one batch.
   */
  readonly poll: (onBatch: (batch: SubscriberBatch) => void) => Effect.Effect<number, SubscriptionError>
  /** Offset of the next message the stream delivers. */
  readonly position: () => number
  /** Messages in the order past `position()` (the log's end looked up now: a remote subscriber asks a broker). */
  readonly lag: Effect.Effect<number, SubscribeError>
  /** The named consumer it reads as, if any. */
  readonly consumer: string | undefined
  /**
   * Commits `offset` (default `position()`: everything delivered so far) as the named consumer's
   * committed offset. It must lie between the committed offset and `position()`.
   */
  readonly commit: (offset?: number) => Effect.Effect<void, CommitRejected | SubscriptionError>
}

/**
 * A subscription to several topics: those its selection names, and every topic its patterns
 * match (services/log/TopicPattern.ts: `orders.*`, `orders.>`), those created while it runs
 * included. Its batches come from every topic, each tagged with its topic (`batch.topic`,
 * `message.topic`); a topic's batches come in that topic's total order, and topics take turns
 * (no order between topics is promised). A named consumer is a consumer of that name on each
 * topic, committed per topic.
 */
export interface TopicsSubscription {
  /** The topics and patterns it was given. */
  readonly selection: ReadonlyArray<string>
  /** The topics it reads now: those named, and those its patterns matched so far. */
  readonly topics: () => ReadonlyArray<string>
  /**
   * How many topics its patterns matched as it subscribed that its user may not read (through a
   * broker; 0 in the region, where no user is asked): a pattern that seems to match nothing may
   * match only those.
   */
  readonly unreadableMatches: number
  /** The batches of every topic it reads, without end; each valid until the next pull (as `Subscription.batches`). */
  readonly batches: Stream.Stream<SubscriberBatch, SubscriptionError>
  /** The next batch of any topic, as one Effect (as `Subscription.pull`). */
  readonly pull: Effect.Effect<SubscriberBatch, SubscriptionError>
  /** Pulls the batches at hand (at least one: waits for it), handing each to `onBatch`; returns how many. */
  readonly poll: (onBatch: (batch: SubscriberBatch) => void) => Effect.Effect<number, SubscriptionError>
  /** Offset of the next message it delivers of `topic` (undefined: it does not read that topic). */
  readonly position: (topic: string) => number | undefined
  /** Messages in the order past the positions, over every topic it reads. */
  readonly lag: Effect.Effect<number, SubscribeError>
  /** The named consumer it reads as on each topic, if any. */
  readonly consumer: string | undefined
  /**
   * Commits `offset` of `topic` (default its position) as the named consumer's committed offset
   * there; without `to`, every topic's position.
   */
  readonly commit: (
    to?: { readonly topic: string; readonly offset?: number }
  ) => Effect.Effect<void, CommitRejected | SubscriptionError>
}

export interface SubscriberShape {
  readonly subscribe: (
    topic: string,
    options?: SubscribeOptions
  ) => Effect.Effect<Subscription, SubscribeError, Scope.Scope>
  /**
   * A subscription to several topics: `selection` lists topic names and patterns (at least one).
   * Each topic it reads starts where `options` say (`from`, `fromTime`; a named consumer's at its
   * committed offset); a topic a pattern picks up after it started is read from its first message.
   * A pattern that matches nothing yet waits for a topic that does. A named topic that does not
   * exist fails it (`TopicNotFound`); an entry that is neither a name nor a pattern is `InvalidTopicPattern`.
   */
  readonly subscribeTopics: (
    selection: ReadonlyArray<string>,
    options?: SubscribeOptions
  ) => Effect.Effect<TopicsSubscription, SubscribeError | InvalidTopicPattern, Scope.Scope>
  /** Message offsets: the earliest held and the end (the next to be ordered). */
  readonly bounds: (topic: string) => Effect.Effect<{ readonly earliest: number; readonly end: number }, SubscribeError>
}

export class Subscriber extends Context.Tag("cxlog/Subscriber")<Subscriber, SubscriberShape>() {}

/**
 * A remote subscription's connection failed: `code` is the broker's ERROR code when it sent one,
 * else what the client saw (`unreachable`, `closed`, `timeout`, `bad-frame`).
 */
export class SubscriberConnectionFailed extends Data.TaggedError("SubscriberConnectionFailed")<{
  readonly broker: string
  readonly code: string
  readonly detail: string
}> {
  override get message() {
    return `broker ${this.broker}: ${this.code}: ${this.detail}`
  }
}

/** No broker of the list took the subscription: each address with what went wrong. */
export class SubscriberBrokersUnreachable extends Data.TaggedError("SubscriberBrokersUnreachable")<{
  readonly brokers: ReadonlyArray<{ readonly address: string; readonly reason: string }>
}> {
  override get message() {
    return `no broker took the subscription: ${this.brokers.map((b) => `${b.address} (${b.reason})`).join(", ")}`
  }
}

/** A commit that cannot be: an anonymous subscription, or an offset outside [committed, position]. */
export class CommitRejected
  extends Data.TaggedError("CommitRejected")<{ readonly topic: string; readonly reason: string }>
{
  override get message() {
    return `topic ${this.topic}: commit refused: ${this.reason}`
  }
}

export type SubscriptionError =
  | LogOutOfRange
  | LogCorrupt
  | HeadUnavailable
  | SubscriberConnectionFailed
  | ConsumerCutOff
  | TopicDeleted

/** A subscribe whose `from` is no position or whose `fromTime` is no time: refused before anything is opened. */
export class InvalidSubscribeOptions extends Data.TaggedError("InvalidSubscribeOptions")<{ readonly reason: string }> {
  override get message() {
    return `invalid subscribe options: ${this.reason}`
  }
}

export type SubscribeError =
  | SubscriptionError
  | TopicNotFound
  | SubscriberBrokersUnreachable
  | ConsumerError
  | InvalidSubscribeOptions
