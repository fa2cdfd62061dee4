/**
 * Topics: the region's topics, objects of its directory. A topic has a name, an order mode, an
 * ACK level, a replication factor and its memory; creating one (the head does, for the
 * coordinator) allocates its extent and makes its PBRs, Blogs, GOI and session table live.
 * Every process can look topics up and describe them; a process without the region reaches
 * them through a broker (TopicsRemote.ts), whose failures the `TopicsRemoteError`s name.
 */
import { Context, Data, Effect, ParseResult, Schema } from "effect"
import { firstIssueLine } from "../../SchemaIssues.js"
import type { DirectoryFull, NotDirectoryWriter, RegionFull } from "../region/Directory.js"
import type { HeadUnavailable } from "./HeadWatch.js"
import { OrderMode, orderPolicy } from "./OrderModes.js"

export { OrderMode } from "./OrderModes.js"

/** 0: no ACK; 1: ordered (mode 0: written); 2: replicated to RF copies. */
export const AckLevel = Schema.Literal(0, 1, 2)
export type AckLevel = typeof AckLevel.Type

export const TopicName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9._-]{1,100}$/, { message: () => "a topic name is 1 to 100 of A-Z a-z 0-9 . _ -" })
)

/** How much of a replication factor 2 topic's stream the disk keeps (whole old segments are deleted past either bound); the hot tier's size is separate. */
export const DiskRetention = Schema.Struct({
  maxBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)), { exact: true }),
  maxAgeMs: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)), { exact: true })
})
export type DiskRetention = typeof DiskRetention.Type

/**
 * What a topic keeps in the region besides what its memory bounds: messages younger than
 * `maxAgeMs`, the last `maxMessages` (the oldest go, whole batches: a batch holding a kept message
 * stays), and what happens when its memory is full: `new` (the default) makes publishers wait for
 * the named consumers and durable cursors that hold the oldest (backpressure, bounded by the
 * consumer hold: CXLOG_CONSUMER_HOLD_MS), `old` lets the oldest go whatever reads them (a reader
 * behind gets LogOutOfRange naming the earliest offset; publishers never wait on a reader).
 */
export const Discard = Schema.Literal("old", "new")
export type Discard = typeof Discard.Type

export const Retention = Schema.Struct({
  maxAgeMs: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)), { exact: true }),
  maxMessages: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)), { exact: true }),
  discard: Schema.optionalWith(Discard, { exact: true })
})
export type Retention = typeof Retention.Type

/**
 * The replication factors the log builds: 1, the region alone; 2, the region and a copy on the
 * head's disk (docs/durability.md). A spec may say up to 16; more than 2 is `ReplicationUnavailable`.
 */
export const REPLICATION_FACTORS: ReadonlyArray<number> = [1, 2]

/** The most writers a topic's memory may be sized for. */
export const MAX_TOPIC_WRITERS = 64

export const TopicSpec = Schema.Struct({
  name: TopicName,
  order: OrderMode,
  ackLevel: AckLevel,
  /** Copies of each batch, the region's included. */
  replicationFactor: Schema.Int.pipe(Schema.between(1, 16)),
  /** Replication factor 2: the disk copy's retention (absent: kept whole). */
  diskRetention: Schema.optionalWith(DiskRetention, { exact: true }),
  /**
   * The memory its writer lanes share, in bytes (absent: CXLOG_TOPIC_MEMORY): each writer's lane
   * (PBR and Blog) takes memory / writers, down to a power of two, when that writer first writes;
   * its records and GOI take a little more. What a topic holds is bounded by it.
   */
  memory: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)), { exact: true }),
  /** How many writers (brokers, local publishers) may each have a lane (absent: CXLOG_TOPIC_WRITERS). */
  writers: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, MAX_TOPIC_WRITERS)), { exact: true }),
  /**
   * The largest message it takes, key and headers included (absent: what its lanes allow, two
   * batches to a Blog, within CXLOG_LOG_MAX_BATCH_BYTES). Its info says the limit in force.
   */
  maxMessageBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)), { exact: true }),
  /** Its retention in the region (absent: what its memory holds, discard `new`); a copy on disk has its own (`diskRetention`). */
  retention: Schema.optionalWith(Retention, { exact: true })
})
export type TopicSpec = typeof TopicSpec.Type

