/**
 * Recovery from a stream that is not the whole log, over every log implementation: a stream
 * whose retention deleted its start is recovered from its oldest segment, every offset where it
 * was (older ones LogOutOfRange naming the oldest on disk), its sessions resuming with dedup; a
 * stream with a gap (batches the writer never got) is recovered around it. And what recovery
 * reads: only the headers of the records the hot tier does not hold, so damage in such a
 * record's bytes is found by the reader that reaches it (LogCorrupt naming file and byte), while
 * damage to the files' structure or to a header the order depends on is SegmentCorrupt at
 * recovery.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { OrderRecord, persistTopic, streamOf } from "../../src/layers/log/durable/DurableOrder.js"
import { makeMemoryDisk, type MemoryDisk, memorySegmentFiles } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import { tieredReader } from "../../src/layers/log/durable/TieredReader.js"
import type { LogReaderShape } from "../../src/services/log/LogReader.js"
import { durableLayers, marksOf } from "../fixtures/durable-marks.js"
import { appendSimple, drain, implementations, type LogCluster, readAll } from "../fixtures/log-harness.js"
import { encode, orderedStream, type Recorded, recoverInto, writeStream } from "../fixtures/recovery.js"

const spec = { name: "d", order: 5, ackLevel: 2, replicationFactor: 2 } as const

/** Every message offset from `from` to `until` (default the end) through `reader`, or the error that stopped the read. */
const offsetsFrom = (reader: LogReaderShape, from: number, until?: number) =>
  Effect.scoped(Effect.gen(function*() {
    const end = until ?? (yield* reader.bounds("d")).end
    const cursor = yield* reader.subscribe("d", { from })
    const offsets: Array<number> = []
    while (cursor.position() < end) {
      if ((yield* cursor.poll((m) => void offsets.push(m.totalOrder), 1)) === 0) {
        expect(yield* cursor.awaitMore(5_000)).toBe(true)
      }
    }
    return offsets
  }))

const range = (from: number, end: number) => Array.from({ length: end - from }, (_, i) => from + i)

/** The stream's segment files, oldest first. */
const segmentFiles = (disk: MemoryDisk) => [...disk.files.keys()].filter((p) => p.includes(`/${streamOf("d")}/`)).sort()

const recover = (cluster: LogCluster, disk: MemoryDisk) =>
  Effect.flatMap(
    cluster.topics.create(spec),
    (topic) => recoverInto(cluster, topic, SegmentsMemoryLayers.layerMemory(disk))
  )

