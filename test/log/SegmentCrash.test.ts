/**
 * The segment engine's crash windows, on the in-process disk (which keeps, per file, what an
 * fdatasync covered): what a stream counts as durable when it opens must survive a power cut
 * after it, and a crash at any point of a roll leaves a stream that opens and reads.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { crash, makeMemoryDisk, restart } from "../../src/layers/log/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/SegmentsMemory.js"
import { recordBytes } from "../../src/layers/log/SegmentRecord.js"
import type { SegmentLog, SegmentLogOptions, SegmentsShape } from "../../src/services/log/Segments.js"

const record = (i: number, size = 100) => Uint8Array.from({ length: size }, (_, k) => (i * 7 + k) & 255)

const withLog = <A, E>(segments: SegmentsShape, stream: string, options: SegmentLogOptions, f: (log: SegmentLog) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(segments.open(stream, options), f))

const appendAll = (log: SegmentLog, from: number, to: number, size?: number) =>
  Effect.gen(function*() {
    for (let i = from; i < to; i++) expect(yield* log.append(record(i, size), 5_000)).toBe(i)
    return yield* log.awaitDurable(to, 5_000)
  })

const readAll = (log: SegmentLog) =>
  Effect.gen(function*() {
    const got: Array<number> = []
    yield* log.read(log.first(), (i, bytes) => {
      expect(bytes).toEqual(record(i, bytes.length))
      got.push(i)
    })
    return got
  })

describe("Segment crash windows", () => {
  it.scopedLive("a tail written but never synced (the writer killed before its fdatasync) is synced when the stream opens, before it counts as durable", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk()
      const segments = yield* SegmentsMemoryLayers.makeMemory(disk, "/data")
      yield* withLog(segments, "s", {}, (log) => appendAll(log, 0, 5))
      // The process died after writing record 4 and before its fdatasync returned: the page cache holds it, the disk does not.
      const file = disk.files.get("/data/s/00000000000000000000.seg")!
      file.syncedSize = file.size - recordBytes(100)
      yield* withLog(segments, "s", {}, (log) => Effect.sync(() => expect(log.durable()).toBe(5)))
      // A power cut after that open: what it counted as durable is still there.
      crash(disk)
      restart(disk)
      yield* withLog(segments, "s", {}, (log) =>
        Effect.gen(function*() {
          expect(log.recovery.records).toBe(5)
          expect(yield* readAll(log)).toEqual([0, 1, 2, 3, 4])
        }))
    }))
})