/** The order, ACK level and replication factor a topic gets when its spec leaves them out, as `cxlog topics create` gives them. */
export const TOPIC_SPEC_DEFAULTS = { order: 5, ackLevel: 1, replicationFactor: 1 } as const

/** A spec as the Promise facade takes it: order, ACK level and replication factor may be left out (`TOPIC_SPEC_DEFAULTS`). */
export type TopicSpecInput =
  & Omit<TopicSpec, keyof typeof TOPIC_SPEC_DEFAULTS>
  & Partial<Pick<TopicSpec, keyof typeof TOPIC_SPEC_DEFAULTS>>

/** `spec` with the defaults for what it leaves out; anything but an object as it is (the spec's check names it). */
export const withSpecDefaults = (spec: TopicSpecInput): TopicSpec => {
  if (typeof spec !== "object" || spec === null) return spec as TopicSpec
  return {
    ...spec,
    order: spec.order ?? TOPIC_SPEC_DEFAULTS.order,
    ackLevel: spec.ackLevel ?? TOPIC_SPEC_DEFAULTS.ackLevel,
    replicationFactor: spec.replicationFactor ?? TOPIC_SPEC_DEFAULTS.replicationFactor
  }
}

/**
 * What a well-formed spec asks that its own fields rule out, in words (undefined: nothing): a
 * copy on disk outside order 5, a disk retention without a copy on disk.
 */
export const topicSpecConflict = (spec: TopicSpec): string | undefined =>
  // A session's durable frontier is its last batch on disk + 1: true only when its batches are ordered in seq order.
  spec.replicationFactor === 2 && !orderPolicy(spec.order).sessionInSequence
    ? "replication factor 2 needs order 5 (each session's batches ordered in sequence)"
    : spec.diskRetention !== undefined && spec.replicationFactor < 2
    ? "a disk retention needs replication factor 2 (a copy on disk)"
    : spec.retention !== undefined && spec.replicationFactor > 1
    ? "a topic with a copy on disk keeps every batch until it is written there: give its disk copy a retention (diskRetention) instead of one in the region"
    : undefined

/**
 * A topic as the log knows it: its spec, its id (its directory slot) and its generation (the
 * directory's count at its create), which together name this very topic, not a later one made
 * in the same slot or under the same name after a delete.
 */
export const TopicInfo = Schema.Struct({ ...TopicSpec.fields, id: Schema.Int, generation: Schema.Int })
export type TopicInfo = typeof TopicInfo.Type

/**
 * Where a trim cuts a topic: before message offset `beforeOffset`, so only the last `keepMessages`
 * stay, or before the first message stamped at or after `beforeTime` (ms since the epoch).
 */
export const TrimTarget = Schema.Union(
  Schema.Struct({ beforeOffset: Schema.Int.pipe(Schema.nonNegative()) }),
  Schema.Struct({ keepMessages: Schema.Int.pipe(Schema.nonNegative()) }),
  Schema.Struct({ beforeTime: Schema.Int.pipe(Schema.nonNegative()) })
)
export type TrimTarget = typeof TrimTarget.Type

/** The message offsets a topic holds: `earliest` .. `end - 1` (none when they are equal); offsets only grow. */
export const TopicBounds = Schema.Struct({ earliest: Schema.Int, end: Schema.Int })
export type TopicBounds = typeof TopicBounds.Type

/** Why a create found no room: the directory's slots, or the heap's space (each names what holds it and what would free it). */
export type TopicSpaceError = DirectoryFull | RegionFull

const Count = Schema.Int.pipe(Schema.nonNegative())

/** A reader registered on a topic (not a named consumer): its process, and whether its cursor holds retention. */
export const TopicSubscriber = Schema.Struct({
  pid: Schema.Int,
  alive: Schema.Boolean,
  /** A durable cursor: it holds retention at its cursor, `behindBatches` behind the topic's ordered batches. */
  durable: Schema.Boolean,
  behindBatches: Count
})
export type TopicSubscriber = typeof TopicSubscriber.Type

/** A named consumer of a topic: its committed offset, how far behind the end, its member (0: none), whether it was cut off. */
export const TopicConsumer = Schema.Struct({
  name: Schema.String,
  committed: Count,
  lag: Count,
  member: Schema.Int,
  cutOff: Schema.Boolean
})
export type TopicConsumer = typeof TopicConsumer.Type

