/**
 * The prices app's own tests: its workers and dashboard — the code its programs run — over
 * cxlog's in-memory Channels, Services and Coordinator (the live engines in this process) instead
 * of a region (test/Fakes.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Channels } from "cxlog"
import { Deferred, Effect, Exit, Fiber, Schedule } from "effect"
import { dashboard, Price, priceAt, PRICES, worker } from "../src/Prices.js"
import { makeFakes } from "./Fakes.js"

const TICKS = 20

describe("the prices app", () => {
  it.scopedLive("the dashboard sees every worker's prices once, in order, and the workers answer by name", () =>
    Effect.gen(function*() {
      const { asMember } = yield* makeFakes
      yield* asMember(Effect.gen(function*() {
        const board = yield* dashboard() // subscribed before any worker publishes
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
      }))
    }))

  it.scopedLive("a symbol's ticks seen out of order fail the dashboard's read; one starting over at 0 does not", () =>
    Effect.gen(function*() {
      const { asMember } = yield* makeFakes
      yield* asMember(Effect.gen(function*() {
        const board = yield* dashboard()
        const publisher = yield* (yield* (yield* Channels).open(PRICES, Price)).publisher
        const at = (tick: number) => ({ symbol: "ACME", price: priceAt("ACME", tick), tick })
        // A worker restarted starts over at 0: that is in order.
        yield* publisher.publishAll([0, 1, 2, 0, 1].map(at))
        expect((yield* board.read(5)).get("ACME")).toEqual(at(1))
        yield* publisher.publish(at(3))
        const read = yield* Effect.exit(board.read(1))
        expect(Exit.isFailure(read) && String(read.cause)).toMatch(/ACME: tick 3 after 1/)
      }))
    }))

  /**
   * A dashboard stopped first, then a worker that published for a while after: as one SIGTERM to
   * each reaches them at different moments. Each price takes the dashboard 2 ms.
   */
  const stoppedApart = (drainGroup: string | undefined) =>
    Effect.gen(function*() {
      const { runMember } = yield* makeFakes
      const dashboardUp = yield* Deferred.make<{ readonly handled: () => number }>()
      const shown = yield* runMember(
        Effect.gen(function*() {
          const board = yield* dashboard(() => Effect.sleep("2 millis"))
          yield* Deferred.succeed(dashboardUp, board)
          return yield* Effect.never
        }),
        drainGroup
      )
      const board = yield* Deferred.await(dashboardUp)
      const allPublished = yield* Deferred.make<void>()
      const ticks = 25
      const acme = yield* runMember(
        Effect.gen(function*() {
          yield* worker("acme", ["ACME", "ACNE"], { everyMs: 20, ticks })
          yield* Deferred.succeed(allPublished, undefined)
          return yield* Effect.never
        }),
        drainGroup
      )
      // A price handled: the worker is publishing, a member of the group since before its first.
      yield* Effect.repeat(Effect.sync(board.handled), { until: (n) => n > 0, schedule: Schedule.spaced("5 millis") })
        .pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("no price handled") }))
      // The dashboard's stop, waited for in a fiber: with the fence, it ends only once the worker arrived.
      const dashboardStop = yield* Effect.fork(Fiber.interrupt(shown))
      // The worker publishes all its ticks (2 × 25 prices, 20 ms apart: the dashboard, at 2 ms a price, keeps up), then is stopped.
      yield* Deferred.await(allPublished)
      yield* Fiber.interrupt(acme)
      yield* Fiber.join(dashboardStop)
      return { published: 2 * ticks, handled: board.handled() }
    })

  it.scopedLive(
    "stopped apart under a draining supervisor, the dashboard handles every price published",
    () =>
      Effect.gen(function*() {
        const { handled, published } = yield* stoppedApart("prices-app")
        expect(handled).toBe(published)
      }),
    30_000
  )

  it.scopedLive(
    "the control, without the drain group: the dashboard stopped first misses the later prices",
    () =>
      Effect.gen(function*() {
        const { handled, published } = yield* stoppedApart(undefined)
        expect(handled).toBeLessThan(published)
      }),
    30_000
  )
})
