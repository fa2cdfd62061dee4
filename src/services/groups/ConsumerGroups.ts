/**
 * ConsumerGroups: a pool of members sharing one topic's messages — each message to one member at
 * a time, acknowledged one by one, delivered again when its member naks it, holds it past
 * `ackWaitMs` or dies, and sent to a dead-letter topic after `maxDeliver` deliveries or a `term`.
 * With `byKey`, messages of one key go to one member while it lives, in offset order. A group is
 * a named object of the region's directory (kind "group"), shared by every process that maps
 * the region; its members coordinate through it lock-free. docs/consumers.md says exactly what
 * is promised.
 */
import { Context, Data, type Effect, Schema, type Stream } from "effect"
import type { CoordinatorUnavailable } from "../control/Coordinator.js"
import type { HeadUnavailable } from "../log/HeadWatch.js"
import type { LogCorrupt, TopicDeleted, TopicForbidden, TopicNotFound } from "../log/Topics.js"
import type { MessageHeader } from "../net/Subscriber.js"
import type {
  DirectoryFull,
  HolderLinesFull,
  InvalidObjectName,
  NotDirectoryWriter,
  RegionFull
} from "../region/Directory.js"

/** Where a new group starts reading its topic. */
export type GroupStart =
  | "earliest"
  | "latest"
  | { readonly offset: number }
  /** The first message stamped at or after this time (ms since the epoch). */
  | { readonly time: number }

export interface GroupSpec {
  readonly name: string
  readonly topic: string
  /** Messages of one key go to one member while it lives, in offset order. */
  readonly byKey?: boolean
  /** How long a member may hold a message unacked before another may take it (default CXLOG_GROUP_ACK_WAIT_MS). */
  readonly ackWaitMs?: number
  /** Deliveries before the dead letters (default CXLOG_GROUP_MAX_DELIVER; 0: no limit). */
  readonly maxDeliver?: number
  /** The topic terminated and undeliverable messages go to, with headers saying why; without one they are counted and dropped. */
  readonly deadLetterTopic?: string
  /** Default "earliest". */
  readonly start?: GroupStart
  /** The most members at once (default CXLOG_GROUP_MEMBER_SLOTS). */
  readonly memberSlots?: number
  /** The most messages handed out and not settled at once (default CXLOG_GROUP_PENDING_SLOTS). */
  readonly pendingSlots?: number
  /**
   * Whether the group holds its topic's retention (default true; docs/consumers.md, "Held by the
   * group"): false leaves what the group has not settled to the topic's memory alone, publishers
   * never waiting for the group (a group far behind then fails with `GroupBehindRetention`).
   */
  readonly holdRetention?: boolean
}

export interface GroupMember {
  readonly pid: number
  /** Its line in the group's member table. */
  readonly slot: number
  readonly joinedAtMs: number
  readonly maxInFlight: number
  /** Messages it holds now (delivered, not settled). */
  readonly pending: number
  readonly delivered: number
  readonly acked: number
  /** byKey: the key buckets it owns. */
  readonly buckets: number
  /**
   * Its process is stopped (SIGSTOP, a debugger): alive, so it keeps what it holds — its messages
   * until their ackWait, byKey its buckets and their messages — until it runs again. Absent otherwise.
   */
  readonly stopped?: boolean
}

/** What a group was made with, as its object keeps it and its info says it. */
export interface GroupMade {
  readonly topic: string
  readonly byKey: boolean
  readonly ackWaitMs: number
  /** Deliveries a message gets before it goes to the dead letters; 0: no limit. */
  readonly maxDeliver: number
  readonly deadLetterTopic: string | undefined
  readonly startOffset: number
  readonly createdAtMs: number
  readonly memberSlots: number
  readonly pendingSlots: number
  readonly holdRetention: boolean
}