/** A topic as it is now: what it is (its info), the memory it takes, the offsets it holds, who writes and reads it. */
export const TopicDescription = Schema.Struct({
  ...TopicInfo.fields,
  /** The memory its writers' lanes share, what it holds of the heap now (its records and the lanes written), its lanes, and each lane's Blog. */
  memoryBytes: Count,
  usedBytes: Count,
  lanes: Count,
  blogBytesPerLane: Count,
  /** Message offsets held: earliest .. end-1 (none when earliest = end). */
  earliest: Count,
  end: Count,
  /** Batches in the total order. */
  orderedBatches: Count,
  /** Publisher session lines in use, of `sessionSlots`. */
  sessions: Count,
  sessionSlots: Count,
  /** Readers with a durable cursor, each holding retention at it: a reader without one takes no line here and is not listed. */
  subscribers: Schema.Array(TopicSubscriber),
  consumers: Schema.Array(TopicConsumer),
  /** Set when the head stopped writing its copy on disk (replication factor 2), and why: its ACK 2 is refused until a head writes it again. */
  diskCopyStopped: Schema.optionalWith(Schema.Literal("disk-full", "stopped"), { exact: true })
})
export type TopicDescription = typeof TopicDescription.Type

/** The memory topics (and the region's other named objects) take their extents from: the directory's heap. */
export const TopicsHeap = Schema.Struct({ heapBytes: Count, freeBytes: Count, largestFreeBytes: Count })
export type TopicsHeap = typeof TopicsHeap.Type

/** Every topic described, with the memory left. */
/**
 * A topic of the region that a list leaves out because it cannot be read (a corrupt region): its name and why.
 * A directory entry that cannot be read, its name neither, is said by its `slot` (`name` empty), `reason`
 * saying what it holds and what frees it: it may be a topic's, and it holds the region's memory.
 */
export const UnreadableTopic = Schema.Struct({
  name: Schema.String,
  reason: Schema.String,
  slot: Schema.optionalWith(Schema.Int, { exact: true })
})
export type UnreadableTopic = typeof UnreadableTopic.Type

/** Every topic described, the heap, and the topics that cannot be read (absent: none, or an older broker's answer). */
export const TopicsOverview = Schema.Struct({
  topics: Schema.Array(TopicDescription),
  heap: TopicsHeap,
  unreadable: Schema.optionalWith(Schema.Array(UnreadableTopic), { exact: true })
})
export type TopicsOverview = typeof TopicsOverview.Type

/**
 * Why a call through a broker (TopicsRemote.ts) was not answered by the region: the user's
 * rights, the head, or the brokers themselves. The region's own layers never fail so.
 */
export type TopicsRemoteError = TopicForbidden | HeadUnavailable | TopicsUnavailable

const REMOTE_ERROR_TAGS: ReadonlySet<unknown> = new Set(["TopicForbidden", "HeadUnavailable", "TopicsUnavailable"])
const isRemoteError = (e: unknown): e is TopicsRemoteError =>
  typeof e === "object" && e !== null && REMOTE_ERROR_TAGS.has((e as { readonly _tag?: unknown })._tag)

/**
 * A call of the region's own Topics (the head's, a broker's: never through a broker), typed
 * without the `TopicsRemoteError`s it cannot fail with; one would be a defect.
 */
export const withinRegion = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, TopicsRemoteError>, R> =>
  Effect.catchIf(effect, (e): e is Extract<E, TopicsRemoteError> => isRemoteError(e), Effect.die) as Effect.Effect<
    A,
    Exclude<E, TopicsRemoteError>,
    R
  >

/**
 * The Topics service; `Remote`: what reaching the region through brokers adds to each call's
 * failures (`never` for the region's own layers, whose `make` says so).
 */
