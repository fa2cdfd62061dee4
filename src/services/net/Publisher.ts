/**
 * Publisher: the client that turns `publish(payload)` into batches on brokers, for any number
 * of topics over the same connections.
 *
 * A message goes to the topic it names (`{ topic }`), else to the publisher's default topic.
 * Each topic has its own open batch and its own session in the log, registered on the first
 * message to it (the log hands out its epoch; the client never picks one), so a restarted
 * publisher with the same client id is a new session, never taken for resends.
 *
 * Batching is self-clocking: a message published while nothing is in flight is sealed and
 * sent at once; while batches are in flight, messages gather into their topic's open batch
 * until it reaches `batchBytes` or an ACK frees window room (the topics whose batches waited
 * longest go first), with `lingerMs` as an upper bound. Each sealed batch gets the next batch
 * seq of its topic's session (client id, epoch) — one sequence across all brokers — and goes
 * to a broker chosen round-robin or sticky. One window of sealed batches, shared by every
 * topic, waits for ACKs; past it, `publish` waits (backpressure). The window adapts under
 * `maxInFlightBatches`: it grows while ACKs come back without a queue and stops where only the
 * queue would grow. Every unacked batch is kept: when a connection fails the batches it
 * carried are resent through the other brokers (or the same one once it is back); the
 * sequencer drops what it had already ordered, so each batch enters the order once.
 *
 * On SESSION_FENCED (a gap outlived the hold timeout, or the session idled out) a topic
 * registers a new session and replays its unacked suffix under it. A topic the log refuses
 * (unknown, deleted, forbidden) fails that topic's publishes with `BrokerRejected` naming it;
 * the other topics go on. Closing sends CLOSE for every session, which releases each once its
 * batches are ordered.
 */
import { Context, Data, type Duration, type Effect } from "effect"
import type { BrokerAddress } from "../../layers/net/BrokerAddress.js"
import type { ClientSecurity } from "../../layers/net/ClientConnection.js"
import type { WireErrorCode } from "../../layers/net/Control.js"
import type { AckLevel } from "../log/Topics.js"

export type { BrokerAddress }

/** A header list as a publisher may give it: pairs, or an object of name → value. */
export type HeadersInit =
  | ReadonlyArray<readonly [string, string | Uint8Array]>
  | { readonly [name: string]: string | Uint8Array }

/**
 * Batches a publisher keeps in flight unless told otherwise: 16 MiB at the default 64 KiB
 * batches. Deep enough that a saturated TLS connection is not bound by the window (at 64 it
 * was: docs/performance.md, "The publisher's window"), and under a full window each ACK, ring
 * and round covers more batches.
 */
export const DEFAULT_MAX_IN_FLIGHT_BATCHES = 256

