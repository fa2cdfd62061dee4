/**
 * The Services service over a directory, a way to create directory objects and the rings: the
 * one engine of the live layers and the fake (Services.ts, ServicesMemory.ts). The requests and
 * replies are cxlog's Rpc (RpcServer, RpcClient) over the service object's rings, or the
 * application's own frames (ServiceFrames.ts).
 */
import { Effect, type Scope } from "effect"
import type { RingsShape, RingWriter } from "../../services/control/Rings.js"
import type { RpcClientOptions, RpcHandler, RpcServerOptions } from "../../services/control/Rpc.js"
import {
  type FrameServer,
  type ServedService,
  ServiceInUse,
  ServiceNotFound,
  ServiceNotServed,
  type ServiceShape,
  type ServicesShape,
  ServiceTaken,
  ServiceUnavailable
} from "../../services/ipc/Services.js"
import { SERVICE_SETTINGS } from "../../services/ipc/ServiceSettings.js"
import { type DirectoryEntry, type DirectoryShape, nameNotText } from "../../services/region/Directory.js"
import { settingsConfig } from "../../Settings.js"
import { READER_LIVENESS_MS } from "../control/RingFrames.js"
import { client as rpcClient } from "../control/RpcClient.js"
import { serve as rpcServe } from "../control/RpcServer.js"
import { heldOnSuccess } from "./HeldOnSuccess.js"
import { type CreateObject, findOrCreate, type RemoveObject, unlessHeadLost } from "./ObjectCreator.js"
import { liveUsers } from "./ObjectUsers.js"
import { requestsBroken, tellBroken } from "./RequestsBroken.js"
import { connectCaller, liveServer } from "./ServiceCaller.js"
import { connectFrames, serveFrames } from "./ServiceFrames.js"
import {
  entryShape,
  serviceBytes,
  type ServiceFraming,
  type ServiceRings,
  serviceRings,
  shapeParams,
  shapeProblem
} from "./ServiceLayout.js"

/** What a serve or connect that names none of these gets (CXLOG_SERVICE_*: ServiceSettings.ts). */
export type ServiceDefaults = Effect.Effect.Success<typeof serviceDefaults>
export const serviceDefaults = settingsConfig(SERVICE_SETTINGS.settings)

/**
 * A caller whose reply reader has not run for this long while the reply ring is full (a stopped
 * process: a running reader beats every second while it waits) has its reader slot freed, so it
 * does not stall every other caller's replies; run again, it is told `ServiceRepliesLost`.
 */
const STALLED_CALLER_MS = 3 * READER_LIVENESS_MS

const unavailable = (name: string) => (e: { readonly message: string }) =>
  new ServiceUnavailable({ name, reason: e.message })

