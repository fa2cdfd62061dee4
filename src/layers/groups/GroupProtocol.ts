/**
 * Consumer groups over a broker connection (docs/protocol.md, "Consumer groups"): its frames'
 * bodies (the opening and the request's envelope as every request connection's,
 * RequestProtocol.ts) and its operations. `GROUP` opens the connection (and names the user, as `HELLO` does),
 * `GROUP_READY` accepts it; then every `GROUP_REQUEST` (seq: its id; JSON `{ "operation",
 * "input" }`) gets one `GROUP_REPLY` or `GROUP_FAILURE` (seq: the id), as admin requests do
 * (AdminProtocol.ts). A `join` is answered by the member itself: `GROUP_DELIVERY` frames (client
 * id: the join's request id; many deliveries each, GroupDeliveryFrame.ts) until a `GROUP_LEFT`
 * says why it left. Deliveries are settled by `settle` requests naming them, many in one.
 */
import { Either, Schema } from "effect"
import { CoordinatorUnavailable } from "../../services/control/Coordinator.js"
import { method } from "../../services/control/Rpc.js"
import {
  DeadLetterFailed,
  GroupBehindRetention,
  GroupCorrupt,
  GroupDeleted,
  GroupExists,
  GroupMembersFull,
  GroupNotFound,
  GroupPendingFull,
  GroupsUnavailable,
  GroupTopicGone,
  InvalidGroupSpec,
  MAX_NAK_DELAY_MS,
  nakDelayProblem
} from "../../services/groups/ConsumerGroups.js"
import { HeadUnavailable } from "../../services/log/HeadWatch.js"
import { TopicDeleted, TopicForbidden, TopicNotFound } from "../../services/log/Topics.js"
import {
  DirectoryFull,
  HolderLinesFull,
  InvalidObjectName,
  NotDirectoryWriter,
  RegionFull
} from "../../services/region/Directory.js"
import { encodeFrame, FrameType } from "../net/Frame.js"
import { requestBody, requestFrames } from "../net/RequestProtocol.js"
import { MAX_IN_FLIGHT } from "./GroupSpecs.js"
import { TERM_REASON_MAX_CHARS } from "./TermReason.js"

/** The groups' connection's frames: GROUP (RequestOpen), GROUP_READY (RequestReady), GROUP_REQUEST, GROUP_REPLY, GROUP_FAILURE. */
export const GROUP_FRAMES = requestFrames("GROUP")

/** One request's body: which operation, and its input (decoded by the operation's own Schema). */
export const GroupRequest = requestBody("GroupRequest")

/** A request the broker could not read (not JSON, no such operation, an input of the wrong shape): the connection goes on. */
export class InvalidGroupRequest extends Schema.TaggedError<InvalidGroupRequest>()("InvalidGroupRequest", {
  reason: Schema.String
}) {
  override get message() {
    return `invalid consumer groups request: ${this.reason}`
  }
}

const Name = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))
const Count = Schema.Number

const GroupStart = Schema.Union(
  Schema.Literal("earliest", "latest"),
  Schema.Struct({ offset: Schema.Number }),
  Schema.Struct({ time: Schema.Number })
)

/** An optional field that is absent, never undefined (as GroupSpec's). */
const opt = <A, I>(schema: Schema.Schema<A, I>) => Schema.optionalWith(schema, { exact: true })

const GroupSpec = Schema.Struct({
  name: Name,
  topic: Name,
  byKey: opt(Schema.Boolean),
  ackWaitMs: opt(Schema.Number),
  maxDeliver: opt(Schema.Number),
  deadLetterTopic: opt(Name),
  start: opt(GroupStart),
  memberSlots: opt(Schema.Number),
  pendingSlots: opt(Schema.Number),
  holdRetention: opt(Schema.Boolean)
})

const GroupMember = Schema.Struct({
  pid: Count,
  slot: Count,
  joinedAtMs: Count,
  maxInFlight: Count,
  pending: Count,
  delivered: Count,
  acked: Count,
  buckets: Count,
  stopped: opt(Schema.Boolean)
})

