/**
 * Rpc over Rings (either Rings layer). Frames: a 12-byte header — kind (u8), the client's
 * reply-ring reader slot + 1 (u8 at +1, requests only; 0 = unknown), tag length (u16 at +2),
 * client (u32 at +4), request id (u32 at +8) — then the method or notice tag, then the payload
 * as JSON of the Schema-encoded value. A reply wakes only its client's reader slot when the
 * request named it; notices wake every reader.
 *
 * A call's path: `call` → `requestFrame` (written to the client's request ring) → the server's
 * `dispatch` → `runHandler` → `reply` → `sendReply` (the reply ring's single writer) → the
 * client's `receive` → the pending call's `deliver` → `decodeReply`, which resumes the caller.
 */
import { Cause, Clock, Deferred, Effect, Either, Exit, Fiber, Layer, Option, ParseResult, PubSub, Queue, Runtime, Schema, Stream } from "effect"
import { rpcCalls, rpcDroppedReplies, rpcRejectedRequests, rpcTimeouts } from "../../Metrics.js"
import {
  type AnyRpcMethod,
  type DeferredReply,
  type Failure,
  type Payload,
  DeferredReplyTypeId,
  isSharedReply,
  Rpc,
  type RpcCallError,
  type RpcClient,
  type RpcClientOptions,
  RpcHandlerDefect,
  type RpcHandler,
  RpcInvalidPayload,
  RpcInvalidReply,
  type RpcNotice,
  RpcProtocolError,
  RpcAbandoned,
  type RpcServer,
  type RpcServerOptions,
  type RpcShape,
  RpcTimeout,
  RpcUnknownMethod,
  type Success
} from "../../services/control/Rpc.js"
import {
  type FrameTooLarge,
  type RingClosed,
  type RingReader,
  type RingReadError,
  Rings,
  type RingsShape,
  type RingWriteError,
  type RingWriter
} from "../../services/control/Rings.js"
import { type JsonCodec, jsonCodec } from "./JsonCodec.js"

const Kind = { request: 1, success: 2, failure: 3, protocolError: 4, notice: 5 } as const
const HEADER_BYTES = 12
/** Addressee of a notice meant for every client. */
const ALL_CLIENTS = 0xffffffff
const DEFAULT_TIMEOUT_MS = 10_000
/** Bound of one wait for a new writer of a ring whose writer closed or died (a writer opening the ring wakes it at once). */
const REOPEN_WAIT_MS = 60_000
/** Pause before reading a ring again after an error other than its writer ending. */
const RETRY_AFTER_ERROR_MS = 1_000
/** How often a read error that keeps coming back is logged again. */
const REPEAT_WARNING_MS = 60_000

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Reader slots a one-byte header field can name. */
const MAX_NAMED_SLOT = 254

interface WireFrame {
  readonly kind: number
  /** The requesting client's reader slot on the reply ring, -1 if unknown. */
  readonly replySlot: number
  readonly client: number
  readonly requestId: number
  readonly tag: string
  readonly json: string
}

/**
 * Tags' UTF-8 bytes: the method and notice names the code defines, encoded once. A tag read off
 * the wire (an unknown method's, echoed in its error reply) comes as bytes and is not kept: a
 * buggy client sending made-up names must not grow this for good.
 */
const tagBytes = new Map<string, Uint8Array>()
const tagBytesOf = (tag: string | Uint8Array) => {
  if (typeof tag !== "string") return tag
  let bytes = tagBytes.get(tag)
  if (bytes === undefined) tagBytes.set(tag, bytes = encoder.encode(tag))
  return bytes
}

/** How many tags' encodings are kept (tests). */
export const cachedTags = (): number => tagBytes.size

/**
 * A frame to send, written straight into a ring where it fits now (no copy, no allocation),
 * or materialized with `frameBytes` when it must wait.
 */
interface OutFrame {
  readonly kind: number
  readonly client: number
  readonly requestId: number
  readonly tag: Uint8Array
  readonly json: string
  readonly replySlot: number
  readonly length: number
}

const outFrame = (kind: number, client: number, requestId: number, tag: string | Uint8Array, json: string, replySlot = -1): OutFrame => {
  const tagged = tagBytesOf(tag)
  return { kind, client, requestId, tag: tagged, json, replySlot, length: HEADER_BYTES + tagged.length + Buffer.byteLength(json, "utf8") }
}

