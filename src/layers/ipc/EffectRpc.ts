/**
 * @effect/rpc's protocol over cxlog's rings: an application's `RpcGroup` served by name in the
 * region (`layerProtocolServer(name)` under `RpcServer.layer(group)`) and called by name from any
 * process of the host (`layerProtocolClient(name)` under `RpcClient.make(group)`). Each
 * @effect/rpc message, encoded by the `RpcSerialization` in context, is one frame of a frame
 * service (Services' `serveFrames`/`connectFrames`, ServiceFrames.ts): a caller slot is one
 * @effect/rpc client, requests, acks, interrupts, stream chunks and exits all travel as frames,
 * so streaming RPCs work, with @effect/rpc's acks as their backpressure.
 *
 * Errors stay typed: a server that dies or stops ends every waiting call of its callers with an
 * `RpcClientError` (reason "Protocol", its cause `ServiceServerDied`) within
 * `CXLOG_SERVICE_CHECK_MS`, and calls made until a server serves again fail the same way at once;
 * a reply frame that does not decode ends the caller's waiting calls with an `RpcClientError`; a
 * request frame that does not decode is answered with a defect, as @effect/rpc's own servers do;
 * a reply or stream chunk the server cannot send (larger than a frame) ends its request with a
 * defect naming its size and the limit.
 */
import { RpcClient, RpcClientError, RpcMessage, RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer, Mailbox, type Scope } from "effect"
import {
  type ConnectOptions,
  type FrameServer,
  type ServiceCallersBusy,
  type ServiceConnection,
  type ServiceFrameNotSent,
  type ServiceNotFound,
  type ServiceNotServed,
  type ServiceOpenError,
  Services,
  type ServiceShape,
  type ServiceTaken
} from "../../services/ipc/Services.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"

/** What a client's protocol may fail with as it connects. */
export type ProtocolClientError = ServiceOpenError | ServiceNotFound | ServiceNotServed | ServiceCallersBusy

/** The frames' bytes as the parser takes them: JSON is decoded from the view at once; binary formats keep a copy. */
const parserInput = (serialization: RpcSerialization.RpcSerialization["Type"]) =>
  serialization.contentType.includes("json") ? (frame: Uint8Array) => frame : (frame: Uint8Array) => frame.slice()

/** A client as the server knows it: its connection and its own parser (a framing parser keeps state per sender). */
interface Client {
  readonly id: number
  readonly connection: ServiceConnection
  readonly parser: RpcSerialization.Parser
}

/**
 * The server's protocol: serves frame service `name` (created with `shape` when there is none)
 * until the scope closes; every caller connection is one @effect/rpc client.
 */
export const makeProtocolServer = (
  name: string,
  shape?: Partial<ServiceShape>
): Effect.Effect<
  RpcServer.Protocol["Type"],
  ServiceOpenError | ServiceTaken | HeadUnavailable,
  Services | RpcSerialization.RpcSerialization | Scope.Scope
