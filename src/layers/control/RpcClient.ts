/**
 * The Rpc client: `call` → `requestFrame` (written to the client's request ring) → (the server)
 * → `receive` (the reply ring read in the doorbell's wake callback) → the pending call's
 * `deliver` → `decodeReply`, which resumes the caller; the waiting calls, their one timer and how
 * each is settled are RpcPendingCalls.ts's. Notices (frames not answering a call) go to their subscribers through RpcClientNotices.ts.
 */
import { Deferred, Effect, Either, ExecutionStrategy, Exit, Queue, Schedule, Scope } from "effect"
import { rpcCalls } from "../../Metrics.js"
import type { FrameTooLarge, ReaderOptions, RingClosed, RingCorrupt, RingsShape } from "../../services/control/Rings.js"
import {
  type AnyRpcMethod,
  type Failure,
  type Payload,
  type RpcCallError,
  type RpcCallOptions,
  type RpcClient,
  type RpcClientOptions,
  RpcInvalidPayload,
  type Success
} from "../../services/control/Rpc.js"
import { readU32 } from "../region/LittleEndian.js"
import { noticesOf, publishNotices } from "./RpcClientNotices.js"
import {
  addresseeOf,
  ALL_CLIENTS,
  clientAddress,
  decodeFrame,
  decoder,
  describe,
  fromJson,
  HEADER_BYTES,
  Kind,
  type OutFrame,
  outFrame,
  toJson,
  type WireFrame,
  writeFrameAt
} from "./RpcFrames.js"
import {
  abandoned,
  type Caller,
  failResentAfterBreak,
  failWaiting,
  listen,
  type PendingCall,
  unsent
} from "./RpcPendingCalls.js"
import { readForever, RETRY_AFTER_ERROR_MS } from "./RpcReadForever.js"
import { failUnread, RequestsUnread } from "./RpcRequestsUnread.js"

const DEFAULT_TIMEOUT_MS = 10_000

/** The byte length of the tag of the notice every client takes (RpcRequestsUnread.ts). */
const UNREAD_TAG_BYTES = new TextEncoder().encode(RequestsUnread.tag).length

/**
 * One reply-ring frame, read in the doorbell's wake callback (`consumeSync`): a reply resumes
 * its waiting call directly, a notice for a subscribed tag goes to the notice fiber; frames
 * addressed to other clients are skipped undecoded.
 */
const receive = (caller: Caller, bytes: Uint8Array): void => {
  const addressee = addresseeOf(bytes)
  // The slot alone: a notice to it, or a reply from a server of a build before addresses.
  if (addressee !== caller.me && addressee !== ALL_CLIENTS && addressee !== caller.slot) return
  const kind = bytes[0]!
  const payloadAt = HEADER_BYTES + (bytes[2]! | (bytes[3]! << 8))
  if (kind < Kind.request || kind > Kind.notice || payloadAt > bytes.length) return
  if (kind === Kind.notice) {
    // A notice nobody here subscribed to (every barrier release, on most clients) is not decoded
    // unless its tag has the length of the one every client takes.
    const tagBytes = payloadAt - HEADER_BYTES
    if (caller.notices.size === 0 && tagBytes !== UNREAD_TAG_BYTES) return
    const tag = decoder.decode(bytes.subarray(HEADER_BYTES, payloadAt))
    if (tag === RequestsUnread.tag) return unreadRequests(caller, bytes)
    if (!caller.notices.has(tag)) return
    const frame = decodeFrame(bytes)
    if (frame !== undefined) Queue.unsafeOffer(caller.noticeInbox, frame)
    return
  }
  // A reply: its tag is not needed, and nothing is decoded for a call no longer waiting.
  const call = caller.pending.get(readU32(bytes, 8))
  if (call !== undefined) call.deliver(kind, decoder.decode(bytes.subarray(payloadAt)))
}

