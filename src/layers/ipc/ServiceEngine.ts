/**
 * The Services service over a directory, a way to create directory objects and the rings: the
 * one engine of the live layers and the fake (Services.ts, ServicesMemory.ts). The requests and
 * replies are cxlog's Rpc (RpcServer, RpcClient) over the service object's rings.
 */
import { Effect } from "effect"
import type { RingsShape } from "../../services/control/Rings.js"
import {
  type ServedService,
  ServiceNotFound,
  ServiceNotServed,
  type ServiceShape,
  type ServicesShape,
  ServiceTaken,
  ServiceUnavailable
} from "../../services/ipc/Services.js"
import { SERVICE_SETTINGS } from "../../services/ipc/ServiceSettings.js"
import type { DirectoryEntry, DirectoryShape } from "../../services/region/Directory.js"
import { settingsConfig } from "../../Settings.js"
import { client as rpcClient } from "../control/RpcClient.js"
import { serve as rpcServe } from "../control/RpcServer.js"
import { type CreateObject, findOrCreate } from "./ObjectCreator.js"
import { connectCaller, liveServer } from "./ServiceCaller.js"
import { entryShape, serviceBytes, serviceRings, shapeParams, shapeProblem } from "./ServiceLayout.js"

/** What a serve or connect that names none of these gets (CXLOG_SERVICE_*: ServiceSettings.ts). */
export type ServiceDefaults = Effect.Effect.Success<typeof serviceDefaults>
export const serviceDefaults = settingsConfig(SERVICE_SETTINGS.settings)

const unavailable = (name: string) => (e: { readonly message: string }) =>
  new ServiceUnavailable({ name, reason: e.message })

export const makeServices = (
  directory: DirectoryShape,
  create: CreateObject,
  rings: RingsShape,
  defaults: ServiceDefaults
): ServicesShape => {
  const serve = rpcServe(rings)
  const makeClient = rpcClient(rings)

  /** The entry's shape (checked) and rings, pinned for the scope: its extent is not reused while this process may touch it. */
  const pinned = (entry: DirectoryEntry) =>
    Effect.gen(function*() {
      const shape = entryShape(entry)
      if (shape instanceof ServiceUnavailable) return yield* shape
      yield* directory.hold(entry).pipe(Effect.mapError(unavailable(entry.name)))
      return { shape, rings: serviceRings(entry, shape) }
    })

  return {
    serve: (name, handlers, wanted = {}) =>
      Effect.gen(function*() {
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
          params: shapeParams(shape)
        }).pipe(Effect.mapError(unavailable(name)))
        const found = yield* pinned(entry)
        // The server is the reply ring's one writer: a live one refuses this one (RingWriterBusy,
        // naming its pid); a dead or stopped one's ring is taken over, and its reader slots on the
        // request rings are reclaimed as this server attaches.
        yield* serve(
          {
            requests: found.rings.requests.map((ring, client) => ({ client, ring })),
            replies: found.rings.replies
          },
          handlers
        ).pipe(
          Effect.mapError((e) =>
            e._tag === "RingWriterBusy" ? new ServiceTaken({ name, pid: e.pid }) : unavailable(name)(e)
          )
        )
        return { name, entry, shape: found.shape } satisfies ServedService
      }),
    connect: (name, options = {}) =>
      Effect.gen(function*() {
        const entry = yield* directory.lookup("service", name).pipe(
          Effect.catchTag("ObjectNotFound", () => Effect.fail(new ServiceNotFound({ name })))
        )
        const found = yield* pinned(entry)
        const replies = yield* rings.inspect(found.rings.replies).pipe(Effect.mapError(unavailable(name)))
        const server = liveServer(replies)
        if (server === undefined) return yield* new ServiceNotServed({ name })
        return yield* connectCaller(makeClient, name, found.rings, replies, server, {
          timeoutMs: options.timeoutMs ?? defaults.callTimeoutMs,
          checkEveryMs: defaults.checkEveryMs
        })
      }),
    list: Effect.flatMap(directory.list("service"), (entries) =>
      Effect.forEach(entries, (entry) => {
        const shape = entryShape(entry)
        if (shape instanceof ServiceUnavailable) return Effect.succeed({ name: entry.name, serverPid: undefined })
        return rings.inspect(serviceRings(entry, shape).replies).pipe(
          Effect.map((replies) => ({ name: entry.name, serverPid: liveServer(replies)?.pid })),
          Effect.orElseSucceed(() => ({ name: entry.name, serverPid: undefined }))
        )
      }))
  }
}