const writeU32 = (bytes: Uint8Array, at: number, value: number) => {
  bytes[at] = value & 0xff
  bytes[at + 1] = (value >>> 8) & 0xff
  bytes[at + 2] = (value >>> 16) & 0xff
  bytes[at + 3] = value >>> 24
}

/** Writes `frame`'s header, tag and payload at `bytes[at]` (`frame.length` bytes). */
const writeFrameAt = (bytes: Uint8Array, at: number, frame: OutFrame) => {
  const { replySlot, tag } = frame
  bytes[at] = frame.kind
  bytes[at + 1] = replySlot >= 0 && replySlot <= MAX_NAMED_SLOT ? replySlot + 1 : 0
  bytes[at + 2] = tag.length & 0xff
  bytes[at + 3] = tag.length >>> 8
  writeU32(bytes, at + 4, frame.client)
  writeU32(bytes, at + 8, frame.requestId)
  bytes.set(tag, at + HEADER_BYTES)
  encoder.encodeInto(frame.json, bytes.subarray(at + HEADER_BYTES + tag.length, at + frame.length))
}

const frameBytes = (frame: OutFrame): Uint8Array => {
  const bytes = new Uint8Array(frame.length)
  writeFrameAt(bytes, 0, frame)
  return bytes
}

const readU32 = (bytes: Uint8Array, at: number): number => (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0

/** The addressee of a frame, read from its header without decoding it (-1 when too short). */
const addresseeOf = (frame: Uint8Array): number => (frame.length < HEADER_BYTES ? -1 : readU32(frame, 4))

/** Reads a frame (copying out of the ring); undefined when the header is malformed. */
const decodeFrame = (frame: Uint8Array): WireFrame | undefined => {
  if (frame.length < HEADER_BYTES) return undefined
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const kind = view.getUint8(0)
  const tagLength = view.getUint16(2, true)
  if (kind < Kind.request || kind > Kind.notice || HEADER_BYTES + tagLength > frame.length) return undefined
  return {
    kind,
    replySlot: view.getUint8(1) - 1,
    client: view.getUint32(4, true),
    requestId: view.getUint32(8, true),
    tag: decoder.decode(frame.subarray(HEADER_BYTES, HEADER_BYTES + tagLength)),
    json: decoder.decode(frame.subarray(HEADER_BYTES + tagLength))
  }
}

/** A Schema's JSON codec, built once per Schema: building one compiles the Schema, far costlier than a call. */
const codecs = new WeakMap<object, JsonCodec>()
const codec = (schema: AnyRpcMethod["payload"] | typeof RpcProtocolError): JsonCodec => {
  let found = codecs.get(schema)
  if (found === undefined) {
    found = jsonCodec(schema as Schema.Schema<unknown, unknown>)
    codecs.set(schema, found)
  }
  return found
}
const toJson = (schema: AnyRpcMethod["payload"] | typeof RpcProtocolError, value: unknown) => codec(schema).encode(value)
const fromJson = (schema: AnyRpcMethod["payload"] | typeof RpcProtocolError, text: string) => codec(schema).decode(text)
/** A Schema issue for an error reply, kept short enough for the reply ring. */
const describe = (error: ParseResult.ParseError) => ParseResult.TreeFormatter.formatErrorSync(error).slice(0, 1000)

/**
 * Reads `reader` with `read` (its `consume` or `consumeSync`) for good: a closed or dead writer
 * is waited out (a new one may come, and opening the ring wakes us at once); any other error (a
 * corrupt ring, a reaped slot) is logged and the ring read again after RETRY_AFTER_ERROR_MS.
 * A ring that stays corrupt fails every retry: the first error is logged, then at most one
 * line per REPEAT_WARNING_MS with how many failed since (not a line a second for good).
 */
const readForever = <R, R2 = never>(
  reader: () => RingReader,
  read: Effect.Effect<void, Exclude<RingReadError, RingClosed>, R>,
  reattach?: Effect.Effect<void, never, R2>
) =>
  Effect.suspend(() => {
    let unreported = 0
    let warnedAt = -Infinity
    const warn = (error: Exclude<RingReadError, RingClosed>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        unreported++
        if (now - warnedAt < REPEAT_WARNING_MS) return Effect.void
        const repeats = warnedAt === -Infinity ? "" : ` (${unreported} failed reads in the last ${Math.round((now - warnedAt) / 1000)} s)`
        warnedAt = now
        unreported = 0
        return Effect.logWarning(`rpc: ring ${reader().address.id}: ${error.message}${repeats}; reading it again every ${RETRY_AFTER_ERROR_MS} ms`)
      })
    return read.pipe(
      Effect.matchEffect({
        onSuccess: () => reader().awaitWriter(REOPEN_WAIT_MS),
        onFailure: (error) =>
          error._tag === "RingWriterDead"
            ? reader().awaitWriter(REOPEN_WAIT_MS)
            : error._tag === "ReaderReaped" && reattach !== undefined
            ? reattach
            : Effect.zipRight(warn(error), Effect.sleep(RETRY_AFTER_ERROR_MS))
      }),
      Effect.forever
    )
  })

