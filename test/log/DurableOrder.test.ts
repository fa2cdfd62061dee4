/**
 * The durable tier's writer (DurableOrder.ts) over every log implementation, with the
 * in-process disk (whose fdatasyncs a test can hold and watch): ACK level 2 of a replication
 * factor 2 topic moves only after the fdatasync covering the batch returned, while level 1
 * moves at ordering; what was acknowledged at level 2 is on disk, in the recorded order, after
 * a crash; a stream that is ahead of the log is refused; a disk that fills stops level 2, told to
 * the sessions even when the writer already took every batch.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import {
  decodeOrderRecord,
  type DurableMarks,
  frozenDurableOf,
  persistTopic,
  streamOf
} from "../../src/layers/log/durable/DurableOrder.js"
import { crash, makeMemoryDisk, type MemoryDisk, restart } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import type { DurableFailure } from "../../src/services/log/AckTracker.js"
import { LogReader } from "../../src/services/log/LogReader.js"
import { Segments } from "../../src/services/log/Segments.js"
import { durableLayers, marksOf, persistedTopic } from "../fixtures/durable-marks.js"
import { appendSimple, drain, implementations, type LogCluster } from "../fixtures/log-harness.js"

/** The stream's records, read back from the disk alone. */
const onDisk = (disk: MemoryDisk, topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const segments = yield* SegmentsMemoryLayers.makeMemory(disk)
    const log = yield* segments.open(streamOf(topic))
    const batches: Array<
      { globalSeq: number; totalOrder: number; clientId: number; batchSeq: number; frozen: number | undefined }
    > = []
    yield* log.read(log.first(), (_, record) => {
      const b = decodeOrderRecord(record)!
      batches.push({
        globalSeq: b.globalSeq,
        totalOrder: b.totalOrder,
        clientId: b.clientId,
        batchSeq: b.batchSeq,
        frozen: frozenDurableOf(record)
      })
    })
    return batches
  }))

