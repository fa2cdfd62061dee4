/**
 * Rpc: request/reply over rings, shaped for the coordinator. Every client writes requests on
 * its own request ring; one server reads them all and answers on ONE reply ring that a single
 * server fiber writes (replies, deferred replies and notices alike); every client reads that
 * ring and keeps what is addressed to it.
 *
 * A method names a tag and the Schemas of its payload, success and failure. Payloads travel as
 * JSON of the Schema-encoded value; the receiver decodes with the same Schema. A request that
 * fails to decode is answered with `RpcInvalidPayload` and the server keeps serving.
 */
import { Context, Data, type Effect, type Either, type ParseResult, Schema, type Scope, type Stream } from "effect"
import type {
  InvalidRingAddress,
  NoFreeReaderSlot,
  RingAddress,
  RingBreak,
  RingCorrupt,
  RingWriteError,
  RingWriterBusy
} from "./Rings.js"

export interface RpcMethod<Tag extends string, P, PI, S, SI, F, FI> {
  readonly tag: Tag
  readonly payload: Schema.Schema<P, PI>
  readonly success: Schema.Schema<S, SI>
  readonly failure: Schema.Schema<F, FI>
}

/** Any context-free Schema, `never` sides included (a method without failures has `Schema.Never`). */
type AnySchema =
  | Schema.Schema<any, any>
  | Schema.Schema<never, never>
  | Schema.Schema<any, never>
  | Schema.Schema<never, any>

export interface AnyRpcMethod {
  readonly tag: string
  readonly payload: AnySchema
  readonly success: AnySchema
  readonly failure: AnySchema
}
export type Payload<M extends AnyRpcMethod> = Schema.Schema.Type<M["payload"]>
export type Success<M extends AnyRpcMethod> = Schema.Schema.Type<M["success"]>
export type Failure<M extends AnyRpcMethod> = Schema.Schema.Type<M["failure"]>

/** Declares a method; `failure` (the handler's typed errors, e.g. a `Schema.TaggedError`) defaults to none. */
export const method = <const Tag extends string, P, PI, S, SI, F = never, FI = never>(
  tag: Tag,
  schemas: {
    readonly payload: Schema.Schema<P, PI>
    readonly success: Schema.Schema<S, SI>
    readonly failure?: Schema.Schema<F, FI>
  }
): RpcMethod<Tag, P, PI, S, SI, F, FI> => ({
  tag,
  payload: schemas.payload,
  success: schemas.success,
  failure: schemas.failure ?? (Schema.Never as unknown as Schema.Schema<F, FI>)
})

/** A one-way message the server sends on the reply ring, to one client or to all. */
export interface RpcNotice<Tag extends string, A, I> {
  readonly tag: Tag
  readonly schema: Schema.Schema<A, I>
}

export const notice = <const Tag extends string, A, I>(
  tag: Tag,
  schema: Schema.Schema<A, I>
): RpcNotice<Tag, A, I> => ({ tag, schema })

export const DeferredReplyTypeId: unique symbol = Symbol.for("cxlog/Rpc/DeferredReply")

/** A reply a handler took over (`request.defer()`): complete it once, from any fiber, later. */
export interface DeferredReply<S, F> {
  readonly [DeferredReplyTypeId]: typeof DeferredReplyTypeId
  readonly client: number
  readonly requestId: number
  readonly succeed: (value: S) => Effect.Effect<void>
  readonly fail: (error: F) => Effect.Effect<void>
  /** `succeed` (Right) or `fail` (Left) done now, from plain code such as a callback: sent, or queued to be, when it returns. */
  readonly unsafeComplete: (outcome: Either.Either<S, F>) => void
}

const sharedReplies = new WeakSet<object>()

/** Freezes `value` and the objects and arrays it holds. */
const deepFreeze = <A>(value: A): A => {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const field of Object.values(value)) deepFreeze(field)
    Object.freeze(value)
  }
  return value
}

/**
 * Marks a reply value that will never change again (it is frozen, with what it holds): a server
 * encodes it once however many requests it answers with it (a barrier release answers every
 * participant with one object). Unmarked values are encoded for every reply.
 */
