/**
 * Recovery as a bulk load, over every log implementation, from streams written record by record
 * (so each can be made to say what a test needs): every batch lands at its recorded offset, the
 * tail the hot tier holds wraps broker 0's Blog intact, and the sequencer and broker 0 carry on
 * from the loaded log; a stream whose recorded order conflicts (a session's batch twice or out of
 * order, an offset gap, a global seq that is not its place) is RecoveryFailed naming the record,
 * and leaves the log empty; damage in a closed segment, which opening no longer scans, is
 * SegmentCorrupt from the read, naming file and offset.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { OrderRecord, streamOf } from "../../src/layers/log/durable/DurableOrder.js"
import { makeMemoryDisk } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import { appendSimple, drain, implementations, makeBatch, readAll } from "../fixtures/log-harness.js"
import { orderedStream, type Recorded, recoverInto, writeStream } from "../fixtures/recovery.js"

const spec = { name: "d", order: 5, ackLevel: 2, replicationFactor: 2 } as const

for (const impl of implementations) {
  describe(`bulk recovery: ${impl.label}`, () => {
    it.scopedLive("places each batch at its recorded offset, the held tail wrapping the Blog; ordering and appends carry on after it", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        // 200 batches of 1-3 messages of 1.5-6 KiB: more than the PBR (64) and several laps of the 256 KiB Blog.
        const stream = orderedStream(
          200,
          3,
          (i) => Array.from({ length: 1 + (i % 3) }, (_, k) => 1500 + ((i * 977 + k * 131) % 4500))
        )
        yield* writeStream(disk, "d", stream)
        const cluster = yield* impl.make()
        const topic = yield* cluster.topics.create(spec)
        const result = yield* recoverInto(cluster, topic, SegmentsMemoryLayers.layerMemory(disk))
        const end = stream.reduce((n, r) => n + r.sizes.length, 0)
        expect(result).toMatchObject({ batches: 200, messages: end, sessions: 3, cutBytes: 0 })
        const held = yield* readAll(cluster.reader, "d")
        expect(held).toHaveLength(result.held)
        expect(held.length).toBeGreaterThan(10)
        // Each batch held is the recorded one, at its recorded global seq and offset, its payload intact.
        expect(held).toEqual(
          stream.slice(200 - held.length).map((r) => ({
            globalSeq: r.globalSeq,
            totalOrder: r.totalOrder,
            clientId: r.clientId,
            sessionEpoch: r.sessionEpoch,
            batchSeq: r.batchSeq,
            brokerId: 0,
            messageCount: r.sizes.length,
            crcOk: true
          }))
        )
        expect(yield* cluster.reader.bounds("d")).toEqual({ earliest: stream[200 - held.length]!.totalOrder, end })

        // The sequencer takes the loaded log as its own: a session's next batch follows at the end, its resend is a duplicate.
        const sequencer = yield* cluster.sequencer()
        const appender = yield* cluster.appender(0, { registered: false })
        const last = stream[199]!
        yield* appendSimple(appender, "d", last.clientId, last.sessionEpoch, last.batchSeq)
        yield* appendSimple(appender, "d", last.clientId, last.sessionEpoch, last.batchSeq + 1, 2)
        yield* drain(sequencer)
        const after = yield* readAll(cluster.reader, "d", end)
        expect(after.map((b) => [b.globalSeq, b.totalOrder, b.batchSeq, b.crcOk])).toEqual([[
          200,
          end,
          last.batchSeq + 1,
          true
        ]])
        expect(yield* cluster.acks.sessionAcks("d", last.clientId, last.sessionEpoch)).toMatchObject({
          ordered: last.batchSeq + 2,
          known: true,
          durableFrozen: false
        })
      }))

    const conflicts: ReadonlyArray<readonly [string, (s: Array<Recorded>) => Array<Recorded>, RegExp]> = [
      [
        "a session's batch recorded twice",
        (s) => [...s.slice(0, 5), { ...s[5]!, batchSeq: s[2]!.batchSeq }, ...s.slice(6)],
        /record 5 is batch .* conflicts with the recorded order/
      ],
      [
        "a session's batch recorded before the one it follows",
        (s) => [...s.slice(0, 5), { ...s[5]!, batchSeq: s[5]!.batchSeq + 1 }, ...s.slice(6)],
        /record 5 is batch .* conflicts/
      ],
      [
        "offsets that skip within a run of batches",
        (s) => [...s.slice(0, 7), { ...s[7]!, totalOrder: s[7]!.totalOrder + 1 }, ...s.slice(8)],
        /record 7 was recorded as batch 7 at offset .*: neither the next batch nor one after a gap/
      ],
      [
        "a global seq that is not its place",
        (s) => [...s.slice(0, 4), { ...s[4]!, globalSeq: 9 }, ...s.slice(5)],
        /record 4 was recorded as batch 9/
      ]
    ]
    for (const [what, change, reason] of conflicts) {
      it.scopedLive(`a stream with ${what} is RecoveryFailed naming the record; nothing is loaded`, () =>
        Effect.gen(function*() {
          const disk = makeMemoryDisk()
          yield* writeStream(disk, "d", change(orderedStream(12, 2, () => [16, 24])))
          const cluster = yield* impl.make()
          const topic = yield* cluster.topics.create(spec)
          const error = yield* Effect.flip(recoverInto(cluster, topic, SegmentsMemoryLayers.layerMemory(disk)))
          expect(error).toMatchObject({ _tag: "RecoveryFailed", topic: "d" })
          expect(error.message).toMatch(reason)
          expect(yield* cluster.reader.bounds("d")).toEqual({ earliest: 0, end: 0 })
          expect(cluster.sessions("d").lookup(1, 1)).toBeUndefined()
        }))
    }

    it.scopedLive("damage in a closed segment is SegmentCorrupt from the read, naming file and offset; so is a closed segment short of records", () =>
      Effect.gen(function*() {
        for (const damage of ["flip", "drop"] as const) {
          const disk = makeMemoryDisk()
          yield* writeStream(disk, "d", orderedStream(40, 2, () => [16, 24]), { segmentBytes: 1024 })
          const files = [...disk.files.keys()].filter((p) => p.includes(streamOf("d"))).sort()
          expect(files.length).toBeGreaterThan(2)
          const f = disk.files.get(files[1]!)!
          // A byte of its second record's payload, or its last record cut off whole.
          const recordBytes = 8 + OrderRecord.bytes + makeBatch([16, 24]).payload.length
          if (damage === "flip") f.data[recordBytes + 100]! ^= 1
          else f.size = f.syncedSize = f.size - recordBytes
          const cluster = yield* impl.make()
          const topic = yield* cluster.topics.create(spec)
          const error = yield* Effect.flip(recoverInto(cluster, topic, SegmentsMemoryLayers.layerMemory(disk)))
          expect(error).toMatchObject({
            _tag: "SegmentCorrupt",
            file: files[1]!,
            offset: damage === "flip" ? recordBytes : f.size
          })
          if (damage === "drop") expect(error.message).toContain("records, but the next segment begins at record")
          expect(yield* cluster.reader.bounds("d")).toEqual({ earliest: 0, end: 0 })
        }
      }))
  })
}
