import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as RingsLayers from "../../src/layers/control/Rings.js"
import * as RpcLayers from "../../src/layers/control/Rpc.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { Rings } from "../../src/services/control/Rings.js"
import { handle } from "../../src/services/control/Rpc.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { Add, layout } from "../fixtures/rpc-methods.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const BASE = 65536

describe("Rpc across processes", () => {
  it.scopedLive("two client processes call a server in this process; a rejected payload does not stop it", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("rpcx")
      const { requests, replies, end } = layout(BASE)
      const region = yield* CxlMemoryLayers.make({ name, size: Math.ceil(end / 4096) * 4096, mode: "create" })
      const doorbell = yield* DoorbellLayers.make({ offset: 4096 }).pipe(Effect.provideService(CxlMemory, region))
      const rings = yield* RingsLayers.make.pipe(
        Effect.provideService(CxlMemory, region),
        Effect.provideService(Doorbell, doorbell)
      )
      const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
      let served = 0
      yield* rpc.serve({ requests, replies }, [handle(Add, ({ a, b }) => Effect.sync(() => (served++, a + b)))])
      const calls = 2000
      const clients = yield* Effect.forEach(
        [1, 2],
        (client) =>
          spawnFixture("rpc-client", [
            JSON.stringify({ region: name, bell: 4096 + 64 * client, client, base: BASE, calls })
          ]),
        {
          concurrency: "unbounded"
        }
      )
      for (const child of clients) {
        expect(yield* child.next()).toEqual({ ready: true })
      }
      for (const child of clients) {
        expect(yield* child.next(60_000)).toEqual({ done: true, calls, wrong: 0, rejected: "RpcInvalidPayload" })
      }
      expect(served).toBe(2 * calls)
    }))
})