/** The server found this client's request ring corrupt: the calls whose requests it never read end now. */
const unreadRequests = (caller: Caller, bytes: Uint8Array): void => {
  const frame = decodeFrame(bytes)
  const unread = frame === undefined ? undefined : fromJson(RequestsUnread.schema, frame.json)
  if (unread !== undefined && Either.isRight(unread)) {
    failUnread(caller.pending.values(), unread.right as typeof RequestsUnread.schema.Type)
  }
}

/**
 * A request frame: it names this client's reader slot on the reply ring, so the reply wakes only
 * this client, and carries the call's deadline, past which the server does not run it.
 */
const requestFrame = (caller: Caller, method: AnyRpcMethod, requestId: number, json: string, deadlineMs: number) =>
  outFrame(Kind.request, caller.me, requestId, method.tag, json, caller.reader.slot, deadlineMs)

/**
 * A call's deadline in wall-clock ms, which servers in other processes can compare (Infinity for
 * no bound). Whole ms of the bound: the call's timer, on `performance.now()`, never passes before
 * `Date.now()` reaches it, so a timed-out call's look at its request ring comes after its deadline.
 */
const deadlineOf = (timeoutMs: number) => (timeoutMs === Infinity ? Infinity : Date.now() + Math.floor(timeoutMs))

/**
 * Writes `frame` into the request ring while `pending` still waits, waiting for room within its
 * bound; `boundPassed` when the bound passes first. A call that timed out or was abandoned is
 * never sent late.
 */
const sendWhileWaiting = (
  caller: Caller,
  pending: PendingCall,
  frame: OutFrame,
  boundPassed: Effect.Effect<void>
): Effect.Effect<void, FrameTooLarge | RingClosed> =>
  Effect.suspend(() => {
    if (!pending.waiting()) return Effect.void
    const at = caller.writer.tryReserve(frame.length)
    if (at >= 0) {
      writeFrameAt(caller.writer.bytes, at, frame)
      pending.sent(caller.writer.commit())
      return Effect.void
    }
    const left = pending.deadline - performance.now()
    if (left <= 0) return boundPassed
    return Effect.zipRight(
      caller.writer.awaitRoom(frame.length, left),
      sendWhileWaiting(caller, pending, frame, boundPassed)
    )
  })

/**
 * A request that must wait for room in the request ring: written once there is room, then its
 * reply awaited; it stops listening however that ends. The wait for room is bounded by the
 * call's own deadline and raced with its outcome (an abort ends it at once), and the request is
 * reserved, filled and committed only while the call still waits: a call that timed out or was
 * abandoned is never sent late.
 */
const callWhenRoom = (
  caller: Caller,
  method: AnyRpcMethod,
  requestId: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  frame: OutFrame
) =>
  Effect.flatMap(Deferred.make<unknown, unknown>(), (outcome) => {
    const pending = listen(
      caller,
      method,
      requestId,
      frame.json,
      timeoutMs,
      frame.deadlineMs,
      signal,
      (exit) => Deferred.unsafeDone(outcome, exit)
    )
    // The bound passed while waiting for room (the client's timer may not have fired yet).
    const send = sendWhileWaiting(caller, pending, frame, Effect.sync(() => pending.expire()))
    return Effect.zipRight(Effect.raceFirst(send, Deferred.await(outcome)), Deferred.await(outcome)).pipe(
      Effect.ensuring(Effect.sync(() => pending.stop()))
    )
  })

/**
 * Calls `method`: one wait, with no fiber, timer or effect of its own in the common case —
 * the payload is encoded, the call listens, and the request is written and committed, all as
 * the wait starts; the reply's wake callback decodes it and resumes the caller with the
 * outcome. An interrupted call stops listening.
 */
