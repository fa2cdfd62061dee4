/**
 * Offsets the hot tier recycled, read from disk (TieredReader.ts, DiskStream.ts) over every log
 * implementation and the in-process disk: a reader from offset 0 of a replication factor 2 topic
 * whose region recycled it gets every message once, in order, from the head's stream on disk
 * and then from the region (which alone holds the last ones); retention by size deletes old
 * segments, and a reader asking for an offset they held gets LogOutOfRange naming the oldest
 * offset still on disk.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Fiber, Layer } from "effect"
import { DiskStream } from "../../src/layers/log/durable/DiskStream.js"
import {
  decodeOrderRecord,
  OrderRecord,
  type PersistOptions,
  persistTopic,
  streamOf
} from "../../src/layers/log/durable/DurableOrder.js"
import { segmentOptionsOf } from "../../src/layers/log/durable/DurableTier.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import { makeMemoryDisk, type MemoryDisk, memorySegmentFiles } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as TieredReaderLayers from "../../src/layers/log/durable/TieredReader.js"
import { tieredReader } from "../../src/layers/log/durable/TieredReader.js"
import { crc32c } from "../../src/native/Crc32c.js"
import { LogReader, type LogReaderShape } from "../../src/services/log/LogReader.js"
import type { SegmentLog } from "../../src/services/log/Segments.js"
import { type TopicInfo, TopicNotFound, Topics, type TopicsShape } from "../../src/services/log/Topics.js"
import { durableLayers, marksOf } from "../fixtures/durable-marks.js"
import { appendSimple, drain, implementations, type LogCluster } from "../fixtures/log-harness.js"

/** Small segments, so the stream has many and retention has whole ones to delete. */
const SEGMENT_BYTES = 4096

/**
 * Publishes `batches` batches (one session, order 5, two brokers) while the head's writer
 * persists them, so the hot tier recycles the oldest; returns the writer (running) and its stream.
 */
const publishPersisted = (
  cluster: LogCluster,
  disk: MemoryDisk,
  topic: TopicInfo,
  batches: number,
  options: PersistOptions = {}
) =>
  Effect.gen(function*() {
    const brokers = [yield* cluster.appender(0), yield* cluster.appender(1)]
    const sequencer = yield* cluster.sequencer()
    const marks = yield* marksOf(cluster, 40)
    let appended = 0
    let stream: SegmentLog | undefined
    const writer = yield* Effect.forkScoped(
      persistTopic(topic, marks, {
        ...options,
        onOpen: (log) => void (stream = log),
        onAppended: () => void appended++
      }).pipe(
        Effect.provide(durableLayers(disk, cluster))
      )
    )
    // The writer holds retention: publish in rounds it can keep up with.
    for (let seq = 0; seq < batches; seq++) {
      yield* appendSimple(brokers[seq % 2]!, topic.name, 7, 1, seq, 3)
      if (seq % 32 === 31 || seq === batches - 1) {
        yield* drain(sequencer)
        while (appended < seq + 1) yield* Effect.sleep(1)
      }
    }
    yield* stream!.awaitDurable(stream!.appended(), 5_000)
    return { writer, stream: stream!, brokers, sequencer }
  })

/** How `values` differs from from, from + 1, …, end - 1 (a short answer: a diff of thousands of numbers takes the runner minutes). */
const inSequence = (values: ReadonlyArray<number>, from: number, end: number) => ({
  length: values.length,
  firstOutOfPlace: values.length === end - from
    ? values.findIndex((v, i) => v !== from + i)
    : Math.min(values.length, end - from)
})

