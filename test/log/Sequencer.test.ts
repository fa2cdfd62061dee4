import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, TestClock, TestServices } from "effect"
import { sessionLineOffset } from "../../src/layers/log/Layout.js"
import { makeMemoryStore, type MemoryLogStore } from "../../src/layers/log/MemoryStore.js"
import { LeaseLine, PbrSlot, SessionLine } from "../../src/layers/log/Records.js"
import { LeaseLineView } from "../../src/layers/log/RecordViews.js"
import * as SequencerLayers from "../../src/layers/log/Sequencer.js"
import * as SequencerMemoryLayers from "../../src/layers/log/SequencerMemory.js"
import { topicMarks } from "../../src/layers/log/TopicMarks.js"
import { CADENCE_MS, TIMER_EARLY_MS } from "../../src/layers/region/Cadence.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { Offsets } from "../../src/layers/region/Superblock.js"
import { logRingFullWaits } from "../../src/Metrics.js"
import { sequencerOptionsConfig } from "../../src/services/log/Sequencer.js"
import { CxlMemory, type CxlMemoryShape } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { FiberCounts } from "../fixtures/fiber-counts.js"
import { appendSimple, bell, drain, implementations, readAll, smallConfig } from "../fixtures/log-harness.js"
import { until } from "../helpers/ServeProcess.js"
import { wokenByRing } from "../helpers/WakeRounds.js"

const spec = (order: 0 | 2 | 4 | 5) => ({ name: "t", order, ackLevel: 1 as const, replicationFactor: 1 })

