/**
 * Frame services: a service object's rings as a message transport for frames the application
 * encodes (what @effect/rpc's protocol runs over: EffectRpc.ts). A frame is an 8-byte header —
 * the connection's caller slot and occurrence (u32 each, little-endian) — then the application's
 * bytes. A caller writes its frames to its slot's request ring; the server writes every caller's
 * frames to the one reply ring, waking only the addressee's reader, and each caller keeps the
 * frames that name its own connection. The server tells a connection has left when its request
 * ring's writer closes or dies, or when a frame names another occurrence (a new caller took the
 * slot before the old one's end was seen), or when it read past a damaged stretch of its request
 * ring (ReadPastCorruption.ts), which it tells the caller in a frame of its own (`BROKEN_FRAME`).
 */
import { Effect, Either, ExecutionStrategy, Schedule, Schema, Scope } from "effect"
import type {
  RingAddress,
  RingBreak,
  RingCorrupt,
  RingInspector,
  RingsShape,
  RingWriter
} from "../../services/control/Rings.js"
import {
  type FrameClient,
  type FrameClientHandlers,
  type FrameServerHandlers,
  ServiceCallersBusy,
  type ServiceConnection,
  ServiceFrameNotSent,
  ServiceRepliesLost,
  ServiceRequestsBroken,
  ServiceServerDied,
  ServiceUnavailable
} from "../../services/ipc/Services.js"
import { readPastCorruption } from "../control/ReadPastCorruption.js"
import { readForever, RETRY_AFTER_ERROR_MS } from "../control/RpcReadForever.js"
import { readU32, writeU32 } from "../region/LittleEndian.js"
import { claimCallerSlot } from "./CallerSlot.js"
import { requestsBroken, tellBroken } from "./RequestsBroken.js"
import { liveServer } from "./ServiceCaller.js"
import type { ServiceRings } from "./ServiceLayout.js"

const HEADER_BYTES = 8
const encoder = new TextEncoder()

const unavailable = (name: string) => (e: { readonly message: string }) =>
  new ServiceUnavailable({ name, reason: e.message })

const frameBytes = (payload: string | Uint8Array) =>
  HEADER_BYTES + (typeof payload === "string" ? Buffer.byteLength(payload, "utf8") : payload.length)

/** Writes and commits one frame if it fits now (waking `wake`, or every reader); false when there is no room. */
const tryWrite = (
  writer: RingWriter,
  connection: ServiceConnection,
  payload: string | Uint8Array,
  length: number,
  wake: ReadonlyArray<number> | undefined
): boolean => {
  const at = writer.tryReserve(length)
  if (at < 0) return false
  const bytes = writer.bytes
  writeU32(bytes, at, connection.caller)
  writeU32(bytes, at + 4, connection.occurrence)
  if (typeof payload === "string") encoder.encodeInto(payload, bytes.subarray(at + HEADER_BYTES, at + length))
  else bytes.set(payload, at + HEADER_BYTES)
  writer.commit(wake)
  return true
}

/**
 * Writes one frame: at once when it fits, else once the ring has room within `timeoutMs`.
 * Reserving and filling happen in one synchronous step, so frames sent by concurrent fibers
 * never interleave or commit half-written.
 */
const writeFrame = (
  name: string,
  writer: RingWriter,
  connection: ServiceConnection,
  payload: string | Uint8Array,
  wake: ReadonlyArray<number> | undefined,
  timeoutMs: number
): Effect.Effect<void, ServiceFrameNotSent> =>
  Effect.suspend(() => {
    const length = frameBytes(payload)
    if (tryWrite(writer, connection, payload, length, wake)) return Effect.void
    return writer.awaitRoom(length, timeoutMs).pipe(
      Effect.mapError((e) => new ServiceFrameNotSent({ name, bytes: length, reason: e.message })),
      Effect.flatMap(() =>
        tryWrite(writer, connection, payload, length, wake)
          ? Effect.void
          : Effect.fail(
            new ServiceFrameNotSent({ name, bytes: length, reason: `the ring had no room within ${timeoutMs} ms` })
          )
      )
    )
  })

