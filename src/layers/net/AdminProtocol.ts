/**
 * Topic administration over a broker connection (docs/protocol.md, "Administering topics"): its
 * frames' JSON bodies (the opening and the request's envelope as every request connection's,
 * RequestProtocol.ts) and its operations. `ADMIN` opens the connection (and names the user, as
 * `HELLO` does), `ADMIN_READY` accepts it; then every `ADMIN_REQUEST` (seq: its id; JSON `{
 * "operation", "input" }`) gets one `ADMIN_REPLY` (seq: the id; JSON: the operation's result)
 * or one `ADMIN_FAILURE` (seq: the id; JSON: its typed error, `_tag` and fields), in the order
 * asked. An operation is one `method`: its name, its input, its result and its typed errors,
 * the same definition on both sides; adding one is one more here, one handler (AdminServer.ts)
 * and one call (TopicsRemote.ts).
 */
import { Either, Schema } from "effect"
import { method } from "../../services/control/Rpc.js"
import { HeadUnavailable } from "../../services/log/HeadWatch.js"
import {
  InvalidTopicSpec,
  ReplicationUnavailable,
  TopicBounds,
  TopicDescription,
  TopicExists,
  TopicForbidden,
  TopicInfo,
  TopicNotDeletable,
  TopicNotFound,
  TopicNotTrimmable,
  TopicsOverview,
  TopicsUnavailable,
  TrimTarget
} from "../../services/log/Topics.js"
import { DirectoryFull, NotDirectoryWriter, RegionFull } from "../../services/region/Directory.js"
import { describeDecodeFailure } from "./Control.js"
import { encodeFrame, FrameType } from "./Frame.js"
import { requestBody, requestFrames } from "./RequestProtocol.js"

/** The admin connection's frames: ADMIN (RequestOpen), ADMIN_READY (RequestReady), ADMIN_REQUEST, ADMIN_REPLY, ADMIN_FAILURE. */
export const ADMIN_FRAMES = requestFrames("ADMIN")

/** One request's body: which operation, and its input (decoded by the operation's own Schema). */
export const AdminRequest = requestBody("AdminRequest")

/** A request the broker could not read (not JSON, no such operation, an input of the wrong shape): the connection goes on. */
export class InvalidAdminRequest extends Schema.TaggedError<InvalidAdminRequest>()("InvalidAdminRequest", {
  reason: Schema.String
}) {
  override get message() {
    return `invalid admin request: ${this.reason}`
  }
}

/** What any call may fail with besides its own errors: the user's rights, the head, the brokers, a request not understood. */
const UNANSWERED = [TopicForbidden, HeadUnavailable, TopicsUnavailable, InvalidAdminRequest] as const

const TopicNamed = Schema.Struct({ name: Schema.String.pipe(Schema.maxLength(255)) })

/**
 * Creates a topic. Its input is any object with a name: the spec is checked where the topic is
 * made, so a bad one is `InvalidTopicSpec` with the reason, as a create in the head's process gets.
 */
export const CreateTopic = method("create", {
  payload: Schema.Struct(TopicNamed.fields, Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  success: TopicInfo,
  failure: Schema.Union(
    TopicExists,
    DirectoryFull,
    RegionFull,
    ReplicationUnavailable,
    InvalidTopicSpec,
    NotDirectoryWriter,
    ...UNANSWERED
  )
})

export const DeleteTopic = method("delete", {
  payload: TopicNamed,
  success: Schema.Null,
  failure: Schema.Union(TopicNotFound, TopicNotDeletable, NotDirectoryWriter, ...UNANSWERED)
})

export const DescribeTopic = method("describe", {
  payload: TopicNamed,
  success: TopicDescription,
  failure: Schema.Union(TopicNotFound, ...UNANSWERED)
})

/** Every topic the user may read or administer, described, and the region's heap. */
export const ListTopics = method("list", {
  payload: Schema.Struct({}),
  success: TopicsOverview,
  failure: Schema.Union(...UNANSWERED)
})

/** Drops a topic's oldest messages (`Topics.trim`); the bounds after it. */
export const TrimTopic = method("trim", {
  payload: Schema.Struct({ ...TopicNamed.fields, target: TrimTarget }),
  success: TopicBounds,
  failure: Schema.Union(TopicNotFound, TopicNotTrimmable, NotDirectoryWriter, ...UNANSWERED)
})

/** Drops every message a topic holds (`Topics.purge`); offsets go on. */
export const PurgeTopic = method("purge", {
  payload: TopicNamed,
  success: TopicBounds,
  failure: Schema.Union(TopicNotFound, TopicNotTrimmable, NotDirectoryWriter, ...UNANSWERED)
})

export const ADMIN_OPERATIONS = [CreateTopic, DeleteTopic, DescribeTopic, ListTopics, TrimTopic, PurgeTopic] as const
export type AdminOperation = (typeof ADMIN_OPERATIONS)[number]

const textEncoder = new TextEncoder()
const json = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  textEncoder.encode(JSON.stringify(Schema.encodeSync(schema)(value)))
const bare = { clientId: 0, sessionEpoch: 0, messageCount: 0 }

/** Request `id`: `operation` with `input` (encoded by the operation's Schema), and the client's bound on it. */
export const adminRequestFrame = <P, PI>(
  id: number,
  operation: { readonly tag: string; readonly payload: Schema.Schema<P, PI> },
  input: P,
  timeoutMs?: number
): Buffer =>
  encodeFrame(
    { ...bare, type: FrameType.ADMIN_REQUEST, seq: id },
    json(AdminRequest, {
      operation: operation.tag,
      input: Schema.encodeSync(operation.payload)(input),
      ...(timeoutMs === undefined ? {} : { timeoutMs })
    })
  )

/** The answer to request `id`: its result, or its typed error. */
export const adminAnswerFrame = <S, SI, F, FI>(
  id: number,
  operation: { readonly success: Schema.Schema<S, SI>; readonly failure: Schema.Schema<F, FI> },
  outcome: Either.Either<S, F>
): Buffer =>
  Either.isRight(outcome)
    ? encodeFrame({ ...bare, type: FrameType.ADMIN_REPLY, seq: id }, json(operation.success, outcome.right))
    : encodeFrame({ ...bare, type: FrameType.ADMIN_FAILURE, seq: id }, json(operation.failure, outcome.left))

/** The answer to request `id` the broker gives whatever its operation: it could not read the request, or could not answer it. */
export const adminRefusalFrame = (id: number, error: InvalidAdminRequest | TopicsUnavailable): Buffer =>
  encodeFrame(
    { ...bare, type: FrameType.ADMIN_FAILURE, seq: id },
    json(Schema.Union(InvalidAdminRequest, TopicsUnavailable), error)
  )

/** A request's input decoded by its operation's Schema, or why not in one line (the first field that is wrong, and how). */
export const decodeInput = <P, PI>(
  operation: { readonly tag: string; readonly payload: Schema.Schema<P, PI> },
  input: unknown
): Either.Either<P, InvalidAdminRequest> =>
  Schema.decodeUnknownEither(operation.payload)(input).pipe(
    Either.mapLeft((e) =>
      new InvalidAdminRequest({
        reason: `the input of ${operation.tag}: ${
          describeDecodeFailure(operation.payload as Schema.Schema.AnyNoContext, e)
        }`
      })
    )
  )