for (const impl of implementations) {
  describe(`durable tier: ${impl.label}`, () => {
    it.scopedLive("ACK 2 comes only after the fdatasync covering the batch; ACK 1 at ordering; acknowledged batches survive a crash", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create({ name: "d", order: 5, ackLevel: 2, replicationFactor: 2 })
        const a = yield* cluster.appender(0)
        const b = yield* cluster.appender(1)
        const sequencer = yield* cluster.sequencer()
        const disk = makeMemoryDisk()
        const marks = yield* marksOf(cluster, 40)
        let appended = 0
        const layers = Layer.merge(SegmentsMemoryLayers.layerMemory(disk), Layer.succeed(LogReader, cluster.reader))
        // The disk holds every fdatasync until released.
        let release = () => {}
        disk.gate = new Promise((resolve) => (release = resolve))
        const writer = yield* Effect.forkScoped(
          persistTopic(topic, marks, { onAppended: () => void appended++ }).pipe(Effect.provide(layers))
        )
        // However the test ends, no sync stays held (closing the stream waits for its writer); this runs before the writer is stopped.
        yield* Effect.addFinalizer(() => Effect.sync(() => release()))

        for (let seq = 0; seq < 6; seq++) yield* appendSimple(seq % 2 === 0 ? a : b, "d", 7, 1, seq)
        yield* drain(sequencer)
        while (appended < 6) yield* Effect.sleep(1)
        // Ordered (level 1), written to the file, not synced: nothing at level 2.
        expect(yield* cluster.acks.sessionAcks("d", 7, 1)).toMatchObject({ ordered: 6, replicated: 0 })
        expect(yield* cluster.acks.awaitAcked("d", 7, 1, 5, { timeoutMs: 5_000, level: 1 })).toMatchObject({
          ordered: 6
        })
        expect(yield* Effect.flip(cluster.acks.awaitAcked("d", 7, 1, 0, { timeoutMs: 50, level: 2 }))).toMatchObject({
          _tag: "AckTimeout",
          level: 2,
          acked: 0
        })

        // At the moment each fdatasync returns, level 2 still shows only what earlier syncs covered.
        const atSync: Array<{ readonly sync: number; readonly replicated: number }> = []
        disk.onSync = () =>
          atSync.push({
            sync: disk.datasyncs,
            replicated: Effect.runSync(cluster.acks.sessionAcks("d", 7, 1)).replicated
          })
        const waiter = yield* Effect.fork(cluster.acks.awaitAcked("d", 7, 1, 5, { timeoutMs: 5_000, level: 2 }))
        disk.gate = undefined
        release()
        expect(yield* Fiber.join(waiter)).toMatchObject({ ordered: 6, replicated: 6 })
        expect(atSync[0]).toEqual({ sync: 1, replicated: 0 })

        // More batches while syncs run freely; then the process and the disk crash mid-write.
        for (let seq = 6; seq < 10; seq++) yield* appendSimple(a, "d", 7, 1, seq)
        yield* drain(sequencer)
        yield* cluster.acks.awaitAcked("d", 7, 1, 9, { timeoutMs: 5_000, level: 2 })
        for (const s of atSync) expect(s.replicated).toBeLessThan(10)
        let unblock = () => {}
        disk.gate = new Promise((resolve) => (unblock = resolve))
        yield* Effect.addFinalizer(() => Effect.sync(() => unblock()))
        for (let seq = 10; seq < 12; seq++) yield* appendSimple(b, "d", 7, 1, seq)
        yield* drain(sequencer)
        while (appended < 12) yield* Effect.sleep(1)
        const acked = (yield* cluster.acks.sessionAcks("d", 7, 1)).replicated
        expect(acked).toBe(10)
        crash(disk)
        disk.gate = undefined
        // The held sync now fails (the disk is gone), so the writer stops.
        unblock()
        yield* Fiber.interrupt(writer)
        restart(disk)
        const kept = yield* onDisk(disk, "d")
        // Every batch acknowledged at level 2 is there, once, in the recorded order; nothing else was invented.
        expect(kept.map((k) => k.batchSeq)).toEqual(Array.from({ length: acked }, (_, i) => i))
        expect(kept.map((k) => k.globalSeq)).toEqual(Array.from({ length: acked }, (_, i) => i))
        expect(kept.every((k, i) => i === 0 || k.totalOrder > kept[i - 1]!.totalOrder)).toBe(true)
      }))

    it.scopedLive("after a gap (recycled while no writer ran), a session with batches in it gets no ACK 2 past them, from this writer or a later one; a later session does", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create({ name: "g", order: 5, ackLevel: 2, replicationFactor: 2 })
        const brokers = [yield* cluster.appender(0), yield* cluster.appender(1)]
        const sequencer = yield* cluster.sequencer()
        const disk = makeMemoryDisk()
        const marks = yield* marksOf(cluster, 40)
        const persist = () => persistTopic(topic, marks).pipe(Effect.provide(durableLayers(disk, cluster)))
        const first = yield* Effect.forkScoped(persist())
        for (let seq = 0; seq < 20; seq++) yield* appendSimple(brokers[seq % 2]!, "g", 7, 1, seq, 3)
        yield* drain(sequencer)
        yield* cluster.acks.awaitAcked("g", 7, 1, 19, { timeoutMs: 5_000, level: 2 })
        // No writer while the region recycles batches 20.. of the session.
        yield* Fiber.interrupt(first)
        for (let seq = 20; seq < 1000; seq++) {
          yield* appendSimple(brokers[seq % 2]!, "g", 7, 1, seq, 3)
          if (seq % 32 === 31) yield* drain(sequencer)
        }
        yield* drain(sequencer)
        expect((yield* cluster.reader.bounds("g")).earliest).toBeGreaterThan(20 * 3)
        const second = yield* Effect.forkScoped(persist())
        // A session registered after the gap, and one more batch of the old one.
        yield* appendSimple(brokers[0]!, "g", 8, 1, 0, 3)
        yield* appendSimple(brokers[1]!, "g", 7, 1, 1000, 3)
        yield* drain(sequencer)
        expect(yield* cluster.acks.awaitAcked("g", 8, 1, 0, { timeoutMs: 5_000, level: 2 })).toMatchObject({
          replicated: 1
        })
        // Everything the region still held is on disk now, yet the old session's batches 20.. are not all there.
        // Frozen: its publisher is refused level 2 (durability-unavailable) rather than left waiting for it.
        expect(yield* cluster.acks.sessionAcks("g", 7, 1)).toMatchObject({
          ordered: 1001,
          replicated: 20,
          durableFrozen: true
        })
        expect(yield* cluster.acks.sessionAcks("g", 8, 1)).toMatchObject({ durableFrozen: false })
        yield* Fiber.interrupt(second)
        const kept = (yield* onDisk(disk, "g")).filter((b) => b.clientId === 7).map((b) => b.batchSeq)
        expect(kept).not.toContain(20)
        expect(kept).toContain(1000)
        // A writer started again on the same log (a head restarted on the region) finds no gap now, yet
        // the old session stays where it was: the line says so.
        const third = yield* Effect.forkScoped(persist())
        yield* appendSimple(brokers[0]!, "g", 8, 1, 1, 3)
        yield* appendSimple(brokers[1]!, "g", 7, 1, 1001, 3)
        yield* appendSimple(brokers[0]!, "g", 8, 1, 2, 3)
        yield* drain(sequencer)
        expect(yield* cluster.acks.awaitAcked("g", 8, 1, 2, { timeoutMs: 5_000, level: 2 })).toMatchObject({
          replicated: 3
        })
        expect(yield* cluster.acks.sessionAcks("g", 7, 1)).toMatchObject({ ordered: 1002, replicated: 20 })
        yield* Fiber.interrupt(third)
        // Every record of the old session past the gap, from either writer, carries its frozen frontier (recovery
        // reads it there once retention deleted what came before); the others carry none.
        const records = yield* onDisk(disk, "g")
        const frozen = (
          clientId: number,
          from: number
        ) => [...new Set(records.filter((b) => b.clientId === clientId && b.batchSeq >= from).map((b) => b.frozen))]
        expect(frozen(7, 21)).toEqual([20])
        expect(frozen(7, 0).length).toBe(2)
        expect(frozen(8, 0)).toEqual([undefined])
      }))

    it.scopedLive("a data directory whose stream is ahead of the log in the region is DurableStreamAhead", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        const first = yield* impl.make()
        const { appender: a, sequencer, topic } = yield* persistedTopic(first)
        const layersOf = (cluster: LogCluster) => durableLayers(disk, cluster)
        const marks = yield* marksOf(first, 40)
        const writer = yield* Effect.forkScoped(persistTopic(topic, marks).pipe(Effect.provide(layersOf(first))))
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(a, "d", 7, 1, seq)
        yield* drain(sequencer)
        yield* first.acks.awaitAcked("d", 7, 1, 2, { timeoutMs: 5_000, level: 2 })
        yield* Fiber.interrupt(writer)
        // A new, empty log with the same data directory.
        const second = yield* impl.make()
        const again = yield* second.topics.create({ name: "d", order: 5, ackLevel: 2, replicationFactor: 2 })
        const error = yield* Effect.flip(
          persistTopic(again, yield* marksOf(second, 40)).pipe(Effect.provide(layersOf(second)), Effect.scoped)
        )
        expect(error).toMatchObject({ _tag: "DurableStreamAhead", topic: "d", logEnd: 0 })
        expect(error.message).toContain("belongs to an earlier log")
        const segments = yield* Segments.pipe(Effect.provide(SegmentsMemoryLayers.layerMemory(disk)))
        expect(yield* segments.streams()).toEqual([streamOf("d")])
      }))

    it.scopedLive("a data directory whose stream is another log's (its last batch not the region's there) is DurableStreamMismatch", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        const layersOf = (cluster: LogCluster) => durableLayers(disk, cluster)
        const first = yield* impl.make()
        const { appender: a, sequencer, topic } = yield* persistedTopic(first)
        const writer = yield* Effect.forkScoped(
          persistTopic(topic, yield* marksOf(first, 40)).pipe(Effect.provide(layersOf(first)))
        )
        // Three batches of two: the stream ends with the batch at offset 4.
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(a, "d", 7, 1, seq)
        yield* drain(sequencer)
        yield* first.acks.awaitAcked("d", 7, 1, 2, { timeoutMs: 5_000, level: 2 })
        yield* Fiber.interrupt(writer)
        // Another log, longer than the stream (not ahead of it), its batches of three: offset 4 is inside one.
        const second = yield* impl.make()
        const { appender: b, sequencer: secondSequencer, topic: again } = yield* persistedTopic(second)
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(b, "d", 9, 1, seq, 3)
        yield* drain(secondSequencer)
        const error = yield* Effect.flip(
          persistTopic(again, yield* marksOf(second, 40)).pipe(
            Effect.provide(layersOf(second)),
            Effect.scoped,
            Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("it appended to another log's stream") })
          )
        )
        expect(error).toMatchObject({ _tag: "DurableStreamMismatch", topic: "d", offset: 4 })
        expect(error.message).toContain("belongs to another log")
      }))

    it.scopedLive("a disk that fills after the writer took the last batch stops level 2 for its sessions, with no batch after it", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const { appender: a, sequencer, topic } = yield* persistedTopic(cluster)
        // Ordered before the writer starts: its first look takes all three, then their write runs out of room.
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(a, "d", 7, 1, seq)
        yield* drain(sequencer)
        const disk = makeMemoryDisk({ capacity: 64 })
        let appended = 0
        yield* Effect.forkScoped(
          persistTopic(topic, yield* marksOf(cluster, 40), { onAppended: () => void appended++ }).pipe(
            Effect.provide(durableLayers(disk, cluster))
          )
        )
        const watch = yield* cluster.acks.watch("d", 7, 1)
        for (let n = 0; n < 5_000 && watch.durableFailure() === undefined; n++) yield* Effect.sleep(1)
        expect(appended).toBe(3)
        expect(watch.durableFailure()).toBe("disk-full")
        expect(yield* cluster.acks.sessionAcks("d", 7, 1)).toMatchObject({ ordered: 3, replicated: 0 })
      }))

    it.scopedLive("a writer started again on a disk still full leaves the copy marked disk-full while it finds out; with room, its first sync clears the mark", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const { appender: a, sequencer, topic } = yield* persistedTopic(cluster)
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(a, "d", 7, 1, seq)
        yield* drain(sequencer)
        const disk = makeMemoryDisk({ capacity: 64 })
        const marks = yield* marksOf(cluster, 40)
        // Every mark the writers leave, in order: a cleared one between two failures would let ACK 2 sessions in.
        const said: Array<DurableFailure | undefined> = []
        const watched: DurableMarks = {
          ...marks,
          failed: (t, failure) => {
            said.push(failure)
            marks.failed(t, failure)
          }
        }
        const writer = persistTopic(topic, watched).pipe(Effect.provide(durableLayers(disk, cluster)), Effect.scoped)
        expect(yield* Effect.flip(writer)).toMatchObject({ _tag: "DiskFull" })
        expect(yield* Effect.flip(writer)).toMatchObject({ _tag: "DiskFull" })
        expect(said).toEqual(["disk-full", "disk-full"])
        disk.capacity = Number.POSITIVE_INFINITY
        yield* Effect.forkScoped(writer)
        yield* cluster.acks.awaitAcked("d", 7, 1, 2, { timeoutMs: 5_000, level: 2 })
        expect(said).toEqual(["disk-full", "disk-full", undefined])
        expect((yield* cluster.acks.watch("d", 7, 1)).durableFailure()).toBeUndefined()
      }))
  })
}