const GroupInfo = Schema.Struct({
  name: Schema.String,
  topic: Schema.String,
  topicGone: Schema.Boolean,
  byKey: Schema.Boolean,
  ackWaitMs: Count,
  maxDeliver: Count,
  deadLetterTopic: Schema.UndefinedOr(Schema.String),
  startOffset: Count,
  createdAtMs: Count,
  memberSlots: Count,
  pendingSlots: Count,
  holdRetention: Schema.Boolean,
  frontier: Count,
  end: Count,
  lag: Count,
  behindRetention: Schema.optionalWith(Schema.Struct({ needs: Count, earliest: Count }), { exact: true }),
  heldFrom: Schema.UndefinedOr(Count),
  holdCutOff: Schema.Boolean,
  members: Schema.Array(GroupMember),
  pending: Count,
  oldestPendingAgeMs: Schema.UndefinedOr(Count),
  redeliveries: Count,
  expired: Count,
  deadLetters: Count,
  acked: Count
})

const PendingMessage = Schema.Struct({
  offset: Count,
  state: Schema.Literal("claiming", "delivered", "waiting"),
  memberPid: Schema.UndefinedOr(Count),
  deliveries: Count,
  deadlineMs: Count,
  firstDeliveredAtMs: Count
})

/** What any call may fail with besides its own errors: the user's rights, the broker, a request not understood. */
const UNANSWERED = [TopicForbidden, GroupsUnavailable, InvalidGroupRequest] as const

const GroupNamed = Schema.Struct({ name: Name })

export const CreateGroup = method("create", {
  payload: GroupSpec,
  success: GroupInfo,
  failure: Schema.Union(
    GroupExists,
    InvalidGroupSpec,
    TopicNotFound,
    DirectoryFull,
    RegionFull,
    InvalidObjectName,
    NotDirectoryWriter,
    CoordinatorUnavailable,
    HeadUnavailable,
    ...UNANSWERED
  )
})

export const DescribeGroup = method("describe", {
  payload: GroupNamed,
  success: GroupInfo,
  failure: Schema.Union(GroupNotFound, GroupCorrupt, ...UNANSWERED)
})

/**
 * The groups the list leaves out because they cannot be read, beside the list: the answer to a
 * `list` asking for them (`unreadable: true`). A broker before them ignores the field and answers
 * the list alone, as it answers a client that does not ask (one that reads only an array).
 */
const GroupsOverview = Schema.Struct({ groups: Schema.Array(GroupInfo), unreadable: Schema.Array(GroupCorrupt) })

/** Every group the user may use (the read right on its topic, the consume right on its name); with `unreadable`, an overview. */
export const ListGroups = method("list", {
  payload: Schema.Struct({ unreadable: opt(Schema.Boolean) }),
  success: Schema.Union(Schema.Array(GroupInfo), GroupsOverview),
  failure: Schema.Union(...UNANSWERED)
})

export const PendingOfGroup = method("pending", {
  payload: GroupNamed,
  success: Schema.Array(PendingMessage),
  failure: Schema.Union(GroupNotFound, GroupCorrupt, ...UNANSWERED)
})

export const DeleteGroup = method("delete", {
  payload: GroupNamed,
  success: Schema.Null,
  failure: Schema.Union(GroupNotFound, NotDirectoryWriter, CoordinatorUnavailable, HeadUnavailable, ...UNANSWERED)
})

/**
 * Joins the group as a member held by the broker for this connection. No reply: its deliveries
 * come as GROUP_DELIVERY frames, and a GROUP_LEFT (client id: this request's id) ends it.
 */
export const JoinGroup = method("join", {
  payload: Schema.Struct({ name: Name, maxInFlight: opt(Schema.Int.pipe(Schema.between(1, MAX_IN_FLIGHT))) }),
  success: Schema.Null,
  failure: Schema.Union(...UNANSWERED)
})

