/**
 * The coordinator's RPC methods and notices (Schemas on both sides of the rings).
 */
import { Schema } from "effect"
import {
  BarrierArrive,
  BarrierError,
  BarrierReleased,
  CreateGroup,
  DirectoryEntrySchema,
  Join,
  JoinGroup,
  Leave,
  ListMembers,
  Member,
  ObjectCreate,
  ObjectRemove,
  UnknownGroup
} from "../../services/control/Coordinator.js"
import { method, notice } from "../../services/control/Rpc.js"
import { HeadUnavailable } from "../../services/log/HeadWatch.js"
import {
  InvalidTopicSpec,
  ReplicationUnavailable,
  TopicBounds,
  TopicExists,
  TopicInfo,
  TopicName,
  TopicNotDeletable,
  TopicNotFound,
  TopicNotTrimmable,
  TopicSpec,
  TrimTarget
} from "../../services/log/Topics.js"
import {
  DirectoryFull,
  InvalidObjectName,
  NameTaken,
  NotDirectoryWriter,
  ObjectNotFound,
  RegionFull
} from "../../services/region/Directory.js"

export const JoinMethod = method("cxlog.join", { payload: Join, success: Schema.Array(Member) })
export const LeaveMethod = method("cxlog.leave", { payload: Leave, success: Schema.Null })
export const ListMembersMethod = method("cxlog.members", {
  payload: ListMembers,
  success: Schema.Array(Member),
  failure: UnknownGroup
})
export const CreateGroupMethod = method("cxlog.createGroup", {
  payload: CreateGroup,
  success: Schema.Null,
  failure: HeadUnavailable
})
export const JoinGroupMethod = method("cxlog.joinGroup", {
  payload: JoinGroup,
  success: Schema.Null,
  failure: HeadUnavailable
})
export const BarrierArriveMethod = method("cxlog.barrier", {
  payload: BarrierArrive,
  success: BarrierReleased,
  failure: BarrierError
})
export const CreateTopicMethod = method("cxlog.createTopic", {
  payload: TopicSpec,
  success: TopicInfo,
  failure: Schema.Union(
    TopicExists,
    DirectoryFull,
    RegionFull,
    ReplicationUnavailable,
    InvalidTopicSpec,
    NotDirectoryWriter,
    HeadUnavailable
  )
})

export const DeleteTopicMethod = method("cxlog.deleteTopic", {
  payload: Schema.Struct({ name: TopicName }),
  success: Schema.Null,
  failure: Schema.Union(TopicNotFound, TopicNotDeletable, NotDirectoryWriter, HeadUnavailable)
})

export const TrimTopicMethod = method("cxlog.trimTopic", {
  payload: Schema.Struct({ name: TopicName, target: TrimTarget }),
  success: TopicBounds,
  failure: Schema.Union(TopicNotFound, TopicNotTrimmable, NotDirectoryWriter, HeadUnavailable)
})

export const PurgeTopicMethod = method("cxlog.purgeTopic", {
  payload: Schema.Struct({ name: TopicName }),
  success: TopicBounds,
  failure: Schema.Union(TopicNotFound, TopicNotTrimmable, NotDirectoryWriter, HeadUnavailable)
})

export const CreateObjectMethod = method("cxlog.createObject", {
  payload: ObjectCreate,
  success: DirectoryEntrySchema,
  failure: Schema.Union(NameTaken, DirectoryFull, RegionFull, InvalidObjectName, NotDirectoryWriter, HeadUnavailable)
})

export const RemoveObjectMethod = method("cxlog.removeObject", {
  payload: ObjectRemove,
  success: Schema.Null,
  failure: Schema.Union(ObjectNotFound, NotDirectoryWriter, HeadUnavailable)
})

/**
 * The changes a head whose lease lapsed refuses if it read them only after (LapseGuard.ts), with
 * `HeadUnavailable` (state `lapse-refused`): a caller may have given up on the head meanwhile, and
 * what it gave up on must never be made. Joins, leaves, listings and barrier arrivals are not guarded.
 */
export const CHANGE_METHODS: ReadonlySet<string> = new Set([
  CreateGroupMethod.tag,
  JoinGroupMethod.tag,
  CreateTopicMethod.tag,
  DeleteTopicMethod.tag,
  TrimTopicMethod.tag,
  PurgeTopicMethod.tag,
  CreateObjectMethod.tag,
  RemoveObjectMethod.tag
])

/**
 * Sent on the broadcast ring by a coordinator that took over from an earlier head (epoch > 1):
 * barrier arrivals the old one held are lost, so participants fail them and members re-join.
 */
export const CoordinatorTakeoverNotice = notice("cxlog.coordinatorTakeover", Schema.Struct({ epoch: Schema.Int }))

/**
 * Sent to a member the coordinator dropped for a stale heartbeat while its process still runs
 * (stopped for a while, or its event loop blocked): its reply reader may still be attached, so
 * nothing else tells it, and it would stay out of the membership and its groups for good.
 */
export const MemberDroppedNotice = notice(
  "cxlog.memberDropped",
  Schema.Struct({ slot: Schema.Int, occurrence: Schema.Int, reason: Schema.String })
)

/** Sent on the broadcast ring when a barrier round is released (its position is the release watermark). */
export const BarrierReleaseNotice = notice(
  "cxlog.barrierRelease",
  Schema.Struct({ barrier: Schema.String, round: Schema.Int })
)
