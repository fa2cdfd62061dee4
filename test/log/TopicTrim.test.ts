/**
 * Trimming and purging a topic, and its retention in the region (`maxMessages`, `maxAgeMs`,
 * `discard`), over the region and the store: what a trim drops is gone for every reader (a reader
 * behind it gets LogOutOfRange naming the new earliest offset), offsets go on, a trim never brings
 * anything back, its memory is free for appends that waited for it, and under discard old a
 * stalled reader never makes a publisher wait.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, TestClock } from "effect"
import { signalDoorbell } from "../../src/layers/log/MemoryStore.js"
import * as TopicRetentionLayers from "../../src/layers/log/TopicRetention.js"
import { enforceRetention } from "../../src/layers/log/TopicRetention.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { Topics, type TrimTarget } from "../../src/services/log/Topics.js"
import {
  appendSimple,
  drain,
  header,
  implementations,
  type LogCluster,
  smallConfig,
  timedBatch
} from "../fixtures/log-harness.js"
import { TRIM_TARGETS_THAT_ARE_NONE } from "../fixtures/trim-targets.js"
import { parked } from "../helpers/Parked.js"
import { until } from "../helpers/ServeProcess.js"
import { wokenByRing } from "../helpers/WakeRounds.js"

const spec = { name: "t", order: 5 as const, ackLevel: 1 as const, replicationFactor: 1 }

/** Ten batches of two messages each (offsets 0..19), ordered. */
const twentyMessages = (cluster: LogCluster) =>
  Effect.gen(function*() {
    const appender = yield* cluster.appender(0)
    const sequencer = yield* cluster.sequencer()
    for (let seq = 0; seq < 10; seq++) yield* appendSimple(appender, "t", 1, 0, seq)
    yield* drain(sequencer)
    return { appender, sequencer }
  })

/** The offsets a subscription from `from` reads now. */
const offsetsFrom = (cluster: LogCluster, from: "earliest" | number) =>
  Effect.gen(function*() {
    const cursor = yield* cluster.reader.subscribe("t", { from })
    const seen: Array<number> = []
    yield* cursor.poll((m) => void seen.push(m.totalOrder))
    return seen
  }).pipe(Effect.scoped)

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)

