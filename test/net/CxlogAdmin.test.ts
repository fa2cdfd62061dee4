/** The admin client's Promise facade: closing it leaves nothing open, whatever was under way; what a JavaScript caller passes is refused typed. */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { CxlogAdmin } from "../../src/layers/net/CxlogAdmin.js"
import type { TrimTarget } from "../../src/services/log/Topics.js"
import { anonymous } from "../fixtures/anonymous-region.js"
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

  it.scopedLive("trimTopic without a target, or with null, rejects with TopicNotTrimmable naming the three", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "events" }] })
      const { port } = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      yield* Effect.promise(async () => {
        const admin = await CxlogAdmin.open({ ...anonymous, brokers: [{ host: "127.0.0.1", port }] })
        for (const target of [undefined, null] as ReadonlyArray<unknown> as ReadonlyArray<TrimTarget>) {
          // A rejection, not a TypeError thrown at the call past the caller's handler.
          const outcome = await admin.trimTopic("events", target).then(() => undefined, (e: unknown) => e)
          expect(outcome, String(target)).toMatchObject({
            _tag: "TopicNotTrimmable",
            reason: expect.stringContaining("one of beforeOffset, keepMessages or beforeTime")
          })
        }
        await admin.close()
      })
    }))
})