export const sharedReply = <A extends object>(value: A): A => {
  sharedReplies.add(deepFreeze(value))
  return value
}

/** Whether `value` was marked with `sharedReply`. */
export const isSharedReply = (value: object): boolean => sharedReplies.has(value)

export interface RpcRequest<S, F> {
  readonly client: number
  readonly requestId: number
  readonly method: string
  /** Where the request's frame starts in its client's request ring (that ring's sequence space). */
  readonly sequence: number
  /**
   * Takes over the reply: the server answers only when the returned handle is completed (the
   * handler returns the handle, or anything — its success value is then ignored). The server
   * goes on reading this client's ring meanwhile.
   */
  readonly defer: () => DeferredReply<S, F>
}

export interface RpcHandler<R> {
  readonly method: AnyRpcMethod
  readonly run: (payload: unknown, request: RpcRequest<unknown, unknown>) => Effect.Effect<unknown, unknown, R>
}

/** A handler: its success is the reply, its typed failure a failure reply, a defect `RpcHandlerDefect`. */
export const handle = <M extends AnyRpcMethod, R = never>(
  method: M,
  run: (
    payload: Payload<M>,
    request: RpcRequest<Success<M>, Failure<M>>
  ) => Effect.Effect<Success<M> | DeferredReply<Success<M>, Failure<M>>, Failure<M>, R>
): RpcHandler<R> => ({ method, run: run as RpcHandler<R>["run"] })

/** The request payload did not decode with the method's Schema (sent by the server, or raised by a client that cannot encode). */
export class RpcInvalidPayload extends Schema.TaggedError<RpcInvalidPayload>()("RpcInvalidPayload", {
  method: Schema.String,
  requestId: Schema.Number,
  issue: Schema.String
}) {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: invalid request: ${this.issue}`
  }
}

export class RpcUnknownMethod extends Schema.TaggedError<RpcUnknownMethod>()("RpcUnknownMethod", {
  method: Schema.String,
  requestId: Schema.Number
}) {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: the server has no such method`
  }
}

/** The handler died, or its reply did not encode; `defect` describes it. */
export class RpcHandlerDefect extends Schema.TaggedError<RpcHandlerDefect>()("RpcHandlerDefect", {
  method: Schema.String,
  requestId: Schema.Number,
  defect: Schema.String
}) {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: the handler failed: ${this.defect}`
  }
}

/**
 * A request sent again after its client's reply reader was reaped, whose reply the server no
 * longer keeps: it ran (it may have taken effect), and its outcome is unknown to the client.
 */
export class RpcReplyLost extends Schema.TaggedError<RpcReplyLost>()("RpcReplyLost", {
  method: Schema.String,
  requestId: Schema.Number
}) {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: the server ran it, but no longer keeps its reply (the client did not run for too long); it may have taken effect`
  }
}

/**
 * The server read the request at or past its caller's deadline (the bound its call waits for a
 * reply), by `lateMs`: it did not run it. Its caller has most likely given up on it already
 * (`RpcTimeout`, saying the request was not read in time); this reaches one whose timer had not
 * fired yet.
 */
export class RpcDeadlinePassed extends Schema.TaggedError<RpcDeadlinePassed>()("RpcDeadlinePassed", {
  method: Schema.String,
  requestId: Schema.Number,
  lateMs: Schema.Number
}) {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: the server read the request ${this.lateMs} ms past its caller's deadline and did not run it; safe to ask again`
  }
}

/** What a server answers when it cannot run a handler's own reply. */
export const RpcProtocolError = Schema.Union(
  RpcInvalidPayload,
  RpcUnknownMethod,
  RpcHandlerDefect,
  RpcReplyLost,
  RpcDeadlinePassed
)
export type RpcProtocolError = typeof RpcProtocolError.Type

/**
 * How far a call's request had got when its bound passed (`RpcTimeout.request`). A request
 * carries its caller's deadline, and a server reading it at or past that does not run it, so:
 * - `not-sent`: its bound passed before it was written (no room in the request ring, or a
 *   caller's deadline already past); it never runs.
 * - `unread`: no server had read it by its deadline; none runs it now: safe to ask again.
 * - `read`: a server read it (or attached after it was sent, and another may have): it may have
 *   run, or may still be running.
 * - `unread-early`: not read yet, and this process's wall clock, stepped back, says the deadline
 *   has not passed: a server may still read it in time and run it.
 */
