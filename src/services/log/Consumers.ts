/**
 * Consumers: a topic's named consumers — Kafka's consumer group on one partition, JetStream's
 * durable consumer. A consumer is a name with a committed offset, kept in the region, that
 * holds retention: brokers keep everything from the batch holding its committed offset on
 * (publishers get backpressure instead of it losing data), whether or not a member is
 * reading. One member is active at a time (a lease: the member's pid, taken by
 * compare-and-swap); when it dies or leaves, the next to join takes over at the committed
 * offset. Delivery is at-least-once: what a member read after its last commit is delivered
 * again to the next one.
 *
 * The hold has a bound (docs/clients.md, "Named consumers"): once a consumer's hold has kept a
 * broker's appends waiting for room for `consumerHoldMs` (CXLOG_CONSUMER_HOLD_MS) with none
 * getting through, the broker cuts it off — it keeps its name and committed offset but holds
 * nothing, the appends proceed, and its member fails with `ConsumerCutOff` at its next pull or
 * commit. The next member to join resumes at the committed offset (taking the hold again) if the
 * log still holds it, else gets `LogOutOfRange` naming the oldest offset held: nothing is skipped
 * without a typed error.
 */
import { Context, Data, type Effect, type Scope } from "effect"
import type { TopicNotFound } from "./Topics.js"

/**
 * The hold's bound unless a broker is given another (`--consumer-hold-ms`): below a publisher's
 * default `ackTimeoutMs` (30 s), so a consumer nobody reads is cut off while the publishers it
 * holds still wait, not after they gave up on batches the log then ordered.
 */
export const DEFAULT_CONSUMER_HOLD_MS = 20_000

export interface ConsumerInfo {
  readonly topic: string
  readonly name: string
  /** The first offset not yet committed: where the next member starts. */
  readonly committed: number
  /** The topic's end now, and how far the consumer is behind it. */
  readonly end: number
  readonly lag: number
  /** The active member's pid; 0 when none. */
  readonly member: number
  /** Cut off for holding publishers too long: it holds no retention until a member resumes it. */
  readonly cutOff: boolean
}

/** A member's hold on its consumer, until its scope closes. */
export interface ConsumerLease {
  readonly topic: string
  readonly name: string
  /** True when this join created the consumer (at the position it was given). */
  readonly created: boolean
  /** The committed offset. */
  readonly committed: () => number
  /**
   * Commits `offset` (the first message not processed), which lies in batch `globalSeq` of the
   * total order (the batch it starts, when it is the first of one): retention is released up to
   * that batch. False, committing nothing, when the consumer is cut off.
   */
  readonly commit: (offset: number, globalSeq: number) => boolean
  /** Whether the consumer is cut off now (it was at the join when it is `resume`d). */
  readonly cutOff: () => boolean
  /** A cut-off consumer takes its hold again, from its committed offset's batch on. */
  readonly resume: () => void
  /** Undoes `resume` (the committed offset turned out to be reclaimed already): cut off again, holding nothing. */
  readonly relinquish: () => void
}

/** The rules of named consumers: what `Consumers` gives an app, and what it keeps for cxlog's own. */
export interface ConsumerRules {
  /**
   * Joins consumer `name` of `topic` as its active member, creating it at `initial` (an offset and
   * the batch holding it) when it does not exist. Fails with `ConsumerBusy` while a live member holds it.
   */
  readonly join: (
    topic: string,
    name: string,
    initial: { readonly offset: number; readonly globalSeq: number }
  ) => Effect.Effect<ConsumerLease, ConsumerError | TopicNotFound, Scope.Scope>
  readonly list: (topic: string) => Effect.Effect<ReadonlyArray<ConsumerInfo>, TopicNotFound>
  /**
   * Deletes a consumer that has no live member (its retention is released); false if there was
   * none. A live member fails it with `ConsumerBusy`, another process deleting it at the same
   * time with `ConsumerBeingDeleted`: it never answers true without deleting.
   */
  readonly remove: (
    topic: string,
    name: string
  ) => Effect.Effect<boolean, ConsumerBusy | ConsumerBeingDeleted | ConsumerNameInvalid | TopicNotFound>
}

/**
 * A name starting with this is cxlog's own consumer (a consumer group's hold on its topic,
 * docs/consumers.md): an app's `join` and `remove` refuse it with `ConsumerNameInvalid`, and
 * `list` leaves it out.
 */
export const OWN_CONSUMER_PREFIX = "$"

export interface ConsumersShape extends ConsumerRules {
  /** The same rules for cxlog's own consumers: names that start with OWN_CONSUMER_PREFIX, and only those. */
  readonly own: ConsumerRules
}

export class Consumers extends Context.Tag("cxlog/Consumers")<Consumers, ConsumersShape>() {}

export class ConsumerBusy
  extends Data.TaggedError("ConsumerBusy")<{ readonly topic: string; readonly name: string; readonly pid: number }>
{
  override get message() {
    // A remote subscriber is told only that the consumer is busy (pid 0), not whose process holds it.
    return `topic ${this.topic}: consumer ${JSON.stringify(this.name)} has an active member${
      this.pid > 0 ? ` (pid ${this.pid})` : ""
    }; one member reads at a time`
  }
}

/** Another live process is deleting the consumer (its pid marks the consumer's line meanwhile). */
export class ConsumerBeingDeleted extends Data.TaggedError("ConsumerBeingDeleted")<
  { readonly topic: string; readonly name: string; readonly pid: number }
> {
  override get message() {
    return `topic ${this.topic}: consumer ${
      JSON.stringify(this.name)
    } is being deleted by process ${this.pid}; try again once that process has exited`
  }
}

export class ConsumerTableFull
  extends Data.TaggedError("ConsumerTableFull")<{ readonly topic: string; readonly slots: number }>
{
  override get message() {
    // A broker's refusal does not say how many (0): "all its".
    return `topic ${this.topic}: all ${
      this.slots === 0 ? "its" : this.slots
    } subscriber lines are taken by consumers and durable subscribers (raise CXLOG_LOG_SUBSCRIBER_SLOTS, or delete a consumer)`
  }
}

export class ConsumerNameInvalid
  extends Data.TaggedError("ConsumerNameInvalid")<{ readonly name: string; readonly reason: string }>
{
  override get message() {
    return `consumer name ${JSON.stringify(this.name)}: ${this.reason}`
  }
}

/**
 * The consumer was cut off: its hold kept publishers waiting for room past the bound
 * (CXLOG_CONSUMER_HOLD_MS), and retention no longer waits for it. `earliest` is the oldest
 * offset the topic still holds when this is reported.
 */
export class ConsumerCutOff extends Data.TaggedError("ConsumerCutOff")<{
  readonly topic: string
  readonly name: string
  readonly committed: number
  readonly earliest: number
}> {
  override get message() {
    return `topic ${this.topic}: consumer ${
      JSON.stringify(this.name)
    } was cut off: its committed offset ${this.committed} kept publishers waiting ` +
      `past CXLOG_CONSUMER_HOLD_MS, and retention no longer waits for it (oldest offset held: ${this.earliest}); ` +
      `subscribe as it again to resume at ${this.committed} while that is held, else remove it (cxlog consumers --remove) and create it again`
  }
}

export type ConsumerError = ConsumerBusy | ConsumerTableFull | ConsumerNameInvalid
