import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, TestClock } from "effect"
import { appendSimple, drain, implementations, readAll } from "../fixtures/log-harness.js"

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
        expect(yield* cluster.acks.sessionAcks("t", 1, silent)).toEqual({
          ordered: 0,
          replicated: 0,
          fenced: true,
          known: true,
          durableFrozen: false
        })
        // The fresh session's first batch arrives late but within the bound: it is ordered.
        yield* TestClock.adjust("3000 millis")
        yield* appendSimple(a, "t", 2, fresh, 0)
        expect(yield* sequencer.step).toMatchObject({ ordered: 1, released: 0 })
        // A batch of the released session, late: refused, as for any released session.
        yield* appendSimple(a, "t", 1, silent, 0)
        expect(yield* sequencer.step).toMatchObject({ ordered: 0, dropped: 1 })
        expect(yield* cluster.acks.sessionAcks("t", 1, silent)).toEqual({
          ordered: 0,
          replicated: 0,
          fenced: true,
          known: true,
          durableFrozen: false
        })
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

    for (const order of [0, 2, 4] as const) {
      it.scoped(`mode ${order}: a session with batches ordered above a gap is not idled out; the publisher's resend closes the gap and nothing is ordered twice`, () =>
        Effect.gen(function*() {
          const cluster = yield* impl.make()
          yield* cluster.topics.create(spec(order))
          const [a0, a1] = yield* Effect.forEach([0, 1], (b) => cluster.appender(b))
          const sequencer = yield* cluster.sequencer({ sessionIdleMs: 5_000 })
          // Batch k carries k + 1 messages, so a copy in the log is told by its size whatever its epoch and seq.
          const batches = [0, 1]
          // Batch 0 went to broker 0, which died before appending it; batch 1 went to broker 1 and is ordered.
          yield* appendSimple(a1!, "t", 7, 1, 1, 2)
          expect(yield* sequencer.step).toMatchObject({ ordered: 1 })
          // Both brokers stay down past the idle bound while the head runs.
          yield* TestClock.adjust("3000 millis")
          yield* sequencer.step
          yield* TestClock.adjust("3000 millis")
          yield* sequencer.step
          // The publisher reconnects and does what Publisher does: attached, it resends what is not
          // acknowledged; told its session ended at a frontier, it replays what is past it in a new epoch.
          const acks = yield* cluster.acks.sessionAcks("t", 7, 1)
          const replay = batches.slice(acks.ordered)
          const epoch = acks.fenced ? 2 : 1
          for (const [i, k] of replay.entries()) yield* appendSimple(a0!, "t", 7, epoch, acks.fenced ? i : k, k + 1)
          yield* drain(sequencer)
          const read = yield* readAll(cluster.reader, "t")
          expect(read.map((b) => b.messageCount).sort()).toEqual([1, 2])
          // It was kept, not ended at 0: the resend went to the same session and batch 1's copy was a duplicate.
          expect(acks).toMatchObject({ ordered: 0, fenced: false })
          expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: 2, fenced: false })
          // Gap closed: the session idles out like any other.
          yield* TestClock.adjust("6000 millis")
          expect(yield* sequencer.step).toMatchObject({ released: 1 })
          expect(cluster.sessions("t").liveCount()).toBe(0)
        }))
    }
  })
}