// ---------------------------------------------------------------------------------------
// The server: dispatch (request frame → handler) → reply → the reply ring's single writer.
// ---------------------------------------------------------------------------------------

/** Who a reply goes to: the client, its request, and its reader slot on the reply ring (-1: unknown). */
interface Requester {
  readonly client: number
  readonly requestId: number
  readonly replySlot: number
}

interface Outbound {
  readonly frame: Uint8Array
  /** The reader slot to wake for it; -1 wakes every reader. */
  readonly wake: number
  readonly committed?: Deferred.Deferred<number, RingWriteError>
}

/**
 * Who the reply ring's commits wake. A reply wakes its client's reader slot. A notice wakes
 * every reader, one macrotask later and only those no reply woke meanwhile: a barrier release
 * is a notice followed at once by one reply per participant, each committed as it is written,
 * and a wake costs the head a system call per parked process (tens of µs on a VM) — each
 * participant is woken once, by its reply, not once by the notice and again by its reply.
 */
export const wakeList = (writer: RingWriter) => {
  const slots: Array<number> = []
  /** A notice was added since the last commit. */
  let notice = false
  /** A committed notice has not woken everyone yet: the slots woken since. */
  let wokenSinceNotice: Set<number> | undefined
  /** The macrotask that wakes a notice's other readers, while one is due. */
  let pending: NodeJS.Immediate | undefined
  const wakeTheRest = () => {
    pending = undefined
    if (wokenSinceNotice === undefined) return
    const rest: Array<number> = []
    for (let slot = 0; slot < writer.address.readerSlots; slot++) if (!wokenSinceNotice.has(slot)) rest.push(slot)
    wokenSinceNotice = undefined
    writer.wake(rest)
  }
  return {
    /** Adds reader `slot` to the next commit's wake-ups; -1 for a notice (every reader, soon). */
    add: (slot: number) => {
      if (slot < 0) notice = true
      else if (!slots.includes(slot)) slots.push(slot)
    },
    /** Commits, waking the slots added since the last commit; a notice's other readers are woken a macrotask later. */
    commit: (): number => {
      const sequence = writer.commit(slots)
      if (notice) {
        // Only wakes from this commit on have seen this notice.
        if (wokenSinceNotice === undefined) pending = setImmediate(wakeTheRest)
        wokenSinceNotice = new Set(slots)
      } else if (wokenSinceNotice !== undefined) {
        for (const slot of slots) wokenSinceNotice.add(slot)
      }
      notice = false
      slots.length = 0
      return sequence
    },
    /** With the writer's scope: a due wake must not reach a ring whose region is unmapped by then. */
    cancel: () => {
      if (pending !== undefined) clearImmediate(pending)
      pending = undefined
      wokenSinceNotice = undefined
    }
  }
}

/**
 * The reply ring's only writer: replies, deferred replies and notices all funnel here. While
 * nothing is queued, a reply that fits goes straight into the ring and is committed at once
 * (`sendReply`): its client is woken before the server reads its next request, not after the
 * whole burst. Anything else waits in `outbound` for the writer fiber (`writeQueued`).
 */
interface ReplyChannel {
  readonly writer: RingWriter
  readonly outbound: Queue.Queue<Outbound>
  readonly toWake: ReturnType<typeof wakeList>
  /** Frames in `outbound` or being written by the writer fiber. */
  queued: number
  /** True while the writer fiber fills a batch (then `queued` > 0, so nothing is written directly). */
  sending: boolean
}

/** Copies `frame` in uncommitted if it fits now. */
const tryWrite = (writer: RingWriter, frame: Uint8Array): boolean => {
  const at = writer.tryReserve(frame.length)
  if (at >= 0) writer.bytes.set(frame, at)
  return at >= 0
}