for (const impl of implementations) {
  describe(`Sequencer contract: ${impl.label}`, () => {
    for (const order of [0, 2, 4, 5] as const) {
      it.scoped(`mode ${order}: batches of 4 brokers get one contiguous total order, intact`, () =>
        Effect.gen(function*() {
          const cluster = yield* impl.make()
          yield* cluster.topics.create(spec(order))
          const appenders = yield* Effect.forEach([0, 1, 2, 3], (b) => cluster.appender(b))
          const sequencer = yield* cluster.sequencer()
          // Session (client b) sends its batches 0..2 to its own broker.
          for (let seq = 0; seq < 3; seq++) {
            for (const a of appenders) yield* appendSimple(a, "t", a.brokerId, 1, seq, 1 + a.brokerId)
          }
          yield* drain(sequencer)
          const read = yield* readAll(cluster.reader, "t")
          expect(read.map((b) => b.globalSeq)).toEqual(Array.from({ length: 12 }, (_, i) => i))
          let total = 0
          for (const b of read) {
            expect(b.totalOrder).toBe(total)
            expect(b.crcOk).toBe(true)
            expect(b.brokerId).toBe(b.clientId)
            total += b.messageCount
          }
          for (let client = 0; client < 4; client++) {
            expect(read.filter((b) => b.clientId === client).map((b) => b.batchSeq)).toEqual([0, 1, 2])
            expect(yield* cluster.acks.sessionAcks("t", client, 1)).toEqual({
              ordered: 3,
              replicated: 3,
              fenced: false,
              known: true,
              durableFrozen: false
            })
          }
        }))

      it.scoped(`mode ${order}: a duplicate is dropped, counted and still acknowledged`, () =>
        Effect.gen(function*() {
          const cluster = yield* impl.make()
          yield* cluster.topics.create(spec(order))
          const [a, b] = yield* Effect.forEach([0, 1], (id) => cluster.appender(id))
          const sequencer = yield* cluster.sequencer()
          yield* appendSimple(a!, "t", 7, 0, 0)
          yield* appendSimple(b!, "t", 7, 0, 0)
          yield* appendSimple(b!, "t", 7, 0, 1)
          yield* appendSimple(a!, "t", 7, 0, 1)
          const round = yield* sequencer.step
          expect(round.ordered).toBe(2)
          expect(round.duplicates).toBe(2)
          expect((yield* readAll(cluster.reader, "t")).map((x) => x.batchSeq)).toEqual([0, 1])
          expect((yield* cluster.acks.sessionAcks("t", 7, 0)).ordered).toBe(2)
          expect((yield* cluster.acks.brokerCounts("t")).map((c) => [c.acked, c.sent])).toEqual([[2, 2], [2, 2]])
        }))
    }

    it.scoped("mode 5: a batch that arrives before its predecessor is held, then ordered once the gap closes", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec(5))
        const [a, b] = yield* Effect.forEach([0, 1], (id) => cluster.appender(id))
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(a!, "t", 3, 9, 2)
        yield* appendSimple(a!, "t", 3, 9, 1)
        expect(yield* sequencer.step).toMatchObject({ ordered: 0, held: 2 })
        expect(yield* readAll(cluster.reader, "t")).toEqual([])
        expect((yield* cluster.acks.sessionAcks("t", 3, 9)).ordered).toBe(0)
        yield* appendSimple(b!, "t", 3, 9, 0)
        expect(yield* sequencer.step).toMatchObject({ ordered: 3, held: 0 })
        expect((yield* readAll(cluster.reader, "t")).map((x) => [x.batchSeq, x.brokerId])).toEqual([[0, 1], [1, 0], [
          2,
          0
        ]])
        expect((yield* cluster.acks.sessionAcks("t", 3, 9)).ordered).toBe(3)
      }))

    it.scoped("mode 5: a gap open past the hold timeout fences the session; the next epoch is a fresh session", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec(5))
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer({ holdTimeoutMs: 1_000 })
        yield* appendSimple(a, "t", 5, 1, 0)
        yield* appendSimple(a, "t", 5, 1, 2)
        expect(yield* sequencer.step).toMatchObject({ ordered: 1, held: 1 })
        yield* TestClock.adjust("999 millis")
        expect(yield* sequencer.step).toMatchObject({ fenced: 0 })
        yield* TestClock.adjust("2 millis")
        expect(yield* sequencer.step).toMatchObject({ fenced: 1, dropped: 1 })
        expect(yield* cluster.acks.sessionAcks("t", 5, 1)).toEqual({
          ordered: 1,
          replicated: 1,
          fenced: true,
          known: true,
          durableFrozen: false
        })
        // Late batches of the fenced epoch are dropped; the publisher replays in epoch 2.
        yield* appendSimple(a, "t", 5, 1, 1)
        yield* appendSimple(a, "t", 5, 2, 0)
        yield* appendSimple(a, "t", 5, 2, 1)
        expect(yield* sequencer.step).toMatchObject({ ordered: 2, dropped: 1 })
        const read = yield* readAll(cluster.reader, "t")
        expect(read.map((x) => `${x.sessionEpoch}:${x.batchSeq}`)).toEqual(["1:0", "2:0", "2:1"])
      }))

    it.scoped("mode 5: waiting for room is not a gap: no session is fenced while the log is full but still ordering", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec(5))
        const [a0, a1] = yield* Effect.forEach([0, 1], (b) => cluster.appender(b))
        const sequencer = yield* cluster.sequencer({ holdTimeoutMs: 1_000 })
        // Session 2's batches 1..64 fill broker 1's PBR, held behind its missing batch 0.
        for (let seq = 1; seq <= 64; seq++) yield* appendSimple(a1!, "t", 2, 1, seq)
        // Session 1 has a gap at 1; its batch 1 waits for room on broker 1.
        yield* appendSimple(a0!, "t", 1, 1, 0)
        yield* appendSimple(a0!, "t", 1, 1, 2)
        expect(yield* sequencer.step).toMatchObject({ ordered: 1, held: 65 })
        const waitedBefore = logRingFullWaits.unsafeValue([]).count
        const waiting = yield* Effect.fork(appendSimple(a1!, "t", 1, 1, 1))
        // The round tells room from a gap by the appends counted waiting for room: this one counts itself first.
        yield* TestServices.provideLive(until(
          () => logRingFullWaits.unsafeValue([]).count > waitedBefore,
          10_000,
          () => "session 1's batch 1 to wait for room"
        ))
        // Well past the hold timeout, while another session keeps the topic ordering: nobody is fenced.
        yield* appendSimple(a0!, "t", 3, 1, 0)
        yield* TestClock.adjust("1500 millis")
        expect(yield* sequencer.step).toMatchObject({ ordered: 1, fenced: 0 })
        yield* TestClock.adjust("1500 millis")
        yield* appendSimple(a0!, "t", 3, 1, 1)
        expect(yield* sequencer.step).toMatchObject({ ordered: 1, fenced: 0 })
        // Session 2's gap closes: its batches are ordered, broker 1 has room, session 1's batch 1 goes in.
        yield* appendSimple(a0!, "t", 2, 1, 0)
        expect(yield* sequencer.step).toMatchObject({ ordered: 65, fenced: 0 })
        yield* Fiber.join(waiting)
        yield* drain(sequencer)
        expect(yield* cluster.acks.sessionAcks("t", 1, 1)).toEqual({
          ordered: 3,
          replicated: 3,
          fenced: false,
          known: true,
          durableFrozen: false
        })
        expect(yield* cluster.acks.sessionAcks("t", 2, 1)).toEqual({
          ordered: 65,
          replicated: 65,
          fenced: false,
          known: true,
          durableFrozen: false
        })
      }))

    it.scoped("sessions: unregistered batches are refused; a closed session is released after its last batch, an idle one after sessionIdleMs", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec(5))
        const a = yield* cluster.appender(0, { registered: false })
        const sequencer = yield* cluster.sequencer({ sessionIdleMs: 5_000 })
        const sessions = cluster.sessions("t")
        const registered = (clientId: number) => {
          const outcome = sessions.register(clientId, Date.now())
          if ("full" in outcome) throw new Error("the session table is full")
          return outcome.sessionEpoch
        }
        // A session the log never handed out.
        yield* appendSimple(a, "t", 9, 777, 0)
        expect(yield* sequencer.step).toMatchObject({ ordered: 0, dropped: 1 })
        expect((yield* cluster.acks.sessionAcks("t", 9, 777)).known).toBe(false)
        // Closed announcing 3 batches: released once batch 2 is ordered too.
        const closing = registered(3)
        yield* appendSimple(a, "t", 3, closing, 0)
        yield* appendSimple(a, "t", 3, closing, 1)
        yield* a.closeSession("t", 3, closing, 3)
        expect(yield* sequencer.step).toMatchObject({ ordered: 2, released: 0 })
        yield* appendSimple(a, "t", 3, closing, 2)
        expect(yield* sequencer.step).toMatchObject({ ordered: 1, released: 1 })
        expect(yield* cluster.acks.sessionAcks("t", 3, closing)).toEqual({
          ordered: 3,
          replicated: 3,
          fenced: true,
          known: true,
          durableFrozen: false
        })
        expect(sessions.liveCount()).toBe(0)
        // Idle: released after sessionIdleMs with its frontier; a late batch is refused.
        const idle = registered(4)
        yield* appendSimple(a, "t", 4, idle, 0)
        expect(yield* sequencer.step).toMatchObject({ ordered: 1, released: 0 })
        yield* TestClock.adjust("4000 millis")
        expect(yield* sequencer.step).toMatchObject({ released: 0 })
        yield* TestClock.adjust("2000 millis")
        expect(yield* sequencer.step).toMatchObject({ released: 1 })
        expect(yield* cluster.acks.sessionAcks("t", 4, idle)).toEqual({
          ordered: 1,
          replicated: 1,
          fenced: true,
          known: true,
          durableFrozen: false
        })
        yield* appendSimple(a, "t", 4, idle, 1)
        expect(yield* sequencer.step).toMatchObject({ ordered: 0, dropped: 1 })
        expect(sessions.liveCount()).toBe(0)
      }))

    it.scoped("a session gap bound below the idle bound is refused, typed, naming both, before the lease is taken; one equal to it is taken", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const refused = yield* Effect.flip(cluster.sequencer({ sessionIdleMs: 5_000, sessionGapIdleMs: 4_999 }))
        expect(refused).toMatchObject({ _tag: "SessionGapIdleTooShort", sessionGapIdleMs: 4_999, sessionIdleMs: 5_000 })
        expect((refused as Error).message).toContain(
          "--session-gap-idle-ms / CXLOG_SESSION_GAP_IDLE_MS) 4999 ms is below"
        )
        expect((refused as Error).message).toContain("(--session-idle-ms / CXLOG_SESSION_IDLE_MS) 5000 ms")
        // Below the default idle bound (10 min) too, when only the gap bound is given.
        expect(yield* Effect.flip(cluster.sequencer({ sessionGapIdleMs: 60_000 }))).toMatchObject({
          sessionGapIdleMs: 60_000,
          sessionIdleMs: 600_000
        })
        const sequencer = yield* cluster.sequencer({ sessionIdleMs: 5_000, sessionGapIdleMs: 5_000 })
        expect(sequencer.epoch).toBe(1)
      }))

    it.scoped("a hold timeout, session idle or gap bound or lease below 1 ms (0, negative, NaN, a zero duration) is refused, typed, naming it, before the lease is taken; 1 is taken", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        // What CXLOG_HOLD_TIMEOUT_MS / CXLOG_SESSION_IDLE_MS refuse, given in code: at 0 a session would be
        // fenced at its first gap, or every session released at each sweep.
        const refusals = [
          [{ holdTimeoutMs: 0 }, "holdTimeoutMs", 0],
          [{ holdTimeoutMs: -5 }, "holdTimeoutMs", -5],
          [{ holdTimeoutMs: NaN }, "holdTimeoutMs", NaN],
          [{ holdTimeout: "0 millis" }, "holdTimeoutMs", 0],
          [{ sessionIdleMs: 0 }, "sessionIdleMs", 0],
          [{ sessionIdleMs: 0, sessionGapIdleMs: 60_000 }, "sessionIdleMs", 0],
          [{ sessionIdle: "0 seconds" }, "sessionIdleMs", 0],
          // A NaN gap bound compares below nothing: no session with a gap would ever lapse.
          [{ sessionGapIdleMs: NaN }, "sessionGapIdleMs", NaN],
          [{ leaseMs: 0 }, "leaseMs", 0],
          [{ lease: "0 millis" }, "leaseMs", 0]
        ] as const
        for (const [options, option, value] of refusals) {
          const refused = yield* Effect.flip(cluster.sequencer(options))
          expect(refused, JSON.stringify(options)).toMatchObject({ _tag: "InvalidSequencerOptions", option, value })
          expect((refused as Error).message).toContain(
            `${option} ${value} is not a number of milliseconds of at least 1`
          )
        }
        const sequencer = yield* cluster.sequencer({ holdTimeoutMs: 1, sessionIdleMs: 1 })
        expect(sequencer.epoch).toBe(1)
      }))

    it.scoped("mode 4: each broker's batches keep their arrival order; mode 0 likewise", () =>
      Effect.gen(function*() {
        for (const order of [4, 0] as const) {
          const cluster = yield* impl.make()
          yield* cluster.topics.create(spec(order))
          const [a, b] = yield* Effect.forEach([0, 1], (id) => cluster.appender(id))
          const sequencer = yield* cluster.sequencer()
          for (const seq of [3, 0, 2]) yield* appendSimple(a!, "t", 1, 0, seq)
          for (const seq of [1, 5, 4]) yield* appendSimple(b!, "t", 1, 0, seq)
          yield* drain(sequencer)
          const read = yield* readAll(cluster.reader, "t")
          expect(read.filter((x) => x.brokerId === 0).map((x) => x.batchSeq)).toEqual([3, 0, 2])
          expect(read.filter((x) => x.brokerId === 1).map((x) => x.batchSeq)).toEqual([1, 5, 4])
          expect((yield* cluster.acks.sessionAcks("t", 1, 0)).ordered).toBe(6)
        }
      }))

    it.scoped("a second sequencer is refused while the first holds the lease; a successor continues without loss or duplicate", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec(5))
        const [a, b] = yield* Effect.forEach([0, 1], (id) => cluster.appender(id))
        const first = yield* Effect.scoped(Effect.gen(function*() {
          const sequencer = yield* cluster.sequencer({ maxBatchesPerBroker: 2 })
          expect(yield* Effect.flip(Effect.scoped(cluster.sequencer()))).toMatchObject({ _tag: "SequencerLeaseHeld" })
          for (let seq = 0; seq < 10; seq++) yield* appendSimple(seq % 3 === 0 ? a! : b!, "t", 4, 0, seq)
          yield* appendSimple(a!, "t", 4, 0, 12)
          yield* sequencer.step
          return sequencer.epoch
        }))
        const second = yield* cluster.sequencer()
        expect(second.epoch).toBe(first + 1)
        for (let seq = 10; seq < 14; seq++) if (seq !== 12) yield* appendSimple(b!, "t", 4, 0, seq)
        yield* appendSimple(a!, "t", 4, 0, 3)
        yield* drain(second)
        const read = yield* readAll(cluster.reader, "t")
        expect(read.map((x) => x.batchSeq)).toEqual(Array.from({ length: 14 }, (_, i) => i))
        expect(read.map((x) => x.globalSeq)).toEqual(Array.from({ length: 14 }, (_, i) => i))
      }))
  })
}