export interface PublisherOptions {
  readonly brokers: ReadonlyArray<BrokerAddress>
  /**
   * The default topic: where a message that names no topic goes. Without it every message names
   * its topic (`publish(payload, { topic })`).
   */
  readonly topic?: string
  /** Default: a random u32. Identifies the client in logs and the GOI; sessions are told apart by their epoch. */
  readonly clientId?: number
  /** 0: none (a batch is done once written to the socket), 1: ordered (default), 2: replicated. */
  readonly ackLevel?: AckLevel
  /** A batch seals when the next message would not fit these bytes. Default 64 KiB. */
  readonly batchBytes?: number
  /**
   * Upper bound on how long an open batch waits behind batches in flight for the ACK that
   * sends it (a message that finds nothing in flight goes at once, with no timer). Default 1 ms.
   */
  readonly lingerMs?: number
  /** `lingerMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly linger?: Duration.DurationInput
  /** Sealed batches awaiting their ACK before `publish` waits (with `adaptiveWindow`, the most). Default `DEFAULT_MAX_IN_FLIGHT_BATCHES`. */
  readonly maxInFlightBatches?: number
  /**
   * The window adapts (default): it grows while its batches' ACKs come back without a queue and
   * shrinks where only the queue would grow, up to `maxInFlightBatches`. False: it is always
   * `maxInFlightBatches`.
   */
  readonly adaptiveWindow?: boolean
  /** Largest batch a broker accepts (a bigger message is refused). Default 1 MiB, the broker's default. */
  readonly maxBatchBytes?: number
  /**
   * Called once per batch as it is acknowledged at the ack level, with its messages (numbered
   * as `MessageRange`): what a caller timing each message from its `publish` call needs, at the
   * cost of one call per batch.
   */
  readonly onAcknowledged?: (acknowledged: MessageRange) => void
  /** `round-robin` (default) spreads batches that overlap in flight over the brokers (a lone batch goes to its home broker, the client id modulo the brokers); `sticky` keeps to that one until it fails. */
  readonly spread?: "round-robin" | "sticky"
  /** A connection must be accepted (WELCOME) within this. Default 5 s. */
  readonly connectTimeoutMs?: number
  /** `connectTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly connectTimeout?: Duration.DurationInput
  /**
   * `publish` waiting for window room fails with `PublishAckTimeout` when no batch is
   * acknowledged for this long (the head or every broker is gone). Default 30 s.
   */
  readonly ackTimeoutMs?: number
  /** `ackTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly ackTimeout?: Duration.DurationInput
  /** First reconnect delay after a failure; doubles per failure up to 1 s. Default 25 ms. */
  readonly reconnectDelayMs?: number
  /** `reconnectDelayMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly reconnectDelay?: Duration.DurationInput
  /**
   * The user and secret to authenticate as, for brokers that require it (docs/security.md).
   * Without them the publisher uses the local user's secret file of `region`, when the head
   * wrote one on this host.
   */
  readonly credentials?: ClientSecurity["credentials"]
  /** Without `credentials`: the region whose local secret file to authenticate with, when there is one. Default `CXLOG_REGION`, else "cxlog". */
  readonly region?: string
  /** Also take brokers that authenticate nobody (`--insecure`) while holding credentials; without it they are refused `auth-failed` (docs/security.md). */
  readonly insecure?: ClientSecurity["insecure"]
  /** Connect with TLS: the CA (PEM) that signed the brokers' certificates; a client certificate and key when they ask for one. */
  readonly tls?: ClientSecurity["tls"]
}

/** One broker as the publisher sees it; `name` is `B<index in the brokers list>`. */
export interface BrokerLink {
  readonly name: string
  readonly address: string
  /** Batches acknowledged whose last send went to this broker. */
  readonly acked: number
  /** Batches sent to this broker, resends included. */
  readonly sent: number
  readonly connected: boolean
  /** Sessions open on its connection: one per topic that may send batches there. */
  readonly sessions: number
  /** While not connected: why its last connection ended (e.g. `too-many-connections`, `unreachable`). */
  readonly lastClose?: string
}

/** One topic as the publisher sees it. */
export interface TopicStats {
  readonly topic: string
  /** Its session's epoch, handed out by the log (0 while none is registered). */
  readonly sessionEpoch: number
  readonly messages: number
  readonly batches: number
  readonly ackedMessages: number
  /** Batches sealed and not acknowledged. */
  readonly inFlight: number
  readonly fences: number
  /** Why the topic's publishes fail, once they do (the log refused it: unknown, deleted, forbidden). */
  readonly failure?: string
}

export interface PublisherStats {
  readonly clientId: number
  /** The default topic's session epoch, handed out by the log (0 while none is registered, or without a default topic). */
  readonly sessionEpoch: number
  readonly messages: number
  readonly batches: number
  readonly ackedBatches: number
  readonly ackedMessages: number
  readonly inFlight: number
  /** The send window now, in batches: `maxInFlightBatches`, or less while it adapts. */
  readonly window: number
  readonly resends: number
  readonly fences: number
  readonly brokers: ReadonlyArray<BrokerLink>
  /** Every topic published to, in the order of their first message (the default topic first). */
  readonly topics: ReadonlyArray<TopicStats>
}

/**
 * Messages `from` to `from + count - 1` of `topic`, numbered from 0 per topic in the order this
 * publisher took them (across sessions: a fence's replay keeps their numbers).
 */
export interface MessageRange {
  readonly topic: string
  readonly from: number
  readonly count: number
}

