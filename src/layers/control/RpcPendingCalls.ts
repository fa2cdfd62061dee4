/**
 * An Rpc client's calls waiting for their replies (RpcClient.ts sends them and reads the replies):
 * each call's record, the one timer that bounds them all, the abort signals they share, and how a
 * reply, a bound, an abort or a lost reply ring settles them.
 */
import { Either, Exit } from "effect"
import { rpcTimeouts } from "../../Metrics.js"
import type { RingInspector, RingReader, RingWriter } from "../../services/control/Rings.js"
import {
  type AnyRpcMethod,
  RpcAbandoned,
  RpcInvalidReply,
  RpcProtocolError,
  RpcRepliesLost,
  type RpcRequestFate,
  RpcTimeout
} from "../../services/control/Rpc.js"
import type { NoticeHubs } from "./RpcClientNotices.js"
import { describe, fromJson, Kind } from "./RpcFrames.js"

/**
 * A call waiting for its reply, by request id. Its outcome resumes the calling fiber once, as an
 * exit made in the wake's callback: the reply decoded with the method's Schemas, its bound
 * (`RpcTimeout`), or its signal's abort (`RpcAbandoned`). Nothing is allocated per call for
 * the wait beyond this record: no closure, timer or listener of its own.
 */
export class PendingCall {
  /** Where its request's frame ended in the request ring, once written (a server that could not read it says where). */
  sentThrough = -1
  /** Where its first frame ended (a retry is written after it): a server that read that far may have run it. */
  firstSentThrough = -1
  /** Sent again once already because the reply ring read corrupt (RpcClient.ts `pastCorrupt`). */
  resentAfterBreak = false
  constructor(
    readonly caller: Caller,
    readonly method: AnyRpcMethod,
    readonly requestId: number,
    /** The request's payload, kept to send it again (`resendWaiting`). */
    readonly json: string,
    readonly timeoutMs: number,
    /** When its bound passes, on this process's `performance.now()` clock (its timer's). */
    readonly deadline: number,
    /** The same, in wall-clock ms, as its frames carry it to the server: Infinity for no bound. */
    readonly deadlineMs: number,
    readonly signal: AbortSignal | undefined,
    readonly resume: (outcome: Exit.Exit<unknown, unknown>) => void
  ) {}
  /** Whether the call still waits (no reply, bound or abort settled it yet). */
  waiting(): boolean {
    return this.caller.pending.get(this.requestId) === this
  }
  /** Stops listening: no reply, bound or abort reaches this call any more. */
  stop(): void {
    untrack(this.caller, this.requestId)
    if (this.signal !== undefined) this.caller.aborts.get(this.signal)?.delete(this)
  }
  settle(outcome: Exit.Exit<unknown, unknown>): void {
    this.stop()
    this.resume(outcome)
  }
  deliver(kind: number, json: string): void {
    this.settle(decodeReply(this.method, this.requestId, kind, json))
  }
  /** Its request's frame was committed to the request ring, ending at `end`. */
  sent(end: number): void {
    this.sentThrough = end
    if (this.firstSentThrough < 0) this.firstSentThrough = end
  }
  /** The call's bound passed: it fails with `RpcTimeout`, saying how far its request got. */
  expire(): void {
    this.settle(Exit.fail(timedOut(this.method.tag, this.requestId, this.timeoutMs, this.fate())))
  }
  /**
   * How far its request got, read once its bound passed. A server publishes that it read a frame
   * before it looks at the frame's deadline (RingEndpoints.ts `consumeSync`), so a request no
   * server had read when this process's wall clock reached the deadline is refused by any server
   * reading it after. Any reader slot at or past the first frame counts as having read it: one that
   * attached after it was sent never read it, but the server it replaced may have.
   */
  private fate(): RpcRequestFate {
    if (this.firstSentThrough < 0) return "not-sent"
    const end = this.firstSentThrough
    if (this.caller.requests.readers().some((reader) => reader.delivered >= end)) return "read"
    return Date.now() >= this.deadlineMs ? "unread" : "unread-early"
  }
  /** The call's signal aborted: it fails with `RpcAbandoned`. */
  abandon(): void {
    this.settle(Exit.fail(abandoned(this.method.tag, this.requestId, this.signal)))
  }
}

/** A call's bound passed, its request got as far as `request` says: counted, and its `RpcTimeout`. */
const timedOut = (method: string, requestId: number, timeoutMs: number, request: RpcRequestFate) => {
  rpcTimeouts.unsafeUpdate(1, [])
  return new RpcTimeout({ method, requestId, timeoutMs, request })
}

/** A call whose bound had passed before its request could be sent: it never runs. */
export const unsent = (method: string, requestId: number, timeoutMs: number) =>
  timedOut(method, requestId, timeoutMs, "not-sent")

export const abandoned = (method: string, requestId: number, signal: AbortSignal | undefined) =>
  new RpcAbandoned({ method, requestId, reason: String(signal?.reason ?? "aborted") })