/** A doorbell at bell 60 that counts its waits, for a sequencer run to use. */
const countingDoorbell = (memory: CxlMemoryShape) =>
  Effect.gen(function*() {
    const doorbell = yield* DoorbellLayers.make({ offset: bell(60) }).pipe(Effect.provideService(CxlMemory, memory))
    let waits = 0
    const counting = {
      ...doorbell,
      await: (condition: () => boolean, timeoutMs: number) =>
        Effect.suspend(() => {
          waits++
          return doorbell.await(condition, timeoutMs)
        })
    }
    return { counting, waits: () => waits }
  })

/** A fake-region cluster with an order 5 topic "t", broker 0's appender, and a sequencer of the test's own (not yet running). */
const regionSequencer = Effect.gen(function*() {
  const cluster = yield* implementations[1]!.make()
  yield* cluster.topics.create(spec(5))
  const a = yield* cluster.appender(0)
  const { memory, area } = cluster.region!
  const doorbell = yield* DoorbellLayers.make({ offset: bell(60) }).pipe(Effect.provideService(CxlMemory, memory))
  const sequencer = yield* SequencerLayers.make(area).pipe(
    Effect.provideService(CxlMemory, memory),
    Effect.provideService(Doorbell, doorbell)
  )
  return { cluster, a, sequencer }
})