/** Why a member left: its typed error (a GROUP_LEFT without a body: it left as asked). */
export const MemberLeft = Schema.Union(
  GroupNotFound,
  GroupCorrupt,
  GroupDeleted,
  GroupMembersFull,
  GroupPendingFull,
  GroupBehindRetention,
  GroupTopicGone,
  TopicNotFound,
  TopicDeleted,
  HeadUnavailable,
  HolderLinesFull,
  ...UNANSWERED
)

/**
 * The most deliveries one `settle` names: its request stays within a GROUP_REQUEST's 4 KiB
 * whatever the ids (a client settling more sends several).
 */
export const SETTLE_MAX_DELIVERIES = 200

/**
 * Settles deliveries `deliveries` of member `member` alike (a member's acks of what it took in
 * one go travel as one request): for each, in order, true when it settled, false when it was no
 * longer the member's.
 */
export const SettleDelivery = method("settle", {
  payload: Schema.Struct({
    member: Schema.Int,
    deliveries: Schema.Array(Schema.Int).pipe(Schema.minItems(1), Schema.maxItems(SETTLE_MAX_DELIVERIES)),
    /** giveBack: never handed to the member's code; the others take it at once, not counted as a delivery. */
    action: Schema.Literal("ack", "nak", "term", "inProgress", "giveBack"),
    /** nak: deliver again after this long. */
    delayMs: opt(Schema.Int.pipe(Schema.between(0, MAX_NAK_DELAY_MS))),
    /** term: the dead letter's reason (cut as TermReason.ts says). */
    reason: opt(Schema.String.pipe(Schema.maxLength(TERM_REASON_MAX_CHARS)))
  }),
  success: Schema.Array(Schema.Boolean),
  failure: Schema.Union(DeadLetterFailed, ...UNANSWERED)
})

/** A `settle` answer as its Schema would decode it, read without it when plainly one (a boolean per delivery); else undefined. */
export const plainSettleAnswer = (tag: string, body: unknown): ReadonlyArray<boolean> | undefined =>
  tag === SettleDelivery.tag && Array.isArray(body) && body.every((settled) => typeof settled === "boolean")
    ? body
    : undefined

const SETTLE_ACTIONS: ReadonlySet<unknown> = new Set(["ack", "nak", "term", "inProgress", "giveBack"])

/**
 * A `settle` input as its Schema would decode it, read without the Schema when it is plainly
 * well formed; undefined for anything else, which the Schema then decodes to say what is wrong.
 * A broker serving remote members reads one per chunk a member acks, and the Schema's decode
 * (an Either per delivery id) was a quarter of what such a broker allocated.
 */
export const plainSettleInput = (input: unknown): typeof SettleDelivery.payload.Type | undefined => {
  if (typeof input !== "object" || input === null) return undefined
  const own = (name: string) => Object.hasOwn(input, name)
  if (!own("member") || !own("deliveries") || !own("action")) return undefined
  const { action, delayMs, deliveries, member, reason } = input as Record<string, unknown>
  if (!Number.isSafeInteger(member) || !SETTLE_ACTIONS.has(action)) return undefined
  if (!Array.isArray(deliveries) || deliveries.length < 1 || deliveries.length > SETTLE_MAX_DELIVERIES) {
    return undefined
  }
  for (const id of deliveries) if (!Number.isSafeInteger(id)) return undefined
  // Optional fields are exact: present means a value of their type (JSON has no undefined).
  const delayed = own("delayMs")
  if (delayed && !(typeof delayMs === "number" && nakDelayProblem(delayMs) === undefined)) return undefined
  const reasoned = own("reason")
  if (reasoned && !(typeof reason === "string" && reason.length <= TERM_REASON_MAX_CHARS)) return undefined
  return {
    member: member as number,
    deliveries: deliveries as Array<number>,
    action: action as typeof SettleDelivery.payload.Type["action"],
    ...(delayed ? { delayMs: delayMs as number } : {}),
    ...(reasoned ? { reason: reason as string } : {})
  }
}