/**
 * Reserves room for `frame` within the writer's bound and copies it in uncommitted; fails
 * (`RingFull` naming the slowest reader slot) when none came: a reader that stopped but did not
 * die must not stall every reply for ever (the coordinator or the wait for room frees its slot).
 */
const writeFrame = (writer: RingWriter, frame: Uint8Array) =>
  Effect.map(writer.reserve(frame.length), (at) => {
    writer.bytes.set(frame, at)
  })

/**
 * The writer fiber: writes queued frames in batches, one commit per batch, then tells notices
 * where they were committed. A frame that finds no room within the bound is dropped (its caller
 * gets `RpcTimeout`; a notice's sender gets the error), counted and logged; the rest of its
 * batch is then written only where it fits at once, so a full ring costs one bound per batch.
 */
const writeQueued = (channel: ReplyChannel) =>
  Effect.forever(Effect.gen(function*() {
    const items = yield* Queue.takeBetween(channel.outbound, 1, 4096)
    channel.sending = true
    let full: RingWriteError | undefined
    const dropped = new Map<Outbound, RingWriteError>()
    for (const item of items) {
      // Tried at once first: a frame that fits costs no effect of its own.
      const written = tryWrite(channel.writer, item.frame)
        ? Either.void
        : full !== undefined
        ? Either.left(full)
        : yield* Effect.either(writeFrame(channel.writer, item.frame))
      if (Either.isRight(written)) channel.toWake.add(item.wake)
      else {
        if (written.left._tag === "RingFull") full = written.left
        dropped.set(item, written.left)
      }
    }
    channel.sending = false
    const sequence = channel.toWake.commit()
    channel.queued -= items.length
    if (dropped.size > 0) {
      rpcDroppedReplies.unsafeUpdate(dropped.size, [])
      yield* Effect.logError(`rpc: reply ring: dropped ${dropped.size} of ${items.length} queued replies and notices: ${[...dropped.values()][0]!.message}`)
    }
    for (const item of items) {
      if (item.committed === undefined) continue
      const error = dropped.get(item)
      yield* (error === undefined ? Deferred.succeed(item.committed, sequence) : Deferred.fail(item.committed, error))
    }
  }))

/** Sends a reply now, waking reader slot `wake` (-1: every reader): into the ring at once while nothing is queued, else queued for the writer fiber. */
const sendReply = (channel: ReplyChannel, frame: OutFrame, wake: number): void => {
  if (channel.queued === 0) {
    const at = channel.writer.tryReserve(frame.length)
    if (at >= 0) {
      writeFrameAt(channel.writer.bytes, at, frame)
      channel.toWake.add(wake)
      channel.toWake.commit()
      return
    }
  }
  channel.queued++
  Queue.unsafeOffer(channel.outbound, { frame: frameBytes(frame), wake })
}

/** Writes and commits a notice now if nothing is queued before it and it fits: the leading sequence after it, else undefined. */
const noticeNow = (channel: ReplyChannel, frame: OutFrame): number | undefined => {
  if (channel.queued !== 0) return undefined
  const at = channel.writer.tryReserve(frame.length)
  if (at < 0) return undefined
  writeFrameAt(channel.writer.bytes, at, frame)
  channel.toWake.add(-1)
  return channel.toWake.commit()
}

/**
 * Sends a notice to `client` (written at once while nothing is queued, else through the writer
 * fiber); resolves to the reply ring's leading sequence once it is committed.
 */
const sendNotice = (channel: ReplyChannel, client: number, tag: string, json: string) =>
  Effect.suspend(() => {
    const frame = outFrame(Kind.notice, client, 0, tag, json)
    const sequence = noticeNow(channel, frame)
    if (sequence !== undefined) return Effect.succeed(sequence)
    return Effect.gen(function*() {
      const committed = yield* Deferred.make<number, RingWriteError>()
      channel.queued++
      yield* Queue.offer(channel.outbound, { frame: frameBytes(frame), wake: -1, committed })
      return yield* Deferred.await(committed)
    })
  })

const protocolError = (channel: ReplyChannel, to: Requester, tag: string | Uint8Array, error: RpcProtocolError): void =>
  sendReply(channel, outFrame(Kind.protocolError, to.client, to.requestId, tag, Either.getOrThrow(toJson(RpcProtocolError, error))), to.replySlot)

/**
 * Encodings of values marked `sharedReply` (they never change again), per value: a barrier
 * release answers every participant with one object, encoded once. Any other value is encoded
 * for every reply, so one a handler changes and returns again is sent as it is now.
 */
