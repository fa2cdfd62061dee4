/**
 * The Rpc server: each client's request ring read in the doorbell's wake callback, `dispatch`
 * (request frame → handler) → `runHandler` → `reply` → the reply ring's single writer.
 */
import { Cause, Effect, Either, Exit, Fiber, Option, Queue, Runtime } from "effect"
import { rpcRejectedRequests } from "../../Metrics.js"
import type { RingBreak, RingsShape } from "../../services/control/Rings.js"
import {
  type DeferredReply,
  RpcDeadlinePassed,
  type RpcHandler,
  RpcInvalidPayload,
  RpcReplyLost,
  type RpcServer,
  type RpcServerOptions,
  RpcUnknownMethod
} from "../../services/control/Rpc.js"
import { readPastCorruption } from "./ReadPastCorruption.js"
import {
  ALL_CLIENTS,
  clientAddress,
  decodeFrame,
  describe,
  encoder,
  fromJson,
  Kind,
  outFrame,
  slotOfAddress,
  toJson
} from "./RpcFrames.js"
import { deferredReply, protocolError, reply, type Requester } from "./RpcReplies.js"
import {
  noticeNow,
  type Outbound,
  type ReplyChannel,
  sendNotice,
  sendReply,
  wakeList,
  writeQueued
} from "./RpcReplyChannel.js"
import { ReplyMemo } from "./RpcReplyMemo.js"
import { RequestsUnread, unreadNotice } from "./RpcRequestsUnread.js"

interface Dispatcher<R> {
  readonly channel: ReplyChannel
  readonly byTag: ReadonlyMap<string, RpcHandler<R>>
  /** Reader slots of the reply ring: a request naming another is answered waking everyone. */
  readonly replySlots: number
  /** Handlers that suspended, each in a fiber of its own (`dispatchNow`): interrupted with the server. */
  readonly suspended: Set<Fiber.RuntimeFiber<void>>
}

/**
 * One request frame from `client`: decodes it, finds the method's handler, decodes the
 * payload with its Schema and runs the handler; a malformed frame is dropped, an unknown
 * method, an undecodable payload or a request read past its caller's deadline answered with a
 * protocol error, never run. Plain code up to the handler: returns what is left to run as an
 * effect (a handler that is not already an exit, a log line), or nothing when the request was
 * answered.
 */
const dispatch = <R>(
  server: Dispatcher<R>,
  client: number,
  bytes: Uint8Array,
  sequence: number
): void | Effect.Effect<void, never, R> => {
  const frame = decodeFrame(bytes)
  if (frame === undefined || (frame.kind !== Kind.request && frame.kind !== Kind.retry)) {
    rpcRejectedRequests.unsafeUpdate(1, [])
    return Effect.logWarning(`rpc: client ${client}: dropped a malformed request frame (${bytes.length} bytes)`)
  }
  const { requestId, tag } = frame
  const to: Requester = {
    client,
    // The address the request named, when it names this ring's slot (a client of a build before addresses was its slot alone).
    addressee: slotOfAddress(frame.client) === client ? frame.client : client,
    requestId,
    replySlot: frame.replySlot < server.replySlots ? frame.replySlot : -1
  }
  const { memo } = server.channel
  if (frame.kind === Kind.retry) {
    // Sent again by a client whose reader was reaped, or after a takeover: answered as it was, never run twice.
    const kept = memo.retry(client, requestId)
    if (kept === "running") return
    if (kept === "lost") {
      return protocolError(server.channel, to, tag, new RpcReplyLost({ method: tag, requestId }))
    }
    if (kept !== "unseen") return sendReply(server.channel, kept, to)
  }
  // Read at or past its caller's deadline: the caller has given up on it, and told its user it
  // never runs if no server had read it by then (RpcPendingCalls.ts, `fate`). Not run, not kept.
  const now = Date.now()
  if (now >= frame.deadlineMs) {
    rpcRejectedRequests.unsafeUpdate(1, [])
    return protocolError(
      server.channel,
      to,
      tag,
      new RpcDeadlinePassed({ method: tag, requestId, lateMs: now - frame.deadlineMs })
    )
  }
  memo.started(client, requestId, frame.kind === Kind.retry)
  const handler = server.byTag.get(tag)
  if (handler === undefined) {
    rpcRejectedRequests.unsafeUpdate(1, [])
    return protocolError(server.channel, to, encoder.encode(tag), new RpcUnknownMethod({ method: tag, requestId }))
  }
  const payload = fromJson(handler.method.payload, frame.json)
  if (Either.isLeft(payload)) {
    rpcRejectedRequests.unsafeUpdate(1, [])
    return protocolError(
      server.channel,
      to,
      tag,
      new RpcInvalidPayload({ method: tag, requestId, issue: describe(payload.left) })
    )
  }
  return runHandler(server, handler, to, payload.right, sequence)
}

/**
 * Runs a handler and replies with its exit — unless it deferred: then its handle replies (a
 * failure after deferring included). A handler that returns an exit (`Effect.succeed`,
 * `Effect.fail`: most coordinator requests) is answered right here with no effect run;
 * otherwise the returned effect runs it, with the runtime `serve` was called in
 * (`dispatchNow`), so the handlers' requirements are in its context already.
 */