/** A message's ACK: its offset (position in the topic's total order). */
export interface PublishAck {
  /**
   * Undefined at ACK level 0 (no ACK frames), and for a batch resent after its connection was
   * lost whose first copy is the one the log ordered (the resend was dropped as a duplicate).
   */
  readonly offset: number | undefined
}

/** Where a message goes and what it may carry besides its value (docs/protocol.md, "Messages"). */
export interface MessageOptions {
  /** The topic it goes to; default the publisher's `topic`. */
  readonly topic?: string
  /** Its key: bytes, or a string sent as UTF-8. */
  readonly key?: Uint8Array | string
  /** Its headers, in order: `[name, value]` pairs or an object; values are bytes or strings (UTF-8). */
  readonly headers?: HeadersInit
}

export interface PublisherShape {
  readonly clientId: number
  /**
   * Adds a message (stamped with the time now) to the current batch; waits while the in-flight
   * window is full (bounded by `ackTimeoutMs`).
   */
  readonly publish: (
    payload: Uint8Array,
    message?: MessageOptions
  ) => Effect.Effect<void, PublishError | PublishAckTimeout>
  /**
   * `publish`, then waits for this message's ACK (bounded by `ackTimeoutMs`) and gives its
   * offset. Costs a waiter per message: plain `publish` keeps the hot path free of it.
   */
  readonly publishAcked: (
    payload: Uint8Array,
    message?: MessageOptions
  ) => Effect.Effect<PublishAck, PublishError | PublishAckTimeout>
  /**
   * The same without an Effect per message: `true` if taken, `false` if the window is full
   * (then wait with `writable`), or the error `publish` would fail with.
   */
  readonly tryPublish: (payload: Uint8Array, message?: MessageOptions) => boolean | PublishError
  /** Resolves once `tryPublish` can take a message again. */
  readonly writable: Effect.Effect<void, PublishError | PublishAckTimeout>
  /**
   * Seals the open batches and waits until everything published, to every topic, is
   * acknowledged at the ack level. Fails with the error of a topic whose publishes failed while
   * it held messages not acknowledged.
   */
  readonly flush: (timeoutMs: number) => Effect.Effect<void, PublishError | PublishAckTimeout>
  readonly stats: () => PublisherStats
  /**
   * The messages taken but not acknowledged (sent or not yet), in order, adjacent ones merged.
   * Not always a suffix of what was published: batches are acknowledged one by one at ACK level
   * 0 (as each is written to its broker's socket), so a later one may be done before an earlier
   * one. Only for reporting a failure: it walks every batch not done.
   */
  readonly unacknowledged: () => ReadonlyArray<MessageRange>
  /**
   * Seal-to-ACK latency of each batch acknowledged so far, in µs, in the order they were acknowledged
   * (the most recent 65,536); with `since`, of those acknowledged after the first `since`
   * (`stats().ackedBatches` then).
   */
  readonly ackLatencies: (since?: number) => Float64Array
}

export class Publisher extends Context.Tag("cxlog/Publisher")<Publisher, PublisherShape>() {}

/**
 * A publisher's wait for ACKs ran out of time (`flush`, or `publish` on a window that stayed full);
 * names each broker's acked/sent counts. (The log's own `AckTimeout` is one session's wait in the AckTracker.)
 */
export class PublishAckTimeout extends Data.TaggedError("PublishAckTimeout")<{
  readonly timeoutMs: number
  /** Batches (the open one included) not acknowledged yet. */
  readonly outstanding: number
  readonly brokers: ReadonlyArray<BrokerLink>
}> {
  override get message() {
    const counts = this.brokers.map((b) => `${b.name}=${b.acked}/${b.sent}`).join(", ")
    const where = this.brokers.map((b) =>
      `${b.name} ${b.address}${b.connected ? "" : ` down${b.lastClose === undefined ? "" : ` (${b.lastClose})`}`}`
    ).join(", ")
    // With every broker down, they are what to look at; with one up, what orders its batches: the head.
    const hint = this.brokers.length > 0 && this.brokers.every((b) => !b.connected)
      ? "no broker is connected: are they running and reachable?"
      : "is the head (sequencer) running?"
    return `${this.outstanding} batches not acknowledged within ${this.timeoutMs} ms; acked/sent: ${counts} (${where}); ${hint}`
  }
}