const sharedJson = new WeakMap<object, { readonly schema: object; readonly json: Either.Either<string, ParseResult.ParseError> }>()
const successJson = (method: AnyRpcMethod, value: unknown) => {
  if (typeof value !== "object" || value === null || !isSharedReply(value)) return toJson(method.success, value)
  const cached = sharedJson.get(value)
  if (cached !== undefined && cached.schema === method.success) return cached.json
  const json = toJson(method.success, value)
  sharedJson.set(value, { schema: method.success, json })
  return json
}

/** The reply to a handler's exit, encoded with the method's Schemas; a reply too large for the ring becomes a defect reply. */
const reply = (channel: ReplyChannel, method: AnyRpcMethod, to: Requester, exit: Exit.Exit<unknown, unknown>): void => {
  const { client, requestId, replySlot } = to
  const defect = (defect: string) => protocolError(channel, to, method.tag, new RpcHandlerDefect({ method: method.tag, requestId, defect }))
  if (Exit.isSuccess(exit)) {
    const json = successJson(method, exit.value)
    if (Either.isLeft(json)) return defect(`the reply does not encode: ${describe(json.left)}`)
    const frame = outFrame(Kind.success, client, requestId, method.tag, json.right)
    return frame.length > channel.writer.maxFrameBytes
      ? defect(`a ${frame.length}-byte reply exceeds the reply ring's frame limit`)
      : sendReply(channel, frame, replySlot)
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return defect(Cause.pretty(exit.cause).slice(0, 1000))
  const json = toJson(method.failure, failure.value)
  if (Either.isLeft(json)) return defect(`the failure does not encode: ${describe(json.left)}`)
  return sendReply(channel, outFrame(Kind.failure, client, requestId, method.tag, json.right), replySlot)
}

/** The handle of a reply a handler took over: the first completion replies, later ones do nothing. */
const deferredReply = (channel: ReplyChannel, method: AnyRpcMethod, to: Requester): DeferredReply<unknown, unknown> => {
  let done = false
  const completeNow = (exit: Exit.Exit<unknown, unknown>) => {
    if (done) return
    done = true
    reply(channel, method, to, exit)
  }
  return {
    [DeferredReplyTypeId]: DeferredReplyTypeId,
    client: to.client,
    requestId: to.requestId,
    succeed: (value) => Effect.sync(() => completeNow(Exit.succeed(value))),
    fail: (error) => Effect.sync(() => completeNow(Exit.fail(error))),
    unsafeComplete: (outcome) => completeNow(Either.isRight(outcome) ? Exit.succeed(outcome.right) : Exit.fail(outcome.left))
  }
}

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
 * method or an undecodable payload answered with a protocol error. Plain code up to the
 * handler: returns what is left to run as an effect (a handler that is not already an exit,
 * a log line), or nothing when the request was answered.
 */
const dispatch = <R>(server: Dispatcher<R>, client: number, bytes: Uint8Array): void | Effect.Effect<void, never, R> => {
  const frame = decodeFrame(bytes)
  if (frame === undefined || frame.kind !== Kind.request) {
    rpcRejectedRequests.unsafeUpdate(1, [])
    return Effect.logWarning(`rpc: client ${client}: dropped a malformed request frame (${bytes.length} bytes)`)
  }
  const { requestId, tag } = frame
  const to: Requester = { client, requestId, replySlot: frame.replySlot < server.replySlots ? frame.replySlot : -1 }
  const handler = server.byTag.get(tag)
  if (handler === undefined) {
    rpcRejectedRequests.unsafeUpdate(1, [])
    return protocolError(server.channel, to, encoder.encode(tag), new RpcUnknownMethod({ method: tag, requestId }))
  }
  const payload = fromJson(handler.method.payload, frame.json)
  if (Either.isLeft(payload)) {
    rpcRejectedRequests.unsafeUpdate(1, [])
    return protocolError(server.channel, to, tag, new RpcInvalidPayload({ method: tag, requestId, issue: describe(payload.left) }))
  }
  return runHandler(server, handler, to, payload.right)
}

/**
 * Runs a handler and replies with its exit — unless it deferred: then its handle replies (a
 * failure after deferring included). A handler that returns an exit (`Effect.succeed`,
 * `Effect.fail`: most coordinator requests) is answered right here with no effect run;
 * otherwise the returned effect runs it, with the runtime `serve` was called in
 * (`dispatchNow`), so the handlers' requirements are in its context already.
 */
const runHandler = <R>(server: Dispatcher<R>, handler: RpcHandler<R>, to: Requester, payload: unknown): void | Effect.Effect<void, never, R> => {
  let deferred: DeferredReply<unknown, unknown> | undefined
  const request = {
    client: to.client,
    requestId: to.requestId,
    method: handler.method.tag,
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
  bytes: Uint8Array
): void | Effect.Effect<void> => {
  const rest = dispatch(server, client, bytes)
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

const serve = (rings: RingsShape) => <R>(options: RpcServerOptions, handlers: ReadonlyArray<RpcHandler<R>>) =>
  Effect.gen(function*() {
    const writer = yield* rings.writer(options.replies, options.takeOver === true ? { takeOver: true } : undefined)
    const channel: ReplyChannel = {
      writer,
      outbound: yield* Queue.unbounded<Outbound>(),
      toWake: wakeList(writer),
      queued: 0,
      sending: false
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
    for (const { client, ring } of options.requests) {
      const reader = yield* rings.reader(ring)
      yield* Effect.forkScoped(readForever(() => reader, reader.consumeSync((bytes) => dispatchNow(runNow, server, client, bytes))))
    }
    const rpcServer: RpcServer = {
      notify: (notice, value, client) =>
        Effect.flatMap(toJson(notice.schema, value), (json) => sendNotice(channel, client ?? ALL_CLIENTS, notice.tag, json)),
      notifyNow: (notice, value, client) => {
        const json = toJson(notice.schema, value)
        return Either.isLeft(json) ? undefined : noticeNow(channel, outFrame(Kind.notice, client ?? ALL_CLIENTS, 0, notice.tag, json.right))
      }
    }
    return rpcServer
  })

// ---------------------------------------------------------------------------------------
// The client: call → request frame → (the server) → receive → decodeReply.
// ---------------------------------------------------------------------------------------

/**
 * A call waiting for its reply, by request id. Its outcome resumes the calling fiber once, as an
 * exit made in the wake's callback: the reply decoded with the method's Schemas, its bound
 * (`RpcTimeout`), or its signal's abort (`RpcAbandoned`). Nothing is allocated per call for
 * the wait beyond this record: no closure, timer or listener of its own.
 */
class PendingCall {
  constructor(
    readonly caller: Caller,
    readonly method: AnyRpcMethod,
    readonly requestId: number,
    readonly timeoutMs: number,
    readonly deadline: number,
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
  /** The call's bound passed: it fails with `RpcTimeout`. */
  expire(): void {
    rpcTimeouts.unsafeUpdate(1, [])
    this.settle(Exit.fail(new RpcTimeout({ method: this.method.tag, requestId: this.requestId, timeoutMs: this.timeoutMs })))
  }
  /** The call's signal aborted: it fails with `RpcAbandoned`. */
  abandon(): void {
    this.settle(Exit.fail(abandoned(this.method.tag, this.requestId, this.signal)))
  }
}

const abandoned = (method: string, requestId: number, signal: AbortSignal | undefined) =>
  new RpcAbandoned({ method, requestId, reason: String(signal?.reason ?? "aborted") })

interface Caller {
  readonly me: number
  readonly writer: RingWriter
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
  /**
   * Notices by tag, one hub per tag someone subscribed to: a notice nobody listens for (every
   * barrier release, on most clients) is dropped here, not woken through a stream.
   */
  readonly notices: Map<string, PubSub.PubSub<WireFrame>>
  /** Notices for a subscribed tag, read in the wake's callback, handed to a fiber that publishes them to their hub. */
  readonly noticeInbox: Queue.Queue<WireFrame>
  nextId: number
}

/**
 * One reply-ring frame, read in the doorbell's wake callback (`consumeSync`): a reply resumes
 * its waiting call directly, a notice for a subscribed tag goes to the notice fiber; frames
 * addressed to other clients are skipped undecoded.
 */
const receive = (caller: Caller, bytes: Uint8Array): void => {
  const addressee = addresseeOf(bytes)
  if (addressee !== caller.me && addressee !== ALL_CLIENTS) return
  const kind = bytes[0]!
  const payloadAt = HEADER_BYTES + (bytes[2]! | (bytes[3]! << 8))
  if (kind < Kind.request || kind > Kind.notice || payloadAt > bytes.length) return
  if (kind === Kind.notice) {
    // Only the tag is read of a notice nobody here subscribed to (every barrier release, on most clients).
    if (caller.notices.size === 0 || !caller.notices.has(decoder.decode(bytes.subarray(HEADER_BYTES, payloadAt)))) return
    const frame = decodeFrame(bytes)
    if (frame !== undefined) Queue.unsafeOffer(caller.noticeInbox, frame)
    return
  }
  // A reply: its tag is not needed, and nothing is decoded for a call no longer waiting.
  const call = caller.pending.get(readU32(bytes, 8))
  if (call !== undefined) call.deliver(kind, decoder.decode(bytes.subarray(payloadAt)))
}

/** Publishes the notices `receive` handed over to their tag's hub. */
const publishNotices = (caller: Caller) =>
  Effect.forever(Effect.flatMap(Queue.take(caller.noticeInbox), (frame) => {
    const hub = caller.notices.get(frame.tag)
    return hub === undefined ? Effect.void : PubSub.publish(hub, frame)
  }))


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
const listen = (
  caller: Caller,
  method: AnyRpcMethod,
  requestId: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  resume: (outcome: Exit.Exit<unknown, unknown>) => void
): PendingCall => {
  const pending = new PendingCall(caller, method, requestId, timeoutMs, performance.now() + timeoutMs, signal, resume)
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

/** A request frame: it names this client's reader slot on the reply ring, so the reply wakes only this client. */
const requestFrame = (caller: Caller, method: AnyRpcMethod, requestId: number, json: string) =>
  outFrame(Kind.request, caller.me, requestId, method.tag, json, caller.reader.slot)

/** A reply decoded with the method's own Schemas: its success, or its typed or protocol failure. */
const decodeReply = (method: AnyRpcMethod, requestId: number, kind: number, json: string): Exit.Exit<unknown, unknown> => {
  const decoded = kind === Kind.success
    ? fromJson(method.success, json)
    : kind === Kind.failure
    ? fromJson(method.failure, json)
    : kind === Kind.protocolError
    ? fromJson(RpcProtocolError, json)
    : undefined
  if (decoded === undefined) return Exit.fail(new RpcInvalidReply({ method: method.tag, requestId, issue: `unexpected frame kind ${kind}` }))
  if (Either.isLeft(decoded)) return Exit.fail(new RpcInvalidReply({ method: method.tag, requestId, issue: describe(decoded.left) }))
  return kind === Kind.success ? Exit.succeed(decoded.right) : Exit.fail(decoded.right)
}

/**
 * A request that must wait for room in the request ring: written once there is room, then its
 * reply awaited; it stops listening however that ends. The wait for room is bounded by the
 * call's own deadline and raced with its outcome (an abort ends it at once), and the request is
 * reserved, filled and committed only while the call still waits: a call that timed out or was
 * abandoned is never sent late.
 */
const callWhenRoom = (caller: Caller, method: AnyRpcMethod, requestId: number, timeoutMs: number, signal: AbortSignal | undefined, frame: OutFrame) =>
  Effect.flatMap(Deferred.make<unknown, unknown>(), (outcome) => {
    const pending = listen(caller, method, requestId, timeoutMs, signal, (exit) => Deferred.unsafeDone(outcome, exit))
    const send: Effect.Effect<void, FrameTooLarge | RingClosed> = Effect.suspend(() => {
      if (!pending.waiting()) return Effect.void
      const at = caller.writer.tryReserve(frame.length)
      if (at >= 0) {
        writeFrameAt(caller.writer.bytes, at, frame)
        caller.writer.commit()
        return Effect.void
      }
      const left = pending.deadline - performance.now()
      // The bound passed while waiting for room (the client's timer may not have fired yet).
      if (left <= 0) return Effect.sync(() => pending.expire())
      return Effect.zipRight(caller.writer.awaitRoom(frame.length, left), send)
    })
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
  options?: { readonly timeoutMs?: number; readonly signal?: AbortSignal }
): Effect.Effect<Success<M>, Failure<M> | RpcCallError> =>
  Effect.async<unknown, unknown>((resume) => {
    const requestId = caller.nextId
    caller.nextId = requestId === 0xfffffffe ? 1 : requestId + 1
    rpcCalls.unsafeUpdate(1, [])
    const json = toJson(method.payload, payload)
    if (Either.isLeft(json)) return resume(Exit.fail(new RpcInvalidPayload({ method: method.tag, requestId, issue: describe(json.left) })))
    const signal = options?.signal
    // Not sent at all once abandoned.
    if (signal?.aborted === true) return resume(Exit.fail(abandoned(method.tag, requestId, signal)))
    const timeoutMs = options?.timeoutMs ?? caller.defaultTimeoutMs
    const frame = requestFrame(caller, method, requestId, json.right)
    // Reserved, filled and committed in this one synchronous step (see RingWriter.tryReserve).
    const at = caller.writer.tryReserve(frame.length)
    if (at < 0) return resume(callWhenRoom(caller, method, requestId, timeoutMs, signal, frame))
    const pending = listen(caller, method, requestId, timeoutMs, signal, resume)
    writeFrameAt(caller.writer.bytes, at, frame)
    caller.writer.commit()
    return Effect.sync(() => pending.stop())
  }) as Effect.Effect<Success<M>, Failure<M> | RpcCallError>

/** The hub of one notice tag, made at its first subscription. */
const hubOf = (caller: Caller, tag: string) =>
  Effect.suspend(() => {
    const existing = caller.notices.get(tag)
    if (existing !== undefined) return Effect.succeed(existing)
    return Effect.tap(PubSub.unbounded<WireFrame>(), (hub) => Effect.sync(() => caller.notices.set(tag, hub)))
  })

/** Notices of one kind addressed to this client or to all, from the moment of subscribing; undecodable ones are logged and skipped. */
const noticesOf = <Tag extends string, A, I>(caller: Caller, notice: RpcNotice<Tag, A, I>) =>
  Effect.gen(function*() {
    const subscribed = yield* Stream.fromPubSub(yield* hubOf(caller, notice.tag), { scoped: true })
    return subscribed.pipe(
      Stream.mapEffect((frame) =>
        fromJson(notice.schema, frame.json).pipe(
          Effect.map((value) => Option.some(value as A)),
          Effect.catchAll((e) => Effect.as(Effect.logWarning(`rpc: undecodable ${notice.tag} notice: ${describe(e)}`), Option.none()))
        )
      ),
      Stream.filterMap((value) => value)
    )
  })

const client = (rings: RingsShape) => (options: RpcClientOptions) =>
  Effect.gen(function*() {
    const caller: Caller = {
      me: options.client,
      writer: yield* rings.writer(options.requests),
      reader: yield* rings.reader(options.replies, options.replySlot === undefined ? {} : { slot: options.replySlot }),
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
    const replySlot = options.replySlot === undefined ? {} : { slot: options.replySlot }
    /**
     * The reply-ring reader was reaped (this process did not run for longer than the stale bound,
     * and the ring moved on under it): attach again at the ring's head, never read the old
     * position. Replies written meanwhile are lost: their calls end with `RpcTimeout`.
     */
    const reattach = Effect.gen(function*() {
      const reaped = caller.reader
      caller.reader = yield* rings.reader(options.replies, replySlot)
      yield* Effect.logWarning(
        `rpc: client ${caller.me}: its reader slot ${reaped.slot} of reply ring ${reaped.address.id} was reaped (this process did not run for too long); attached again at the ring's head`
      )
      if (options.onReattach !== undefined) yield* Effect.forkScoped(options.onReattach)
    }).pipe(Effect.catchAll((e) => Effect.zipRight(Effect.logWarning(`rpc: client ${caller.me}: attaching to the reply ring again failed: ${e.message}`), Effect.sleep(RETRY_AFTER_ERROR_MS))))
    // Every client reads every reply, in the wake's callback: a reply resumes its call with no reader fiber in between.
    const readReplies = Effect.suspend(() => caller.reader.consumeSync((bytes) => receive(caller, bytes)))
    yield* Effect.forkScoped(readForever(() => caller.reader, readReplies, reattach))
    yield* Effect.forkScoped(publishNotices(caller))
    const rpcClient: RpcClient = {
      client: caller.me,
      call: (method, payload, callOptions) => call(caller, method, payload, callOptions),
      notices: (notice) => noticesOf(caller, notice)
    }
    return rpcClient
  })

export const make: Effect.Effect<RpcShape, never, Rings> = Effect.map(Rings, (rings) => ({ serve: serve(rings), client: client(rings) }))

/** Rpc over whichever Rings layer is provided (the region's, or the in-memory fake). */
export const layer: Layer.Layer<Rpc, never, Rings> = Layer.effect(Rpc, make)
