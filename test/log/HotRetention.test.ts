/**
 * What the hot tier holds (docs/log.md, "What the hot tier holds"): a batch whose PBR slot was
 * freed stays readable until its broker's Blog needs the bytes, so the retained window is
 * bounded by the GOI and the Blog, not by how recently the broker's PBR last filled.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import type { AppenderShape } from "../../src/services/log/Appender.js"
import type { SequencerShape } from "../../src/services/log/Sequencer.js"
import {
  appendSimple,
  drain,
  header,
  implementations,
  type LogCluster,
  makeBatch,
  memoryCluster,
  readAll,
  SMALL_BLOG_BYTES,
  smallConfig
} from "../fixtures/log-harness.js"

const spec = { name: "t", order: 2 as const, ackLevel: 1 as const, replicationFactor: 1 }
// A small PBR under a GOI four times its size and a Blog that holds thousands of small batches.
const config = { ...smallConfig, pbrSlots: 16, goiSlots: 64 }

/** A cluster with topic "t", broker 0's appender and a sequencer. */
const started = <E>(make: Effect.Effect<LogCluster, E, Scope.Scope>) =>
  Effect.gen(function*() {
    const cluster = yield* make
    yield* cluster.topics.create(spec)
    return { cluster, a: yield* cluster.appender(0), sequencer: yield* cluster.sequencer() }
  })

/** One-message batches `from` to `to` - 1 of client 1, the sequencer drained after every fourth. */
const appendDrained = (a: AppenderShape, sequencer: SequencerShape, from: number, to: number) =>
  Effect.gen(function*() {
    for (let seq = from; seq < to; seq++) {
      yield* appendSimple(a, "t", 1, 0, seq, 1)
      if (seq % 4 === 3) yield* drain(sequencer)
    }
  })

for (const impl of implementations) {
  describe(`hot-tier retention: ${impl.label}`, () => {
    it.scoped("batches whose PBR slots were reused stay readable while the GOI and the Blog hold them", () =>
      Effect.gen(function*() {
        const { cluster, a, sequencer } = yield* started(impl.make(config))
        // 40 one-message batches through a 16-slot PBR: its slots are freed and reused twice over.
        yield* appendDrained(a, sequencer, 0, 40)
        expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 0, end: 40 })
        expect((yield* readAll(cluster.reader, "t")).map((b) => b.batchSeq)).toEqual(
          Array.from({ length: 40 }, (_, i) => i)
        )
        // Past the GOI's 64 entries, the GOI bounds the window: the last 64 batches.
        yield* appendDrained(a, sequencer, 40, 100)
        expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 36, end: 100 })
        expect((yield* readAll(cluster.reader, "t", 36)).map((b) => b.batchSeq)).toEqual(
          Array.from({ length: 64 }, (_, i) => 36 + i)
        )
      }))

    it.scoped("the Blog's bytes bound the window: a reader behind it gets LogOutOfRange, never skipped data", () =>
      Effect.gen(function*() {
        const { cluster, a, sequencer } = yield* started(impl.make(config))
        // One-message batches of 16 KiB: the 256 KiB Blog holds 16 of them.
        const big = makeBatch([16 * 1024 - 8])
        const perBlog = SMALL_BLOG_BYTES / big.payload.length
        yield* a.append("t", header(1, 0, 0, big), big.payload)
        yield* drain(sequencer)
        const early = yield* cluster.reader.subscribe("t", { from: 0 })
        for (let seq = 1; seq < 40; seq++) {
          yield* a.append("t", header(1, 0, seq, big), big.payload)
          yield* drain(sequencer)
        }
        const behind = yield* Effect.flip(early.poll(() => {}))
        const { earliest, end } = yield* cluster.reader.bounds("t")
        expect(end).toBe(40)
        // The refusal names where the topic starts now: the Blog's tail, not a trim (there was none).
        expect(behind).toMatchObject({ _tag: "LogOutOfRange", requested: 0, earliest, end })
        // The tail moves an eighth of the Blog ahead of the next append: 7/8 of a Blog's batches, at least, stay.
        expect(end - earliest).toBeGreaterThanOrEqual(perBlog * 7 / 8 - 1)
        expect(end - earliest).toBeLessThanOrEqual(perBlog)
        expect((yield* readAll(cluster.reader, "t", earliest)).map((b) => b.batchSeq)).toEqual(
          Array.from({ length: end - earliest }, (_, i) => earliest + i)
        )
      }))

    it.scoped("with two lanes, earliest is where every batch to the end is held: a batch of an idle lane kept behind another lane's recycled ones is not the start", () =>
      Effect.gen(function*() {
        const { cluster, a, sequencer } = yield* started(impl.make(config))
        const b = yield* cluster.appender(1)
        const big = makeBatch([16 * 1024 - 8])
        // Broker 0 writes once and idles: its batch stays in its Blog. Broker 1 wraps its own Blog behind it.
        yield* a.append("t", header(1, 0, 0, big), big.payload)
        yield* drain(sequencer)
        for (let seq = 0; seq < 40; seq++) {
          yield* b.append("t", header(2, 0, seq, big), big.payload)
          yield* drain(sequencer)
        }
        const { earliest, end } = yield* cluster.reader.bounds("t")
        expect(end).toBe(41)
        expect(earliest).toBeGreaterThan(1)
        // From earliest (and from its bound) every batch to the end reads, none skipped.
        const fromEarliest = yield* readAll(cluster.reader, "t")
        expect(fromEarliest.map((x) => x.batchSeq)).toEqual(
          Array.from({ length: end - earliest }, (_, i) => earliest - 1 + i)
        )
        expect((yield* readAll(cluster.reader, "t", earliest)).length).toBe(end - earliest)
        // An offset before it is out of range, named as such.
        expect(yield* Effect.flip(cluster.reader.subscribe("t", { from: 0 }))).toMatchObject({ _tag: "LogOutOfRange" })
      }))
  })
}

describe("hot-tier retention: the in-process store", () => {
  it.scoped("freed batches are kept no longer than the GOI window holds them (a Blog that never fills holds no more)", () =>
    Effect.gen(function*() {
      const { cluster, a, sequencer } = yield* started(memoryCluster(config))
      yield* appendDrained(a, sequencer, 0, 300)
      expect(yield* cluster.reader.bounds("t")).toEqual({ earliest: 236, end: 300 })
      expect(cluster.store!.topics[0]!.brokers[0]!.freed.length).toBeLessThanOrEqual(config.goiSlots)
    }))
})
