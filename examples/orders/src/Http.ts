/**
 * The service's HTTP face: `POST /orders` with `{ "customer", "amount" }` places an order and
 * answers its offset in the log (201); `GET /totals` answers the worker's totals. A malformed
 * order is a 400 naming what is wrong; nothing is published for it.
 */
import type { Publisher } from "cxlog"
import { Effect, Either, Ref, Runtime, Schema } from "effect"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { Order, placeOrder, Totals } from "./Orders.js"

const decodeOrder = Schema.decodeUnknownEither(Schema.parseJson(Order))

const body = (request: IncomingMessage) =>
  Effect.async<string>((resume) => {
    let text = ""
    request.on("data", (chunk: Buffer) => (text += chunk.toString()))
    request.on("end", () => resume(Effect.succeed(text)))
  })

const reply = (response: ServerResponse, status: number, value: unknown) =>
  Effect.sync(() => response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value)))

const route = (request: IncomingMessage, response: ServerResponse) =>
  Effect.gen(function*() {
    if (request.method === "POST" && request.url === "/orders") {
      const order = decodeOrder(yield* body(request))
      if (Either.isLeft(order)) return yield* reply(response, 400, { error: order.left.message })
      return yield* reply(response, 201, { offset: yield* placeOrder(order.right) })
    }
    if (request.method === "GET" && request.url === "/totals") {
      return yield* reply(response, 200, yield* Ref.get(yield* Totals))
    }
    return yield* reply(response, 404, { error: `no route ${request.method} ${request.url}` })
  }).pipe(Effect.catchAll((error) => reply(response, 503, { error: String(error) })))

/** Serves on `port` (0: any) until the scope closes; the port it listens on. */
export const serveHttp = (port: number) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<Publisher | Totals>()
    const server = yield* Effect.acquireRelease(
      Effect.async<Server>((resume) => {
        const server = createServer((request, response) => Runtime.runFork(runtime)(route(request, response)))
        server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    const address = server.address()
    return typeof address === "object" && address !== null ? address.port : port
  })
