/**
 * Consumers: a topic's named consumers — Kafka's consumer group on one partition, JetStream's
 * durable consumer. A consumer is a name with a committed offset, kept in the region, that
 * holds retention: brokers keep everything from the batch holding its committed offset on
 * (publishers get backpressure instead of it losing data), whether or not a member is
 * reading. One member is active at a time (a lease: the member's pid, taken by
 * compare-and-swap); when it dies or leaves, the next to join takes over at the committed
 * offset. Delivery is at-least-once: what a member read after its last commit is delivered
 * again to the next one.
 */
import { Context, Data, type Effect, type Scope } from "effect"
import type { TopicNotFound } from "./Topics.js"

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
   * total order (the batch it starts, when it is the first of one): retention is released up to that batch.
   */
  readonly commit: (offset: number, globalSeq: number) => void
}

export interface ConsumersShape {
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
  /** Deletes a consumer that has no live member (its retention is released); false if there was none. */
  readonly remove: (topic: string, name: string) => Effect.Effect<boolean, ConsumerBusy | TopicNotFound>
}

export class Consumers extends Context.Tag("cxlog/Consumers")<Consumers, ConsumersShape>() {}

export class ConsumerBusy extends Data.TaggedError("ConsumerBusy")<{ readonly topic: string; readonly name: string; readonly pid: number }> {
  override get message() {
    return `topic ${this.topic}: consumer ${JSON.stringify(this.name)} has an active member (pid ${this.pid}); one member reads at a time`
  }
}

export class ConsumerTableFull extends Data.TaggedError("ConsumerTableFull")<{ readonly topic: string; readonly slots: number }> {
  override get message() {
    return `topic ${this.topic}: all ${this.slots} subscriber lines are taken by consumers and durable subscribers (raise CXLOG_LOG_SUBSCRIBER_SLOTS, or delete a consumer)`
  }
}

export class ConsumerNameInvalid extends Data.TaggedError("ConsumerNameInvalid")<{ readonly name: string; readonly reason: string }> {
  override get message() {
    return `consumer name ${JSON.stringify(this.name)}: ${this.reason}`
  }
}

export type ConsumerError = ConsumerBusy | ConsumerTableFull | ConsumerNameInvalid