for (const impl of implementations) {
  describe(`recovery from part of a log: ${impl.label}`, () => {
    it.scopedLive("a stream whose retention deleted its start: recovered from the oldest segment held, offsets kept, sessions resume with dedup", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        // 600 batches of 2 messages over 3 sessions, in 4 KiB segments of which retention keeps about 32 KiB.
        const stream = orderedStream(600, 3, () => [16, 24])
        yield* writeStream(disk, "d", stream, { segmentBytes: 4096, retention: { maxBytes: 32 << 10 } })
        const base = Number(/(\d{20})\.seg$/.exec(segmentFiles(disk)[0]!)![1])
        // Its start is gone, and it holds more than the hot tier (64 batches).
        expect(base).toBeGreaterThan(100)
        expect(600 - base).toBeGreaterThan(64)
        const oldest = stream[base]!.totalOrder

        const cluster = yield* impl.make()
        const result = yield* recover(cluster, disk)
        expect(result).toMatchObject({ batches: 600, messages: 1200, sessions: 3, cutBytes: 0 })
        const held = yield* readAll(cluster.reader, "d")
        expect(held.map((b) => [b.globalSeq, b.totalOrder, b.batchSeq, b.crcOk])).toEqual(
          stream.slice(600 - result.held).map((r) => [r.globalSeq, r.totalOrder, r.batchSeq, true])
        )

        // From disk: the oldest offset held is where it was; older ones are out of range, naming it.
        const tiered = tieredReader(cluster.reader, cluster.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk)
        })
        expect(yield* tiered.bounds("d")).toEqual({ earliest: oldest, end: 1200 })
        expect(yield* Effect.flip(offsetsFrom(tiered, 0))).toMatchObject({
          _tag: "LogOutOfRange",
          requested: 0,
          earliest: oldest
        })
        expect(yield* offsetsFrom(tiered, oldest)).toEqual(range(oldest, 1200))

        // What retention deleted was on disk: level 2 covers every recovered batch.
        const last = stream[599]!
        expect(yield* cluster.acks.sessionAcks("d", last.clientId, last.sessionEpoch)).toMatchObject({
          ordered: last.batchSeq + 1,
          replicated: last.batchSeq + 1
        })
        // Sessions seen only after the deleted part resume where they were: a resend is a duplicate, the next batch follows.
        const sequencer = yield* cluster.sequencer()
        const appender = yield* cluster.appender(0, { registered: false })
        yield* appendSimple(appender, "d", last.clientId, last.sessionEpoch, last.batchSeq)
        yield* appendSimple(appender, "d", last.clientId, last.sessionEpoch, last.batchSeq + 1, 2)
        yield* drain(sequencer)
        expect((yield* readAll(cluster.reader, "d", 1200)).map((b) => [b.globalSeq, b.totalOrder, b.batchSeq])).toEqual(
          [[600, 1200, last.batchSeq + 1]]
        )
      }))

    it.scopedLive("a stream with a gap (batches the writer never got) is recovered around it; a reader of the gap gets LogOutOfRange; no session is acknowledged at level 2 past it", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        // Batches 100..139 (offsets 200..279) never reached the disk; every session had batches there.
        const whole = orderedStream(300, 2, () => [16, 24])
        const stream = [...whole.slice(0, 100), ...whole.slice(140)]
        yield* writeStream(disk, "d", stream, { segmentBytes: 4096 })
        const cluster = yield* impl.make()
        const result = yield* recover(cluster, disk)
        expect(result).toMatchObject({ batches: 300, messages: 600, sessions: 2 })
        expect((yield* readAll(cluster.reader, "d")).map((b) => b.globalSeq)).toEqual(range(300 - result.held, 300))
        const tiered = tieredReader(cluster.reader, cluster.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk)
        })
        expect(yield* offsetsFrom(tiered, 150, 200)).toEqual(range(150, 200))
        expect(yield* Effect.flip(offsetsFrom(tiered, 200))).toMatchObject({
          _tag: "LogOutOfRange",
          requested: 200,
          earliest: 280
        })
        expect(yield* offsetsFrom(tiered, 280)).toEqual(range(280, 600))
        // Each session is ordered through its last batch, but on disk only up to the gap: level 2 stays there.
        for (const [clientId, sessionEpoch] of [[1, 1], [2, 3]] as const) {
          const mine = whole.filter((r) => r.clientId === clientId && r.sessionEpoch === sessionEpoch)
          const beforeGap = mine.filter((r) => r.globalSeq < 100).length
          expect(yield* cluster.acks.sessionAcks("d", clientId, sessionEpoch)).toMatchObject({
            ordered: mine.length,
            replicated: beforeGap
          })
        }
        // A resend of a batch from the gap is a duplicate (ordered once already), and still not acknowledged at level 2.
        const sequencer = yield* cluster.sequencer()
        const appender = yield* cluster.appender(0, { registered: false })
        const lost = whole[120]!
        yield* appendSimple(appender, "d", lost.clientId, lost.sessionEpoch, lost.batchSeq)
        yield* drain(sequencer)
        expect(
          yield* Effect.flip(
            cluster.acks.awaitAcked("d", lost.clientId, lost.sessionEpoch, lost.batchSeq, { timeoutMs: 50, level: 2 })
          )
        ).toMatchObject({
          _tag: "AckTimeout",
          level: 2
        })
        // The durable tier writing again: the session's next batch reaches the disk, its level 2 does not move past the gap.
        const topic = yield* cluster.topics.lookup("d")
        yield* Effect.forkScoped(
          persistTopic(topic, yield* marksOf(cluster, 40)).pipe(Effect.provide(durableLayers(disk, cluster)))
        )
        const first = whole.filter((r) => r.clientId === 1)
        yield* appendSimple(appender, "d", 1, 1, first.length)
        // A new session's batch after it, as the witness that the writer has persisted both.
        yield* appendSimple(yield* cluster.appender(1), "d", 9, 1, 0)
        yield* drain(sequencer)
        yield* cluster.acks.awaitAcked("d", 9, 1, 0, { timeoutMs: 5_000, level: 2 })
        expect(yield* cluster.acks.sessionAcks("d", 1, 1)).toMatchObject({
          ordered: first.length + 1,
          replicated: first.filter((r) => r.globalSeq < 100).length
        })
      }))

    it.scopedLive("a stream begun on a log already recycled: its sessions are ordered where they were, but level 2 covers none of their batches", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        // The writer started at batch 100 (the region had recycled 0..99 before it read them): its first record is still there.
        yield* writeStream(disk, "d", orderedStream(300, 2, () => [16, 24]).slice(100), { segmentBytes: 1 << 20 })
        const cluster = yield* impl.make()
        expect(yield* recover(cluster, disk)).toMatchObject({ batches: 300, sessions: 2 })
        expect(yield* cluster.acks.sessionAcks("d", 1, 1)).toMatchObject({ ordered: 150, replicated: 0 })
        expect(yield* cluster.acks.sessionAcks("d", 2, 3)).toMatchObject({ ordered: 150, replicated: 0 })
      }))

    for (const [what, onDiskBefore] of [["a gap", 20], ["a late start", 0]] as const) {
      it.scopedLive(`the writer's freeze after ${what} survives retention deleting every record before it: a resend from it is never acknowledged at level 2`, () =>
        Effect.gen(function*() {
          const disk = makeMemoryDisk()
          const cluster = yield* impl.make()
          const topic = yield* cluster.topics.create(spec)
          const brokers = [yield* cluster.appender(0), yield* cluster.appender(1)]
          const sequencer = yield* cluster.sequencer()
          const marks = yield* marksOf(cluster, 40)
          /** A writer, once its cursor holds retention (nothing read from then on is recycled before it is persisted). */
          const persist = () =>
            Effect.gen(function*() {
              const subscribed = yield* Deferred.make<void>()
              const options = {
                segments: { segmentBytes: 4096 },
                onSubscribed: () => Deferred.unsafeDone(subscribed, Effect.void)
              }
              const writer = yield* Effect.forkScoped(
                persistTopic(topic, marks, options).pipe(Effect.provide(durableLayers(disk, cluster)))
              )
              yield* Deferred.await(subscribed)
              return writer
            })
          if (onDiskBefore > 0) {
            const first = yield* persist()
            for (let seq = 0; seq < onDiskBefore; seq++) yield* appendSimple(brokers[seq % 2]!, "d", 7, 1, seq)
            yield* drain(sequencer)
            yield* cluster.acks.awaitAcked("d", 7, 1, onDiskBefore - 1, { timeoutMs: 5_000, level: 2 })
            yield* Fiber.interrupt(first)
          }
          // No writer while the region recycles batches of session 7/1 past what is on disk.
          for (let seq = onDiskBefore; seq < 1000; seq++) {
            yield* appendSimple(brokers[seq % 2]!, "d", 7, 1, seq)
            if (seq % 32 === 31) yield* drain(sequencer)
          }
          yield* drain(sequencer)
          expect((yield* cluster.reader.bounds("d")).earliest).toBeGreaterThan(onDiskBefore * 2)
          // The writer again, past the gap, with several segments' worth of both sessions after it.
          const second = yield* persist()
          for (let i = 0; i < 200; i++) {
            yield* appendSimple(brokers[i % 2]!, "d", 8, 1, i)
            yield* appendSimple(brokers[i % 2]!, "d", 7, 1, 1000 + i)
            if (i % 16 === 15) yield* drain(sequencer)
          }
          yield* drain(sequencer)
          yield* cluster.acks.awaitAcked("d", 8, 1, 199, { timeoutMs: 5_000, level: 2 })
          expect(yield* cluster.acks.sessionAcks("d", 7, 1)).toMatchObject({ ordered: 1200, replicated: onDiskBefore })
          yield* Fiber.interrupt(second)
          // Retention deletes the oldest segments: every record before the gap, and some after it.
          const bases = segmentFiles(disk).map((f) => Number(/(\d{20})\.\w+$/.exec(f)![1]))
          const keepFrom = Math.min(...bases.filter((b) => b > onDiskBefore + 1))
          for (const [i, f] of segmentFiles(disk).entries()) if (bases[i]! < keepFrom) disk.files.delete(f)
          expect(keepFrom).toBeLessThan(300)

          const recovered = yield* impl.make()
          yield* recover(recovered, disk)
          expect(yield* recovered.acks.sessionAcks("d", 7, 1)).toMatchObject({
            ordered: 1200,
            replicated: onDiskBefore
          })
          expect(yield* recovered.acks.sessionAcks("d", 8, 1)).toMatchObject({ ordered: 200, replicated: 200 })
          // A resend of a batch the disk never held: a duplicate, acknowledged as ordered, never as on disk.
          const resequencer = yield* recovered.sequencer()
          yield* appendSimple(yield* recovered.appender(0, { registered: false }), "d", 7, 1, 500)
          yield* drain(resequencer)
          expect(yield* recovered.acks.awaitAcked("d", 7, 1, 500, { timeoutMs: 5_000, level: 1 })).toMatchObject({
            ordered: 1200
          })
          expect(yield* Effect.flip(recovered.acks.awaitAcked("d", 7, 1, 500, { timeoutMs: 50, level: 2 })))
            .toMatchObject({ _tag: "AckTimeout", level: 2 })
        }))
    }

    it.scopedLive("a record the hot tier does not hold is not read whole: damage in its bytes is LogCorrupt to the reader that reaches it", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        const stream = orderedStream(300, 2, () => [16, 24])
        yield* writeStream(disk, "d", stream, { segmentBytes: 4096 })
        const files = segmentFiles(disk)
        // A payload byte of the second record of the second segment (batch `damaged`), far older than the hot tier holds.
        const damaged = Number(/(\d{20})\.seg$/.exec(files[1]!)![1]) + 1
        const size = (8 + encode(stream[0]!).length + 7) & ~7
        disk.files.get(files[1]!)!.data[size + 8 + OrderRecord.bytes + 20]! ^= 1

        const cluster = yield* impl.make()
        const result = yield* recover(cluster, disk)
        expect(result).toMatchObject({ batches: 300, messages: 600 })
        expect(300 - result.held).toBeGreaterThan(damaged)
        const tiered = tieredReader(cluster.reader, cluster.topics.lookup, {
          directory: "/data",
          files: memorySegmentFiles(disk)
        })
        // Up to it from disk, then the damage named.
        const error = yield* Effect.flip(offsetsFrom(tiered, 0))
        expect(error).toMatchObject({ _tag: "LogCorrupt" })
        expect(error.message).toContain(`${files[1]!} at byte ${size}`)
        // The segments after it read as ever.
        const after = stream[Number(/(\d{20})\.seg$/.exec(files[2]!)![1])]!.totalOrder
        expect(yield* offsetsFrom(tiered, after)).toEqual(range(after, 600))
      }))

    const structural: ReadonlyArray<
      readonly [string, (data: Uint8Array, size: number) => void, (size: number) => number, RegExp]
    > = [
      [
        "a record's length",
        (data, size) => void (data[size + 2] = 0x10),
        (size) => size,
        /a record of \d+ bytes runs past the end of the segment/
      ],
      // A header field the recorded order depends on: the record is checked against its checksum and named.
      [
        "a record's batch seq",
        (data, size) => void (data[size + 8 + OrderRecord.batchSeq + 6]! ^= 0x10),
        (size) => size,
        /checksum/
      ]
    ]
    for (const [what, damage, offset, reason] of structural) {
      it.scopedLive(`damage to ${what} in a record the hot tier does not hold is SegmentCorrupt at recovery, naming file and byte; nothing is loaded`, () =>
        Effect.gen(function*() {
          const disk = makeMemoryDisk()
          const stream: ReadonlyArray<Recorded> = orderedStream(300, 2, () => [16, 24])
          yield* writeStream(disk, "d", stream, { segmentBytes: 4096 })
          const files = segmentFiles(disk)
          const size = (8 + encode(stream[0]!).length + 7) & ~7
          damage(disk.files.get(files[1]!)!.data, size)
          const cluster = yield* impl.make()
          const error = yield* Effect.flip(recover(cluster, disk))
          expect(error).toMatchObject({ _tag: "SegmentCorrupt", file: files[1]!, offset: offset(size) })
          expect(error.message).toMatch(reason)
          expect(yield* cluster.reader.bounds("d")).toEqual({ earliest: 0, end: 0 })
        }))
    }
  })
}