export type RpcRequestFate = "not-sent" | "unread" | "read" | "unread-early"

const fateSaid: Record<RpcRequestFate, string> = {
  "not-sent":
    "the request was never sent (its bound passed before it was written to the request ring): safe to ask again",
  unread: "the server had not read the request by its deadline, so it never runs: safe to ask again",
  read: "the server read the request: it may have run, or may still be running",
  "unread-early":
    "the server had not read the request yet, and may still run it (this process's clock is behind its deadline)"
}

export class RpcTimeout extends Data.TaggedError("RpcTimeout")<
  { readonly method: string; readonly requestId: number; readonly timeoutMs: number; readonly request: RpcRequestFate }
> {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: no reply within ${this.timeoutMs} ms; ${fateSaid[this.request]}`
  }
}

/** A reply that did not decode with the method's Schema. */
export class RpcInvalidReply extends Data.TaggedError("RpcInvalidReply")<
  { readonly method: string; readonly requestId: number; readonly issue: string }
> {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: invalid reply: ${this.issue}`
  }
}

/** The caller's `signal` aborted while the call waited for its reply (the request may still be served). */
export class RpcAbandoned extends Data.TaggedError("RpcAbandoned")<
  { readonly method: string; readonly requestId: number; readonly reason: string }
> {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: abandoned: ${this.reason}`
  }
}

/**
 * The server could not read the request: its client's request ring was corrupt where it lay (the
 * server read on past the damage). It never ran; the client's later requests are read as before.
 */
export class RpcRequestUnread extends Data.TaggedError("RpcRequestUnread")<
  { readonly method: string; readonly requestId: number; readonly reason: string }
> {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: the server could not read the request (${this.reason}); it never ran, and requests sent after the damage are served`
  }
}

/**
 * The client's reply ring read corrupt while the call waited (a frame there failed its checks),
 * and the client could not attach to it again to send the call again: the replies between were
 * lost, this call's maybe among them. Its request may have run (it may have taken effect).
 */
export class RpcRepliesLost extends Data.TaggedError("RpcRepliesLost")<
  { readonly method: string; readonly requestId: number; readonly reason: string }
> {
  override get message() {
    return `rpc ${this.method} #${this.requestId}: the client's reply ring read corrupt (${this.reason}) and the client could not attach to it again to send the call again; this call's reply may have been lost there, and its request may have run`
  }
}

export type RpcCallError =
  | RpcProtocolError
  | RpcTimeout
  | RpcAbandoned
  | RpcInvalidReply
  | RpcRequestUnread
  | RpcRepliesLost
  | RingWriteError
export type RpcOpenError = InvalidRingAddress | RingWriterBusy | NoFreeReaderSlot | RingCorrupt

export interface RpcServerOptions {
  /** One request ring per client: the client writes it, the server reads it. */
  readonly requests: ReadonlyArray<{ readonly client: number; readonly ring: RingAddress }>
  /** The reply ring: written by one server fiber, read by every client. */
  readonly replies: RingAddress
  /** Take the reply ring over from a live earlier server (a fenced head; see `WriterOptions.takeOver`). */
  readonly takeOver?: boolean
  /** How long the process may spin for the next request before parking (`ReaderOptions.spinMicros`). */
  readonly spinMicros?: number
  /** The reply ring's `WriterOptions.freeStalledReaderAfterMs`: for clients that recover lost replies. */
  readonly freeStalledReaderAfterMs?: number
  /**
   * Told once per break of a client's request ring: a frame there failed its checks, the server
   * read on from the ring's head, and the client's calls whose requests lay between fail with
   * `RpcRequestUnread`. A warning is logged when not given.
   */
  readonly onRequestsBroken?: (client: number, ringBreak: RingBreak) => Effect.Effect<void>
}