const call = <M extends AnyRpcMethod>(
  caller: Caller,
  method: M,
  payload: Payload<M>,
  options?: RpcCallOptions
): Effect.Effect<Success<M>, Failure<M> | RpcCallError> =>
  Effect.async<unknown, unknown>((resume) => {
    const requestId = caller.nextId
    caller.nextId = requestId === 0xfffffffe ? 1 : requestId + 1
    rpcCalls.unsafeUpdate(1, [])
    const json = toJson(method.payload, payload)
    if (Either.isLeft(json)) {
      return resume(Exit.fail(new RpcInvalidPayload({ method: method.tag, requestId, issue: describe(json.left) })))
    }
    const signal = options?.signal
    // Not sent at all once abandoned.
    if (signal?.aborted === true) return resume(Exit.fail(abandoned(method.tag, requestId, signal)))
    const bound = options?.timeoutMs ?? caller.defaultTimeoutMs
    const deadlineMs = options?.deadlineMs
    const asked = deadlineMs === undefined ? bound : Math.min(bound, deadlineMs - Date.now())
    // A bound that is not a number bounds the call at once: never an unbounded wait (Infinity alone is that).
    const timeoutMs = Number.isNaN(asked) ? 0 : asked
    // A bound passed already: any server would refuse it (its deadline is now), so it is not sent.
    if (timeoutMs <= 0) return resume(Exit.fail(unsent(method.tag, requestId, timeoutMs)))
    const frame = requestFrame(caller, method, requestId, json.right, deadlineOf(timeoutMs))
    // Reserved, filled and committed in this one synchronous step (see RingWriter.tryReserve).
    const at = caller.writer.tryReserve(frame.length)
    if (at < 0) return resume(callWhenRoom(caller, method, requestId, timeoutMs, signal, frame))
    const pending = listen(caller, method, requestId, json.right, timeoutMs, frame.deadlineMs, signal, resume)
    writeFrameAt(caller.writer.bytes, at, frame)
    pending.sent(caller.writer.commit())
    return Effect.sync(() => pending.stop())
  }) as Effect.Effect<Success<M>, Failure<M> | RpcCallError>

/**
 * Every call still waiting sent again (`Kind.retry`, naming the reply reader's slot): after the
 * reply reader was reaped and attached again, since a reply may have gone by unread, and after a
 * server took another's place (`RpcClient.resendWaiting`). The server answers with the reply it
 * kept, or runs a request it never saw (RpcReplyMemo.ts). A retry that finds no room within its
 * call's bound is not sent: that call ends with `RpcTimeout`.
 */
const resendWaiting = (caller: Caller) =>
  // The calls waiting when it runs, not when it was made.
  Effect.suspend(() =>
    Effect.forEach([...caller.pending.values()], (pending) => {
      const frame = outFrame(
        Kind.retry,
        caller.me,
        pending.requestId,
        pending.method.tag,
        pending.json,
        caller.reader.slot,
        pending.deadlineMs
      )
      // A ring closed or a frame too large ends the retry: that call ends with its bound.
      return Effect.ignore(sendWhileWaiting(caller, pending, frame, Effect.void))
    }, { discard: true })
  )