describe("Sequencer over the region", () => {
  it.scopedLive("while run waits for batches the lease line says so (appenders ring only then), and a commit wakes it", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[0]!.make()
      yield* cluster.topics.create(spec(5))
      const a = yield* cluster.appender(0)
      const { area, memory } = cluster.region!
      const waiting = () => Atomics.load(memory.i32, (Offsets.sequencerLease + LeaseLine.waiting) / 4)
      const running = yield* Effect.scoped(Effect.gen(function*() {
        const doorbell = yield* DoorbellLayers.make({ offset: bell(60) }).pipe(Effect.provideService(CxlMemory, memory))
        const sequencer = yield* SequencerLayers.make(area).pipe(
          Effect.provideService(Doorbell, doorbell),
          Effect.provideService(CxlMemory, memory)
        )
        const fiber = yield* Effect.forkScoped(sequencer.run)
        // An idle run also wakes for its session sweeps (every second) and would order the batch
        // then: only the count of waits a ring settled tells the commit's ring woke it.
        const woken = yield* wokenByRing(DoorbellLayers.internalsOf(doorbell)!, {
          park: () =>
            Effect.gen(function*() {
              yield* until(() => waiting() !== 0, 5_000, () => "the run to wait", 1)
              // The head orders the batch, not its appender: a ready head lets brokers order their own
              // (AppenderRounds.ts), and the run is ready once waiting, so it is told it is not.
              new LeaseLineView(memory).storeReady(Offsets.sequencerLease, 0)
              // Parked (its flag published), so the commit cannot be found by the run's own re-check.
              yield* until(() => Atomics.load(memory.i32, bell(60) / 4 + 1) !== 0, 5_000, () => "the run to park", 1)
            }),
          commit: (round) =>
            Effect.zipRight(
              appendSimple(a, "t", 1, 0, round),
              cluster.acks.awaitAcked("t", 1, 0, round, { timeoutMs: 5_000 })
            )
        })
        expect(woken).toBe(true)
        while (waiting() === 0) yield* Effect.sleep("1 millis")
        return fiber
      }))
      expect(running.unsafePoll()).not.toBeNull()
      expect(waiting()).toBe(0)
    }))

  it.scopedLive("run's rounds are served from callbacks: its fiber does not suspend per round (only to renew the lease or find topics)", () =>
    Effect.gen(function*() {
      const { cluster, a, sequencer } = yield* regionSequencer
      const counts = new FiberCounts()
      yield* Effect.forkScoped(Effect.supervised(sequencer.run, counts))
      const acked = (seq: number) => cluster.acks.awaitAcked("t", 1, 0, seq, { timeoutMs: 5_000 })
      yield* appendSimple(a, "t", 1, 0, 0)
      yield* acked(0)
      const before = counts.suspended
      // 100 rounds, each woken by its batch's commit.
      for (let seq = 1; seq <= 100; seq++) {
        yield* appendSimple(a, "t", 1, 0, seq)
        yield* acked(seq)
      }
      expect(counts.suspended - before).toBeLessThan(10)
    }))

  it.scopedLive("run orders a burst and then a trickle as each arrives, with no pause after a busy round", () =>
    Effect.gen(function*() {
      const { cluster, a, sequencer } = yield* regionSequencer
      yield* Effect.forkScoped(sequencer.run)
      const acked = (seq: number) => cluster.acks.awaitAcked("t", 1, 0, seq, { timeoutMs: 5_000 })
      for (let seq = 0; seq <= 5; seq++) yield* appendSimple(a, "t", 1, 0, seq)
      yield* acked(5)
      for (let seq = 6; seq <= 8; seq++) {
        yield* appendSimple(a, "t", 1, 0, seq)
        yield* acked(seq)
      }
      expect((yield* readAll(cluster.reader, "t")).map((b) => b.batchSeq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
    }))

  it.scopedLive("an idle run parks on the doorbell and wakes only for its lease, not on a short poll", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[0]!.make()
      yield* cluster.topics.create(spec(5))
      const a = yield* cluster.appender(0)
      const { memory, area } = cluster.region!
      // Every idle wake of the run loop is one doorbell wait (and one round after it).
      const { counting, waits } = yield* countingDoorbell(memory)
      const sequencer = yield* SequencerLayers.make(area, { leaseMs: 3_000 }).pipe(
        Effect.provideService(CxlMemory, memory),
        Effect.provideService(Doorbell, counting)
      )
      yield* Effect.forkScoped(sequencer.run)
      yield* appendSimple(a, "t", 1, 0, 0)
      yield* cluster.acks.awaitAcked("t", 1, 0, 0, { timeoutMs: 5_000 })
      const before = waits()
      // A window, not a wait: longer than one lease renewal (every second: leaseMs / 3), sessions
      // swept as often, so at most a few waits in 1.5 s, where a 100 ms re-scan would make fifteen.
      yield* Effect.sleep("1500 millis")
      expect(waits() - before).toBeLessThanOrEqual(4)
      // Still event-driven: a commit is ordered without waiting for the next wake.
      yield* appendSimple(a, "t", 1, 0, 1)
      yield* cluster.acks.awaitAcked("t", 1, 0, 1, { timeoutMs: 5_000 })
    }))

  it.scopedLive("an idle run renews its lease on the cadence's grid (a wake shared with the process's other periodic work)", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[0]!.make()
      yield* cluster.topics.create(spec(5))
      const { memory, area } = cluster.region!
      const doorbell = yield* DoorbellLayers.make({ offset: bell(60) }).pipe(Effect.provideService(CxlMemory, memory))
      // Renewals due every 1 250 ms: with a phase of their own they would fall 250 ms further
      // round the cadence's 500 ms grid each time, so two in a row could not both be in its
      // first half; on the grid, each is at a tick (the renewal at the tick before it is due).
      const sequencer = yield* SequencerLayers.make(area, { leaseMs: 3_750 }).pipe(
        Effect.provideService(CxlMemory, memory),
        Effect.provideService(Doorbell, doorbell)
      )
      yield* Effect.forkScoped(sequencer.run)
      const lease = new LeaseLineView(memory)
      const renewals: Array<number> = []
      let last = lease.expiresAtMs(Offsets.sequencerLease)
      // The first renewal is at the run's start, wherever that falls; three more after it.
      yield* until(
        () => {
          const expiresAt = lease.expiresAtMs(Offsets.sequencerLease)
          if (expiresAt !== last) renewals.push(expiresAt - 3_750)
          last = expiresAt
          return renewals.length >= 4
        },
        10_000,
        () => `four renewals (seen ${renewals.length})`,
        2
      )
      const phases = renewals.slice(1).map((at) => at % CADENCE_MS)
      // A timer fires late under load, never early by more than TIMER_EARLY_MS.
      for (const phase of phases) expect(phase < CADENCE_MS / 2 || phase >= CADENCE_MS - TIMER_EARLY_MS).toBe(true)
    }))

  it.scopedLive("a busy stream: a round that finds more committed after the last one runs at once, with no doorbell wait between", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      yield* cluster.topics.create(spec(5))
      const a = yield* cluster.appender(0)
      const { memory, area } = cluster.region!
      const { counting, waits } = yield* countingDoorbell(memory)
      // Two batches a round: twelve committed before the run start take six rounds, each but the last finding more.
      const sequencer = yield* SequencerLayers.make(area, { maxBatchesPerBroker: 2 }).pipe(
        Effect.provideService(CxlMemory, memory),
        Effect.provideService(Doorbell, counting)
      )
      for (let seq = 0; seq < 12; seq++) yield* appendSimple(a, "t", 1, 0, seq)
      yield* Effect.forkScoped(sequencer.run)
      yield* cluster.acks.awaitAcked("t", 1, 0, 11, { timeoutMs: 5_000 })
      // At most the one wait once caught up; none between the six rounds.
      expect(waits()).toBeLessThanOrEqual(1)
      expect((yield* readAll(cluster.reader, "t")).map((b) => b.batchSeq)).toEqual(
        Array.from({ length: 12 }, (_, i) => i)
      )
    }))

  it.scopedLive("a run stalled on a full GOI parks (no re-scanning) until a durable subscriber's cursor moves, then orders the rest", () =>
    Effect.gen(function*() {
      // Two writers of 8 PBR slots each and a GOI of 16: the GOI fills only when a durable cursor joins behind.
      const cluster = yield* implementations[1]!.make({ ...smallConfig, maxBrokers: 2, topicWriters: 2, goiSlots: 16 })
      yield* cluster.topics.create(spec(5))
      const a = yield* cluster.appender(0)
      const b = yield* cluster.appender(1)
      const { memory, area } = cluster.region!
      const { counting, waits } = yield* countingDoorbell(memory)
      const sequencer = yield* SequencerLayers.make(area).pipe(
        Effect.provideService(CxlMemory, memory),
        Effect.provideService(Doorbell, counting)
      )
      yield* Effect.forkScoped(sequencer.run)
      for (let seq = 0; seq < 16; seq++) yield* appendSimple(a, "t", 1, 0, seq)
      yield* cluster.acks.awaitAcked("t", 1, 0, 15, { timeoutMs: 5_000 })
      // A durable cursor from the earliest batch: the GOI's 16 entries are all held now.
      const cursor = yield* cluster.reader.subscribe("t", { from: "earliest", durable: true })
      for (let seq = 0; seq < 4; seq++) yield* appendSimple(b, "t", 2, 0, seq)
      const before = waits()
      // A window, not a wait: the run waits for the cursor to move, at most a wake or two in it; nothing of the second writer is ordered.
      yield* Effect.sleep("300 millis")
      expect(waits() - before).toBeLessThanOrEqual(3)
      expect((yield* cluster.acks.sessionAcks("t", 2, 0)).ordered).toBe(0)
      const seen: Array<number> = []
      while (seen.length < 20) {
        expect(yield* cursor.awaitMore(5_000)).toBe(true)
        yield* cursor.pollBatches((batch) => seen.push(batch.clientId * 100 + batch.batchSeq))
      }
      expect(seen).toEqual([
        ...Array.from({ length: 16 }, (_, i) => 100 + i),
        ...Array.from({ length: 4 }, (_, i) => 200 + i)
      ])
    }))

  it.scoped("a round looks at the topics written since the last one, not at every topic; a batch left unmarked waits for the sweep", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const names = Array.from({ length: 12 }, (_, i) => `m${i}`)
      for (const name of names) yield* cluster.topics.create({ ...spec(5), name })
      const a = yield* cluster.appender(0)
      const sequencer = yield* cluster.sequencer()
      for (const name of names) yield* appendSimple(a, name, 1, 0, 0)
      yield* drain(sequencer)
      // Every topic has a lane and its batch ordered: one written now is the one looked at.
      yield* appendSimple(a, "m7", 1, 0, 1)
      expect(yield* sequencer.step).toMatchObject({ ordered: 1, topicsLooked: 1 })
      expect(yield* sequencer.step).toMatchObject({ ordered: 0, topicsLooked: 0 })
      // A writer that died between its commit and its mark: the sweep, once a second, orders its batch.
      const { memory, area } = cluster.region!
      yield* appendSimple(a, "m3", 1, 0, 1)
      topicMarks(memory, area)!.take(() => {})
      expect(yield* sequencer.step).toMatchObject({ ordered: 0, topicsLooked: 0 })
      yield* TestClock.adjust("1 second")
      expect(yield* sequencer.step).toMatchObject({ ordered: 1, topicsLooked: names.length })
      expect((yield* readAll(cluster.reader, "m3")).map((x) => x.batchSeq)).toEqual([0, 1])
    }))

  it.scoped("a topic the sequencer took on before anyone wrote it is ordered at its first batch's round, not at the sweep's", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      yield* cluster.topics.create({ ...spec(5), name: "quiet" })
      const sequencer = yield* cluster.sequencer()
      // The first step sweeps (it takes the topic on, with no lane: parked); the clock stays before the next sweep.
      expect(yield* sequencer.step).toMatchObject({ ordered: 0 })
      const a = yield* cluster.appender(0)
      yield* appendSimple(a, "quiet", 1, 0, 0)
      expect(yield* sequencer.step).toMatchObject({ ordered: 1 })
    }))

  it.scoped("a corrupt PBR header is dropped and counted; ordering goes on", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const { id: topicId } = yield* cluster.topics.create(spec(2))
      const a = yield* cluster.appender(0)
      const sequencer = yield* cluster.sequencer()
      yield* appendSimple(a, "t", 1, 0, 0)
      yield* appendSimple(a, "t", 1, 0, 1)
      const { memory, area } = cluster.region!
      memory.u32[(area.pbr(topicId, 0) + PbrSlot.payloadBytes) / 4] = 0xfffffff0
      expect(yield* sequencer.step).toMatchObject({ ordered: 1, dropped: 1 })
      expect((yield* readAll(cluster.reader, "t")).map((x) => x.batchSeq)).toEqual([1])
    }))

  it.scoped("a GOI entry committed by a killed sequencer past the published frontier is adopted, not repeated", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const { id: topicId } = yield* cluster.topics.create(spec(5))
      const a = yield* cluster.appender(0)
      const { memory, area } = cluster.region!
      yield* Effect.scoped(Effect.gen(function*() {
        const sequencer = yield* cluster.sequencer()
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(a, "t", 1, 0, seq)
        yield* sequencer.step
      }))
      // Simulate a crash after the GOI entries and PBR finish lines but before the round's
      // publication: roll the frontier, session and consumed-through back.
      memory.f64[(area.orderLine(topicId) + 0) / 8] = 1
      memory.f64[(area.orderLine(topicId) + 8) / 8] = 2
      memory.f64[(area.sequencerLine(topicId, 0) + 0) / 8] = 1
      const found = cluster.sessions("t").lookup(1, 0)
      if (found === undefined || found === "unsettled") throw new Error("session 1/0 has no line")
      const sessionLine = sessionLineOffset(area, topicId, found.slot)
      expect(memory.f64[(sessionLine + SessionLine.next) / 8]).toBe(3)
      memory.f64[(sessionLine + SessionLine.next) / 8] = 1
      const sequencer = yield* cluster.sequencer()
      yield* appendSimple(a, "t", 1, 0, 2)
      yield* appendSimple(a, "t", 1, 0, 3)
      yield* drain(sequencer)
      const read = yield* readAll(cluster.reader, "t")
      expect(read.map((x) => x.batchSeq)).toEqual([0, 1, 2, 3])
      expect(read.map((x) => x.totalOrder)).toEqual([0, 2, 4, 6])
      expect(yield* cluster.acks.sessionAcks("t", 1, 0)).toMatchObject({ ordered: 4 })
    }))
})

