/**
 * Coordinator: membership, process groups and barriers. Every process uses this client
 * interface; the coordinator itself runs in the head and answers over RPC.
 */
import { Context, Data, Schema } from "effect"
import type { Effect } from "effect"
import type { HeadUnavailable } from "../log/HeadWatch.js"
import type {
  InvalidTopicSpec,
  ReplicationUnavailable,
  TopicBounds,
  TopicExists,
  TopicInfo,
  TopicNotDeletable,
  TopicNotFound,
  TopicNotTrimmable,
  TopicSpaceError,
  TopicSpec,
  TrimTarget
} from "../log/Topics.js"
import {
  type DirectoryEntry,
  type DirectoryFull,
  type InvalidObjectName,
  MAX_NAME_BYTES,
  MAX_OBJECT_PARAMS,
  type NameTaken,
  type NotDirectoryWriter,
  ObjectKind,
  type ObjectNotFound,
  type RegionFull
} from "../region/Directory.js"
import type { RingAddress } from "./Rings.js"

export const BarrierMode = Schema.Literal("rendezvous", "delivery-fence", "processing-fence")
export type BarrierMode = typeof BarrierMode.Type

export const RoleSchema = Schema.Literal("head", "broker", "client", "worker")

const Slot = Schema.Int.pipe(Schema.between(0, 65_535))
const Occurrence = Schema.Int.pipe(Schema.positive())
const Position = Schema.Number.pipe(
  Schema.int(),
  Schema.nonNegative(),
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER)
)
const Name = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))

/**
 * A ring outside the control layout that a drain target names (a channel's writer ring): the
 * named object it belongs to and where it lies, for the coordinator to read its lines.
 */
export const StreamRing = Schema.Struct({
  name: Name,
  offset: Position,
  dataBytes: Schema.Int.pipe(Schema.positive()),
  readerSlots: Schema.Int.pipe(Schema.between(1, 64))
})
export type StreamRing = typeof StreamRing.Type

/**
 * A stream position a participant had written when it arrived, in its writer's own sequence
 * space: of control ring `ring`, or, with `stream`, of that ring (whose id `ring` is its own).
 */
export const DrainTarget = Schema.Struct({
  ring: Schema.Int.pipe(Schema.nonNegative()),
  occurrence: Occurrence,
  sequence: Position,
  // Exact (absent, never undefined): the arrival stays on the codec's fast path (JsonCodec.ts).
  stream: Schema.optionalWith(StreamRing, { exact: true })
})
export type DrainTarget = typeof DrainTarget.Type

export const Member = Schema.Struct({ slot: Slot, pid: Schema.Int, occurrence: Occurrence, role: RoleSchema })
export type Member = typeof Member.Type

export const Join = Schema.Struct({
  slot: Slot,
  pid: Schema.Int.pipe(Schema.positive()),
  occurrence: Occurrence,
  role: RoleSchema
})
export const Leave = Schema.Struct({ slot: Slot, occurrence: Occurrence })
export const ListMembers = Schema.Struct({ group: Name })
export const CreateGroup = Schema.Struct({ name: Name, members: Schema.Array(Slot) })
export const JoinGroup = Schema.Struct({ name: Name, slot: Slot, occurrence: Occurrence })

/** The longest a barrier may wait: an hour. */
export const MAX_BARRIER_TIMEOUT_MS = 3_600_000
const BarrierTimeoutMs = Schema.Number.pipe(Schema.positive(), Schema.lessThanOrEqualTo(MAX_BARRIER_TIMEOUT_MS))

export const BarrierArrive = Schema.Struct({
  barrier: Name,
  mode: BarrierMode,
  group: Name,
  participant: Slot,
  occurrence: Occurrence,
  drainTargets: Schema.Array(DrainTarget),
  timeoutMs: BarrierTimeoutMs
})
export type BarrierArrive = typeof BarrierArrive.Type

export const DroppedParticipant = Schema.Struct({ participant: Slot, reason: Schema.String })