/**
 * Leaves member `member`: what it holds goes to the other members at once. `pulledThrough`: the
 * last delivery id the member's stream handed to its code; those after it (waiting at the client,
 * or on their way) were never seen and go back unseen, not counted as deliveries.
 */
export const LeaveGroup = method("leave", {
  payload: Schema.Struct({ member: Schema.Int, pulledThrough: Schema.optional(Schema.Int) }),
  success: Schema.Null,
  failure: Schema.Union(...UNANSWERED)
})

export const GROUP_OPERATIONS = [
  CreateGroup,
  DescribeGroup,
  ListGroups,
  PendingOfGroup,
  DeleteGroup,
  JoinGroup,
  SettleDelivery,
  LeaveGroup
] as const

const textEncoder = new TextEncoder()
const json = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  textEncoder.encode(JSON.stringify(Schema.encodeSync(schema)(value)))

/**
 * Operations whose input and result are their own encoding (numbers, strings, booleans and
 * arrays of them), written without their schemas: `settle` is a member's hot path, a request per
 * chunk it acks, too few to warm the schemas' code. Each side reads the other's plainly when it is
 * well formed (`plainSettleInput`, `plainSettleAnswer`), and through the Schema otherwise.
 */
const PLAIN = new Set<string>([SettleDelivery.tag])
const bare = { clientId: 0, sessionEpoch: 0, messageCount: 0 }

/**
 * Request `id`: `operation` with `input` (encoded by the operation's Schema; a PLAIN one's as it
 * is), and the client's bound on it — but a PLAIN one's, which asks nothing of the head.
 */
export const groupRequestFrame = <P, PI>(
  id: number,
  operation: { readonly tag: string; readonly payload: Schema.Schema<P, PI> },
  input: P,
  timeoutMs?: number
): Buffer =>
  encodeFrame(
    { ...bare, type: FrameType.GROUP_REQUEST, seq: id },
    PLAIN.has(operation.tag)
      ? textEncoder.encode(JSON.stringify({ operation: operation.tag, input }))
      : json(GroupRequest, {
        operation: operation.tag,
        input: Schema.encodeSync(operation.payload)(input),
        ...(timeoutMs === undefined ? {} : { timeoutMs })
      })
  )

/** Member `member` left: `why` (its typed error), or as asked. */
export const groupLeftFrame = (member: number, why: typeof MemberLeft.Type | undefined): Buffer =>
  encodeFrame(
    { ...bare, type: FrameType.GROUP_LEFT, clientId: member, seq: 0 },
    why === undefined ? undefined : json(MemberLeft, why)
  )

/** The answer to request `id`: its result, or its typed error. */
export const groupAnswerFrame = <S, SI, F, FI>(
  id: number,
  operation: {
    readonly tag: string
    readonly success: Schema.Schema<S, SI>
    readonly failure: Schema.Schema<F, FI>
  },
  outcome: Either.Either<S, F>
): Buffer =>
  Either.isRight(outcome)
    ? encodeFrame(
      { ...bare, type: FrameType.GROUP_REPLY, seq: id },
      PLAIN.has(operation.tag)
        ? textEncoder.encode(JSON.stringify(outcome.right))
        : json(operation.success, outcome.right)
    )
    : encodeFrame({ ...bare, type: FrameType.GROUP_FAILURE, seq: id }, json(operation.failure, outcome.left))

/** The answer to request `id` whatever its operation: the broker could not read it, or could not answer it. */
export const groupRefusalFrame = (id: number, error: InvalidGroupRequest | GroupsUnavailable): Buffer =>
  encodeFrame(
    { ...bare, type: FrameType.GROUP_FAILURE, seq: id },
    json(Schema.Union(InvalidGroupRequest, GroupsUnavailable), error)
  )