describe("Sequencer options from the environment", () => {
  it.effect("CXLOG_SESSION_GAP_IDLE_MS below CXLOG_SESSION_IDLE_MS is invalid configuration naming both; unset, it is left to its default", () =>
    Effect.gen(function*() {
      const from = (env: Record<string, string>) =>
        Effect.withConfigProvider(sequencerOptionsConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))
      const invalid = yield* Effect.flip(from({ CXLOG_SESSION_IDLE_MS: "5000", CXLOG_SESSION_GAP_IDLE_MS: "1000" }))
      expect(invalid).toMatchObject({ _op: "InvalidData", path: ["CXLOG_SESSION_GAP_IDLE_MS"] })
      expect((invalid as { message: string }).message).toMatch(/1000 ms is below .* 5000 ms/)
      expect(yield* from({ CXLOG_SESSION_IDLE_MS: "5000", CXLOG_SESSION_GAP_IDLE_MS: "5000" })).toMatchObject({
        sessionIdleMs: 5_000,
        sessionGapIdleMs: 5_000
      })
      expect(yield* from({ CXLOG_SESSION_IDLE_MS: "5000" })).not.toHaveProperty("sessionGapIdleMs")
    }))
})

describe("Sequencer in memory", () => {
  it.scoped("an idle run's session sweeps fall on whole seconds (the cadence's grid), not at a phase of its own", () =>
    Effect.gen(function*() {
      // The run's clock stands at 250 ms: its first round sweeps, and its wait ends at the next sweep.
      yield* TestClock.setTime(250)
      const store = makeMemoryStore(smallConfig)
      const bounds: Array<number> = []
      const watched: MemoryLogStore = {
        ...store,
        signal: {
          ...store.signal,
          watch: (condition, onReady, everyMs, spinMicros) => {
            bounds.push(everyMs())
            return store.signal.watch(condition, onReady, everyMs, spinMicros)
          }
        }
      }
      // No lease to renew (the store's sequencer has none): only the sweep bounds its wait.
      const sequencer = yield* SequencerMemoryLayers.makeMemory(watched)
      yield* Effect.forkScoped(sequencer.run)
      for (let turn = 0; turn < 1_000 && bounds.length === 0; turn++) yield* Effect.yieldNow()
      // At 1 000 ms, a whole second: with a phase of its own the sweep would be 1 000 ms after the last.
      expect(bounds[0]).toBe(750)
    }))
})
