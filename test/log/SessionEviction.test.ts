import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, TestClock } from "effect"
import { appendSimple, implementations } from "../fixtures/log-harness.js"

const spec = (order: 0 | 2 | 4 | 5) => ({ name: "t", order, ackLevel: 1 as const, replicationFactor: 1 })

for (const impl of implementations) {
  describe(`Session eviction: ${impl.label}`, () => {
    it.scoped("a registered session that never sends a batch is released after sessionIdleMs, not before; a late batch of it is refused", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec(5))
        const a = yield* cluster.appender(0, { registered: false })
        const sequencer = yield* cluster.sequencer({ sessionIdleMs: 5_000 })
        const sessions = cluster.sessions("t")
        // As a broker registers at HELLO (its clock is the sequencer's: the test clock here).
        const register = (clientId: number) =>
          Effect.map(Clock.currentTimeMillis, (nowMs) => {
            const outcome = sessions.register(clientId, nowMs)
            if ("full" in outcome) throw new Error("the session table is full")
            return outcome.sessionEpoch
          })
        // The sequencer already orders the topic (a restarted one would adopt every line it finds).
        yield* sequencer.step
        // The publisher is killed after its WELCOME, before its first batch.
        const silent = yield* register(1)
        expect(yield* sequencer.step).toMatchObject({ released: 0 })
        yield* TestClock.adjust("4000 millis")
        // Registered moments ago: its first batch may be on its way.
        const fresh = yield* register(2)
        expect(yield* sequencer.step).toMatchObject({ released: 0 })
        expect(sessions.liveCount()).toBe(2)
        yield* TestClock.adjust("1000 millis")
        expect(yield* sequencer.step).toMatchObject({ released: 1 })
        expect(sessions.liveCount()).toBe(1)
        expect(yield* cluster.acks.sessionAcks("t", 1, silent)).toEqual({ ordered: 0, replicated: 0, fenced: true, known: true })
        // The fresh session's first batch arrives late but within the bound: it is ordered.
        yield* TestClock.adjust("3000 millis")
        yield* appendSimple(a, "t", 2, fresh, 0)
        expect(yield* sequencer.step).toMatchObject({ ordered: 1, released: 0 })
        // A batch of the released session, late: refused, as for any released session.
        yield* appendSimple(a, "t", 1, silent, 0)
        expect(yield* sequencer.step).toMatchObject({ ordered: 0, dropped: 1 })
        expect(yield* cluster.acks.sessionAcks("t", 1, silent)).toEqual({ ordered: 0, replicated: 0, fenced: true, known: true })
        // The fresh one idles out like any session once it stops sending.
        yield* TestClock.adjust("6000 millis")
        expect(yield* sequencer.step).toMatchObject({ released: 1 })
        expect(sessions.liveCount()).toBe(0)
      }))

    it.scoped("a crash-looping publisher that registers and dies cannot fill the table for good", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec(2))
        const sequencer = yield* cluster.sequencer({ sessionIdleMs: 5_000 })
        const sessions = cluster.sessions("t")
        yield* sequencer.step
        const nowMs = yield* Clock.currentTimeMillis
        for (let i = 0; i < sessions.capacity; i++) expect("full" in sessions.register(7, nowMs)).toBe(false)
        expect(sessions.register(7, nowMs)).toEqual({ full: true, capacity: sessions.capacity })
        yield* TestClock.adjust("6000 millis")
        expect(yield* sequencer.step).toMatchObject({ released: sessions.capacity })
        expect("full" in sessions.register(7, yield* Clock.currentTimeMillis)).toBe(false)
      }))
  })
}
