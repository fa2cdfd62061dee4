/** The admin client's Promise facade: closing it leaves nothing open, whatever was under way. */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { spawnFixture } from "../helpers/Processes.js"

describe("CxlogAdmin", () => {
  it.scopedLive("close() with a call under way answers the call, then closes: the process exits by itself", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "events" }] })
      const { port } = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const child = yield* spawnFixture("facade-client", ["admin-close", `${port}`])
      expect(yield* child.next()).toEqual({ listed: ["events"] })
      const exited = yield* Deferred.await(child.exited).pipe(
        Effect.timeoutFail({
          duration: "20 seconds",
          onTimeout: () =>
            new Error("facade-client admin-close: still running 20 s after it printed (a connection kept it alive)")
        })
      )
      expect(exited).toEqual({ code: 0, signal: null })
    }))
})
