import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { appendSimple, drain, implementations } from "../fixtures/log-harness.js"

for (const impl of implementations) {
  describe(`AckTracker contract: ${impl.label}`, () => {
    it.scoped("reads each session's frontier; an unseen session is unknown", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 2, replicationFactor: 1 })
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        expect(yield* cluster.acks.sessionAcks("t", 1, 1)).toEqual({
          ordered: 0,
          replicated: 0,
          fenced: false,
          known: false,
          durableFrozen: false
        })
        for (const seq of [0, 1, 3]) yield* appendSimple(a, "t", 1, 1, seq)
        yield* appendSimple(a, "t", 2, 1, 0)
        const before = yield* cluster.acks.progress("t")
        yield* drain(sequencer)
        expect(yield* cluster.acks.progress("t")).not.toBe(before)
        expect(yield* cluster.acks.sessionAcks("t", 1, 1)).toEqual({
          ordered: 2,
          replicated: 2,
          fenced: false,
          known: true,
          durableFrozen: false
        })
        expect(yield* cluster.acks.sessionAcks("t", 2, 1)).toMatchObject({ ordered: 1 })
        expect(yield* cluster.acks.brokerCounts("t")).toEqual([{ brokerId: 0, acked: 2, sent: 4 }])
        expect(yield* Effect.flip(cluster.acks.sessionAcks("nope", 1, 1))).toMatchObject({ _tag: "TopicNotFound" })
      }))

    it.scopedLive("awaitAcked resolves once the running sequencer orders the batch; level 0 never waits", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
        const [a, b] = yield* Effect.forEach([0, 1], (id) => cluster.appender(id))
        const sequencer = yield* cluster.sequencer()
        yield* Effect.forkScoped(sequencer.run)
        expect(yield* cluster.acks.awaitAcked("t", 4, 0, 5, { timeoutMs: 10, level: 0 })).toMatchObject({ ordered: 0 })
        const waiter = yield* Effect.fork(cluster.acks.awaitAcked("t", 4, 0, 1, { timeoutMs: 5_000 }))
        yield* appendSimple(b!, "t", 4, 0, 1)
        // A window, not a wait: batch 1 is held behind batch 0, so the ACK wait must not end in it.
        yield* Effect.sleep("20 millis")
        expect(waiter.unsafePoll()).toBeNull()
        yield* appendSimple(a!, "t", 4, 0, 0)
        expect(yield* Fiber.join(waiter)).toMatchObject({ ordered: 2, fenced: false })
        const seen = yield* cluster.acks.progress("t")
        const moved = yield* Effect.fork(cluster.acks.awaitProgress("t", seen, 5_000))
        yield* appendSimple(a!, "t", 4, 0, 2)
        expect(yield* Fiber.join(moved)).not.toBe(seen)
      }))

    it.scopedLive("a session watch reads the frontiers as they move, and its progress wait resumes once the progress moves", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        const watch = yield* cluster.acks.watch("t", 3, 0)
        expect(watch.acks()).toEqual({ ordered: 0, replicated: 0, fenced: false, known: false, durableFrozen: false })
        const seen = watch.progress()
        const moved = yield* Effect.fork(watch.awaitProgress(seen, 5_000))
        // A window, not a wait: no sequencer runs yet, so nothing may move the progress in it.
        yield* Effect.sleep("20 millis")
        expect(moved.unsafePoll()).toBeNull()
        yield* Effect.forkScoped(sequencer.run)
        yield* appendSimple(a, "t", 3, 0, 0)
        const now = yield* Fiber.join(moved)
        expect(now).not.toBe(seen)
        yield* cluster.acks.awaitAcked("t", 3, 0, 0, { timeoutMs: 5_000 })
        expect(watch.acks()).toEqual({ ordered: 1, replicated: 1, fenced: false, known: true, durableFrozen: false })
        expect(watch.acks()).toEqual(yield* cluster.acks.sessionAcks("t", 3, 0))
        // Already moved past `seen`: resumes with the progress now, whatever the bound.
        expect(yield* watch.awaitProgress(seen, 0)).toBe(watch.progress())
        expect(yield* Effect.flip(cluster.acks.watch("nope", 1, 1))).toMatchObject({ _tag: "TopicNotFound" })
      }))

    it.scopedLive("on timeout, AckTimeout names each broker's acked and sent counts", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
        const [a, b] = yield* Effect.forEach([0, 1], (id) => cluster.appender(id))
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(a!, "t", 8, 0, 0)
        yield* drain(sequencer)
        yield* appendSimple(a!, "t", 8, 0, 2)
        yield* appendSimple(b!, "t", 8, 0, 3)
        const error = yield* Effect.flip(cluster.acks.awaitAcked("t", 8, 0, 3, { timeoutMs: 30 }))
        expect(error).toMatchObject({ _tag: "AckTimeout", acked: 1, batchSeq: 3, level: 1 })
        expect(error.message).toContain("B0=1/2, B1=0/1")
      }))

    it.scopedLive("a session fenced while waited on fails the wait with SessionFenced and its committed frontier", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer({ holdTimeoutMs: 30 })
        yield* Effect.forkScoped(sequencer.run)
        yield* appendSimple(a, "t", 6, 3, 0)
        yield* appendSimple(a, "t", 6, 3, 2)
        const error = yield* Effect.flip(cluster.acks.awaitAcked("t", 6, 3, 2, { timeoutMs: 5_000 }))
        expect(error).toMatchObject({ _tag: "SessionFenced", clientId: 6, sessionEpoch: 3, committed: 1 })
      }))
  })
}