> =>
  RpcServer.Protocol.make((writeRequest) =>
    Effect.gen(function*() {
      const services = yield* Services
      const serialization = yield* RpcSerialization.RpcSerialization
      const input = parserInput(serialization)
      const disconnects = yield* Mailbox.make<number>()
      const clients = new Map<number, Client>()
      /** The client holding each caller slot now. */
      const bySlot = new Map<number, Client>()
      let nextId = 0
      const encoder = serialization.unsafeMake()
      /** Set once the service is served (a caller's frame may come before serveFrames returns). */
      let served: FrameServer | undefined

      const send = (clientId: number, response: RpcMessage.FromServerEncoded): Effect.Effect<void> => {
        const client = clients.get(clientId)
        if (client === undefined || served === undefined) return Effect.void
        const encoded = encoder.encode(response)
        if (encoded === undefined) return Effect.void
        return Effect.catchAll(served.send(client.connection, encoded), (e) => notSent(client, response, e))
      }

      /**
       * A reply or stream chunk that was not sent (larger than a frame, or no room within the
       * bound) ends its request with a defect saying why, as @effect/rpc's own servers end a
       * request whose reply does not encode: its call has no bound of its own and would
       * otherwise wait for good. A stream's handler is interrupted too, as it waits for an ack.
       */
      const notSent = (
        client: Client,
        response: RpcMessage.FromServerEncoded,
        error: ServiceFrameNotSent
      ): Effect.Effect<void> => {
        const logged = (e: ServiceFrameNotSent) =>
          Effect.logError(`@effect/rpc over service ${JSON.stringify(name)}: client ${client.id}: ${e.message}`)
        if (response._tag !== "Chunk" && response._tag !== "Exit") return logged(error)
        const what = response._tag === "Chunk" ? "a stream chunk" : "the reply"
        const defect = {
          name: "ServiceFrameNotSent",
          message: `@effect/rpc: ${what} of request ${response.requestId} was not sent: ${error.message} ` +
            "(a frame is at most a quarter of the service's ringBytes: send less at a time, or create the service with larger rings)"
        }
        const exit: RpcMessage.ResponseExitEncoded = {
          _tag: "Exit",
          requestId: response.requestId,
          exit: { _tag: "Failure", cause: { _tag: "Die", defect } }
        }
        const encoded = encoder.encode(exit)
        const told = encoded === undefined || served === undefined
          ? Effect.void
          : Effect.catchAll(served.send(client.connection, encoded), logged)
        return response._tag === "Chunk"
          ? Effect.zipRight(told, writeRequest(client.id, { _tag: "Interrupt", requestId: response.requestId }))
          : told
      }

      served = yield* services.serveFrames(name, {
        onFrame: (from, frame) =>
          Effect.suspend(() => {
            let client = bySlot.get(from.caller)
            if (client === undefined || client.connection.occurrence !== from.occurrence) {
              client = { id: nextId++, connection: from, parser: serialization.unsafeMake() }
              bySlot.set(from.caller, client)
              clients.set(client.id, client)
            }
            let messages: ReadonlyArray<RpcMessage.FromClientEncoded>
            try {
              messages = client.parser.decode(input(frame)) as ReadonlyArray<RpcMessage.FromClientEncoded>
            } catch (cause) {
              return send(client.id, RpcMessage.ResponseDefectEncoded(cause))
            }
            const id = client.id
            return Effect.forEach(messages, (message) => writeRequest(id, message), { discard: true })
          }),
        onLeft: (from) =>
          Effect.sync(() => {
            const client = bySlot.get(from.caller)
            if (client === undefined || client.connection.occurrence !== from.occurrence) return
            bySlot.delete(from.caller)
            clients.delete(client.id)
            disconnects.unsafeOffer(client.id)
          })
      }, shape)

      return {
        disconnects,
        send,
        // A caller slot stays its caller's until it disconnects: nothing to end on the server's side.
        end: () => Effect.void,
        clientIds: Effect.sync(() => new Set(clients.keys())),
        initialMessage: Effect.succeedNone,
        supportsAck: true,
        supportsTransferables: false,
        supportsSpanPropagation: true
      }
    })
  )

/**
 * The client's protocol: connects to frame service `name` (a caller slot, held until the scope
 * closes). `ServiceNotFound` when it was never served, `ServiceNotServed` when no live process
 * serves it now, `ServiceCallersBusy` when every caller slot is held.
 */
export const makeProtocolClient = (
  name: string,
  options?: ConnectOptions
): Effect.Effect<
  RpcClient.Protocol["Type"],
  ProtocolClientError,
  Services | RpcSerialization.RpcSerialization | Scope.Scope
> =>
  RpcClient.Protocol.make((writeResponse) =>
    Effect.gen(function*() {
      const services = yield* Services
      const serialization = yield* RpcSerialization.RpcSerialization
      const input = parserInput(serialization)
      const parser = serialization.unsafeMake()
      const protocolError = (message: string, cause: unknown) =>
        writeResponse({
          _tag: "ClientProtocolError",
          error: new RpcClientError.RpcClientError({ reason: "Protocol", message, cause })
        })

      const client = yield* services.connectFrames(name, {
        onFrame: (frame) =>
          Effect.suspend(() => {
            let responses: ReadonlyArray<RpcMessage.FromServerEncoded>
            try {
              responses = parser.decode(input(frame)) as ReadonlyArray<RpcMessage.FromServerEncoded>
            } catch (cause) {
              return protocolError(`service ${JSON.stringify(name)}: a reply frame did not decode`, cause)
            }
            return Effect.forEach(responses, writeResponse, { discard: true })
          }),
        onBroken: (error) => protocolError(error.message, error)
      }, options)

      return {
        send: (request) => {
          const encoded = parser.encode(request)
          if (encoded === undefined) return Effect.void
          return Effect.mapError(
            client.send(encoded),
            (e) => new RpcClientError.RpcClientError({ reason: "Protocol", message: e.message, cause: e })
          )
        },
        supportsAck: true,
        supportsTransferables: false
      }
    })
  )

/** `RpcServer.Protocol` serving frame service `name` in the region (under `RpcServer.layer(group)`). */
export const layerProtocolServer = (
  name: string,
  shape?: Partial<ServiceShape>
): Layer.Layer<
  RpcServer.Protocol,
  ServiceOpenError | ServiceTaken | HeadUnavailable,
  Services | RpcSerialization.RpcSerialization
> => Layer.scoped(RpcServer.Protocol, makeProtocolServer(name, shape))

/** `RpcClient.Protocol` calling frame service `name` (for `RpcClient.make(group)`). */
export const layerProtocolClient = (
  name: string,
  options?: ConnectOptions
): Layer.Layer<RpcClient.Protocol, ProtocolClientError, Services | RpcSerialization.RpcSerialization> =>
  Layer.scoped(RpcClient.Protocol, makeProtocolClient(name, options))