export const client = (rings: RingsShape) => (options: RpcClientOptions) =>
  Effect.gen(function*() {
    const readerOptions: ReaderOptions = {
      ...(options.replySlot === undefined ? {} : { slot: options.replySlot }),
      ...(options.spinMicros === undefined ? {} : { spinMicros: options.spinMicros })
    }
    const writer = yield* rings.writer(options.requests)
    // The readers attached again (`reattach`) are held here, not in the scope the client is made
    // in: a scope closes its latest finalizers first, so one attached after the reading fiber
    // started would be detached before that fiber is interrupted, which would then find it
    // reaped and attach again for as long as the close goes on (a call made meanwhile, such as
    // a leave, never read its reply). Forked now, this scope closes after the fiber has stopped.
    const readers = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const caller: Caller = {
      slot: options.client,
      me: clientAddress(options.client, writer.occurrence),
      writer,
      requests: yield* rings.inspect(options.requests),
      reader: yield* rings.reader(options.replies, readerOptions),
      defaultTimeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      pending: new Map(),
      aborts: new WeakMap(),
      timer: undefined,
      timerAt: Infinity,
      notices: new Map(),
      noticeInbox: yield* Queue.unbounded<WireFrame>(),
      nextId: 1
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => caller.timer !== undefined && clearTimeout(caller.timer)))
    /**
     * The reply-ring reader was reaped (this process did not run for longer than the stale bound,
     * and the ring moved on under it): attach again at the ring's head, never read the old
     * position, and send the waiting calls again (their replies may have gone by meanwhile).
     */
    const attachAgain = Effect.suspend(() => Scope.extend(rings.reader(options.replies, readerOptions), readers)).pipe(
      Effect.tap((attached) => Effect.sync(() => (caller.reader = attached)))
    )
    const reattach = Effect.gen(function*() {
      const reaped = caller.reader
      yield* attachAgain
      yield* resendWaiting(caller)
      yield* Effect.logWarning(
        `rpc: client ${caller.slot}: its reader slot ${reaped.slot} of reply ring ${reaped.address.id} was reaped (this process did not run for too long); attached again at the ring's head`
      )
      if (options.onReattach !== undefined) yield* Effect.forkScoped(options.onReattach)
    }).pipe(Effect.catchAll((e) =>
      Effect.zipRight(
        Effect.logWarning(`rpc: client ${caller.slot}: attaching to the reply ring again failed: ${e.message}`),
        Effect.sleep(RETRY_AFTER_ERROR_MS)
      )
    ))
    /**
     * The reply ring read corrupt (a frame there failed its checks): read again, it would fail the
     * same way for good while every call waited out its bound. As after a reap, the reader lets its
     * slot go and attaches again at the ring's head, and the calls waiting are sent again: the
     * replies between are lost, and the server answers each with the reply it kept, or runs one it
     * never saw, never one twice. A call is sent again only once: one still waiting at the next break
     * fails, `RpcRepliesLost`, as every call waiting does when the client cannot attach again (a
     * ring that keeps breaking would otherwise have the server answer the same calls again and again).
     * Not a reap: `onRepliesLost` is told (the notices between are lost), never `onReattach` (the
     * server did not drop this client).
     */
    const pastCorrupt = (corrupt: RingCorrupt) =>
      Effect.gen(function*() {
        const broken = caller.reader
        yield* rings.reap(options.replies, broken.slot, broken.occurrence).pipe(Effect.ignore)
        const attached = yield* Effect.either(attachAgain)
        if (attached._tag === "Right") {
          failResentAfterBreak(caller, corrupt.message)
          yield* resendWaiting(caller)
          yield* Effect.logWarning(
            `rpc: client ${caller.slot}: ${corrupt.message}; it reads on from the reply ring's head, and sent its calls waiting again`
          )
        } else {
          failWaiting(caller, corrupt.message)
          yield* Effect.logWarning(
            `rpc: client ${caller.slot}: ${corrupt.message}; its calls waiting failed with RpcRepliesLost`
          )
        }
        if (options.onRepliesLost !== undefined) yield* Effect.forkScoped(options.onRepliesLost(corrupt))
        if (attached._tag === "Left") {
          yield* Effect.logWarning(
            `rpc: client ${caller.slot}: attaching to the reply ring again failed: ${attached.left.message}; trying again every ${RETRY_AFTER_ERROR_MS} ms`
          )
          // Retried for good (a schedule that never ends): the error is never seen.
          yield* Effect.ignore(Effect.retry(attachAgain, Schedule.spaced(RETRY_AFTER_ERROR_MS)))
        }
      })
    // Every client reads every reply, in the wake's callback: a reply resumes its call with no reader fiber in between.
    const readReplies = Effect.suspend(() => caller.reader.consumeSync((bytes) => receive(caller, bytes)))
    yield* Effect.forkScoped(readForever(() => caller.reader, readReplies, reattach, pastCorrupt))
    yield* Effect.forkScoped(publishNotices(caller))
    const rpcClient: RpcClient = {
      client: caller.slot,
      call: (method, payload, callOptions) => call(caller, method, payload, callOptions),
      resendWaiting: resendWaiting(caller),
      notices: (notice) => noticesOf(caller, notice)
    }
    return rpcClient
  })