export interface GroupInfo extends GroupMade {
  readonly name: string
  /** Its topic was deleted (a topic of the name made since is another): its members get `GroupTopicGone`; delete the group. */
  readonly topicGone: boolean
  /** The next offset to hand out (byKey: the lowest of its buckets'). */
  readonly frontier: number
  /** The topic's end now, and how far the frontier is behind it. */
  readonly end: number
  readonly lag: number
  /**
   * The group needs an offset its topic no longer holds (a trim, a hold cut off, a topic that
   * discards old messages): its members fail with `GroupBehindRetention`. Absent while it is not.
   */
  readonly behindRetention?: { readonly needs: number; readonly earliest: number }
  /**
   * Where the group holds its topic's retention (docs/consumers.md, "Held by the group"): its
   * topic keeps every message from this offset on while its memory makes publishers wait; none
   * when the group holds nothing (its topic discards old messages, or the hold was cut off).
   */
  readonly heldFrom: number | undefined
  /** Its hold kept publishers waiting past CXLOG_CONSUMER_HOLD_MS and was cut off; taken again once the group caught up. */
  readonly holdCutOff: boolean
  readonly members: ReadonlyArray<GroupMember>
  /** Messages handed out and not settled (delivered, or waiting to be delivered again). */
  readonly pending: number
  /** How long ago the oldest pending message was first delivered. */
  readonly oldestPendingAgeMs: number | undefined
  readonly redeliveries: number
  /** Redeliveries because a message's ackWait ran out. */
  readonly expired: number
  readonly deadLetters: number
  readonly acked: number
}

export interface PendingMessage {
  readonly offset: number
  /** "delivered": a member holds it; "waiting": nak'd, due again at `deadlineMs`; "claiming": being handed out. */
  readonly state: "claiming" | "delivered" | "waiting"
  /** The member's pid (undefined while waiting, or when its member is gone). */
  readonly memberPid: number | undefined
  readonly deliveries: number
  readonly deadlineMs: number
  readonly firstDeliveredAtMs: number
}

/** One message handed to a member. Settle it once: `ack`, `nak` or `term`. */
export interface Delivery {
  readonly group: string
  readonly topic: string
  readonly offset: number
  readonly timestamp: number
  readonly key: Uint8Array | undefined
  readonly headers: ReadonlyArray<MessageHeader> | undefined
  readonly value: Uint8Array
  /** 1 the first time; more when it was delivered before (nak'd, held past ackWait, or its member died). */
  readonly deliveryCount: number
  /** Done: never again. False when it was no longer this member's (held past ackWait and taken over, or settled already). */
  readonly ack: Effect.Effect<boolean>
  /**
   * Deliver it again, to any member, after `delayMs` (default 0; a whole number of ms up to
   * MAX_NAK_DELAY_MS, else `InvalidNakDelay` and nothing settled); after `maxDeliver` deliveries
   * it goes to the dead letters instead.
   */
  readonly nak: (delayMs?: number) => Effect.Effect<boolean, DeadLetterFailed | InvalidNakDelay>
  /** Never deliver it again: to the dead-letter topic, with `reason` (an Error: its message). */
  readonly term: (reason?: string) => Effect.Effect<boolean, DeadLetterFailed>
  /** Still working on it: its ackWait starts again. */
  readonly inProgress: Effect.Effect<boolean>
}

export interface JoinOptions {
  /** Messages this member holds at once, delivered and not settled (default CXLOG_GROUP_MAX_IN_FLIGHT). */
  readonly maxInFlight?: number
}

/**
 * What keeps a broker from answering for the groups (their layer through brokers only): the
 * user's rights on the group's topic, or no broker reachable.
 */
export type GroupRemoteError = TopicForbidden | GroupsUnavailable

/** Every group `list` gives, and the groups it leaves out because their objects do not read as groups. */
export interface GroupsOverview {
  readonly groups: ReadonlyArray<GroupInfo>
  /** Each group of the region that cannot be read, as its `describe` fails (through brokers: those the user may delete). */
  readonly unreadable: ReadonlyArray<GroupCorrupt>
}

