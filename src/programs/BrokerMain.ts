/** `cxlog broker`: attaches the region, owns a broker slot, and serves publishers over TCP. */
import { Effect, Layer } from "effect"
import { attachRegion, brokerLog, brokerServer, controlTransport, coordinatorClient, processSlot, type RegionAccess } from "../layers/Roles.js"
import { Broker, type BrokerOptions } from "../services/Broker.js"
import { report } from "./Report.js"

export interface BrokerMainOptions {
  readonly region: RegionAccess
  readonly brokerId: number
  readonly server: BrokerOptions
  readonly statsEveryMs: number
}

export const broker = (options: BrokerMainOptions) =>
  Effect.gen(function*() {
    const server = yield* Broker
    yield* Effect.logInfo(`broker ${server.brokerId}: listening on ${server.host}:${server.port}, region ${options.region.name}`)
    report({ event: "listening", brokerId: server.brokerId, host: server.host, port: server.port })
    return yield* Effect.never
  }).pipe(
    Effect.provide(
      brokerServer(options.server).pipe(
        Layer.provideMerge(brokerLog(options.brokerId)),
        Layer.provideMerge(coordinatorClient()),
        Layer.provideMerge(controlTransport),
        Layer.provideMerge(processSlot("broker")),
        Layer.provideMerge(attachRegion(options.region))
      )
    )
  )