export interface TopicsShape<Remote extends TopicsRemoteError = TopicsRemoteError> {
  /**
   * Creates a topic (one writer: the head, as the directory's writer; elsewhere NotDirectoryWriter);
   * fails if the name exists or the region has no room for it.
   */
  readonly create: (
    spec: TopicSpec
  ) => Effect.Effect<
    TopicInfo,
    TopicExists | TopicSpaceError | ReplicationUnavailable | InvalidTopicSpec | NotDirectoryWriter | Remote
  >
  readonly lookup: (name: string) => Effect.Effect<TopicInfo, TopicNotFound | Remote>
  readonly list: Effect.Effect<ReadonlyArray<TopicInfo>, Remote>
  /**
   * Deletes a topic (the directory's writer only): its name is free at once, every process that
   * uses it gets `TopicDeleted` (within a tick, 500 ms, of this), and its memory comes back once
   * no live process can still touch it. A replication factor 2 topic's copy on disk goes with it.
   */
  readonly delete: (
    name: string
  ) => Effect.Effect<void, TopicNotFound | TopicNotDeletable | NotDirectoryWriter | Remote>
  /** The topic as it is now (read in place: nothing is joined or held). */
  readonly describe: (name: string) => Effect.Effect<TopicDescription, TopicNotFound | Remote>
  /** Every topic described, and the memory left for more. */
  readonly overview: Effect.Effect<TopicsOverview, Remote>
  /**
   * Drops a topic's oldest messages (the directory's writer only): every message before the
   * target's offset goes at once for readers (a reader behind it gets LogOutOfRange naming the
   * new earliest offset), and their memory is free for what comes next. Offsets go on from where
   * they were; a trim never brings back what an earlier one dropped. Gives the bounds after it.
   */
  readonly trim: (
    name: string,
    target: TrimTarget
  ) => Effect.Effect<TopicBounds, TopicNotFound | TopicNotTrimmable | NotDirectoryWriter | Remote>
  /** Drops every message a topic holds (`trim` to its end): offsets go on from where they were. */
  readonly purge: (
    name: string
  ) => Effect.Effect<TopicBounds, TopicNotFound | TopicNotTrimmable | NotDirectoryWriter | Remote>
}

export class Topics extends Context.Tag("cxlog/Topics")<Topics, TopicsShape>() {}

export class TopicExists extends Schema.TaggedError<TopicExists>()("TopicExists", { name: Schema.String }) {
  override get message() {
    return `topic ${JSON.stringify(this.name)} already exists`
  }
}

export class TopicNotFound extends Schema.TaggedError<TopicNotFound>()("TopicNotFound", {
  name: Schema.String,
  /** Set when a topic that may be this one is in the region but cannot be read: why (a corrupt region). */
  unreadable: Schema.optionalWith(Schema.String, { exact: true })
}) {
  override get message() {
    return this.unreadable === undefined
      ? `unknown topic ${JSON.stringify(this.name)}`
      : `topic ${JSON.stringify(this.name)} cannot be read: ${this.unreadable}`
  }
}

/** The topic was deleted while this was using it (a topic of the same name made since is another topic). */
export class TopicDeleted extends Schema.TaggedError<TopicDeleted>()("TopicDeleted", { name: Schema.String }) {
  override get message() {
    return `topic ${JSON.stringify(this.name)} was deleted`
  }
}

/** A delete the log cannot carry out for this topic (its reason says why and what to do). */
export class TopicNotDeletable
  extends Schema.TaggedError<TopicNotDeletable>()("TopicNotDeletable", { name: Schema.String, reason: Schema.String })
{
  override get message() {
    return `topic ${JSON.stringify(this.name)} cannot be deleted: ${this.reason}`
  }
}

/** A trim or purge the log cannot carry out for this topic (its reason says why and what to do). */
export class TopicNotTrimmable extends Schema.TaggedError<TopicNotTrimmable>()("TopicNotTrimmable", {
  name: Schema.String,
  reason: Schema.String,
  /** What was asked: a purge is a trim of everything, refused for the same reasons, and said as asked (absent: a trim). */
  asked: Schema.optional(Schema.Literal("trim", "purge"))
}) {
  override get message() {
    return `topic ${JSON.stringify(this.name)} cannot be ${
      this.asked === "purge" ? "purged" : "trimmed"
    }: ${this.reason}`
  }
}