export interface ConsumerGroupsShape {
  readonly create: (spec: GroupSpec) => Effect.Effect<GroupInfo, GroupCreateError>
  readonly describe: (name: string) => Effect.Effect<GroupInfo, GroupNotFound | GroupCorrupt | GroupRemoteError>
  /** Every group that reads as one (through brokers: those the user may use), by name. */
  readonly list: Effect.Effect<ReadonlyArray<GroupInfo>, GroupRemoteError>
  /** `list`, with the groups it leaves out because they cannot be read, so that none is left out in silence. */
  readonly overview: Effect.Effect<GroupsOverview, GroupRemoteError>
  /** The messages handed out and not settled, oldest offset first. */
  readonly pending: (
    name: string
  ) => Effect.Effect<ReadonlyArray<PendingMessage>, GroupNotFound | GroupCorrupt | GroupRemoteError>
  /** Deletes the group: its name is free at once; its members' next look fails with `GroupDeleted`. */
  readonly delete: (
    name: string
  ) => Effect.Effect<
    void,
    GroupNotFound | NotDirectoryWriter | CoordinatorUnavailable | HeadUnavailable | GroupRemoteError
  >
  /**
   * Joins as a member for as long as the stream runs: the messages this member is given, each to
   * be settled. Leaving (the stream ends, or is interrupted) hands what it holds to the others at once.
   */
  readonly join: (name: string, options?: JoinOptions) => Stream.Stream<Delivery, GroupJoinError>
}

export class ConsumerGroups extends Context.Tag("cxlog/ConsumerGroups")<ConsumerGroups, ConsumerGroupsShape>() {}

export class GroupNotFound extends Schema.TaggedError<GroupNotFound>()("GroupNotFound", { group: Schema.String }) {
  override get message() {
    return `no consumer group named ${JSON.stringify(this.group)}`
  }
}

export class GroupExists extends Schema.TaggedError<GroupExists>()("GroupExists", { group: Schema.String }) {
  override get message() {
    return `a consumer group named ${JSON.stringify(this.group)} exists already`
  }
}

export class InvalidGroupSpec extends Schema.TaggedError<InvalidGroupSpec>()("InvalidGroupSpec", {
  group: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `consumer group ${JSON.stringify(this.group)}: ${this.reason}`
  }
}

/**
 * The group's object does not read as a group (another build's layout, or damaged): nothing of it
 * is used. Deleting it (which needs nothing of it read) frees its name and memory. `brokers`: the
 * brokers it was told through (set by the client that asked them, never sent), so that the
 * delete it names is one that works from where it was asked.
 */
export class GroupCorrupt extends Schema.TaggedError<GroupCorrupt>()("GroupCorrupt", {
  group: Schema.String,
  reason: Schema.String,
  brokers: Schema.optionalWith(Schema.String, { exact: true })
}) {
  override get message() {
    const remedy = this.brokers === undefined
      ? `cxlog groups delete ${this.group}`
      : `cxlog groups --brokers ${this.brokers} delete ${this.group}, as a user with the admin right on every topic`
    return `consumer group ${
      JSON.stringify(this.group)
    } cannot be read: ${this.reason}; delete it (${remedy}) and create it again`
  }
}

export class GroupDeleted extends Schema.TaggedError<GroupDeleted>()("GroupDeleted", { group: Schema.String }) {
  override get message() {
    return `consumer group ${JSON.stringify(this.group)} was deleted`
  }
}

export class GroupMembersFull extends Schema.TaggedError<GroupMembersFull>()("GroupMembersFull", {
  group: Schema.String,
  slots: Schema.Int
}) {
  override get message() {
    return `consumer group ${
      JSON.stringify(this.group)
    }: all ${this.slots} member slots have live members (create the group with more: memberSlots)`
  }
}

/** The members' `maxInFlight` together would exceed the group's pending table. */
export class GroupPendingFull extends Schema.TaggedError<GroupPendingFull>()("GroupPendingFull", {
  group: Schema.String,
  slots: Schema.Int,
  inFlight: Schema.Int
}) {
  override get message() {
    return `consumer group ${
      JSON.stringify(this.group)
    }: its members would hold ${this.inFlight} messages at once, its pending table has ${this.slots} entries (join with a lower maxInFlight, or create the group with more pendingSlots)`
  }
}