/** Reads every message from `from` to the end of the log through `reader`: offsets, batch seqs, whether each batch's crc32c held. */
const readToEnd = (reader: LogReaderShape, topic: string, from: number) =>
  Effect.scoped(Effect.gen(function*() {
    const { end } = yield* reader.bounds(topic)
    const cursor = yield* reader.subscribe(topic, { from })
    const offsets: Array<number> = []
    const batchSeqs: Array<number> = []
    let crcOk = true
    /** Polls that found nothing: a cursor that says there is more and delivers nothing must fail, not spin. */
    let idle = 0
    while (cursor.position() < end) {
      const n = yield* cursor.poll((m) => {
        offsets.push(m.totalOrder)
        if (m.index === m.batch.startIndex) {
          batchSeqs.push(m.batch.batchSeq)
          crcOk &&= crc32c(m.batch.bytes, m.batch.offset, m.batch.length) === m.batch.crc32c
        }
      }, 16)
      if (n > 0) continue
      expect(++idle, `stuck at offset ${cursor.position()} of ${end}`).toBeLessThan(1_000)
      expect(yield* cursor.awaitMore(5_000)).toBe(true)
    }
    return { offsets, batchSeqs, crcOk, end }
  }))

for (const impl of implementations) {
  describe(`reading recycled offsets from disk: ${impl.label}`, () => {
    it.scopedLive("a reader from offset 0 after the region recycled it gets every message once, in order: from disk, then the region", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create({ name: "d", order: 5, ackLevel: 2, replicationFactor: 2 })
        const disk = makeMemoryDisk()
        const { writer, brokers, sequencer } = yield* publishPersisted(cluster, disk, topic, 700, {
          segments: { segmentBytes: SEGMENT_BYTES }
        })
        // The region holds only the tail now: a plain reader from 0 is out of range.
        const held = yield* cluster.reader.bounds("d")
        expect(held.earliest).toBeGreaterThan(0)
        expect(yield* Effect.flip(Effect.scoped(cluster.reader.subscribe("d", { from: 0 })))).toMatchObject({
          _tag: "LogOutOfRange",
          requested: 0
        })
        // The last batches are only in the region (the writer is stopped): the reader must switch to it to get them.
        yield* Fiber.interrupt(writer)
        for (let seq = 700; seq < 720; seq++) yield* appendSimple(brokers[seq % 2]!, "d", 7, 1, seq, 3)
        yield* drain(sequencer)

        const tiered = tieredReader(cluster.reader, cluster.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk)
        })
        expect((yield* tiered.bounds("d")).earliest).toBe(0)
        // A named consumer's reader (its hold is in the region) is refused as before.
        expect(yield* Effect.flip(Effect.scoped(tiered.subscribe("d", { from: 0, regionOnly: true })))).toMatchObject({
          _tag: "LogOutOfRange",
          requested: 0
        })
        const read = yield* readToEnd(tiered, "d", 0)
        expect(read.end).toBe(720 * 3)
        expect(inSequence(read.offsets, 0, read.end)).toEqual({ length: read.end, firstOutOfPlace: -1 })
        expect(inSequence(read.batchSeqs, 0, 720)).toEqual({ length: 720, firstOutOfPlace: -1 })
        expect(read.crcOk).toBe(true)
        // From the middle of a batch on disk: the rest of it, then on.
        const mid = yield* readToEnd(tiered, "d", 100)
        expect(inSequence(mid.offsets, 100, read.end)).toEqual({ length: read.end - 100, firstOutOfPlace: -1 })
        // What the region holds is still read there.
        expect((yield* readToEnd(tiered, "d", held.earliest)).offsets[0]).toBe(held.earliest)
      }))

    it.scopedLive("a reader on disk whose topic is deleted (or made again under its name) gets TopicDeleted, nothing more from disk", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create({ name: "d", order: 5, ackLevel: 2, replicationFactor: 2 })
        const disk = makeMemoryDisk()
        const { writer } = yield* publishPersisted(cluster, disk, topic, 700, {
          segments: { segmentBytes: SEGMENT_BYTES }
        })
        yield* Fiber.interrupt(writer)
        expect((yield* cluster.reader.bounds("d")).earliest).toBeGreaterThan(0)
        // What the directory says of the name: the topic, no topic, or another topic under it.
        let now: "same" | "gone" | "again" = "same"
        const lookup = (name: string) =>
          now === "same"
            ? cluster.topics.lookup(name)
            : now === "gone"
            ? Effect.fail(new TopicNotFound({ name }))
            : Effect.map(cluster.topics.lookup(name), (info) => ({ ...info, generation: info.generation + 1 }))
        const tiered = tieredReader(cluster.reader, lookup, { directory: "/data", files: memorySegmentFiles(disk) })
        for (const after of ["gone", "again"] as const) {
          now = "same"
          yield* Effect.scoped(Effect.gen(function*() {
            const cursor = yield* tiered.subscribe("d", { from: 0 })
            const seen: Array<number> = []
            expect(yield* cursor.poll((m) => void seen.push(m.totalOrder), 4)).toBeGreaterThan(0)
            expect(seen[0]).toBe(0)
            now = after
            // Waiting wakes (the poll says why), and the poll fails: nothing more is delivered.
            expect(yield* cursor.awaitMore(5_000)).toBe(true)
            const failed = yield* Effect.flip(cursor.poll((m) => void seen.push(m.totalOrder), 4))
            expect(failed).toMatchObject({ _tag: "TopicDeleted", name: "d" })
            expect(seen.at(-1)).toBeLessThan((yield* cluster.reader.bounds("d")).earliest)
          }))
        }
      }))

    it.scopedLive("a cursor on the region that falls behind it carries on from disk, then from the region again", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create({ name: "f", order: 5, ackLevel: 2, replicationFactor: 2 })
        const disk = makeMemoryDisk()
        const first = yield* publishPersisted(cluster, disk, topic, 300, { segments: { segmentBytes: SEGMENT_BYTES } })
        const tiered = tieredReader(cluster.reader, cluster.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk)
        })
        const start = (yield* cluster.reader.bounds("f")).earliest
        const cursor = yield* tiered.subscribe("f", { from: start })
        const offsets: Array<number> = []
        yield* cursor.poll((m) => void offsets.push(m.totalOrder), 4)
        // 400 batches more: the region recycles what the cursor has not read (it holds no retention).
        for (let seq = 300; seq < 700; seq++) {
          yield* appendSimple(first.brokers[seq % 2]!, "f", 7, 1, seq, 3)
          if (seq % 32 === 31) yield* drain(first.sequencer)
        }
        yield* drain(first.sequencer)
        yield* first.stream.awaitDurable(700, 5_000)
        expect((yield* cluster.reader.bounds("f")).earliest).toBeGreaterThan(cursor.position())
        const { end } = yield* cluster.reader.bounds("f")
        let idle = 0
        while (cursor.position() < end) {
          if ((yield* cursor.poll((m) => void offsets.push(m.totalOrder), 16)) > 0) continue
          expect(++idle, `stuck at offset ${cursor.position()} of ${end}`).toBeLessThan(1_000)
          yield* cursor.awaitMore(5_000)
        }
        expect(inSequence(offsets, start, end)).toEqual({ length: end - start, firstOutOfPlace: -1 })
      }))

    it.scopedLive("a copy on disk of another log (a wrong data directory) is LogCorrupt at the switch, not delivered as this log's", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        const first = yield* impl.make()
        yield* publishPersisted(
          first,
          disk,
          yield* first.topics.create({ name: "w", order: 5, ackLevel: 2, replicationFactor: 2 }),
          700
        )
        // Another log of the same topic: its first batch has one message, so its batches lie differently over the offsets.
        const second = yield* impl.make()
        yield* second.topics.create({ name: "w", order: 5, ackLevel: 2, replicationFactor: 2 })
        const broker = yield* second.appender(0)
        const sequencer = yield* second.sequencer()
        for (let seq = 0; seq < 700; seq++) {
          yield* appendSimple(broker, "w", 9, 1, seq, seq === 0 ? 1 : 3)
          if (seq % 32 === 31) yield* drain(sequencer)
        }
        yield* drain(sequencer)
        expect((yield* second.reader.bounds("w")).earliest).toBeGreaterThan(0)
        const tiered = tieredReader(second.reader, second.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk)
        })
        const error = yield* Effect.flip(readToEnd(tiered, "w", 0))
        expect(error).toMatchObject({ _tag: "LogCorrupt" })
        expect(error.message).toContain("does not match the region")
      }))

    it.scopedLive("a damaged record on disk is LogCorrupt naming its file and byte, never delivered", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const disk = makeMemoryDisk()
        yield* publishPersisted(
          cluster,
          disk,
          yield* cluster.topics.create({ name: "c", order: 5, ackLevel: 2, replicationFactor: 2 }),
          700,
          {
            segments: { segmentBytes: SEGMENT_BYTES }
          }
        )
        const path = "/data/topic-c/00000000000000000000.seg"
        const tiered = tieredReader(cluster.reader, cluster.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk)
        })
        // A record in the middle of a completed segment, read on the way; then the segment's first record, read to locate offset 0.
        disk.files.get(path)!.data[1_000]! ^= 0xff
        const middle = yield* Effect.flip(readToEnd(tiered, "c", 0))
        expect(middle).toMatchObject({ _tag: "LogCorrupt" })
        expect(middle.message).toMatch(new RegExp(`${path} at byte [1-9]\\d+: checksum`))
        disk.files.get(path)!.data[20]! ^= 0xff
        const first = yield* Effect.flip(readToEnd(tiered, "c", 0))
        expect(first).toMatchObject({ _tag: "LogCorrupt" })
        expect(first.message).toContain(`${path} at byte 0: checksum`)
      }))

    it.scopedLive("messages the region recycled after the head's writer stopped are LogOutOfRange naming where the region resumes, not waited for", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const disk = makeMemoryDisk()
        const { writer, brokers, sequencer } = yield* publishPersisted(
          cluster,
          disk,
          yield* cluster.topics.create({ name: "h", order: 5, ackLevel: 2, replicationFactor: 2 }),
          300
        )
        yield* Fiber.interrupt(writer)
        for (let seq = 300; seq < 1000; seq++) {
          yield* appendSimple(brokers[seq % 2]!, "h", 7, 1, seq, 3)
          if (seq % 32 === 31) yield* drain(sequencer)
        }
        yield* drain(sequencer)
        const held = yield* cluster.reader.bounds("h")
        expect(held.earliest).toBeGreaterThan(300 * 3)
        const tiered = tieredReader(cluster.reader, cluster.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk),
          openWaitMs: 200
        })
        const error = yield* Effect.flip(readToEnd(tiered, "h", 0))
        expect(error).toMatchObject({ _tag: "LogOutOfRange", requested: 300 * 3, earliest: held.earliest })
        // Opening inside the hole: the same.
        expect(yield* Effect.flip(Effect.scoped(tiered.subscribe("h", { from: 300 * 3 + 1 })))).toMatchObject({
          _tag: "LogOutOfRange",
          requested: 300 * 3 + 1,
          earliest: held.earliest
        })
      }))

    it.scopedLive("retention by size deletes old segments: a reader before them gets LogOutOfRange naming the oldest offset on disk", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create({
          name: "r",
          order: 5,
          ackLevel: 2,
          replicationFactor: 2,
          diskRetention: { maxBytes: 12 * SEGMENT_BYTES }
        })
        const disk = makeMemoryDisk()
        const { stream } = yield* publishPersisted(cluster, disk, topic, 700, {
          segments: { ...segmentOptionsOf(topic), segmentBytes: SEGMENT_BYTES }
        })
        expect(stream.first()).toBeGreaterThan(0)
        let oldest = -1
        yield* stream.read(stream.first(), (_, record) => {
          oldest = decodeOrderRecord(record)!.totalOrder
          return false
        })
        const held = yield* cluster.reader.bounds("r")
        expect(oldest).toBeGreaterThan(0)
        expect(oldest).toBeLessThan(held.earliest)

        const tiered = tieredReader(cluster.reader, cluster.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk)
        })
        expect((yield* tiered.bounds("r")).earliest).toBe(oldest)
        const refused = yield* Effect.flip(Effect.scoped(tiered.subscribe("r", { from: 0 })))
        expect(refused).toMatchObject({ _tag: "LogOutOfRange", requested: 0, earliest: oldest, end: held.end })
        const fromOldest = yield* readToEnd(tiered, "r", oldest)
        expect(inSequence(fromOldest.offsets, oldest, held.end)).toEqual({
          length: held.end - oldest,
          firstOutOfPlace: -1
        })
        // "earliest" starts at the oldest offset on disk.
        const earliest = yield* Effect.scoped(
          Effect.map(tiered.subscribe("r", { from: "earliest" }), (c) => c.position())
        )
        expect(earliest).toBe(oldest)
      }))
  })
}

