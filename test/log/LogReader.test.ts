import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { signalDoorbell } from "../../src/layers/log/MemoryStore.js"
import { GoiEntryView } from "../../src/layers/log/RecordViews.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import type { DoorbellShape } from "../../src/services/region/Doorbell.js"
import {
  appendSimple,
  drain,
  header,
  implementations,
  type LogCluster,
  makeBatch,
  readAll,
  smallConfig,
  timedBatch
} from "../fixtures/log-harness.js"
import { parked } from "../helpers/Parked.js"
import { until } from "../helpers/ServeProcess.js"
import { wokenByRing } from "../helpers/WakeRounds.js"

const spec = { name: "t", order: 5 as const, ackLevel: 1 as const, replicationFactor: 1 }

/** The doorbell the cluster's reader waits on: its own line's, or the memory store's, which every role shares. */
const readerDoorbell = (cluster: LogCluster): DoorbellShape =>
  cluster.region?.readerDoorbell ?? signalDoorbell(cluster.store!)!

const decoder = new TextDecoder()

for (const impl of implementations) {
  describe(`LogReader contract: ${impl.label}`, () => {
    it.scoped("delivers every message in contiguous total order with zero-copy payload views", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const words = ["alpha", "beta", "gamma", "delta", "epsilon"]
        const encode = (s: string) => new TextEncoder().encode(s)
        for (let seq = 0; seq < 2; seq++) {
          const batch = makeBatch(words.map((w) => w.length))
          const view = new DataView(batch.payload.buffer)
          // Replace the pattern with the words themselves.
          let at = 0
          for (const w of words) {
            batch.payload.set(encode(w), at + 8)
            at += 8 + ((view.getUint32(at, true) + 7) & ~7)
          }
          yield* a.append("t", header(9, 1, seq, { ...batch, crc32c: 0 }), batch.payload)
        }
        yield* drain(yield* cluster.sequencer())
        const cursor = yield* cluster.reader.subscribe("t")
        const seen: Array<string> = []
        const n = yield* cursor.poll((m) => {
          seen.push(`${m.totalOrder}:${m.batch.batchSeq}:${m.index}:${m.flags}:${decoder.decode(m.payload)}`)
          expect(m.batch.clientId).toBe(9)
          if (cluster.region !== undefined) expect(m.payload.buffer).toBe(cluster.region.memory.buffer)
        })
        expect(n).toBe(10)
        expect(seen.slice(0, 3)).toEqual(["0:0:0:0:alpha", "1:0:1:1:beta", "2:0:2:2:gamma"])
        expect(seen[9]).toBe("9:1:4:4:epsilon")
        expect(cursor.position()).toBe(10)
        expect(cursor.nextBatch()).toBe(2)
        expect(yield* cursor.poll(() => {})).toBe(0)
      }))

    it.scoped("starts at a message offset inside a batch, or at the latest end", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(a, "t", 1, 0, seq, 4)
        yield* drain(sequencer)
        const mid = yield* cluster.reader.subscribe("t", { from: 6 })
        const orders: Array<number> = []
        yield* mid.poll((m) => orders.push(m.totalOrder))
        expect(orders).toEqual([6, 7, 8, 9, 10, 11])
        const latest = yield* cluster.reader.subscribe("t", { from: "latest" })
        expect(yield* latest.poll(() => {})).toBe(0)
        yield* appendSimple(a, "t", 1, 0, 3, 1)
        yield* drain(sequencer)
        const tail: Array<number> = []
        yield* latest.poll((m) => tail.push(m.totalOrder))
        expect(tail).toEqual([12])
        expect(yield* Effect.flip(cluster.reader.subscribe("t", { from: 14 }))).toMatchObject({
          _tag: "LogOutOfRange",
          requested: 14,
          end: 13
        })
        expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 0, end: 13 })
      }))

    it.scoped("starts at a time: the first message stamped at or after it, inside a batch or at the next; before all, the earliest; after all, the end", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        // 20 batches of 3 messages: batch k stamped 1000k, 1000k + 10, 1000k + 20.
        for (let seq = 0; seq < 20; seq++) {
          const batch = timedBatch([1_000_000 + 1000 * seq, 1_000_010 + 1000 * seq, 1_000_020 + 1000 * seq])
          yield* a.append("t", header(3, 1, seq, batch), batch.payload)
        }
        yield* drain(sequencer)
        const firstFrom = (fromTime: number) =>
          Effect.gen(function*() {
            const cursor = yield* cluster.reader.subscribe("t", { fromTime })
            let first = -1
            yield* cursor.poll((m) => {
              if (first < 0) first = m.totalOrder
            }, 1)
            return { first, position: first < 0 ? cursor.position() : first }
          }).pipe(Effect.scoped)
        // Batch 7's second message (offset 22) is the first stamped 1 007 010 or later.
        expect((yield* firstFrom(1_007_005)).first).toBe(22)
        expect((yield* firstFrom(1_007_010)).first).toBe(22)
        // After batch 7's last message (1 007 020) and before batch 8's first: batch 8 starts it.
        expect((yield* firstFrom(1_007_500)).first).toBe(24)
        expect((yield* firstFrom(1_000_000)).first).toBe(0)
        expect((yield* firstFrom(0)).first).toBe(0)
        // Past every message: the end, and it reads what comes next.
        const late = yield* cluster.reader.subscribe("t", { fromTime: 2_000_000 })
        expect(late.position()).toBe(60)
        const next = timedBatch([2_000_001])
        yield* a.append("t", header(3, 1, 20, next), next.payload)
        yield* drain(sequencer)
        const tail: Array<number> = []
        yield* late.poll((m) => tail.push(m.totalOrder))
        expect(tail).toEqual([60])
      }))

    it.scoped("a reader behind the retained window gets LogOutOfRange, never skipped data", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(a, "t", 1, 0, 0)
        yield* drain(sequencer)
        const early = yield* cluster.reader.subscribe("t", { from: 0 })
        // Push more than a GOI's worth through: its entries are reused, as nobody registered for them.
        for (let seq = 1; seq <= 2 * smallConfig.goiSlots; seq++) {
          yield* appendSimple(a, "t", 1, 0, seq)
          if (seq % 16 === 0) yield* drain(sequencer)
        }
        yield* drain(sequencer)
        const error = yield* Effect.flip(early.poll(() => {}))
        expect(error).toMatchObject({ _tag: "LogOutOfRange", requested: 0 })
        expect(error._tag === "LogOutOfRange" && error.earliest).toBeGreaterThan(0)
        expect(yield* Effect.flip(cluster.reader.subscribe("t", { from: 0 }))).toMatchObject({ _tag: "LogOutOfRange" })
        const { earliest, end } = yield* cluster.reader.bounds("t")
        expect(end).toBe((2 * smallConfig.goiSlots + 1) * 2)
        const rest = yield* readAll(cluster.reader, "t")
        expect(rest[0]!.totalOrder).toBe(earliest)
        expect(rest.at(-1)!.batchSeq).toBe(2 * smallConfig.goiSlots)
      }))

    it.scopedLive("a durable subscriber is lossless: publishers wait for it; awaitMore wakes when batches are ordered", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0, { timeoutMs: 10_000 })
        const sequencer = yield* cluster.sequencer()
        yield* Effect.forkScoped(sequencer.run)
        const cursor = yield* cluster.reader.subscribe("t", { durable: true })
        const total = 3 * smallConfig.pbrSlots
        const producer = yield* Effect.fork(
          Effect.forEach(Array.from({ length: total }, (_, i) => i), (seq) => appendSimple(a, "t", 1, 0, seq), {
            discard: true
          })
        )
        const seqs: Array<number> = []
        while (seqs.length < total) {
          expect(yield* cursor.awaitMore(5_000)).toBe(true)
          yield* cursor.pollBatches((b) => seqs.push(b.batchSeq))
        }
        yield* Fiber.join(producer)
        expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i))
        // A wait's bound (1 s parks, and over the region the head checks' slices) re-checks too,
        // and a wait may be met while the doorbell spins: so the reader's doorbell is let park
        // first, and only the count of its waits a wake settled tells the ordering woke it.
        const internals = DoorbellLayers.internalsOf(readerDoorbell(cluster))!
        const woken = yield* wokenByRing(internals, {
          park: () =>
            Effect.gen(function*() {
              const waiting = yield* Effect.fork(cursor.awaitMore(5_000))
              yield* parked([waiting])
              yield* until(internals.parked, 5_000, () => "the reader's doorbell to park", 1)
              return waiting
            }),
          commit: (round, waiting) =>
            Effect.gen(function*() {
              yield* appendSimple(a, "t", 1, 0, total + round)
              expect(yield* Fiber.join(waiting)).toBe(true)
              expect(yield* cursor.pollBatches(() => {})).toBe(1)
            })
        })
        expect(woken).toBe(true)
      }))
  })
}

