/**
 * The segment engine's crash windows and races, on the in-process disk (which keeps, per file,
 * what an fdatasync covered): what a stream counts as durable when it opens must survive a
 * power cut after it, a crash at any point of a roll leaves a stream that opens and reads, and
 * retention passes running at once (a roll's and the durable tier's) neither stop the writer
 * nor lose track of a segment.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { segmentsOver } from "../../src/layers/log/durable/SegmentLog.js"
import { recordBytes } from "../../src/layers/log/durable/SegmentRecord.js"
import { crash, makeMemoryDisk, memorySegmentFiles, restart } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import type { SegmentLog, SegmentLogOptions, SegmentsShape } from "../../src/services/log/Segments.js"

const record = (i: number, size = 100) => Uint8Array.from({ length: size }, (_, k) => (i * 7 + k) & 255)

const withLog = <A, E>(
  segments: SegmentsShape,
  stream: string,
  options: SegmentLogOptions,
  f: (log: SegmentLog) => Effect.Effect<A, E>
) => Effect.scoped(Effect.flatMap(segments.open(stream, options), f))

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

  it.scopedLive("a retention pass run while a roll's is deleting waits for it: the writer carries on and the stream keeps every segment it did not delete", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk()
      const memory = memorySegmentFiles(disk)
      /** While armed, the first segment unlink waits for release. */
      let armed = false
      let held = false
      let release = () => {}
      const files = {
        ...memory,
        unlink: async (path: string) => {
          if (armed && !held && path.endsWith(".seg")) {
            held = true
            await new Promise<void>((resolve) => (release = resolve))
          }
          return memory.unlink(path)
        }
      }
      const segments = segmentsOver(files, "/data")
      const onDisk = () => [...disk.files.keys()].filter((p) => p.endsWith(".seg")).sort()
      yield* withLog(
        segments,
        "s",
        { segmentBytes: 4096, retention: { maxAgeMs: 1_000 } },
        (log) =>
          Effect.gen(function*() {
            yield* appendAll(log, 0, 16, 1000)
            expect(onDisk().length).toBe(4)
            disk.clock += 10_000
            armed = true
            // The next record rolls the segment: that roll's retention waits in its first unlink.
            yield* appendAll(log, 16, 17, 1000).pipe(Effect.fork)
            for (let n = 0; n < 5_000 && !held; n++) yield* Effect.sleep(1)
            expect(held).toBe(true)
            // The durable tier's periodic pass, meanwhile.
            const tier = yield* Effect.fork(log.retain())
            // A window, not a wait: time for a pass that did not wait for the roll's to delete what that one is deleting.
            yield* Effect.sleep(10)
            release()
            yield* Fiber.join(tier)
            yield* appendAll(log, 17, 20, 1000)
            expect(log.failure()).toBeUndefined()
            // The stream's first record is its oldest file's, and every record from there reads back.
            expect(onDisk()[0]).toBe(`/data/s/${String(log.first()).padStart(20, "0")}.seg`)
            expect(log.first()).toBeGreaterThan(0)
            expect(yield* readAll(log)).toEqual(Array.from({ length: 20 - log.first() }, (_, k) => log.first() + k))
          })
      )
    }))

  it.scopedLive("retention counts a segment already removed (by hand) as deleted", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk()
      const segments = yield* SegmentsMemoryLayers.makeMemory(disk, "/data")
      yield* withLog(segments, "s", { segmentBytes: 4096, retention: { maxAgeMs: 1_000 } }, (log) =>
        Effect.gen(function*() {
          yield* appendAll(log, 0, 12, 1000)
          disk.files.delete("/data/s/00000000000000000000.seg")
          disk.clock += 10_000
          expect(yield* log.retain()).toBe(2)
          expect(log.first()).toBe(8)
          yield* appendAll(log, 12, 14, 1000)
          expect(log.failure()).toBeUndefined()
        }))
    }))

  it.scopedLive("a crash just after a roll, before the new segment's first sync, leaves the closed segment before it: the stream reopens with its last record readable", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk()
      const segments = yield* SegmentsMemoryLayers.makeMemory(disk, "/data")
      // Retention under one segment's size: every closed segment goes as soon as it may.
      const options = { segmentBytes: 4096, retention: { maxBytes: 2048 } }
      const first = "/data/s/00000000000000000000.seg"
      yield* withLog(segments, "s", options, (log) =>
        Effect.gen(function*() {
          // Four records fill a segment: the fifth rolls it.
          yield* appendAll(log, 0, 4, 1000)
          // The roll's sync of the closed segment returns; every sync after it waits.
          let release = () => {}
          disk.onSync = (path) => {
            if (path === first) disk.gate = new Promise((resolve) => (release = resolve))
          }
          log.tryAppend(record(4, 1000))
          const next = "/data/s/00000000000000000004.seg"
          for (let n = 0; n < 5_000 && (disk.files.get(next)?.size ?? 0) === 0; n++) yield* Effect.sleep(1)
          const written = disk.files.get(next)?.size ?? 0
          const durable = log.durable()
          crash(disk)
          disk.gate = undefined
          release()
          // Record 4 is written to the new segment, not synced: the crash takes it.
          expect(written).toBeGreaterThan(0)
          expect(durable).toBe(4)
        })).pipe(Effect.ignore)
      restart(disk)
      yield* withLog(segments, "s", options, (log) =>
        Effect.gen(function*() {
          expect(log.recovery.records).toBe(4)
          let last = -1
          yield* log.read(log.durable() - 1, (i) => {
            last = i
          })
          expect(last).toBe(3)
        }))
    }))
})