const runHandler = <R>(
  server: Dispatcher<R>,
  handler: RpcHandler<R>,
  to: Requester,
  payload: unknown,
  sequence: number
): void | Effect.Effect<void, never, R> => {
  let deferred: DeferredReply<unknown, unknown> | undefined
  const request = {
    client: to.client,
    requestId: to.requestId,
    method: handler.method.tag,
    sequence,
    defer: () => (deferred ??= deferredReply(server.channel, handler.method, to))
  }
  const settle = (exit: Exit.Exit<unknown, unknown>): void | Effect.Effect<void> => {
    if (deferred === undefined) return reply(server.channel, handler.method, to, exit)
    if (Exit.isSuccess(exit)) return
    const failure = Cause.failureOption(exit.cause)
    return Option.isSome(failure) ? deferred.fail(failure.value) : reply(server.channel, handler.method, to, exit)
  }
  let run: Effect.Effect<unknown, unknown, R>
  try {
    run = handler.run(payload, request)
  } catch (defect) {
    return settle(Exit.die(defect))
  }
  if (Exit.isExit(run)) return settle(run)
  return Effect.flatMap(Effect.exit(run), (exit) => settle(exit) ?? Effect.void)
}

/**
 * One request, run in the doorbell's wake callback (`consumeSync`): its handler and reply run
 * to completion right there when nothing in them suspends (every coordinator request but a
 * release that waits for drains), with no reader fiber resumed per request. A handler that
 * suspends goes on in its own fiber, and the ring's later requests wait for it, as they would
 * behind a reader fiber. That fiber is the server's (`suspended`): if the reading fiber is
 * interrupted before it joins it, the server's scope still interrupts it.
 */
const dispatchNow = <R>(
  runNow: (effect: Effect.Effect<void, never, R>) => Exit.Exit<void>,
  server: Dispatcher<R>,
  client: number,
  bytes: Uint8Array,
  sequence: number
): void | Effect.Effect<void> => {
  const rest = dispatch(server, client, bytes, sequence)
  if (rest === undefined) return
  const exit = runNow(rest)
  if (Exit.isSuccess(exit)) return
  const defect = Cause.dieOption(exit.cause)
  if (Option.isSome(defect) && Runtime.isAsyncFiberException(defect.value)) {
    const fiber = defect.value.fiber as Fiber.RuntimeFiber<void>
    server.suspended.add(fiber)
    fiber.addObserver(() => server.suspended.delete(fiber))
    return Fiber.join(fiber).pipe(Effect.onInterrupt(() => Fiber.interrupt(fiber)))
  }
  // dispatch answers every handler's failure and defect itself: this is the server's own defect.
  return Effect.failCause(exit.cause)
}

export const serve = (rings: RingsShape) => <R>(options: RpcServerOptions, handlers: ReadonlyArray<RpcHandler<R>>) =>
  Effect.gen(function*() {
    const writer = yield* rings.writer(options.replies, {
      ...(options.takeOver === true ? { takeOver: true } : {}),
      ...(options.freeStalledReaderAfterMs === undefined
        ? {}
        : { freeStalledReaderAfterMs: options.freeStalledReaderAfterMs })
    })
    const channel: ReplyChannel = {
      writer,
      outbound: yield* Queue.unbounded<Outbound>(),
      toWake: wakeList(writer),
      queued: 0,
      sending: false,
      memo: new ReplyMemo()
    }
    yield* Effect.addFinalizer(() => Effect.sync(channel.toWake.cancel))
    yield* Effect.forkScoped(writeQueued(channel))
    const server: Dispatcher<R> = {
      channel,
      byTag: new Map(handlers.map((h) => [h.method.tag, h])),
      replySlots: options.replies.readerSlots,
      suspended: new Set()
    }
    // Runs after the readers stop (finalizers run in reverse): no handler outlives the server or its reply ring.
    yield* Effect.addFinalizer(() => Fiber.interruptAll(server.suspended))
    const runNow = Runtime.runSyncExit(yield* Effect.runtime<R>())
    const rpcServer: RpcServer = {
      notify: (notice, value, client) =>
        Effect.flatMap(
          toJson(notice.schema, value),
          (json) => sendNotice(channel, client ?? ALL_CLIENTS, notice.tag, json)
        ),
      notifyNow: (notice, value, client) => {
        const json = toJson(notice.schema, value)
        return Either.isLeft(json)
          ? undefined
          : noticeNow(channel, outFrame(Kind.notice, client ?? ALL_CLIENTS, 0, notice.tag, json.right))
      }
    }
    for (const { client, ring } of options.requests) {
      const inspector = yield* rings.inspect(ring)
      /** A corrupt stretch of this client's ring: its calls that lay there are told, and whoever serves. */
      const broken = (ringBreak: RingBreak) => {
        // The client writing the ring now: its address names that hold of the slot.
        const to = clientAddress(client, inspector.writer().occurrence)
        const told = rpcServer.notify(RequestsUnread, unreadNotice(ringBreak), to).pipe(
          Effect.catchAll((e) =>
            Effect.logWarning(`rpc: client ${client}: its unread requests could not be told: ${e.message}`)
          )
        )
        const reported = options.onRequestsBroken?.(client, ringBreak) ?? Effect.logWarning(
          `rpc: client ${client}: ${ringBreak.error.message}; ${
            ringBreak.resumedAt === undefined
              ? "its ring is read no more"
              : `read on from position ${ringBreak.resumedAt}, the requests before it not read`
          }`
        )
        return Effect.zipRight(told, reported)
      }
      yield* readPastCorruption(
        rings,
        ring,
        options.spinMicros === undefined ? {} : { spinMicros: options.spinMicros },
        (reader) => reader.consumeSync((bytes, sequence) => dispatchNow(runNow, server, client, bytes, sequence)),
        broken
      )
    }
    return rpcServer
  })