/**
 * A broker refused the publisher, or one topic's session (`topic`: only that topic's publishes
 * fail), for a reason reconnecting cannot cure (unknown or deleted topic, rights, protocol
 * version, handshake).
 */
export class BrokerRejected extends Data.TaggedError("BrokerRejected")<{
  readonly broker: string
  readonly code: WireErrorCode
  readonly detail: string
  readonly topic?: string
}> {
  override get message() {
    return `broker ${this.broker} refused the session${
      this.topic === undefined ? "" : ` of topic ${this.topic}`
    }: ${this.code}: ${this.detail}`
  }
}

/** A message with no topic (the publisher has no default one), or one naming a string that is no topic name. */
export class PublishTopicInvalid extends Data.TaggedError("PublishTopicInvalid")<{
  readonly topic: string | undefined
  readonly reason: string
}> {
  override get message() {
    return this.topic === undefined
      ? `a message needs a topic: ${this.reason}`
      : `cannot publish to ${JSON.stringify(this.topic)}: ${this.reason}`
  }
}

/** Since it started, no broker accepted the publisher within the connect timeout: each address with what went wrong. */
export class BrokersUnreachable extends Data.TaggedError("BrokersUnreachable")<{
  readonly timeoutMs: number
  readonly brokers: ReadonlyArray<{ readonly address: string; readonly reason: string }>
  /** Set when every broker refused this many attempts outright (nothing listens there), before the timeout. */
  readonly refusedAttempts?: number
}> {
  override get message() {
    const brokers = this.brokers.map((b) => `${b.address} (${b.reason})`).join(", ")
    return this.refusedAttempts === undefined
      ? `no broker accepted a connection within ${this.timeoutMs} ms: ${brokers}`
      : `no broker is listening: ${brokers}, each refused ${this.refusedAttempts} attempts; start one (cxlog broker, or cxlog run) or check the addresses`
  }
}

/** Bytes a batch's first record takes besides its message: its header and the batch's base timestamp. */
export const FIRST_RECORD_OVERHEAD_BYTES = 16

/**
 * A message larger than a batch can be (the publisher's `maxBatchBytes`), or, with `topic`, larger
 * than that topic takes (`maxMessageBytes`: the topic's own limit, said by its session): nothing of
 * it was sent, and the topic goes on.
 */
export class MessageTooLarge extends Data.TaggedError("MessageTooLarge")<{
  readonly bytes: number
  readonly maxBatchBytes: number
  readonly topic?: string
  readonly maxMessageBytes?: number
}> {
  override get message() {
    if (this.topic !== undefined && this.maxMessageBytes !== undefined) {
      return `a ${this.bytes}-byte message is over topic ${this.topic}'s largest message of ${this.maxMessageBytes} bytes (key and headers included; cxlog topics describe ${this.topic} says it). A topic takes messages up to its --max-message-bytes and to half of a writer's lane (its --memory over its --writers): one created with more of both takes more`
    }
    return `a ${this.bytes}-byte message does not fit a batch of at most ${this.maxBatchBytes} bytes (the largest message is ${
      this.maxBatchBytes - FIRST_RECORD_OVERHEAD_BYTES
    } bytes, key and headers included); raise the publisher's maxBatchBytes (cxlog publish --max-batch-bytes), within the brokers' --max-batch-bytes (CXLOG_MAX_BATCH_BYTES)`
  }
}

export class PublisherClosed extends Data.TaggedError("PublisherClosed")<{}> {
  override get message() {
    return "the publisher is closed"
  }
}

/** A message whose value, key or a header is not bytes (a Uint8Array; the Promise facade also takes strings): refused at the call, nothing sent. */
export class InvalidMessage extends Data.TaggedError("InvalidMessage")<{ readonly reason: string }> {
  override get message() {
    return `invalid message: ${this.reason}`
  }
}

export type PublishError =
  | BrokerRejected
  | BrokersUnreachable
  | InvalidMessage
  | MessageTooLarge
  | PublisherClosed
  | PublishTopicInvalid

export class InvalidPublisherOptions extends Data.TaggedError("InvalidPublisherOptions")<{ readonly reason: string }> {
  override get message() {
    return `invalid publisher options: ${this.reason}`
  }
}