export const makeServices = (
  directory: DirectoryShape,
  create: CreateObject,
  rings: RingsShape,
  defaults: ServiceDefaults,
  removeObject: RemoveObject
): ServicesShape => {
  // A call's reply, and with callers at work the next request, come back within a round trip: worth a longer spin.
  const spin = defaults.spinMicros > 0 ? { spinMicros: defaults.spinMicros } : {}
  const serveRings = rpcServe(rings)
  const serve = <R>(options: RpcServerOptions, handlers: ReadonlyArray<RpcHandler<R>>) =>
    serveRings({ ...options, ...spin }, handlers)
  const clientOf = rpcClient(rings)
  const makeClient = (options: RpcClientOptions) => clientOf({ ...options, ...spin })

  /** The entry's shape (checked against `framing`) and rings, pinned for the scope: its extent is not reused while this process may touch it. */
  const pinned = (entry: DirectoryEntry, framing: ServiceFraming) =>
    Effect.gen(function*() {
      const shape = entryShape(entry, framing)
      if (shape instanceof ServiceUnavailable) return yield* shape
      yield* directory.hold(entry).pipe(Effect.mapError(unavailable(entry.name)))
      return { shape, rings: serviceRings(entry, shape) }
    })

  /** The service `name` (created with `wanted` when there is none), pinned for the scope. */
  const open = (name: string, wanted: Partial<ServiceShape>, framing: ServiceFraming) =>
    Effect.gen(function*() {
      const notText = nameNotText(name)
      if (notText !== undefined) return yield* new ServiceUnavailable({ name: String(name), reason: notText })
      const shape: ServiceShape = {
        callerSlots: wanted.callerSlots ?? defaults.callerSlots,
        ringBytes: wanted.ringBytes ?? defaults.ringBytes
      }
      const problem = shapeProblem(shape)
      if (problem !== undefined) return yield* new ServiceUnavailable({ name, reason: problem })
      const entry = yield* findOrCreate(directory, create, {
        kind: "service",
        name,
        bytes: serviceBytes(shape),
        params: shapeParams(shape, framing)
      }).pipe(Effect.mapError(unlessHeadLost(unavailable(name))))
      return { entry, ...yield* pinned(entry, framing) }
    })

  /** The service `name` as a caller finds it: pinned, and its live server (else ServiceNotServed). */
  const find = (name: string, framing: ServiceFraming) =>
    Effect.gen(function*() {
      if (nameNotText(name) !== undefined) return yield* new ServiceNotFound({ name: String(name) })
      const entry = yield* directory.lookup("service", name).pipe(
        Effect.catchTag("ObjectNotFound", () => Effect.fail(new ServiceNotFound({ name })))
      )
      const found = yield* pinned(entry, framing)
      const replies = yield* rings.inspect(found.rings.replies).pipe(Effect.mapError(unavailable(name)))
      const server = liveServer(replies)
      if (server === undefined) return yield* new ServiceNotServed({ name })
      return { ...found, replies, server }
    })

  /**
   * The server is the reply ring's one writer: a live one refuses this one (RingWriterBusy,
   * naming its pid); a dead or stopped one's ring is taken over, and its reader slots on the
   * request rings are reclaimed as this server attaches.
   */
  const takenOr = (name: string) => (e: { readonly _tag: string; readonly message: string; readonly pid?: number }) =>
    e._tag === "RingWriterBusy" && e.pid !== undefined ? new ServiceTaken({ name, pid: e.pid }) : unavailable(name)(e)

  /** The frame server's reply ring for the scope (its request rings are read by serveFrames). */
  const frameServerReplies = (name: string, found: ServiceRings): Effect.Effect<
    RingWriter,
    ServiceTaken | ServiceUnavailable,
    Scope.Scope
  > => rings.writer(found.replies, { freeStalledReaderAfterMs: STALLED_CALLER_MS }).pipe(Effect.mapError(takenOr(name)))

  return {
    serve: (name, handlers, options = {}) =>
      heldOnSuccess(Effect.gen(function*() {
        const found = yield* open(name, options, "rpc")
        const onBroken = tellBroken(options.onBroken)
        yield* serve(
          {
            requests: found.rings.requests.map((ring, client) => ({ client, ring })),
            replies: found.rings.replies,
            freeStalledReaderAfterMs: STALLED_CALLER_MS,
            onRequestsBroken: (caller, ringBreak) => onBroken(requestsBroken(name, caller, ringBreak))
          },
          handlers
        ).pipe(Effect.mapError(takenOr(name)))
        return { name, entry: found.entry, shape: found.shape } satisfies ServedService
      })),
    connect: (name, options = {}) =>
      heldOnSuccess(Effect.flatMap(
        find(name, "rpc"),
        (found) =>
          connectCaller(makeClient, name, found.rings, found.replies, found.server, {
            timeoutMs: options.timeoutMs ?? defaults.callTimeoutMs,
            checkEveryMs: defaults.checkEveryMs
          })
      )),
    serveFrames: (name, handlers, wanted = {}) =>
      heldOnSuccess(Effect.gen(function*() {
        const found = yield* open(name, wanted, "application")
        const replies = yield* frameServerReplies(name, found.rings)
        const send = yield* serveFrames(rings, name, replies, found.rings.requests, handlers, defaults.callTimeoutMs)
        return { name, entry: found.entry, shape: found.shape, send } satisfies FrameServer
      })),
    connectFrames: (name, handlers, options = {}) =>
      heldOnSuccess(Effect.flatMap(
        find(name, "application"),
        (found) =>
          connectFrames(rings, name, found.rings, found.replies, found.server, handlers, {
            timeoutMs: options.timeoutMs ?? defaults.callTimeoutMs,
            checkEveryMs: defaults.checkEveryMs
          })
      )),
    list: Effect.flatMap(directory.list("service"), (entries) =>
      Effect.forEach(entries, (entry) => {
        const shape = entryShape(entry)
        if (shape instanceof ServiceUnavailable) return Effect.succeed({ name: entry.name, serverPid: undefined })
        return rings.inspect(serviceRings(entry, shape).replies).pipe(
          Effect.map((replies) => ({ name: entry.name, serverPid: liveServer(replies)?.pid })),
          Effect.orElseSucceed(() => ({ name: entry.name, serverPid: undefined }))
        )
      })),
    remove: (name) =>
      Effect.gen(function*() {
        if (nameNotText(name) !== undefined) return yield* new ServiceNotFound({ name: String(name) })
        const entry = yield* directory.lookup("service", name).pipe(
          Effect.catchTag("ObjectNotFound", () => Effect.fail(new ServiceNotFound({ name })))
        )
        const shape = entryShape(entry)
        // As a channel's: an entry that does not read as a service's is removed as it is.
        if (!(shape instanceof ServiceUnavailable)) {
          const found = serviceRings(entry, shape)
          const pids = yield* liveUsers(rings, [found.replies, ...found.requests]).pipe(
            Effect.mapError(unavailable(name))
          )
          if (pids.length > 0) return yield* new ServiceInUse({ name, pids })
        }
        yield* removeObject("service", entry).pipe(
          Effect.catchIf((e) => e._tag === "ObjectNotFound" || e._tag === "ObjectDeleted", () =>
            Effect.fail(new ServiceNotFound({ name }))),
          Effect.mapError((e) => (e instanceof ServiceNotFound ? e : unlessHeadLost(unavailable(name))(e)))
        )
      })
  }
}