export interface RpcClientOptions {
  /** This client's number: the server addresses replies by it. */
  readonly client: number
  readonly requests: RingAddress
  readonly replies: RingAddress
  /** This client's reader slot on the reply ring (default: any free one). */
  readonly replySlot?: number
  /** Default call timeout (10 s). */
  readonly timeoutMs?: number
  /** How long the process may spin for a reply before parking (`ReaderOptions.spinMicros`). */
  readonly spinMicros?: number
  /**
   * Run (forked) after the reply-ring reader was reaped and attached again: the server dropped
   * this client for not running (stopped, frozen), and replies written meanwhile are lost.
   */
  readonly onReattach?: Effect.Effect<void>
  /**
   * Run (forked) after the reply ring read corrupt and the client read on from its head: the
   * replies and notices between were lost (the calls then waiting were sent again). Not a reap:
   * the server did not drop this client. A warning is logged either way.
   */
  readonly onRepliesLost?: (corrupt: RingCorrupt) => Effect.Effect<void>
}

export interface RpcServer {
  /**
   * Sends a notice to `client` (every client when omitted) through the reply ring's single
   * writer; returns the reply ring's leading sequence once the notice is committed. Bounded by
   * the writer's timeout: `RingFull` (naming the slowest reader slot) when no room came.
   */
  readonly notify: <Tag extends string, A, I>(
    notice: RpcNotice<Tag, A, I>,
    value: A,
    client?: number
  ) => Effect.Effect<number, ParseResult.ParseError | RingWriteError>
  /**
   * `notify` done now, from plain code, when it can be (nothing queued before it, room in the
   * ring): the leading sequence after the committed notice, or undefined, and then `notify` must
   * send it (a value that does not encode is undefined too: `notify` reports it).
   */
  readonly notifyNow: <Tag extends string, A, I>(
    notice: RpcNotice<Tag, A, I>,
    value: A,
    client?: number
  ) => number | undefined
}

/** A call's own bound, deadline and abort signal (`RpcClient.call`). */
export interface RpcCallOptions {
  readonly timeoutMs?: number
  readonly deadlineMs?: number
  readonly signal?: AbortSignal
}

export interface RpcClient {
  readonly client: number
  readonly call: <M extends AnyRpcMethod>(
    method: M,
    payload: Payload<M>,
    /**
     * `signal`: aborting it ends the wait for the reply with `RpcAbandoned` (its reason the
     * signal's) — a cheap race with another event, without forking fibers. `deadlineMs` (wall
     * clock): the call is bounded by it too, whichever comes first, `timeoutMs` or it — a call
     * made on behalf of a caller with a deadline of its own (CallerDeadline.ts).
     */
    options?: RpcCallOptions
  ) => Effect.Effect<Success<M>, Failure<M> | RpcCallError>
  /**
   * Sends every call still waiting again, for a server that took another's place (a standby
   * coordinator after a takeover): it never read the requests written before it started. Each is
   * answered with the reply the server kept, or run if it never saw it, never twice (RpcReplyMemo.ts);
   * a call keeps its own bound.
   */
  readonly resendWaiting: Effect.Effect<void>
  /**
   * Subscribes now to notices of this kind addressed to this client or to all; the stream
   * yields those that arrive from here on (undecodable ones are logged and skipped).
   */
  readonly notices: <Tag extends string, A, I>(
    notice: RpcNotice<Tag, A, I>
  ) => Effect.Effect<Stream.Stream<A>, never, Scope.Scope>
}

export interface RpcShape {
  /**
   * Serves `handlers` on every request ring until the scope closes. `R` defaults to never: with
   * no handler to infer it from (an empty list), the call needs nothing, rather than `unknown`.
   */
  readonly serve: <R = never>(
    options: RpcServerOptions,
    handlers: ReadonlyArray<RpcHandler<R>>
  ) => Effect.Effect<RpcServer, RpcOpenError, Scope.Scope | R>
  readonly client: (options: RpcClientOptions) => Effect.Effect<RpcClient, RpcOpenError, Scope.Scope>
}

export class Rpc extends Context.Tag("cxlog/Rpc")<Rpc, RpcShape>() {}