for (const impl of implementations) {
  describe(`Topics.trim and purge: ${impl.label}`, () => {
    it.scoped("a trim drops what lies before its cut for every reader; a reader behind it gets LogOutOfRange naming the earliest", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        yield* twentyMessages(cluster)
        // A reader at offset 6, the first of batch 3: the batch stays, its first message goes.
        const behind = yield* cluster.reader.subscribe("t", { from: 6 })
        // Inside batch 3 (offsets 6, 7): the cut is exact, the batch stays for offset 7.
        expect(yield* cluster.topics.trim("t", { beforeOffset: 7 })).toEqual({ earliest: 7, end: 20 })
        expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 7, end: 20 })
        expect(yield* offsetsFrom(cluster, "earliest")).toEqual(range(7, 20))
        expect(yield* Effect.flip(behind.poll(() => {}))).toMatchObject({
          _tag: "LogOutOfRange",
          requested: 6,
          earliest: 7,
          end: 20
        })
        expect(yield* Effect.flip(cluster.reader.subscribe("t", { from: 3 }))).toMatchObject({
          _tag: "LogOutOfRange",
          earliest: 7
        })
        // The last five only; a trim never brings back what an earlier one dropped.
        expect(yield* cluster.topics.trim("t", { keepMessages: 5 })).toEqual({ earliest: 15, end: 20 })
        expect(yield* cluster.topics.trim("t", { beforeOffset: 2 })).toEqual({ earliest: 15, end: 20 })
        expect(yield* cluster.topics.trim("t", { keepMessages: 50 })).toEqual({ earliest: 15, end: 20 })
        expect(yield* offsetsFrom(cluster, "earliest")).toEqual(range(15, 20))
      }))

    it.scoped("a purge drops everything; offsets go on from where they were", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const { appender: a, sequencer } = yield* twentyMessages(cluster)
        const reading = yield* cluster.reader.subscribe("t", { from: "earliest" })
        expect(yield* cluster.topics.purge("t")).toEqual({ earliest: 20, end: 20 })
        expect(yield* offsetsFrom(cluster, "earliest")).toEqual([])
        // A topic holding nothing: every purge and trim again holds nothing still, and says so.
        expect(yield* cluster.topics.purge("t")).toEqual({ earliest: 20, end: 20 })
        for (const target of [{ keepMessages: 5 }, { beforeOffset: 2 }, { beforeOffset: 99 }, { beforeTime: 0 }]) {
          expect(yield* cluster.topics.trim("t", target)).toEqual({ earliest: 20, end: 20 })
        }
        expect(yield* Effect.flip(reading.poll(() => {}))).toMatchObject({ _tag: "LogOutOfRange", earliest: 20 })
        yield* appendSimple(a, "t", 1, 0, 10)
        yield* drain(sequencer)
        expect(yield* offsetsFrom(cluster, "earliest")).toEqual([20, 21])
        expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 20, end: 22 })
      }))

    it.scoped("a trim by time cuts before the first message stamped at or after it", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        // Batch k stamped 1000k, 1000k + 10, 1000k + 20.
        for (let seq = 0; seq < 10; seq++) {
          const batch = timedBatch([1_000_000 + 1000 * seq, 1_000_010 + 1000 * seq, 1_000_020 + 1000 * seq])
          yield* a.append("t", header(3, 1, seq, batch), batch.payload)
        }
        yield* drain(yield* cluster.sequencer())
        // Batch 4's second message (offset 13) is the first stamped 1 004 005 or later.
        expect(yield* cluster.topics.trim("t", { beforeTime: 1_004_005 })).toEqual({ earliest: 13, end: 30 })
        expect((yield* offsetsFrom(cluster, "earliest"))[0]).toBe(13)
        // A subscription from a time before every message left starts at the cut, inside batch 4 (its
        // first message, at 12, is gone), and reads on: not at the batch's start, which is out of range.
        for (const fromTime of [0, 1_004_000]) {
          const cursor = yield* cluster.reader.subscribe("t", { fromTime })
          const seen: Array<number> = []
          yield* cursor.poll((m) => void seen.push(m.totalOrder))
          expect(seen).toEqual(range(13, 30))
        }
      }))

    it.scopedLive("a trim frees the room a durable cursor held: the append that waited for it goes on, woken by the trim", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make({ ...smallConfig, pbrSlots: 8 })
        const doorbell = cluster.region === undefined
          ? signalDoorbell(cluster.store!)!
          : yield* cluster.region.doorbell()
        const internals = DoorbellLayers.internalsOf(doorbell)!
        const a = yield* cluster.appender(0, { timeoutMs: 20_000, doorbell })
        const sequencer = yield* cluster.sequencer()
        // A topic each round: a durable cursor at 0 holds all eight PBR slots, so the ninth append
        // parks until the trim rings it (the park's bound, a second, would find the room too late to count).
        const woken = yield* wokenByRing(internals, {
          park: (round) =>
            Effect.gen(function*() {
              const name = `t${round}`
              yield* cluster.topics.create({ ...spec, name })
              yield* cluster.reader.subscribe(name, { durable: true })
              for (let seq = 0; seq < 8; seq++) yield* appendSimple(a, name, 1, 0, seq)
              yield* drain(sequencer)
              const waiting = yield* Effect.fork(appendSimple(a, name, 1, 0, 8))
              yield* parked([waiting])
              yield* until(internals.parked, 5_000, () => "the appender's doorbell to park", 1)
              return waiting
            }),
          commit: (round, waiting) =>
            Effect.gen(function*() {
              yield* cluster.topics.trim(`t${round}`, { keepMessages: 2 })
              expect(yield* Fiber.join(waiting)).toMatchObject({ pbrSeq: 8 })
            })
        })
        expect(woken).toBe(true)
      }))

    it.scopedLive("discard old: a stalled durable cursor never makes an append wait; it reads LogOutOfRange", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make({ ...smallConfig, pbrSlots: 8 })
        yield* cluster.topics.create({ ...spec, retention: { discard: "old" } })
        const a = yield* cluster.appender(0, { timeoutMs: 2_000 })
        const stalled = yield* cluster.reader.subscribe("t", { durable: true })
        const sequencer = yield* cluster.sequencer()
        // Far more than the PBR and the GOI hold, with the cursor never moving.
        for (let seq = 0; seq < 300; seq++) {
          yield* appendSimple(a, "t", 1, 0, seq)
          if (seq % 4 === 3) yield* drain(sequencer)
        }
        yield* drain(sequencer)
        const failure = yield* Effect.flip(stalled.poll(() => {}))
        const { earliest, end } = yield* cluster.reader.bounds("t")
        expect(end).toBe(600)
        expect(earliest).toBeGreaterThan(0)
        // It names where the topic starts now (what the memory recycled, no trim), for the reader to go on from.
        expect(failure).toMatchObject({ _tag: "LogOutOfRange", requested: 0, earliest, end })
      }))

    it.scoped("a topic with a copy on disk is not trimmed, and takes no retention in the region: typed errors", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create({ name: "kept", order: 5, ackLevel: 2, replicationFactor: 2 })
        const refused = yield* Effect.flip(cluster.topics.purge("kept"))
        expect(refused).toMatchObject({ _tag: "TopicNotTrimmable", name: "kept" })
        // Said as asked: `cxlog topics purge` of such a topic read "cannot be trimmed".
        expect(refused.message).toBe(
          `topic "kept" cannot be purged: it has a copy on disk (replication factor 2), which keeps its own retention (diskRetention)`
        )
        expect((yield* Effect.flip(cluster.topics.trim("kept", { keepMessages: 1 }))).message).toContain(
          "cannot be trimmed: it has a copy on disk"
        )
        expect(yield* Effect.flip(cluster.topics.trim("nope", { keepMessages: 1 }))).toMatchObject({
          _tag: "TopicNotFound"
        })
        // A target that is none (what a JavaScript caller may pass) is refused naming the three kinds.
        for (const target of TRIM_TARGETS_THAT_ARE_NONE) {
          const refused = yield* Effect.flip(cluster.topics.trim("kept", target as TrimTarget))
          expect(refused.message).toBe(
            `topic "kept" cannot be trimmed: a trim says where with one of beforeOffset, keepMessages or beforeTime, a whole number 0 or more, not ${
              JSON.stringify(target, (_, v) => (Number.isNaN(v) ? "NaN" : v))
            }`
          )
        }
        const spec2 = {
          name: "k2",
          order: 5,
          ackLevel: 2,
          replicationFactor: 2,
          retention: { maxMessages: 5 }
        } as const
        expect((yield* Effect.flip(cluster.topics.create(spec2))).message).toContain("disk copy a retention")
      }))

    it.scoped("retention: maxMessages keeps the last N, maxAgeMs what is younger, both the stricter, at each pass of the head", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create({ ...spec, retention: { maxMessages: 6 } })
        yield* cluster.topics.create({ ...spec, name: "aged", retention: { maxAgeMs: 5_000 } })
        // Both bounds: each is kept, so the stricter one cuts (here the age).
        yield* cluster.topics.create({ ...spec, name: "both", retention: { maxMessages: 8, maxAgeMs: 5_000 } })
        const { sequencer } = yield* twentyMessages(cluster)
        const a = yield* cluster.appender(1)
        for (let seq = 0; seq < 10; seq++) {
          const batch = timedBatch([1_000_000 + 1000 * seq])
          yield* a.append("aged", header(4, 1, seq, batch), batch.payload)
          yield* a.append("both", header(5, 1, seq, batch), batch.payload)
        }
        yield* drain(sequencer)
        // At 1 009 000 the messages younger than 5 s are those stamped 1 004 000 on (offset 4).
        yield* enforceRetention(cluster.topics, 1_009_000)
        expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 14, end: 20 })
        expect(yield* cluster.reader.bounds("aged")).toEqual({ earliest: 4, end: 10 })
        expect(yield* cluster.reader.bounds("both")).toEqual({ earliest: 4, end: 10 })
        // Another pass at the same time moves nothing.
        yield* enforceRetention(cluster.topics, 1_009_000)
        expect(yield* cluster.reader.bounds("aged")).toEqual({ earliest: 4, end: 10 })
      }))
  })
}

describe("the head's retention over a clock", () => {
  it.scoped("its layer trims every second by the clock it is given (virtual time)", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[2]!.make()
      yield* cluster.topics.create({ ...spec, retention: { maxAgeMs: 10_000 } })
      const a = yield* cluster.appender(0)
      for (let seq = 0; seq < 10; seq++) {
        const batch = timedBatch([1_000 * seq])
        yield* a.append("t", header(4, 1, seq, batch), batch.payload)
      }
      yield* drain(yield* cluster.sequencer())
      yield* Layer.launch(TopicRetentionLayers.layer).pipe(
        Effect.provideService(Topics, cluster.topics),
        Effect.forkScoped
      )
      // At 12 s, what was stamped before 2 s goes (offsets 0 and 1); at 15 s, before 5 s.
      yield* TestClock.setTime(12_000)
      yield* TestClock.adjust("1 second")
      expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 3, end: 10 })
      yield* TestClock.adjust("2 seconds")
      expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 5, end: 10 })
    }))
})
