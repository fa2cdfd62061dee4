/**
 * The prices app's own tests: its workers and dashboard — the code its programs run — over
 * cxlog's in-memory Channels and Services (the live engines in this process) instead of a region.
 */
import { describe, expect, it } from "@effect/vitest"
import { Channels, ChannelsMemoryLayers, ServicesMemoryLayers } from "cxlog"
import { Effect, Exit, Fiber, Layer } from "effect"
import { dashboard, Price, priceAt, PRICES, worker } from "../src/Prices.js"

const fakes = Layer.mergeAll(ChannelsMemoryLayers.layerMemory(), ServicesMemoryLayers.layerMemory())
const TICKS = 20

describe("the prices app", () => {
  it.scopedLive("the dashboard sees every worker's prices once, in order, and the workers answer by name", () =>
    Effect.gen(function*() {
      const board = yield* dashboard // subscribed before any worker publishes
      const acme = yield* Effect.forkScoped(worker("acme", ["ACME", "ACNE"], { everyMs: 1, ticks: TICKS }))
      const bolt = yield* Effect.forkScoped(worker("bolt", ["BOLT"], { everyMs: 1, ticks: TICKS }))
      // Every value of both: a tick out of order or twice fails `read`.
      const seen = yield* board.read(3 * TICKS)
      expect([...seen.values()].map((p) => [p.symbol, p.tick])).toEqual(
        expect.arrayContaining([["ACME", TICKS - 1], ["ACNE", TICKS - 1], ["BOLT", TICKS - 1]])
      )
      expect(seen.get("BOLT")!.price).toBe(priceAt("BOLT", TICKS - 1))
      // Their services live as long as they do: ask them before they end.
      const quoted = yield* board.quote("acme", "ACNE")
      expect(quoted).toEqual(seen.get("ACNE"))
      const refused = yield* Effect.flip(board.quote("bolt", "ACME"))
      expect(refused).toMatchObject({ _tag: "UnknownSymbol", symbol: "ACME" })
      yield* Fiber.join(acme)
      yield* Fiber.join(bolt)
    }).pipe(Effect.provide(fakes)))

  it.scopedLive("a symbol's ticks seen out of order fail the dashboard's read; one starting over at 0 does not", () =>
    Effect.gen(function*() {
      const board = yield* dashboard
      const publisher = yield* (yield* (yield* Channels).open(PRICES, Price)).publisher
      const at = (tick: number) => ({ symbol: "ACME", price: priceAt("ACME", tick), tick })
      // A worker restarted starts over at 0: that is in order.
      yield* publisher.publishAll([0, 1, 2, 0, 1].map(at))
      expect((yield* board.read(5)).get("ACME")).toEqual(at(1))
      yield* publisher.publish(at(3))
      const read = yield* Effect.exit(board.read(1))
      expect(Exit.isFailure(read) && String(read.cause)).toMatch(/ACME: tick 3 after 1/)
    }).pipe(Effect.provide(fakes)))
})
