/**
 * The orders service's own tests: its HTTP endpoint and its worker over cxlog/testing's
 * in-memory cluster instead of a cxlog server — the same code main.ts runs, the live layers
 * swapped for the testing one.
 */
import { describe, expect, it } from "@effect/vitest"
import { CxlogTesting, TestCluster } from "cxlog/testing"
import { Effect, Layer, Schedule } from "effect"
import { serveHttp } from "../src/Http.js"
import { TOPIC, Totals, worker } from "../src/Orders.js"

const testing = Layer.mergeAll(
  CxlogTesting.layer({ topics: [TOPIC], publisher: { topic: TOPIC } }),
  Layer.effect(Totals, Totals.make)
)

const post = (port: number, body: unknown) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}/orders`, { method: "POST", body: JSON.stringify(body) }).then(async (r) => ({
      status: r.status,
      json: (await r.json()) as Record<string, unknown>
    }))
  )
const totals = (port: number) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}/totals`).then((r) => r.json() as Promise<Record<string, number>>)
  )

describe("the orders service", () => {
  it.scopedLive("orders posted over HTTP are published in order, and the worker's totals count each once", () =>
    Effect.gen(function*() {
      const port = yield* serveHttp(0)
      yield* Effect.forkScoped(worker)
      const placed = []
      for (const [customer, amount] of [["ada", 10], ["bob", 5], ["ada", 2.5]] as const) {
        placed.push(yield* post(port, { customer, amount }))
      }
      expect(placed).toEqual([0, 1, 2].map((offset) => ({ status: 201, json: { offset } })))
      const cluster = yield* TestCluster
      expect(cluster.stats(TOPIC).messages).toBe(3)
      // The worker folds the topic as it arrives: wait (bounded) for it to have read all three.
      const sum = (t: Record<string, number>) => Object.values(t).reduce((a, b) => a + b, 0)
      const seen = yield* totals(port).pipe(
        Effect.filterOrFail((t) => sum(t) === 17.5),
        Effect.retry(Schedule.spaced("10 millis")),
        Effect.timeout("5 seconds")
      )
      expect(seen).toEqual({ ada: 12.5, bob: 5 })
    }).pipe(Effect.provide(testing)))

  it.scopedLive("a malformed order is refused with 400 and nothing is published", () =>
    Effect.gen(function*() {
      const port = yield* serveHttp(0)
      const refused = yield* post(port, { customer: "", amount: -1 })
      expect(refused.status).toBe(400)
      expect(String(refused.json.error)).toContain("customer")
      expect((yield* TestCluster).stats(TOPIC).messages).toBe(0)
    }).pipe(Effect.provide(testing)))
})