/** What every participant of a completed round gets back. */
export const BarrierReleased = Schema.Struct({
  barrier: Name,
  round: Schema.Int,
  /** Position in the broadcast ring after the release: each participant's own reader must reach it before returning. */
  releaseWatermark: Position,
  participants: Schema.Array(Slot),
  dropped: Schema.Array(DroppedParticipant),
  /** Bytes of frames the drain waited for between arrival and release, over every (target, reader) pair. */
  drainedBytes: Schema.Number
})
export type BarrierReleased = typeof BarrierReleased.Type

export const UndrainedTarget = Schema.Struct({
  ring: Schema.Int,
  reader: Schema.Int,
  target: Position,
  observed: Schema.Number
})

export class BarrierTimeout extends Schema.TaggedError<BarrierTimeout>()("BarrierTimeout", {
  barrier: Schema.String,
  timeoutMs: Schema.Number,
  notArrived: Schema.Array(Schema.Int),
  undrained: Schema.Array(UndrainedTarget)
}) {
  override get message() {
    const waiting = this.notArrived.length > 0 ? `not arrived: ${this.notArrived.join(", ")}` : ""
    const drains = this.undrained.map((u) => `ring ${u.ring} reader ${u.reader} at ${u.observed} < ${u.target}`).join(
      "; "
    )
    return `barrier ${this.barrier} timed out after ${this.timeoutMs} ms; ${
      [waiting, drains && `not drained: ${drains}`].filter(Boolean).join("; ")
    }`
  }
}

export class BarrierModeMismatch extends Schema.TaggedError<BarrierModeMismatch>()("BarrierModeMismatch", {
  barrier: Schema.String,
  modes: Schema.Array(BarrierMode)
}) {
  override get message() {
    return `barrier ${this.barrier} was entered with mixed modes (${this.modes.join(", ")})`
  }
}

export class BarrierNameReserved
  extends Schema.TaggedError<BarrierNameReserved>()("BarrierNameReserved", { barrier: Schema.String })
{
  override get message() {
    return `barrier names starting with "cxlog." are reserved (${this.barrier})`
  }
}

export class BarrierParticipantDied extends Schema.TaggedError<BarrierParticipantDied>()("BarrierParticipantDied", {
  barrier: Schema.String,
  participant: Schema.Int,
  reason: Schema.String
}) {
  override get message() {
    return `barrier ${this.barrier} failed: participant ${this.participant} died (${this.reason})`
  }
}

export class NotAMember
  extends Schema.TaggedError<NotAMember>()("NotAMember", { slot: Schema.Int, group: Schema.String })
{
  override get message() {
    return `slot ${this.slot} is not a member of group ${this.group}`
  }
}

export class UnknownGroup extends Schema.TaggedError<UnknownGroup>()("UnknownGroup", { group: Schema.String }) {
  override get message() {
    return `no process group named ${this.group}`
  }
}

export class CoordinatorUnavailable extends Schema.TaggedError<CoordinatorUnavailable>()("CoordinatorUnavailable", {
  reason: Schema.String
}) {
  override get message() {
    return `coordinator unavailable: ${this.reason}`
  }
}

/**
 * Every participant arrived (and drained), but the coordinator could not write the release
 * notice to its reply ring (`ring`): it stayed full past the writer's bound. The round ends
 * unreleased; entering the barrier again starts the next round.
 */
export class BarrierReleaseNotSent extends Schema.TaggedError<BarrierReleaseNotSent>()("BarrierReleaseNotSent", {
  barrier: Schema.String,
  round: Schema.Int,
  ring: Schema.Int,
  reason: Schema.String
}) {
  override get message() {
    return `barrier ${this.barrier} round ${this.round} was not released: its notice was not written to reply ring ${this.ring} (${this.reason})`
  }
}

/** A barrier's failures; `CoordinatorUnavailable` also ends a round open when its coordinator closes. */
export const BarrierError = Schema.Union(
  BarrierTimeout,
  BarrierModeMismatch,
  BarrierNameReserved,
  BarrierParticipantDied,
  BarrierReleaseNotSent,
  NotAMember,
  UnknownGroup,
  CoordinatorUnavailable
)
export type BarrierError = typeof BarrierError.Type