/**
 * A frame that tells a connection the server read past a damaged stretch of its request ring goes
 * to its caller slot with this bit set: a caller of a build before it skips the frame as another's.
 */
const BROKEN_FRAME = 0x80000000
const brokenAddress = (to: ServiceConnection): ServiceConnection => ({
  caller: (to.caller | BROKEN_FRAME) >>> 0,
  occurrence: to.occurrence
})
const brokenJson = Schema.parseJson(ServiceRequestsBroken)
const encodeBroken = (error: ServiceRequestsBroken): string => Schema.encodeSync(brokenJson)(error)

/** The server's word that this connection's frames in a damaged stretch were never read: `onBroken`, once. */
const tellCaller = (name: string, handlers: FrameClientHandlers, payload: Uint8Array): Effect.Effect<void> =>
  Either.match(Schema.decodeUnknownEither(brokenJson)(new TextDecoder("utf-8", { ignoreBOM: true }).decode(payload)), {
    onLeft: () =>
      Effect.logWarning(`service ${JSON.stringify(name)}: dropped a broken-ring notice that did not decode`),
    onRight: handlers.onBroken
  })

/**
 * The server's side: the reply ring's writer (taken by the caller, so a live server refuses this
 * one) and a reader of every request ring, for the scope. Returns how to send to a connection.
 */
export const serveFrames = (
  rings: RingsShape,
  name: string,
  replies: RingWriter,
  requests: ReadonlyArray<RingAddress>,
  handlers: FrameServerHandlers,
  timeoutMs: number
): Effect.Effect<
  (to: ServiceConnection, frame: string | Uint8Array) => Effect.Effect<void, ServiceFrameNotSent>,
  ServiceUnavailable,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const onBroken = tellBroken(handlers.onBroken)
    for (const [caller, address] of requests.entries()) {
      /** The occurrence of the connection that holds this slot now, 0 while none has sent a frame. */
      let current = 0
      const leave = Effect.suspend(() => {
        if (current === 0) return Effect.void
        const occurrence = current
        current = 0
        return handlers.onLeft({ caller, occurrence })
      })
      const onFrame = (bytes: Uint8Array): Effect.Effect<void> => {
        if (bytes.length < HEADER_BYTES) {
          return Effect.logWarning(
            `service ${
              JSON.stringify(name)
            }: caller slot ${caller}: dropped a ${bytes.length}-byte frame, shorter than a frame's header`
          )
        }
        const occurrence = readU32(bytes, 4)
        const frame = handlers.onFrame({ caller, occurrence }, bytes.subarray(HEADER_BYTES))
        if (occurrence === current) return frame
        return Effect.zipRight(leave, Effect.suspend(() => (current = occurrence, frame)))
      }
      const inspector = yield* rings.inspect(address).pipe(Effect.mapError(unavailable(name)))
      /**
       * Read past a corrupt stretch: the connection has left already (its frames there are lost, so
       * whatever the server kept of it is dropped), its caller is told in a frame of its own, and the serve.
       */
      const broken = (ringBreak: RingBreak) => {
        const error = requestsBroken(name, caller, ringBreak)
        const to = { caller, occurrence: inspector.writer().occurrence }
        const told = writeFrame(name, replies, brokenAddress(to), encodeBroken(error), [caller], timeoutMs).pipe(
          Effect.catchAll((e) => Effect.logWarning(`${error.message}; its caller could not be told: ${e.message}`))
        )
        return Effect.zipRight(told, onBroken(error))
      }
      // A writer that closed or died has left (readForever then waits for the slot's next caller).
      yield* readPastCorruption(rings, address, {}, (reader) => Effect.ensuring(reader.consume(onFrame), leave), broken)
        .pipe(Effect.mapError(unavailable(name)))
    }
    return (to, frame) => writeFrame(name, replies, to, frame, [to.caller], timeoutMs)
  })

/**
 * The caller's side: a caller slot, a reader of the reply ring in the slot's reader slot, and a
 * watch of the server every `checkEveryMs` (as ServiceCaller.ts's): when it died, stopped, or
 * another took its place, `onBroken` is told once, and sends fail at once until a server serves.
 */
