/**
 * The orders service as a Node program: `node examples/orders/dist/main.js` (README.md here).
 * Its layers are the live ones — a TCP publisher and subscriber of the brokers in
 * CXLOG_BROKERS (default 127.0.0.1:7400), authenticating as the local user of the head's region
 * CXLOG_REGION (default cxlog) — and its HTTP server listens on ORDERS_PORT (default 8080). Ctrl-C stops it.
 */
import { NodeRuntime } from "@effect/platform-node"
import { parseAddresses, PublisherLayers, SubscriberRemoteLayers } from "cxlog"
import { Config, Effect, Layer } from "effect"
import { serveHttp } from "./Http.js"
import { TOPIC, Totals, worker } from "./Orders.js"

const live = Effect.gen(function*() {
  const brokers = parseAddresses(yield* Config.string("CXLOG_BROKERS").pipe(Config.withDefault("127.0.0.1:7400")))
  const region = yield* Config.string("CXLOG_REGION").pipe(Config.withDefault("cxlog"))
  return Layer.mergeAll(
    PublisherLayers.layer({ brokers, topic: TOPIC, region }),
    SubscriberRemoteLayers.layerRemote({ brokers, region }),
    Layer.effect(Totals, Totals.make)
  )
})

const program = Effect.gen(function*() {
  const port = yield* serveHttp(yield* Config.integer("ORDERS_PORT").pipe(Config.withDefault(8080)))
  yield* Effect.log(`orders: listening on http://127.0.0.1:${port} (POST /orders, GET /totals)`)
  yield* worker
})

NodeRuntime.runMain(Effect.flatMap(live, (layers) => program.pipe(Effect.scoped, Effect.provide(layers))))