export class ReplicationUnavailable extends Schema.TaggedError<ReplicationUnavailable>()("ReplicationUnavailable", {
  name: Schema.String,
  replicationFactor: Schema.Int,
  /** Why this log cannot give it; without one, the factor is more than the region and one disk copy. */
  reason: Schema.optional(Schema.String)
}) {
  override get message() {
    return `topic ${JSON.stringify(this.name)}: replication factor ${this.replicationFactor} ${
      this.reason ??
        "needs more copies than the region and one disk copy, which is not available yet (use 1, or 2 for a copy on disk)"
    }`
  }
}

export class InvalidTopicSpec
  extends Schema.TaggedError<InvalidTopicSpec>()("InvalidTopicSpec", { reason: Schema.String })
{
  override get message() {
    return `invalid topic: ${this.reason}`
  }

  /** A spec that does not decode as a `TopicSpec`, in one line: its first field that is wrong, and how. */
  static ofParseError(name: unknown, error: ParseResult.ParseError): InvalidTopicSpec {
    return new InvalidTopicSpec({ reason: `topic ${typeof name === "string" ? name : "?"}: ${firstIssueLine(error)}` })
  }
}

/**
 * A topic's name as a JavaScript caller gave it, before it is sent: a topic is named by a string,
 * and anything else names no topic (a request that could not be encoded would read as the
 * coordinator or broker failing).
 */
export const checkTopicName = (name: unknown): Effect.Effect<string, TopicNotFound> =>
  typeof name === "string" ? Effect.succeed(name) : Effect.fail(new TopicNotFound({ name: String(name) }))

const isTrimTarget = Schema.is(TrimTarget)

/**
 * `target` checked as a `TrimTarget` before it is sent or used: exactly one of `beforeOffset`,
 * `keepMessages` and `beforeTime`, a whole number 0 or more (a JavaScript caller can pass anything).
 */
export const checkTrimTarget = (name: string, target: unknown): Effect.Effect<TrimTarget, TopicNotTrimmable> =>
  typeof target === "object" && target !== null && Object.keys(target).length === 1 && isTrimTarget(target)
    ? Effect.succeed(target)
    : Effect.fail(
      new TopicNotTrimmable({
        name,
        reason:
          `a trim says where with one of beforeOffset, keepMessages or beforeTime, a whole number 0 or more, not ${
            JSON.stringify(target, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v))
          }`
      })
    )

/** A trim's name and target, both checked before it is sent. */
export const checkTrim = (
  name: string,
  target: TrimTarget
): Effect.Effect<{ readonly name: string; readonly target: TrimTarget }, TopicNotFound | TopicNotTrimmable> =>
  Effect.flatMap(
    checkTopicName(name),
    (checked) => Effect.map(checkTrimTarget(checked, target), (at) => ({ name: checked, target: at }))
  )

/** `spec` checked as a `TopicSpec` before it is sent or used: its fields, and no other. */
export const checkTopicSpec = (spec: unknown): Effect.Effect<TopicSpec, InvalidTopicSpec> =>
  // A field the spec has no such name for is a mistake (`memoryBytes` for `memory`), not left out in silence.
  Schema.decodeUnknown(TopicSpec, { onExcessProperty: "error" })(spec).pipe(
    Effect.mapError((e) =>
      InvalidTopicSpec.ofParseError(
        typeof spec === "object" && spec !== null ? (spec as { name?: unknown }).name : spec,
        e
      )
    )
  )

/**
 * The user this connection authenticated as may not do this to the topic (docs/security.md,
 * "Administering topics"): its reason names the user, the topic and the rights it has.
 */
export class TopicForbidden
  extends Schema.TaggedError<TopicForbidden>()("TopicForbidden", { user: Schema.String, reason: Schema.String })
{
  override get message() {
    return this.reason
  }
}

/**
 * A call through brokers got no answer from the region: no broker took the connection, the one
 * that did went away or refused the request, or the head's coordinator did not answer in time.
 * Its reason says which; whether a change was made is then unknown (`describe` tells).
 */
export class TopicsUnavailable extends Schema.TaggedError<TopicsUnavailable>()("TopicsUnavailable", {
  reason: Schema.String
}) {
  override get message() {
    return `topics unavailable: ${this.reason}`
  }
}

/** A record read from the region failed its bounds or consistency checks. */
export class LogCorrupt extends Data.TaggedError("LogCorrupt")<{ readonly reason: string }> {
  override get message() {
    return `the log is corrupt: ${this.reason}`
  }
}