export const connectFrames = (
  rings: RingsShape,
  name: string,
  serviceRings: ServiceRings,
  inspector: RingInspector,
  server: { readonly pid: number; readonly occurrence: number },
  handlers: FrameClientHandlers,
  options: { readonly timeoutMs: number; readonly checkEveryMs: number }
): Effect.Effect<FrameClient, ServiceCallersBusy | ServiceUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const { caller, writer } = yield* claimCallerSlot(
      name,
      serviceRings.requests,
      (caller, ring) => Effect.map(rings.writer(ring), (writer) => ({ caller, writer }))
    )
    const connection: ServiceConnection = { caller, occurrence: writer.occurrence }
    const attach = rings.reader(serviceRings.replies, { slot: caller }).pipe(
      Effect.mapError((e) => new ServiceUnavailable({ name, reason: e.message }))
    )
    let reader = yield* attach
    // The readers attached again are held in a scope of the connection's own, forked before the
    // reading fiber: a scope closes its latest finalizers first, so one added at a re-attach would
    // be detached at the close while that fiber still ran, to find it reaped and attach again, and
    // tell `onBroken`, for as long as the close went on (RpcClient.ts holds its readers the same way).
    const scope = yield* Effect.scope
    const readers = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const told = brokenAddress(connection).caller
    const mine = (bytes: Uint8Array) => {
      if (bytes.length < HEADER_BYTES || readU32(bytes, 4) !== connection.occurrence) return Effect.void
      const to = readU32(bytes, 0)
      return to === caller
        ? handlers.onFrame(bytes.subarray(HEADER_BYTES))
        : to === told
        ? tellCaller(name, handlers, bytes.subarray(HEADER_BYTES))
        : Effect.void
    }
    // Reaped (this process did not run for too long): attach again at the ring's head; what was sent meanwhile is gone.
    const reattachTelling = (lost: ServiceRepliesLost) =>
      attach.pipe(
        Effect.flatMap((attached) => {
          reader = attached
          return handlers.onBroken(lost)
        }),
        Effect.catchAll((e) =>
          Effect.zipRight(
            Effect.logWarning(
              `service ${JSON.stringify(name)}: attaching to the reply ring again failed: ${e.message}`
            ),
            Effect.sleep(RETRY_AFTER_ERROR_MS)
          )
        ),
        Scope.extend(readers)
      )
    const reattach = reattachTelling(new ServiceRepliesLost({ name }))
    // A corrupt reply ring is read past as a reap is: this reader lets its slot go and attaches again
    // at the head; the frames between are lost. Read again, it would fail the same way for good.
    const pastCorrupt = (error: RingCorrupt) =>
      Effect.zipRight(
        rings.reap(serviceRings.replies, reader.slot, reader.occurrence).pipe(Effect.ignore),
        reattachTelling(new ServiceRepliesLost({ name, reason: error.message }))
      )
    yield* Effect.forkScoped(
      readForever(() => reader, Effect.suspend(() => reader.consume(mine)), reattach, pastCorrupt)
    )

    let known = server
    let died: ServiceServerDied | undefined
    const look = Effect.suspend(() => {
      const now = liveServer(inspector)
      if (died !== undefined) {
        if (now !== undefined) {
          known = now
          died = undefined
        }
        return Effect.void
      }
      if (now !== undefined && now.occurrence === known.occurrence) return Effect.void
      died = new ServiceServerDied({ name, method: "every waiting request", pid: known.pid })
      // In a fiber of its own: the watch goes on whatever the handler waits for.
      return Effect.asVoid(Effect.forkIn(handlers.onBroken(died), scope))
    })
    yield* Effect.forkScoped(Effect.repeat(look, Schedule.spaced(options.checkEveryMs)))
    return {
      name,
      connection,
      send: (frame) =>
        Effect.suspend((): Effect.Effect<void, ServiceServerDied | ServiceFrameNotSent> =>
          died !== undefined
            ? Effect.fail(new ServiceServerDied({ name, method: "a frame", pid: died.pid, sent: false }))
            : writeFrame(name, writer, connection, frame, undefined, options.timeoutMs)
        )
    } satisfies FrameClient
  })
