/**
 * Recovery over every log implementation, from the in-process disk: a topic persisted by the
 * durable tier (two sessions through two brokers, acknowledged at level 2), its stream's tail
 * torn, is rebuilt in an empty log in exactly the recorded order — same offsets, sessions,
 * batch seqs, intact payloads — with the torn record cut; the recovered sessions are known and
 * durable, so a resend across the crash is a duplicate; the durable tier then carries on the
 * same stream. A log that is not empty is refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { persistTopic, streamOf } from "../../src/layers/log/durable/DurableOrder.js"
import { recoveredSessions } from "../../src/layers/log/durable/Recovery.js"
import { makeMemoryDisk } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import { sessionCapacity } from "../../src/layers/log/SessionTable.js"
import { durableLayers, marksOf } from "../fixtures/durable-marks.js"
import {
  appendSimple,
  drain,
  header,
  implementations,
  type LogCluster,
  makeBatch,
  readAll,
  SMALL_BLOG_BYTES,
  smallConfig
} from "../fixtures/log-harness.js"
import { orderedStream, recoverInto, writeStream } from "../fixtures/recovery.js"

const spec = { name: "d", order: 5, ackLevel: 2, replicationFactor: 2 } as const

for (const impl of implementations) {
  describe(`recovery: ${impl.label}`, () => {
    it.scopedLive("rebuilds the log from the stream in the recorded order, torn tail cut; sessions resume with dedup; persisting carries on", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        const layersOf = (cluster: LogCluster) => durableLayers(disk, cluster)

        // The first life: 2 sessions through 2 brokers, interleaved, all acknowledged at level 2.
        const first = yield* impl.make()
        const topic = yield* first.topics.create(spec)
        const [a, b] = yield* Effect.forEach([0, 1], (id) => first.appender(id))
        const sequencer = yield* first.sequencer()
        const writer = yield* Effect.forkScoped(
          persistTopic(topic, yield* marksOf(first, 41)).pipe(Effect.provide(layersOf(first)))
        )
        // Holds retention, so the first life's log can be read whole at the end to compare.
        yield* first.reader.subscribe("d", { from: 0, durable: true })
        for (let seq = 0; seq < 8; seq++) {
          yield* appendSimple(seq % 2 === 0 ? a! : b!, "d", 7, 1, seq, 1 + (seq % 3))
          yield* appendSimple(seq % 2 === 0 ? b! : a!, "d", 9, 4, seq, 2)
          if (seq % 3 === 0) yield* drain(sequencer)
        }
        yield* drain(sequencer)
        yield* first.acks.awaitAcked("d", 7, 1, 7, { timeoutMs: 5_000, level: 2 })
        yield* first.acks.awaitAcked("d", 9, 4, 7, { timeoutMs: 5_000, level: 2 })
        const original = yield* readAll(first.reader, "d")
        yield* Fiber.interrupt(writer)
        expect(original).toHaveLength(16)

        // A record torn at the crash: half of one more record's bytes at the stream's end.
        const [file] = [...disk.files.keys()].filter((p) => p.includes(streamOf("d")))
        const f = disk.files.get(file!)!
        const torn = 40
        f.data.set(f.data.subarray(0, torn), f.size)
        f.size += torn
        f.syncedSize = f.size

        // The second life: an empty region, recovered from the disk.
        const second = yield* impl.make()
        const again = yield* second.topics.create(spec)
        const sequencer2 = yield* second.sequencer()
        const result = yield* recoverInto(second, again, layersOf(second))
        const appender = yield* second.appender(0, { registered: false })
        expect(result).toEqual({
          batches: 16,
          messages: original.reduce((n, x) => n + x.messageCount, 0),
          sessions: 2,
          sessionsLeftOut: 0,
          cutBytes: torn,
          held: 16
        })
        const recovered = yield* readAll(second.reader, "d")
        const shape = (x: (typeof original)[number]) => ({ ...x, brokerId: 0 })
        expect(recovered).toEqual(original.map(shape))
        expect(recovered.every((x) => x.crcOk)).toBe(true)
        expect(yield* second.acks.sessionAcks("d", 7, 1)).toEqual({
          ordered: 8,
          replicated: 8,
          fenced: false,
          known: true,
          durableFrozen: false
        })

        // A publisher resending its last batch across the crash: a duplicate, dropped and acknowledged.
        yield* appendSimple(appender, "d", 7, 1, 7, 1 + (7 % 3))
        yield* drain(sequencer2)
        expect(yield* readAll(second.reader, "d")).toHaveLength(16)
        // A new session never draws a recovered epoch.
        expect(second.sessions("d").register(7, Date.now())).toMatchObject({ sessionEpoch: 5 })

        // The durable tier resumes the same stream where it ends.
        const writer2 = yield* Effect.forkScoped(
          persistTopic(again, yield* marksOf(second, 41)).pipe(Effect.provide(layersOf(second)))
        )
        yield* appendSimple(appender, "d", 9, 4, 8, 2)
        yield* drain(sequencer2)
        yield* second.acks.awaitAcked("d", 9, 4, 8, { timeoutMs: 5_000, level: 2 })
        yield* Fiber.interrupt(writer2)
      }))

    it.scopedLive("a stream larger than the hot tier is rebuilt through it: every batch in the recorded order, the tail held", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        const layersOf = (cluster: LogCluster) => durableLayers(disk, cluster)
        const first = yield* impl.make()
        const topic = yield* first.topics.create(spec)
        const a = yield* first.appender(0)
        const sequencer = yield* first.sequencer()
        const subscribed = yield* Deferred.make<void>()
        const writer = yield* Effect.forkScoped(
          persistTopic(topic, yield* marksOf(first, 41), {
            onSubscribed: () => Deferred.unsafeDone(subscribed, Exit.void)
          }).pipe(Effect.provide(layersOf(first)))
        )
        yield* Deferred.await(subscribed)
        // Batches of 2 × 4 KiB: about twice the Blog of the test region.
        const batches = Math.ceil((2 * SMALL_BLOG_BYTES) / 8192)
        for (let seq = 0; seq < batches; seq++) {
          const batch = makeBatch([4096, 4096], seq)
          yield* a.append("d", header(3, 2, seq, batch), batch.payload)
          yield* drain(sequencer)
        }
        yield* first.acks.awaitAcked("d", 3, 2, batches - 1, { timeoutMs: 5_000, level: 2 })
        yield* Fiber.interrupt(writer)

        const second = yield* impl.make()
        const again = yield* second.topics.create(spec)
        const result = yield* recoverInto(second, again, layersOf(second))
        expect(result).toMatchObject({ batches, messages: 2 * batches, sessions: 1 })
        const tail = yield* readAll(second.reader, "d")
        expect(tail.length).toBeGreaterThan(0)
        expect(tail.length).toBeLessThan(batches)
        expect(tail.map((b) => b.batchSeq)).toEqual(
          Array.from({ length: tail.length }, (_, i) => batches - tail.length + i)
        )
        expect(tail.map((b) => b.totalOrder)).toEqual(tail.map((b) => b.batchSeq * 2))
      }))

    it.scopedLive("a stream that saw more sessions than the table holds: those seen last come back, up to half of it; older ones count as ended (unknown, a resend refused, never ordered again); new sessions find the other half", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        // 60 sessions over the stream's life (client s + 1, epoch 2s + 1, seen last at record 60 + s); the table holds 56 at once.
        yield* writeStream(disk, "d", orderedStream(120, 60, () => [16]))
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create(spec)
        const capacity = sessionCapacity(smallConfig.sessionSlots)
        const keep = recoveredSessions(capacity)
        expect(keep).toBeLessThan(60)
        expect(yield* recoverInto(cluster, topic, SegmentsMemoryLayers.layerMemory(disk))).toMatchObject({
          batches: 120,
          sessions: keep,
          sessionsLeftOut: 60 - keep
        })
        for (let s = 0; s < 60; s++) {
          const acks = yield* cluster.acks.sessionAcks("d", s + 1, 2 * s + 1)
          if (s >= 60 - keep) expect(acks).toMatchObject({ known: true, ordered: 2, replicated: 2 })
          else expect(acks.known).toBe(false)
        }
        // A resend from a session left out is refused: not ordered a second time, not acknowledged; a recent one's is a duplicate.
        const sequencer = yield* cluster.sequencer()
        const appender = yield* cluster.appender(0, { registered: false })
        yield* appendSimple(appender, "d", 1, 1, 1)
        yield* appendSimple(appender, "d", 60, 119, 1)
        yield* drain(sequencer)
        expect(yield* cluster.reader.bounds("d")).toMatchObject({ end: 120 })
        expect((yield* cluster.acks.sessionAcks("d", 1, 1)).known).toBe(false)
        expect(yield* cluster.acks.awaitAcked("d", 60, 119, 1, { timeoutMs: 5_000, level: 2 })).toMatchObject({
          ordered: 2,
          replicated: 2
        })
        // The rest of the table is free at once: that many new sessions register, none under an epoch the stream holds.
        const epochs = yield* Effect.forEach(
          Array.from({ length: capacity - keep }, (_, i) => 100 + i),
          (clientId) => appender.registerSession("d", clientId)
        )
        expect(Math.min(...epochs)).toBeGreaterThan(119)
        expect(yield* Effect.flip(appender.registerSession("d", 999))).toMatchObject({ _tag: "SessionTableFull" })
      }))

    it.scopedLive("a log that is not empty is not recovered into", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create(spec)
        const appender = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(appender, "d", 1, 1, 0)
        yield* drain(sequencer)
        const error = yield* Effect.flip(
          recoverInto(cluster, topic, SegmentsMemoryLayers.layerMemory(makeMemoryDisk()))
        )
        expect(error).toMatchObject({ _tag: "RecoveryFailed", topic: "d" })
        expect(error.message).toContain("not empty")
      }))
  })
}
