/**
 * DiskCopies: the copies on disk of the topics with replication factor 2, as the head keeps them
 * (its durable tier, in its data directory). Deleting such a topic deletes its copy first: the
 * head's `Topics.delete` stops the topic's writers and removes its streams before the topic's
 * name leaves the region's directory, so no crash in between can leave a copy that a later
 * `--recover` would bring the deleted topic back from.
 */
import { Context, type Effect } from "effect"
import type { TopicInfo, TopicNotDeletable } from "./Topics.js"

export interface DiskCopiesShape {
  /** Whether this head keeps copies at all (it has a data directory): a topic with one can be created only then. */
  readonly keeps: boolean
  /**
   * Stops the topic's writers (they finish what they hold) and removes its streams, data and
   * state, for good; its writers are not started again. `TopicNotDeletable` when the disk refused.
   */
  readonly remove: (topic: TopicInfo) => Effect.Effect<void, TopicNotDeletable>
  /** The topic's writers run until `stop` (the durable tier says so when it starts them); false once the topic's copy was removed: do not start them. */
  readonly persisting: (topic: TopicInfo, stop: Effect.Effect<void>) => Effect.Effect<boolean>
  /** The topic is no longer in the region's directory: its writers were stopped; forget it. */
  readonly gone: (topic: TopicInfo) => Effect.Effect<void>
  /**
   * A topic with a copy was just created: wakes the durable tier to start its writers at once and
   * resolves true once their cursor holds the topic's retention — from then on nothing published
   * to it is recycled before it is on disk — or false after `timeoutMs`. True at once before the
   * tier's first look: the head's start waits for those writers itself.
   */
  readonly awaitWriting: (topic: TopicInfo, timeoutMs: number) => Effect.Effect<boolean>
  /** The durable tier: the topic's writer holds its retention now (`awaitWriting` resolves). */
  readonly writing: (topic: TopicInfo) => Effect.Effect<void>
  /** The durable tier's pause between its looks at the topics: `ms`, or until an `awaitWriting` asks for one. */
  readonly pause: (ms: number) => Effect.Effect<void>
}

export class DiskCopies extends Context.Tag("cxlog/DiskCopies")<DiskCopies, DiskCopiesShape>() {}