/** A batch's record as the head writes it: one message of 8 bytes. */
const orderRecord = (globalSeq: number) => {
  const record = new Uint8Array(OrderRecord.bytes + 16)
  const v = new DataView(record.buffer)
  v.setFloat64(OrderRecord.globalSeq, globalSeq, true)
  v.setFloat64(OrderRecord.totalOrder, globalSeq, true)
  v.setUint32(OrderRecord.messageCount, 1, true)
  v.setUint32(OrderRecord.payloadBytes, 16, true)
  v.setUint32(OrderRecord.bytes, 8, true)
  return record
}

describe("DiskStream", () => {
  it.scopedLive("a record the writer has not finished is read once it is whole, even after it was seen torn", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk()
      const segments = yield* SegmentsMemoryLayers.makeMemory(disk)
      const log = yield* segments.open(streamOf("x"))
      for (let g = 0; g < 3; g++) log.tryAppend(orderRecord(g))
      yield* log.awaitDurable(3, 5_000)
      const file = disk.files.get(`/data/${streamOf("x")}/00000000000000000000.seg`)!
      const whole = file.size
      const reader = new DiskStream(memorySegmentFiles(disk), "/data", "x")
      expect(yield* Effect.promise(() => reader.seek(0))).toEqual({ kind: "ok" })
      // The last record half there, then there with a byte not yet right: neither is delivered.
      file.size = whole - 24
      expect((yield* Effect.promise(() => reader.next(10))).batches.map((b) => b.globalSeq)).toEqual([0, 1])
      file.size = whole
      file.data[whole - 4]! ^= 0xff
      expect(yield* Effect.promise(() => reader.next(10))).toEqual({ batches: [] })
      file.data[whole - 4]! ^= 0xff
      expect((yield* Effect.promise(() => reader.next(10))).batches.map((b) => b.globalSeq)).toEqual([2])
    }))
})

describe("a local reader's data directory from CXLOG_DATA_DIR (layerConfig, Roles.reader)", () => {
  const hot = {} as LogReaderShape
  const built = (env: ReadonlyArray<readonly [string, string]>) =>
    Layer.build(TieredReaderLayers.layerConfig).pipe(
      Effect.map((context) => Context.get(context, LogReader)),
      Effect.provide(Layer.merge(Layer.succeed(LogReader, hot), Layer.succeed(Topics, {} as TopicsShape))),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(env))),
      Effect.scoped
    )

  it.effect("unset: the region's reader as it is", () =>
    Effect.gen(function*() {
      expect(yield* built([])).toBe(hot)
    }))

  it.effect("set but blank: fails naming the variable, not read as unset (a reader that would fail later, naming nothing)", () =>
    Effect.gen(function*() {
      const failed = yield* Effect.flip(built([["CXLOG_DATA_DIR", "  "]]))
      expect(String(failed)).toContain("CXLOG_DATA_DIR")
      expect(String(failed)).toContain("give a directory")
    }))
})