export interface Caller extends NoticeHubs {
  /** This client's slot: its request ring's index. */
  readonly slot: number
  /** What its requests name it, and its replies (`clientAddress`): the slot and its request ring's writer occurrence. */
  readonly me: number
  readonly writer: RingWriter
  /** The request ring's lines: how far its server read (a timed-out call's `fate`). */
  readonly requests: RingInspector
  /** Replaced when the server reaped it (`reattach`). */
  reader: RingReader
  readonly defaultTimeoutMs: number
  /** Calls waiting for their reply, by request id. */
  readonly pending: Map<number, PendingCall>
  /**
   * Calls waiting with each abort signal: one listener per signal however many calls share it
   * (every barrier call shares the coordinator's takeover signal), so a call adds none.
   */
  readonly aborts: WeakMap<AbortSignal, Set<PendingCall>>
  /** The one timer that bounds every call (`boundCalls`), and when it fires. */
  timer: ReturnType<typeof setTimeout> | undefined
  timerAt: number
  nextId: number
}

const repliesLost = (call: PendingCall, reason: string) =>
  call.settle(Exit.fail(new RpcRepliesLost({ method: call.method.tag, requestId: call.requestId, reason })))

/** The reply ring read corrupt (`reason`): each call waiting may have lost its reply there, and ends now. */
export const failWaiting = (caller: Caller, reason: string): void => {
  for (const call of [...caller.pending.values()]) repliesLost(call, reason)
}

/**
 * The reply ring read corrupt (`reason`) and the calls waiting are about to be sent again: each
 * sent again after an earlier break ends now instead; the others are marked as sent again.
 */
export const failResentAfterBreak = (caller: Caller, reason: string): void => {
  for (const call of [...caller.pending.values()]) {
    if (call.resentAfterBreak) repliesLost(call, reason)
    else call.resentAfterBreak = true
  }
}

/**
 * One timer bounds every call of a client, armed for the earliest deadline and re-armed when it
 * fires: a client's calls mostly share a timeout, so their deadlines come in order and the timer
 * rarely moves — a call costs no timer of its own. It keeps the process alive only while calls wait.
 */
const armCallTimer = (caller: Caller, deadline: number) => {
  if (caller.timer !== undefined && caller.timerAt <= deadline) return
  if (caller.timer !== undefined) clearTimeout(caller.timer)
  caller.timerAt = deadline
  caller.timer = setTimeout(() => boundCalls(caller), Math.min(Math.max(0, deadline - performance.now()), 2 ** 31 - 1))
}
const boundCalls = (caller: Caller) => {
  caller.timer = undefined
  caller.timerAt = Infinity
  const now = performance.now()
  let next = Infinity
  for (const call of caller.pending.values()) {
    if (call.deadline <= now) call.expire()
    else next = Math.min(next, call.deadline)
  }
  if (next < Infinity) armCallTimer(caller, next)
}
const track = (caller: Caller, requestId: number, call: PendingCall) => {
  if (caller.pending.size === 0) caller.timer?.ref()
  caller.pending.set(requestId, call)
  armCallTimer(caller, call.deadline)
}
const untrack = (caller: Caller, requestId: number) => {
  if (caller.pending.delete(requestId) && caller.pending.size === 0) caller.timer?.unref()
}

/** Listens for the reply to `requestId` from now on (before the request is written, so a reply cannot come first), bounded by the client's timer and `signal`. */
export const listen = (
  caller: Caller,
  method: AnyRpcMethod,
  requestId: number,
  json: string,
  timeoutMs: number,
  deadlineMs: number,
  signal: AbortSignal | undefined,
  resume: (outcome: Exit.Exit<unknown, unknown>) => void
): PendingCall => {
  const pending = new PendingCall(
    caller,
    method,
    requestId,
    json,
    timeoutMs,
    performance.now() + timeoutMs,
    deadlineMs,
    signal,
    resume
  )
  track(caller, requestId, pending)
  if (signal !== undefined) {
    let waiting = caller.aborts.get(signal)
    if (waiting === undefined) {
      const calls = waiting = new Set()
      caller.aborts.set(signal, calls)
      signal.addEventListener("abort", () => {
        for (const call of calls) call.abandon()
      }, { once: true })
    }
    waiting.add(pending)
  }
  return pending
}

/** A reply decoded with the method's own Schemas: its success, or its typed or protocol failure. */
const decodeReply = (
  method: AnyRpcMethod,
  requestId: number,
  kind: number,
  json: string
): Exit.Exit<unknown, unknown> => {
  const decoded = kind === Kind.success
    ? fromJson(method.success, json)
    : kind === Kind.failure
    ? fromJson(method.failure, json)
    : kind === Kind.protocolError
    ? fromJson(RpcProtocolError, json)
    : undefined
  if (decoded === undefined) {
    return Exit.fail(new RpcInvalidReply({ method: method.tag, requestId, issue: `unexpected frame kind ${kind}` }))
  }
  if (Either.isLeft(decoded)) {
    return Exit.fail(new RpcInvalidReply({ method: method.tag, requestId, issue: describe(decoded.left) }))
  }
  return kind === Kind.success ? Exit.succeed(decoded.right) : Exit.fail(decoded.right)
}