/** The topic no longer holds messages the group must hand out: nothing is skipped, the group stops there. */
export class GroupBehindRetention extends Schema.TaggedError<GroupBehindRetention>()("GroupBehindRetention", {
  group: Schema.String,
  topic: Schema.String,
  /** The offset the group needed. */
  requested: Schema.Number,
  /** The oldest offset the topic holds now, and its end. */
  earliest: Schema.Number,
  end: Schema.Number
}) {
  override get message() {
    return `consumer group ${
      JSON.stringify(this.group)
    }: topic ${this.topic} no longer holds offset ${this.requested} (it holds [${this.earliest}, ${this.end})): offsets ${this.requested} to ${
      this.earliest - 1
    } were dropped before the group handed them out; delete the group and create it again to go on from ${this.earliest}`
  }
}

/** The group's topic was deleted (and maybe created again: the group belongs to the one it was created on). */
export class GroupTopicGone extends Schema.TaggedError<GroupTopicGone>()("GroupTopicGone", {
  group: Schema.String,
  topic: Schema.String
}) {
  override get message() {
    return `consumer group ${JSON.stringify(this.group)}: its topic ${this.topic} was deleted; delete the group`
  }
}

/** A dead letter could not be written: the message stays pending and is delivered again. */
/** The longest a nak may delay a message's next delivery (2^32 - 1 ms, about 49.7 days: as long as an ackWait may be). */
export const MAX_NAK_DELAY_MS = 2 ** 32 - 1

/** Why `delayMs` cannot be a nak's delay, or undefined. */
export const nakDelayProblem = (delayMs: number | undefined): string | undefined =>
  delayMs === undefined || (Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= MAX_NAK_DELAY_MS)
    ? undefined
    : `a nak's delay is a whole number of milliseconds from 0 to ${MAX_NAK_DELAY_MS}, not ${delayMs}`

/** A nak asked for a delay that cannot be (`nakDelayProblem`): nothing was settled, the message is still the member's. */
export class InvalidNakDelay extends Data.TaggedError("InvalidNakDelay")<{
  readonly group: string
  /** The message nak'd; undefined when the delay was refused before any message (CxlogGroup.process). */
  readonly offset: number | undefined
  readonly reason: string
}> {
  override get message() {
    const of = this.offset === undefined ? "" : ` (offset ${this.offset})`
    return `consumer group ${JSON.stringify(this.group)}${of}: ${this.reason}`
  }
}

export class DeadLetterFailed extends Schema.TaggedError<DeadLetterFailed>()("DeadLetterFailed", {
  group: Schema.String,
  topic: Schema.String,
  offset: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `consumer group ${
      JSON.stringify(this.group)
    }: the dead letter of ${this.topic} offset ${this.offset} was not written (${this.reason}); the message stays pending`
  }
}

/**
 * Through brokers: no broker took the connection, or it broke (a call in flight then has an
 * unknown outcome; a member's deliveries are the group's again, delivered to another member).
 */
export class GroupsUnavailable extends Schema.TaggedError<GroupsUnavailable>()("GroupsUnavailable", {
  reason: Schema.String
}) {
  override get message() {
    return `consumer groups unavailable: ${this.reason}`
  }
}

export type GroupCreateError =
  | GroupExists
  | InvalidGroupSpec
  | TopicNotFound
  | DirectoryFull
  | RegionFull
  | InvalidObjectName
  | NotDirectoryWriter
  | CoordinatorUnavailable
  | HeadUnavailable
  | GroupRemoteError

export type GroupJoinError =
  | InvalidGroupSpec
  | GroupNotFound
  | GroupCorrupt
  | GroupDeleted
  | GroupMembersFull
  | GroupPendingFull
  | GroupBehindRetention
  | GroupTopicGone
  | TopicNotFound
  | TopicDeleted
  | LogCorrupt
  | HeadUnavailable
  | HolderLinesFull
  | GroupRemoteError