/**
 * A barrier's own arguments are ones no coordinator takes (a JavaScript caller can pass
 * anything): refused as the caller's mistake before anything is sent, not as the coordinator
 * being unavailable, which a caller would retry.
 */
export class InvalidBarrierOptions extends Data.TaggedError("InvalidBarrierOptions")<{
  readonly barrier: string
  readonly reason: string
}> {
  override get message() {
    return `barrier ${
      JSON.stringify(this.barrier)
    }: ${this.reason}; nothing was sent (fix the call: it fails this way every time)`
  }
}

const isName = Schema.is(Name)
const isMode = Schema.is(BarrierMode)
const isTimeoutMs = Schema.is(BarrierTimeoutMs)

/** What is wrong with a barrier call's name and options, as the coordinator would refuse them, or undefined. */
export const barrierOptionsProblem = (name: string, options: BarrierOptions): string | undefined => {
  const { group, mode, timeoutMs } = options
  return !isName(name)
    ? "a barrier's name has 1 to 200 characters"
    : !isMode(mode)
    ? `mode ${JSON.stringify(mode)} is none of ${BarrierMode.literals.join(", ")}`
    : group !== undefined && !isName(group)
    ? `group ${JSON.stringify(group)} is no group's name (1 to 200 characters)`
    : timeoutMs !== undefined && !isTimeoutMs(timeoutMs)
    ? `timeoutMs ${timeoutMs} is not a number of milliseconds above 0 and at most ${MAX_BARRIER_TIMEOUT_MS}`
    : undefined
}

/** Rings beyond the control rings that a fence drains: a named object's (a channel's writer rings, src/layers/ipc/ChannelFence.ts). */
export interface FenceStream {
  readonly name: string
  readonly rings: ReadonlyArray<RingAddress>
}

export interface BarrierOptions {
  readonly mode: BarrierMode
  /** Process group; `all` (every live member) by default, `brokers` for brokers. */
  readonly group?: string
  readonly timeoutMs?: number
  /**
   * Fences only: these rings are drained too — each one this process writes, up to where it
   * stands at the arrival, by the group's readers of it (docs/control-plane/barriers.md).
   */
  readonly streams?: ReadonlyArray<FenceStream>
}

/**
 * A named object the head creates for another process: a kind other than a topic (topics have
 * `createTopic`), its main extent's size and parameters, and the bytes its extent starts with —
 * the object's own header, written before the entry is published so no reader finds the name
 * before them (services/region/Directory.ts, `DirectoryWriter.create`).
 */
export const AppObjectKind = Schema.Literal("group", "channel", "service")
export type AppObjectKind = typeof AppObjectKind.Type

/** The most bytes an object's extent may start with when the head creates it (its header). */
export const MAX_INITIAL_OBJECT_BYTES = 64 << 10

const ObjectName = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(MAX_NAME_BYTES))

export const ObjectCreate = Schema.Struct({
  kind: AppObjectKind,
  name: ObjectName,
  bytes: Schema.Int.pipe(Schema.positive(), Schema.lessThanOrEqualTo(2 ** 40)),
  params: Schema.Array(Schema.Number).pipe(Schema.maxItems(MAX_OBJECT_PARAMS)),
  initial: Schema.Uint8ArrayFromBase64.pipe(
    Schema.filter((bytes) => bytes.length <= MAX_INITIAL_OBJECT_BYTES || `at most ${MAX_INITIAL_OBJECT_BYTES} bytes`)
  )
})
export type ObjectCreate = typeof ObjectCreate.Type

/** Which object to remove: its kind and name, and the generation the caller knows (a newer object of the name stays). */
export const ObjectRemove = Schema.Struct({ kind: AppObjectKind, name: ObjectName, generation: Schema.Int })
export type ObjectRemove = typeof ObjectRemove.Type

/** A directory entry as the coordinator answers it. */
export const DirectoryEntrySchema = Schema.Struct({
  slot: Schema.Int,
  generation: Schema.Int,
  kind: ObjectKind,
  name: Schema.String,
  extent: Schema.Struct({ offset: Schema.Number, bytes: Schema.Number }),
  params: Schema.Array(Schema.Number),
  createdAtMs: Schema.Number
})