describe("LogReader over the region", () => {
  it.scoped("a GOI entry rewritten while it is read is reported out of range", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const { id: topicId } = yield* cluster.topics.create(spec)
      const a = yield* cluster.appender(0)
      for (let seq = 0; seq < 2; seq++) yield* appendSimple(a, "t", 1, 0, seq)
      yield* drain(yield* cluster.sequencer())
      const { memory, area } = cluster.region!
      const cursor = yield* cluster.reader.subscribe("t")
      const error = yield* Effect.flip(cursor.poll(() => {
        // A sequencer reusing the slot invalidates its sequence word first.
        new GoiEntryView(memory).markRewriting(area.goi(topicId))
      }))
      expect(error).toMatchObject({ _tag: "LogOutOfRange", requested: 0 })
    }))

  it.scoped("a corrupt GOI entry is LogCorrupt, never an out-of-bounds read", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const { id: topicId } = yield* cluster.topics.create(spec)
      const a = yield* cluster.appender(0)
      yield* appendSimple(a, "t", 1, 0, 0)
      yield* drain(yield* cluster.sequencer())
      const { memory, area } = cluster.region!
      const entries = new GoiEntryView(memory)
      entries.setPayloadBytes(area.goi(topicId), 0x7ffffff8)
      const cursor = yield* cluster.reader.subscribe("t")
      expect(yield* Effect.flip(cursor.poll(() => {}))).toMatchObject({ _tag: "LogCorrupt" })
      entries.setPayloadBytes(area.goi(topicId), 16)
      entries.setMessageCount(area.goi(topicId), 1)
      // A message length that overruns its batch.
      const blog = area.blog(topicId, 0)
      memory.u32[blog / 4] = 1000
      expect(yield* Effect.flip(cursor.poll(() => {}))).toMatchObject({ _tag: "LogCorrupt" })
    }))
})