/**
 * Every process's coordinator client. Its calls (a barrier's aside) are answered by the head's
 * coordinator: one waits for a head that is there or being taken over (a standby that takes the
 * lease over answers it), and fails `HeadUnavailable`, naming the head, once the head has been gone
 * `CXLOG_HEAD_LOST_MS`; a head that holds its lease but does not answer is waited for up to the
 * call's own timeout, then `CoordinatorUnavailable`. A change the head had not read when it was
 * lost is never made (its error says `not read by the head`): a head whose lease lapsed refuses it
 * if it runs again, and a caller still waiting then gets that refusal (`HeadUnavailable`, state
 * `lapse-refused`).
 */
export interface CoordinatorShape {
  /** This process's membership. */
  readonly self: Member
  readonly members: (
    group?: string
  ) => Effect.Effect<ReadonlyArray<Member>, UnknownGroup | CoordinatorUnavailable | HeadUnavailable>
  readonly createGroup: (
    name: string,
    members: ReadonlyArray<number>
  ) => Effect.Effect<void, CoordinatorUnavailable | HeadUnavailable>
  readonly joinGroup: (name: string) => Effect.Effect<void, CoordinatorUnavailable | HeadUnavailable>
  /**
   * Enters barrier `name`. Delivery fence: when it returns, every reader in the group has
   * delivered every stream a participant writes up to where that participant was when it
   * arrived; processing fence: the same for completed handler runs; rendezvous: everyone arrived.
   * Arguments no coordinator takes are `InvalidBarrierOptions`, before anything is sent; a
   * coordinator whose process is gone while it waits is `CoordinatorUnavailable` within a look.
   */
  readonly barrier: (
    name: string,
    options: BarrierOptions
  ) => Effect.Effect<BarrierReleased, BarrierError | CoordinatorUnavailable | InvalidBarrierOptions>
  /** Creates a topic in the region's topic table (the head writes it). */
  readonly createTopic: (
    spec: TopicSpec
  ) => Effect.Effect<
    TopicInfo,
    | TopicExists
    | TopicSpaceError
    | ReplicationUnavailable
    | InvalidTopicSpec
    | NotDirectoryWriter
    | CoordinatorUnavailable
    | HeadUnavailable
  >
  /** Deletes a topic (the head does: `Topics.delete`). */
  readonly deleteTopic: (
    name: string
  ) => Effect.Effect<
    void,
    TopicNotFound | TopicNotDeletable | NotDirectoryWriter | CoordinatorUnavailable | HeadUnavailable
  >
  /** Drops a topic's oldest messages (the head does: `Topics.trim`); the bounds after it. */
  readonly trimTopic: (
    name: string,
    target: TrimTarget
  ) => Effect.Effect<
    TopicBounds,
    TopicNotFound | TopicNotTrimmable | NotDirectoryWriter | CoordinatorUnavailable | HeadUnavailable
  >
  /** Drops every message a topic holds (the head does: `Topics.purge`); offsets go on. */
  readonly purgeTopic: (
    name: string
  ) => Effect.Effect<
    TopicBounds,
    TopicNotFound | TopicNotTrimmable | NotDirectoryWriter | CoordinatorUnavailable | HeadUnavailable
  >
  /** Creates a named object of another kind than a topic (the head writes the directory). */
  readonly createObject: (
    spec: ObjectCreate
  ) => Effect.Effect<
    DirectoryEntry,
    | NameTaken
    | DirectoryFull
    | RegionFull
    | InvalidObjectName
    | NotDirectoryWriter
    | CoordinatorUnavailable
    | HeadUnavailable
  >
  /** Removes such an object, if it still is the generation named (the head does; its extent is freed once no pin holds it). */
  readonly removeObject: (
    target: ObjectRemove
  ) => Effect.Effect<void, ObjectNotFound | NotDirectoryWriter | CoordinatorUnavailable | HeadUnavailable>
}

export class Coordinator extends Context.Tag("cxlog/Coordinator")<Coordinator, CoordinatorShape>() {}

/** Groups every coordinator knows without creating them. */
export const GROUP_ALL = "all"
export const GROUP_BROKERS = "brokers"
export const RESERVED_PREFIX = "cxlog."
