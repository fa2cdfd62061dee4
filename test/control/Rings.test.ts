import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Exit, FastCheck as fc, Fiber, Option, Schedule, Stream } from "effect"
import { spawnSync } from "node:child_process"
import { frameCheck } from "../../src/layers/control/RingFrames.js"
import * as RingsLayers from "../../src/layers/control/Rings.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { ownStartTag } from "../../src/layers/region/ProcessInfo.js"
import {
  type FrameBatch,
  type RingAddress,
  ringFootprint,
  type RingReader,
  type RingWriter
} from "../../src/services/control/Rings.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { openRegionRings, type OpenRings, ringLayers, type RingsUnderTest } from "../fixtures/ring-harness.js"
import { parked } from "../helpers/Parked.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** Payload `n` of `length` bytes: every byte derived from (n, index), so any mix-up shows. */
const payload = (n: number, length: number) => Uint8Array.from({ length }, (_, i) => (n * 31 + i * 7) & 0xff)

const frames = (batch: FrameBatch) => Array.from({ length: batch.count }, (_, i) => Array.from(batch.frame(i)))

const address = (overrides: Partial<RingAddress> = {}): RingAddress => ({
  id: 7,
  offset: 8192 + 64 * 3,
  dataBytes: 1024,
  readerSlots: 3,
  ...overrides
})

/** Writes `lengths.length` frames through `writer` while `reader` consumes them; checks every frame. */
const traffic = (writer: RingWriter, reader: RingReader, lengths: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const checker = yield* Effect.fork(Effect.gen(function*() {
      let n = 0
      while (n < lengths.length) {
        const batch = yield* reader.take()
        for (let i = 0; i < batch.count; i++, n++) {
          expect(Array.from(batch.frame(i))).toEqual(Array.from(payload(n, lengths[n]!)))
        }
      }
      return n
    }))
    for (let n = 0; n < lengths.length; n++) yield* writer.write(payload(n, lengths[n]!))
    expect(yield* Fiber.join(checker)).toBe(lengths.length)
  })

/** A new ring of `open`'s rings with its reader, inspector and writer, and what `open` opened. */
const freshRing = (open: OpenRings) =>
  Effect.gen(function*() {
    const opened = yield* open()
    const { rings } = opened
    const ring = address()
    const reader = yield* rings.reader(ring)
    const inspector = yield* rings.inspect(ring)
    const writer = yield* rings.writer(ring)
    return { reader, inspector, writer, opened }
  })

/**
 * Waits until the layer's doorbell has parked (its flag published, every waiter re-checked after
 * it), so what is committed next reaches a waiter only through a ring; returns how many waits a
 * wake has settled since. A parked waiter is also settled by the park bound's timer (1 s), so
 * only that count tells a ring woke it. Undefined for the in-memory layer, which keeps its
 * doorbell to itself (its rings run the same engine over the same doorbell code).
 */
const parkedDoorbell = (opened: RingsUnderTest) =>
  Effect.gen(function*() {
    const { doorbell, region } = opened
    if (doorbell === undefined || region === undefined) return undefined
    while (Atomics.load(region.i32, doorbell.offset / 4 + 1) === 0) yield* Effect.sleep("1 millis")
    const woken = DoorbellLayers.internalsOf(doorbell)!.settledByWake
    const before = woken()
    return () => woken() - before
  })

const contract = (label: string, open: OpenRings) =>
  describe(`Rings contract: ${label}`, () => {
    it.scopedLive("frames committed together arrive in order; sequences are byte positions", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address()
        const reader = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring)
        const lengths = [0, 1, 7, 8, 13]
        for (const [n, length] of lengths.entries()) {
          const at = writer.tryReserve(length)
          expect(at).toBeGreaterThanOrEqual(0)
          writer.bytes.set(payload(n, length), at)
        }
        expect(writer.sequence()).toBe(0)
        expect(writer.commit()).toBe(80)
        const batch = yield* reader.take()
        expect(batch.count).toBe(5)
        expect(Array.from(batch.sequences.subarray(0, 5))).toEqual([0, 8, 24, 40, 56])
        expect(batch.end).toBe(80)
        expect(frames(batch)).toEqual(lengths.map((length, n) => Array.from(payload(n, length))))
        const inspector = yield* rings.inspect(ring)
        expect(inspector.writer()).toMatchObject({ sequence: 80, occurrence: 1, pid: process.pid, closed: false })
      }))

    it.scopedLive("tryWriteAll writes and commits the frames that fit now, without waiting; writeAll takes the rest", () =>
      Effect.gen(function*() {
        const { inspector, reader, writer } = yield* freshRing(open)
        // 120-byte payloads take 128 bytes each: eight fill the 1 KiB data area.
        const ten = Array.from({ length: 10 }, (_, n) => payload(n, 120))
        expect(writer.tryWriteAll(ten)).toBe(8)
        expect(writer.sequence()).toBe(1024)
        expect(inspector.writer().sequence).toBe(1024)
        const first = yield* reader.take()
        expect(frames(first)).toEqual(ten.slice(0, 8).map((p) => Array.from(p)))
        // Room comes only when the reader completes what it took: until then nothing fits, and nothing is written.
        expect(writer.tryWriteAll(ten.slice(8))).toBe(0)
        const rest = yield* Effect.fork(writer.writeAll(ten.slice(8)))
        yield* reader.complete
        expect(yield* Fiber.join(rest)).toBe(1280)
        expect(frames(yield* reader.take())).toEqual(ten.slice(8).map((p) => Array.from(p)))
        yield* reader.complete
        // A frame over the bound stops the run where it stands (writeAll would say why); a closed writer writes none.
        const tooLarge = new Uint8Array(writer.maxFrameBytes + 1)
        expect(writer.tryWriteAll([payload(10, 8), tooLarge, payload(11, 8)])).toBe(1)
        expect(frames(yield* reader.take())).toEqual([Array.from(payload(10, 8))])
        yield* writer.close
        expect(writer.tryWriteAll([payload(12, 8)])).toBe(0)
        expect(writer.sequence()).toBe(1296)
      }))

    it.scopedLive("a reader attaches at the head, not at old data", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address()
        const writer = yield* rings.writer(ring)
        yield* writer.writeAll([payload(0, 10), payload(1, 20), payload(2, 30)])
        const reader = yield* rings.reader(ring)
        expect(reader.progress()).toEqual({ delivered: writer.sequence(), processed: writer.sequence() })
        expect((yield* reader.take(0)).count).toBe(0)
        yield* writer.write(payload(3, 5))
        const batch = yield* reader.take()
        expect(frames(batch)).toEqual([Array.from(payload(3, 5))])
      }))

    it.scopedLive("take: delivered moves when a batch is handed out, processed when the next take (or complete) comes", () =>
      Effect.gen(function*() {
        const { inspector, reader, writer } = yield* freshRing(open)
        yield* writer.writeAll([payload(0, 16), payload(1, 16)])
        const first = yield* reader.take()
        expect(first.end).toBe(48)
        expect(inspector.reader(reader.slot)).toMatchObject({
          state: "attached",
          delivered: 48,
          processed: 0,
          pid: process.pid
        })
        yield* writer.write(payload(2, 8))
        const second = yield* reader.take()
        expect(second.sequences[0]).toBe(48)
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 64, processed: 48 })
        yield* reader.complete
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 64, processed: 64 })
      }))

    it.scopedLive("consume: delivered passes a frame before its handler runs, processed after it completes", () =>
      Effect.gen(function*() {
        const { inspector, reader, writer } = yield* freshRing(open)
        yield* writer.writeAll([payload(0, 8), payload(1, 24), payload(2, 0)])
        yield* writer.close
        const seen: Array<{ sequence: number; delivered: number; processed: number }> = []
        yield* reader.consume((frame, sequence) =>
          Effect.gen(function*() {
            yield* Effect.sleep("5 millis") // a slow handler: the counters must not run ahead of it
            const { delivered, processed } = inspector.reader(reader.slot)
            seen.push({ sequence, delivered, processed })
            expect(frame.length).toBe([8, 24, 0][seen.length - 1])
          })
        )
        expect(seen).toEqual([
          { sequence: 0, delivered: 16, processed: 0 },
          { sequence: 16, delivered: 48, processed: 16 },
          { sequence: 48, delivered: 56, processed: 48 }
        ])
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 56, processed: 56 })
      }))

    it.scopedLive("consumeSync: frames reach the handler from the doorbell's wake callback, outside any fiber, with consume's delivered and processed steps", () =>
      Effect.gen(function*() {
        const { inspector, opened, reader, writer } = yield* freshRing(open)
        const seen: Array<
          { sequence: number; length: number; delivered: number; processed: number; inFiber: boolean }
        > = []
        const consuming = yield* Effect.fork(reader.consumeSync((frame, sequence) => {
          const { delivered, processed } = inspector.reader(reader.slot)
          seen.push({
            sequence,
            length: frame.length,
            delivered,
            processed,
            inFiber: Option.isSome(Fiber.getCurrentFiber())
          })
        }))
        yield* parked([consuming]) // waiting for frames, so a commit must wake it
        const wokenSince = yield* parkedDoorbell(opened)
        yield* writer.writeAll([payload(0, 8), payload(1, 24)])
        yield* writer.close
        yield* Fiber.join(consuming) // returns once the ring closed, after the last frame
        if (wokenSince !== undefined) expect(wokenSince()).toBeGreaterThan(0)
        expect(seen).toEqual([
          { sequence: 0, length: 8, delivered: 16, processed: 0, inFiber: false },
          { sequence: 16, length: 24, delivered: 48, processed: 16, inFiber: false }
        ])
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 48, processed: 48 })
      }))

    it.scopedLive("consumeSync: a handler that returns an effect holds the later frames until it completes; the frame is processed after it", () =>
      Effect.gen(function*() {
        const { inspector, reader, writer } = yield* freshRing(open)
        const gate = yield* Deferred.make<void>()
        const seen: Array<{ sequence: number; processed: number }> = []
        const consuming = yield* Effect.fork(reader.consumeSync((_, sequence) => {
          seen.push({ sequence, processed: inspector.reader(reader.slot).processed })
          if (sequence === 0) return Deferred.await(gate)
        }))
        yield* writer.writeAll([payload(0, 8), payload(1, 8), payload(2, 8)])
        // The three frames came in one commit: unheld, the later two would be handed on in the same drain.
        while (seen.length === 0) yield* Effect.sleep("1 millis")
        expect(seen).toEqual([{ sequence: 0, processed: 0 }])
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 16, processed: 0 })
        yield* Deferred.succeed(gate, undefined)
        yield* writer.close
        yield* Fiber.join(consuming)
        expect(seen).toEqual([{ sequence: 0, processed: 0 }, { sequence: 16, processed: 16 }, {
          sequence: 32,
          processed: 32
        }])
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 48, processed: 48 })
      }))

    it.scopedLive("consumeSync: a handler that throws ends the read as a defect, its frame delivered but not processed", () =>
      Effect.gen(function*() {
        const { inspector, reader, writer } = yield* freshRing(open)
        const consuming = yield* Effect.fork(Effect.exit(reader.consumeSync((_, sequence) => {
          if (sequence === 16) throw new Error("handler broke")
        })))
        yield* parked([consuming]) // so the handler throws inside the doorbell's sweep, which must survive it
        yield* writer.writeAll([payload(0, 8), payload(1, 8)])
        const exit = yield* Fiber.join(consuming)
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain("handler broke")
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 32, processed: 16 })
      }))

    it.scopedLive("consumeFrames: every frame committed by the wake-up in one call, from the wake callback; delivered passes the batch before the call, processed after it returns", () =>
      Effect.gen(function*() {
        const { inspector, reader, writer } = yield* freshRing(open)
        const calls: Array<
          {
            frames: Array<Array<number>>
            sequences: Array<number>
            delivered: number
            processed: number
            inFiber: boolean
          }
        > = []
        const consuming = yield* Effect.fork(reader.consumeFrames((batch) => {
          const { delivered, processed } = inspector.reader(reader.slot)
          calls.push({
            // Read through the batch's arrays, as a hot path would (no view per frame).
            frames: Array.from(
              { length: batch.count },
              (_, i) => Array.from(batch.bytes.subarray(batch.offsets[i]!, batch.offsets[i]! + batch.lengths[i]!))
            ),
            sequences: Array.from(batch.sequences.subarray(0, batch.count)),
            delivered,
            processed,
            inFiber: Option.isSome(Fiber.getCurrentFiber())
          })
        }))
        yield* writer.writeAll([payload(0, 8), payload(1, 24), payload(2, 8)])
        yield* Effect.repeat(Effect.sync(() => calls.length), {
          until: (n) => n > 0,
          schedule: Schedule.spaced("1 millis")
        })
          .pipe(Effect.timeout("10 seconds"))
        yield* writer.writeAll([payload(3, 16)])
        yield* writer.close
        yield* Fiber.join(consuming) // returns once the ring closed, after the last batch
        expect(calls.map(({ inFiber: _, ...call }) => call)).toEqual([
          {
            frames: [payload(0, 8), payload(1, 24), payload(2, 8)].map((p) => Array.from(p)),
            sequences: [0, 16, 48],
            delivered: 64,
            processed: 0
          },
          { frames: [Array.from(payload(3, 16))], sequences: [64], delivered: 88, processed: 64 }
        ])
        // The second batch came while the read waited: from the wake callback. (The first may have
        // been committed before the read began, and found by its first look in its fiber.)
        expect(calls[1]!.inFiber).toBe(false)
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 88, processed: 88 })
      }))

    it.scopedLive("consumeFrames: a handler that throws ends the read as a defect, its batch delivered but not processed", () =>
      Effect.gen(function*() {
        const { inspector, reader, writer } = yield* freshRing(open)
        const consuming = yield* Effect.fork(Effect.exit(reader.consumeFrames((batch) => {
          if (batch.sequences[0] === 16) throw new Error("handler broke")
        })))
        yield* writer.writeAll([payload(0, 8)])
        yield* Effect.repeat(Effect.sync(() => inspector.reader(reader.slot).delivered), {
          until: (d) => d === 16,
          schedule: Schedule.spaced("1 millis")
        }).pipe(Effect.timeout("10 seconds"))
        yield* writer.writeAll([payload(1, 8), payload(2, 8)])
        const exit = yield* Fiber.join(consuming)
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain("handler broke")
        expect(inspector.reader(reader.slot)).toMatchObject({ delivered: 48, processed: 16 })
      }))

    it.scopedLive("a failing handler leaves its frame delivered but not processed", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address()
        const reader = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring)
        yield* writer.writeAll([payload(0, 8), payload(1, 8)])
        const error = yield* Effect.flip(
          reader.consume((_, sequence) => (sequence === 16 ? Effect.fail("boom" as const) : Effect.void))
        )
        expect(error).toBe("boom")
        expect(reader.progress()).toEqual({ delivered: 32, processed: 16 })
      }))

    it.scopedLive("stream: copies of every frame; a chunk is processed when the stream pulls again; ends at close", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address()
        const reader = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring)
        const consumer = yield* Effect.fork(
          reader.stream.pipe(
            Stream.tap((frame) =>
              Effect.sync(() => {
                const { delivered, processed } = reader.progress()
                expect(delivered).toBeGreaterThan(frame.sequence)
                expect(processed).toBeLessThanOrEqual(frame.sequence)
              })
            ),
            Stream.runCollect
          )
        )
        for (let n = 0; n < 40; n++) yield* writer.write(payload(n, n))
        yield* writer.close
        const collected = Chunk.toReadonlyArray(yield* Fiber.join(consumer))
        expect(collected.map((f) => Array.from(f.bytes))).toEqual(
          Array.from({ length: 40 }, (_, n) => Array.from(payload(n, n)))
        )
        expect(reader.progress()).toEqual({ delivered: writer.sequence(), processed: writer.sequence() })
      }))

    it.scopedLive("a frame above the configured fraction is FrameTooLarge", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const writer = yield* rings.writer(address(), { maxFrameFraction: 0.5 })
        expect(writer.maxFrameBytes).toBe(504)
        expect(writer.tryReserve(505)).toBe(-1)
        expect(yield* Effect.flip(writer.write(new Uint8Array(505)))).toMatchObject({
          _tag: "FrameTooLarge",
          length: 505,
          maxFrameBytes: 504
        })
        expect(yield* writer.write(new Uint8Array(504))).toBe(512)
        expect(yield* Effect.flip(rings.writer(address({ offset: 65536 }), { maxFrameFraction: 0 }))).toMatchObject({
          _tag: "InvalidRingAddress"
        })
      }))

    it.scopedLive("wrap-around: frames ending exactly at the wrap point, and frames that need padding", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address({ dataBytes: 256 })
        const reader = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring, { maxFrameFraction: 0.5 })
        expect(writer.maxFrameBytes).toBe(120)
        const next = reader.take().pipe(
          Effect.map((batch) => ({
            sequences: Array.from(batch.sequences.subarray(0, batch.count)),
            frames: frames(batch)
          })),
          Effect.tap(() => reader.complete)
        )
        // four 64-byte frames fill the area exactly; the next one starts the lap at index 0, unpadded
        yield* writer.writeAll([0, 1, 2, 3].map((n) => payload(n, 56)))
        expect((yield* next).sequences).toEqual([0, 64, 128, 192])
        yield* writer.write(payload(4, 100))
        expect((yield* next).sequences).toEqual([256])
        // 112 + 112 bytes leave 32 before the end: a 48-byte frame is padded over to the next lap
        yield* writer.write(payload(5, 100))
        expect((yield* next).sequences).toEqual([368])
        expect(yield* writer.write(payload(6, 40))).toBe(512 + 48)
        expect(yield* next).toEqual({ sequences: [512], frames: [Array.from(payload(6, 40))] })
        // the largest frame after 168 bytes of the lap: 88 bytes of padding, then the frame
        yield* writer.writeAll([payload(7, 0), payload(8, 100)])
        expect(yield* next).toEqual({ sequences: [560, 568], frames: [[], Array.from(payload(8, 100))] })
        yield* writer.write(payload(9, 120))
        expect(yield* next).toEqual({ sequences: [768], frames: [Array.from(payload(9, 120))] })
        expect(writer.sequence()).toBe(896)
      }))

    it.scopedLive("a ring much smaller than the traffic carries random frame sizes intact (property)", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address({ dataBytes: 512, offset: 65536 })
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 120 }), { minLength: 1, maxLength: 300 }), (lengths) =>
              Effect.runPromise(Effect.scoped(Effect.gen(function*() {
                const reader = yield* rings.reader(ring)
                const writer = yield* rings.writer(ring)
                yield* traffic(writer, reader, lengths)
              })))),
            { numRuns: 30 }
          )
        )
        const writer = (yield* rings.inspect(ring)).writer()
        expect(writer.occurrence).toBe(30)
        expect(writer.closed).toBe(true)
      }))

    it.scopedLive("backpressure: a reader that does not take holds the writer back, then lets it resume", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address({ dataBytes: 256 })
        const slow = yield* rings.reader(ring)
        const fast = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring, { timeoutMs: 1_000 })
        let written = 0
        for (let at = writer.tryReserve(24); at >= 0; at = writer.tryReserve(24)) {
          writer.bytes.set(payload(written++, 24), at)
        }
        expect(written).toBe(8)
        writer.commit()
        expect(yield* fast.take()).toMatchObject({ count: 8 })
        yield* fast.complete
        const full = yield* Effect.flip(writer.write(payload(99, 24)))
        expect(full).toMatchObject({ _tag: "RingFull", slowestSlot: slow.slot, free: 0 })
        const blocked = yield* Effect.fork(writer.writeAll([payload(100, 24), payload(101, 24)]))
        // A window, not a wait: the slow reader holds every byte, so the write must not end in it.
        yield* Effect.sleep("30 millis")
        expect(Option.isNone(yield* Fiber.poll(blocked))).toBe(true)
        expect((yield* slow.take()).count).toBe(8)
        expect(Option.isNone(yield* Fiber.poll(blocked))).toBe(true)
        yield* slow.complete
        expect(yield* Fiber.join(blocked)).toBe(256 + 64)
        expect(frames(yield* slow.take())).toEqual([Array.from(payload(100, 24)), Array.from(payload(101, 24))])
      }))

    it.scopedLive("the writer never overwrites frames a reader holds in place", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address({ dataBytes: 512 })
        const reader = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring, { timeoutMs: 50 })
        yield* writer.writeAll([payload(1, 100), payload(2, 100)])
        const held = yield* reader.take()
        const view = held.frame(1)
        const before = Array.from(view)
        // keep writing until the ring is full: the held frames' bytes must not change
        const outcome = yield* Effect.exit(Effect.repeatN(writer.write(payload(3, 100)), 20))
        expect(Exit.isFailure(outcome)).toBe(true)
        expect(Array.from(view)).toEqual(before)
        expect(Array.from(held.frame(0))).toEqual(Array.from(payload(1, 100)))
      }))

    it.scopedLive("a parked reader wakes on a commit; close is seen after the last frame", () =>
      Effect.gen(function*() {
        const opened = yield* open()
        const { rings } = opened
        const ring = address()
        const reader = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring)
        const taking = yield* Effect.fork(reader.take())
        yield* parked([taking])
        const wokenSince = yield* parkedDoorbell(opened)
        yield* writer.write(payload(0, 3))
        expect(frames(yield* Fiber.join(taking))).toEqual([Array.from(payload(0, 3))])
        if (wokenSince !== undefined) expect(wokenSince()).toBeGreaterThan(0)
        yield* writer.writeAll([payload(1, 1), payload(2, 2)])
        yield* writer.close
        expect((yield* reader.take()).count).toBe(2)
        expect(yield* Effect.flip(reader.take())).toMatchObject({ _tag: "RingClosed", sequence: writer.sequence() })
        const waiting = yield* rings.reader(ring)
        expect(yield* Effect.flip(waiting.take())).toMatchObject({ _tag: "RingClosed" })
      }))

    it.scopedLive("a parked reader sees the writer close", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address()
        const reader = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring)
        const taking = yield* Effect.fork(Effect.flip(reader.take()))
        yield* parked([taking])
        yield* writer.close
        expect(yield* Fiber.join(taking)).toMatchObject({ _tag: "RingClosed", sequence: 0 })
      }))

    it.scopedLive("a reopened writer continues the sequence with a new occurrence; a second live writer is refused", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address()
        const reader = yield* rings.reader(ring)
        const first = yield* Effect.scoped(Effect.gen(function*() {
          const writer = yield* rings.writer(ring)
          expect(yield* Effect.flip(rings.writer(ring))).toMatchObject({ _tag: "RingWriterBusy", pid: process.pid })
          return yield* writer.write(payload(0, 8))
        }))
        const second = yield* rings.writer(ring)
        expect(second.occurrence).toBe(2)
        expect(yield* second.write(payload(1, 8))).toBe(first + 16)
        expect((yield* reader.take()).count).toBe(2)
      }))

    it.scopedLive("reader slots: attach to any or a given slot; all taken is NoFreeReaderSlot; a slot is reused after detach", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address({ readerSlots: 2 })
        const inspector = yield* rings.inspect(ring)
        const a = yield* rings.reader(ring, { slot: 1 })
        expect(a.slot).toBe(1)
        expect(yield* Effect.flip(rings.reader(ring, { slot: 1 }))).toMatchObject({ _tag: "NoFreeReaderSlot", slot: 1 })
        const occurrence = yield* Effect.scoped(Effect.gen(function*() {
          const b = yield* rings.reader(ring)
          expect(b.slot).toBe(0)
          expect(yield* Effect.flip(rings.reader(ring))).toMatchObject({ _tag: "NoFreeReaderSlot", readerSlots: 2 })
          return b.occurrence
        }))
        expect(inspector.reader(0).state).toBe("free")
        const c = yield* rings.reader(ring)
        expect(c.slot).toBe(0)
        expect(c.occurrence).toBe(occurrence + 1)
        expect(inspector.readers().map((r) => r.state)).toEqual(["attached", "attached"])
      }))

    it.scopedLive("reap frees a stuck reader's slot: the writer resumes and the reaped reader gets ReaderReaped", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address({ dataBytes: 256 })
        const stuck = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring, { timeoutMs: 5_000 })
        yield* writer.writeAll(Array.from({ length: 8 }, (_, n) => payload(n, 24)))
        const blocked = yield* Effect.fork(writer.write(payload(8, 24)))
        expect(yield* rings.reapDead(ring)).toEqual([]) // its process is alive
        // A reap aimed at another reader of the slot (an earlier one) leaves the one that holds it now.
        expect(yield* rings.reap(ring, stuck.slot, stuck.occurrence - 1)).toBe(false)
        expect(yield* rings.reap(ring, stuck.slot, stuck.occurrence)).toBe(true)
        expect(yield* Fiber.join(blocked)).toBe(9 * 32)
        expect(yield* Effect.flip(stuck.take())).toMatchObject({
          _tag: "ReaderReaped",
          slot: stuck.slot,
          occurrence: stuck.occurrence
        })
        expect(yield* rings.reap(ring, stuck.slot)).toBe(false)
        expect(yield* Effect.flip(rings.reap(ring, 3))).toMatchObject({ _tag: "InvalidRingAddress" })
        // The slot taken again: a reap judged on the reaped reader does not free its successor.
        const successor = yield* rings.reader(ring)
        expect(successor.slot).toBe(stuck.slot)
        expect(yield* rings.reap(ring, stuck.slot, stuck.occurrence)).toBe(false)
        expect(yield* rings.reap(ring, successor.slot, successor.occurrence)).toBe(true)
      }))

    it.scopedLive("awaitProgress: true once the readers pass the target (delivered, then processed); false after the timeout", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        const ring = address()
        const reader = yield* rings.reader(ring)
        const writer = yield* rings.writer(ring)
        const target = yield* writer.write(payload(0, 40))
        const inspector = yield* rings.inspect(ring)
        const delivered = () => inspector.reader(reader.slot).delivered >= target
        const processed = () => inspector.reader(reader.slot).processed >= target
        expect(yield* rings.awaitProgress(ring, target, delivered, 20)).toBe(false)
        const waitingDelivered = yield* Effect.fork(rings.awaitProgress(ring, target, delivered, 30_000))
        const waitingProcessed = yield* Effect.fork(rings.awaitProgress(ring, target, processed, 30_000))
        yield* reader.take()
        expect(yield* Fiber.join(waitingDelivered)).toBe(true)
        expect(processed()).toBe(false)
        yield* reader.complete
        expect(yield* Fiber.join(waitingProcessed)).toBe(true)
      }))

    it.scopedLive("invalid addresses are typed errors", () =>
      Effect.gen(function*() {
        const { rings } = yield* open()
        for (const bad of [{ offset: 8200 }, { dataBytes: 100 }, { dataBytes: 32 }, { readerSlots: 0 }, { id: -1 }]) {
          expect(yield* Effect.flip(rings.reader(address(bad)))).toMatchObject({ _tag: "InvalidRingAddress" })
        }
      }))
  })

for (const [label, open] of ringLayers) contract(label, open)

describe("region-backed ring: corrupt bytes, placement and coherence", () => {
  const ring = address({ dataBytes: 512 })
  const data = ring.offset + 64 * (1 + ring.readerSlots)
  const openRegion = openRegionRings()

  it.scopedLive("a reader whose writer closed parks in awaitWriter until a new writer opens the ring, which wakes it", () =>
    Effect.gen(function*() {
      // Parks never end by themselves here: only a ring can wake the waiter.
      const name = yield* uniqueRegion("rings-reopen")
      const region = yield* CxlMemoryLayers.make({ name, size: 4 << 20, mode: "create" })
      const doorbell = yield* DoorbellLayers.make({ offset: 4096, parkMillis: 60_000 }).pipe(
        Effect.provideService(CxlMemory, region)
      )
      const rings = yield* RingsLayers.make.pipe(
        Effect.provideService(CxlMemory, region),
        Effect.provideService(Doorbell, doorbell)
      )
      const ring = address()
      const reader = yield* rings.reader(ring)
      yield* Effect.scoped(Effect.flatMap(rings.writer(ring), (writer) => writer.write(payload(0, 8))))
      expect((yield* reader.take()).count).toBe(1)
      expect(yield* Effect.flip(reader.take())).toMatchObject({ _tag: "RingClosed" })
      // Still the closed writer: nothing to wait for yet.
      expect(yield* reader.awaitWriter(20)).toBe(false)
      const waiting = yield* Effect.fork(reader.awaitWriter(60_000))
      // A window, not a wait: no writer opens the ring in it, so the wait must not end.
      yield* Effect.sleep("20 millis")
      expect(waiting.unsafePoll()).toBeNull()
      const second = yield* rings.writer(ring)
      // Only the opening writer's ring can end this wait before its 60 s bound.
      expect(yield* Fiber.join(waiting).pipe(Effect.timeout("5 seconds"))).toBe(true)
      yield* second.write(payload(1, 8))
      expect(frames(yield* reader.take())).toEqual([Array.from(payload(1, 8))])
    }))

  // A reader's claim (free → attaching) comes before it writes its pid: a process SIGKILLed in
  // between must not leave the slot attaching for good (on the broadcast ring, every later
  // occupant of that process slot would find it taken).
  it.scopedLive("a slot left mid-claim by a dead process is reclaimed; a live claimer's is not", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegion()
      const inspector = yield* rings.inspect(ring)
      const stateWord = (slot: number) => (ring.offset + 64 * (1 + slot)) / 4
      const pidWord = (slot: number) => (ring.offset + 64 * (1 + slot) + 8) / 4
      const dead = spawnSync("true").pid!
      // Killed right after its claim: the line still holds the previous owner's pid, alive.
      region!.u32[stateWord(1)] = dead * 4 + 1
      region!.i32[pidWord(1)] = process.pid
      expect(inspector.reader(1)).toMatchObject({ state: "attaching", pid: dead })
      const reader = yield* rings.reader(ring, { slot: 1 })
      expect(inspector.reader(1)).toMatchObject({ state: "attached", pid: process.pid, occurrence: reader.occurrence })
      // A claimer still alive (mid-claim) keeps its slot.
      region!.u32[stateWord(2)] = process.ppid * 4 + 1
      expect(yield* Effect.flip(rings.reader(ring, { slot: 2 }))).toMatchObject({ _tag: "NoFreeReaderSlot", slot: 2 })
      expect(yield* rings.reapDead(ring)).toEqual([])
      // A claim that names no pid at all (an older build's) and a dead claimer's are reaped.
      region!.u32[stateWord(0)] = 1
      region!.i32[pidWord(0)] = process.pid
      region!.u32[stateWord(2)] = dead * 4 + 1
      expect(yield* rings.reapDead(ring)).toEqual([0, 2])
      expect(inspector.readers().map((r) => r.state)).toEqual(["free", "attached", "free"])
    }))

  // A pid the kernel gave to a later process names another process: the start tag beside it differs.
  it.scopedLive("a reader or a writer whose pid now names a later process is gone: its slot is reaped, the ring opened by another", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegion()
      const inspector = yield* rings.inspect(ring)
      const readerStart = (slot: number) => (ring.offset + 64 * (1 + slot) + 52) / 4
      const writerStart = (ring.offset + 52) / 4
      expect(ownStartTag()).toBeGreaterThan(0)
      const live = yield* rings.reader(ring, { slot: 0 })
      const reused = yield* rings.reader(ring, { slot: 1 })
      expect(region!.u32[readerStart(1)]).toBe(ownStartTag())
      region!.u32[readerStart(1)] = ownStartTag() + 1
      expect(yield* rings.reapDead(ring)).toEqual([1])
      expect(inspector.reader(0)).toMatchObject({ state: "attached", occurrence: live.occurrence })
      expect(yield* Effect.flip(reused.take())).toMatchObject({ _tag: "ReaderReaped", slot: 1 })
      // The writer: busy while it is this process; opened by another once its start tag names a later one.
      yield* rings.writer(ring)
      expect(yield* Effect.flip(rings.writer(ring))).toMatchObject({ _tag: "RingWriterBusy", pid: process.pid })
      region!.u32[writerStart] = ownStartTag() + 1
      const next = yield* rings.writer(ring)
      expect(region!.u32[writerStart]).toBe(ownStartTag())
      yield* next.write(payload(1, 8))
      expect(frames(yield* live.take())).toEqual([Array.from(payload(1, 8))])
    }))

  it.scopedLive("a frame whose header does not belong to its position is RingCorrupt, after the good frames before it", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegion()
      const reader = yield* rings.reader(ring)
      const writer = yield* rings.writer(ring)
      yield* writer.writeAll([payload(0, 8), payload(1, 8)])
      region!.u32[(data + 16) / 4 + 1]! ^= 1
      expect(frames(yield* reader.take())).toEqual([Array.from(payload(0, 8))])
      expect(yield* Effect.flip(reader.take())).toMatchObject({ _tag: "RingCorrupt", ring: ring.id, position: 16 })
      expect(yield* Effect.flip(reader.take())).toMatchObject({ _tag: "RingCorrupt", position: 16 })
    }))

  it.scopedLive("a corrupt length is RingCorrupt whether it runs past the data area or past the leading sequence", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegion()
      const reader = yield* rings.reader(ring)
      const writer = yield* rings.writer(ring)
      yield* writer.write(payload(0, 8))
      for (
        const [length, reason] of [[0xfffffff0, "data area"], [505, "data area"], [400, "leading sequence"], [
          9,
          "leading sequence"
        ]] as const
      ) {
        region!.u32[data / 4] = length
        const error = yield* Effect.flip(reader.take())
        expect(error).toMatchObject({ _tag: "RingCorrupt", position: 0 })
        expect(error.message).toContain(reason)
      }
      region!.u32[data / 4] = 8
      expect(frames(yield* reader.take())).toEqual([Array.from(payload(0, 8))])
    }))

  it.scopedLive("a leading sequence that is not a position within one ring of the reader is RingCorrupt", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegion()
      const reader = yield* rings.reader(ring)
      const writer = yield* rings.writer(ring)
      yield* writer.write(payload(0, 8))
      for (const head of [NaN, 1e300, -16, 8 + 1024]) {
        region!.f64[(ring.offset + 8) / 8] = head
        Atomics.store(region!.u32, ring.offset / 4, head >>> 0)
        expect(yield* Effect.flip(reader.take())).toMatchObject({ _tag: "RingCorrupt" })
      }
    }))

  it.scopedLive("random garbage in the control line, reader lines and data area: typed errors only, never a read outside the data area", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegion()
      const r = region!
      const typed = new Set([
        "RingCorrupt",
        "RingClosed",
        "RingWriterDead",
        "ReaderReaped",
        "NoFreeReaderSlot",
        "RingWriterBusy",
        "RingFull"
      ])
      const garbage = fc.record({
        control: fc.uint8Array({ minLength: 64, maxLength: 64 }),
        /** Some runs keep a plausible leading sequence, so frame checks are reached. */
        head: fc.option(fc.integer({ min: 0, max: 600 }), { nil: undefined }),
        lines: fc.uint8Array({ minLength: 64 * 2, maxLength: 64 * 2 }),
        data: fc.uint8Array({ minLength: 512, maxLength: 512 }),
        firstLength: fc.option(fc.integer({ min: 0, max: 600 }), { nil: undefined })
      })
      const typedOrSuccess = (exit: Exit.Exit<void, unknown>) => {
        if (Exit.isSuccess(exit)) return
        const failure = exit.cause._tag === "Fail" ? (exit.cause.error as { _tag?: string }) : undefined
        expect(typed.has(failure?._tag ?? String(exit.cause))).toBe(true)
      }
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(garbage, ({ control, head, lines, data: bytes, firstLength }) =>
            Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              r.bytes.fill(0, ring.offset, data + ring.dataBytes)
              const reader = yield* rings.reader(ring, { slot: 0 })
              r.bytes.set(control, ring.offset)
              if (head !== undefined) {
                r.f64[(ring.offset + 8) / 8] = head
                Atomics.store(r.u32, ring.offset / 4, head)
              }
              r.bytes.set(bytes, data)
              if (firstLength !== undefined) {
                r.u32[data / 4] = firstLength
                r.u32[data / 4 + 1] = frameCheck(0)
              }
              typedOrSuccess(
                yield* Effect.exit(Effect.gen(function*() {
                  for (let i = 0; i < 3; i++) {
                    const batch = yield* reader.take(0)
                    for (let f = 0; f < batch.count; f++) {
                      expect(batch.offsets[f]!).toBeGreaterThanOrEqual(data)
                      expect(batch.offsets[f]! + batch.lengths[f]!).toBeLessThanOrEqual(data + ring.dataBytes)
                    }
                  }
                }))
              )
              // the other reader lines turn to garbage under a writer (their bells point nowhere valid)
              r.bytes.set(lines, ring.offset + 128)
              for (const slot of [1, 2]) {
                r.u32[(ring.offset + 64 * (1 + slot) + 12) / 4] = 0
              }
              typedOrSuccess(
                yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
                  const writer = yield* rings.writer(ring, { timeoutMs: 5 })
                  yield* writer.write(payload(0, 24))
                })))
              )
            })))),
          { numRuns: 200 }
        )
      )
    }))

  it.scopedLive("rings placed back to back by ringFootprint do not touch each other", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegion()
      const a = address({ id: 1, offset: 65536, dataBytes: 200, readerSlots: 1 })
      const b = address({ id: 2, offset: 65536 + ringFootprint(200, 1), dataBytes: 256, readerSlots: 2 })
      expect(ringFootprint(200, 1)).toBe(64 * 2 + 256)
      const before = Array.from(region!.bytes.subarray(b.offset, b.offset + ringFootprint(256, 2)))
      const readerA = yield* rings.reader(a)
      const writerA = yield* rings.writer(a)
      for (let n = 0; n < 50; n++) {
        yield* writerA.write(payload(n, 40))
        expect(frames(yield* readerA.take())).toEqual([Array.from(payload(n, 40))])
      }
      expect(Array.from(region!.bytes.subarray(b.offset, b.offset + ringFootprint(256, 2)))).toEqual(before)
      const readerB = yield* rings.reader(b)
      const writerB = yield* rings.writer(b)
      yield* writerB.write(payload(1, 8))
      expect(frames(yield* readerB.take())).toEqual([Array.from(payload(1, 8))])
      // 4 frames and 8 bytes of padding per 200-byte lap: 12 laps, then 2 frames
      expect((yield* rings.inspect(a)).writer().sequence).toBe(12 * 200 + 2 * 48)
    }))

  it.scopedLive("a ring that does not fit in the region is InvalidRingAddress", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegion()
      const error = yield* Effect.flip(rings.writer(address({ offset: region!.size - 1024, dataBytes: 1024 })))
      expect(error).toMatchObject({ _tag: "InvalidRingAddress" })
    }))

  it.scopedLive("non-coherent: the frame bytes are written back before the commit word's line", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openRegionRings({ coherence: "non-coherent" })()
      const reader = yield* rings.reader(ring)
      const writer = yield* rings.writer(ring)
      region!.flushLog.start()
      yield* writer.write(payload(0, 40))
      const log = Array.from(region!.flushLog.take())
      region!.flushLog.stop()
      expect(log).toEqual([data, 48, ring.offset, 64])
      expect(frames(yield* reader.take())).toEqual([Array.from(payload(0, 40))])
    }))
})

describe("region-backed ring: progress observers", () => {
  /** Rings whose doorbell never spins and parks longer than any test: only a ring wakes it before a deadline. */
  const openQuietRings = Effect.gen(function*() {
    const name = yield* uniqueRegion("observer")
    const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
    const doorbell = yield* DoorbellLayers.make({ offset: 4096, spinMicros: 0, parkMillis: 600_000 }).pipe(
      Effect.provideService(CxlMemory, region)
    )
    const rings = yield* RingsLayers.make.pipe(
      Effect.provideService(CxlMemory, region),
      Effect.provideService(Doorbell, doorbell)
    )
    return { rings, doorbell, region }
  })
  /** Longer than the test timeout: a wait that is not rung fails the test. */
  const UNRUNG_MS = 600_000

  it.scopedLive("a reader crossing the target rings the observer, which holds the ring's last slot only while it waits", () =>
    Effect.gen(function*() {
      const { rings } = yield* openQuietRings
      const ring = address()
      const inspector = yield* rings.inspect(ring)
      const reader = yield* rings.reader(ring)
      const writer = yield* rings.writer(ring)
      yield* writer.write(payload(0, 40))
      const target = yield* writer.write(payload(1, 40))
      const passed = () => inspector.reader(reader.slot).delivered >= target
      const waiting = yield* Effect.fork(rings.awaitProgress(ring, target, passed, UNRUNG_MS))
      while (inspector.reader(ring.readerSlots - 1).state !== "observing") yield* Effect.sleep("1 millis")
      expect(inspector.readers().map((r) => r.state)).toEqual(["attached", "free", "observing"])
      // Frames are there already: the reader publishes without waiting, so only its ring can wake us.
      expect((yield* reader.take()).count).toBe(2)
      expect(yield* Fiber.join(waiting)).toBe(true)
      expect(inspector.reader(ring.readerSlots - 1).state).toBe("free")
    }))

  it.scopedLive("several waits share the line (the lowest target first); one the readers never reach stays waiting", () =>
    Effect.gen(function*() {
      const { rings } = yield* openQuietRings
      const ring = address()
      const inspector = yield* rings.inspect(ring)
      const reader = yield* rings.reader(ring)
      const writer = yield* rings.writer(ring)
      const first = yield* writer.write(payload(0, 40))
      const second = yield* writer.write(payload(1, 40))
      const processedPast = (target: number) => () => inspector.reader(reader.slot).processed >= target
      const beyond = yield* Effect.fork(rings.awaitProgress(ring, second + 8, processedPast(second + 8), UNRUNG_MS))
      const waitFirst = yield* Effect.fork(rings.awaitProgress(ring, first, processedPast(first), UNRUNG_MS))
      const waitSecond = yield* Effect.fork(rings.awaitProgress(ring, second, processedPast(second), UNRUNG_MS))
      while (inspector.reader(ring.readerSlots - 1).state !== "observing") yield* Effect.sleep("1 millis")
      yield* reader.take()
      yield* reader.complete
      expect(yield* Fiber.join(waitFirst)).toBe(true)
      expect(yield* Fiber.join(waitSecond)).toBe(true)
      expect(Option.isNone(yield* Fiber.poll(beyond))).toBe(true)
      expect(inspector.reader(ring.readerSlots - 1).state).toBe("observing")
      yield* Fiber.interrupt(beyond)
      expect(inspector.reader(ring.readerSlots - 1).state).toBe("free")
    }))

  it.scopedLive("with no observer line to spare (last slot a reader's, or the only free one) the wait re-checks on its own", () =>
    Effect.gen(function*() {
      const { rings } = yield* openQuietRings
      const ring = address()
      const inspector = yield* rings.inspect(ring)
      const readers = [yield* rings.reader(ring), yield* rings.reader(ring)]
      const writer = yield* rings.writer(ring)
      const target = yield* writer.write(payload(0, 40))
      const passed = () => inspector.reader(0).delivered >= target
      const waiting = yield* Effect.fork(rings.awaitProgress(ring, target, passed, UNRUNG_MS))
      // A window, not a wait: with no line to spare, the wait must not take the last slot in it.
      yield* Effect.sleep("5 millis")
      expect(inspector.reader(ring.readerSlots - 1).state).toBe("free")
      const last = yield* rings.reader(ring)
      expect(last.slot).toBe(ring.readerSlots - 1)
      yield* readers[0]!.take()
      expect(yield* Fiber.join(waiting)).toBe(true)
    }))

  it.scopedLive("commit(wake) rings only the named reader slots, and readers over half a ring behind; wake rings the others later", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("wake")
      const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
      // One Rings per would-be process, each with its own quiet doorbell.
      const processRings = (bell: number) =>
        Effect.gen(function*() {
          const doorbell = yield* DoorbellLayers.make({ offset: bell, spinMicros: 0, parkMillis: 600_000 }).pipe(
            Effect.provideService(CxlMemory, region)
          )
          return yield* RingsLayers.make.pipe(
            Effect.provideService(CxlMemory, region),
            Effect.provideService(Doorbell, doorbell)
          )
        })
      const ring = address()
      const [a, b, w] = [yield* processRings(4096), yield* processRings(4160), yield* processRings(4224)]
      const readerA = yield* a.reader(ring)
      const readerB = yield* b.reader(ring)
      const writer = yield* w.writer(ring)
      const takeA = yield* Effect.fork(readerA.take(UNRUNG_MS))
      const takeB = yield* Effect.fork(readerB.take(UNRUNG_MS))
      const parked = (bell: number) => Atomics.load(region.i32, bell / 4 + 1) === 1
      while (!parked(4096) || !parked(4160)) yield* Effect.sleep("1 millis")
      const bellB = Atomics.load(region.i32, 4160 / 4)
      writer.tryReserve(40)
      writer.commit([readerA.slot])
      expect((yield* Fiber.join(takeA)).count).toBe(1)
      expect(Atomics.load(region.i32, 4160 / 4)).toBe(bellB)
      expect(Option.isNone(yield* Fiber.poll(takeB))).toBe(true)
      writer.wake([readerB.slot])
      expect((yield* Fiber.join(takeB)).count).toBe(1)
      // Past half a ring behind, B is rung even though the commit names only A.
      const takeB2 = yield* Effect.fork(readerB.take(UNRUNG_MS))
      while (!parked(4160)) yield* Effect.sleep("1 millis")
      const frames = Math.ceil(ring.dataBytes / 2 / 48)
      for (let n = 0; n < frames; n++) writer.tryReserve(40)
      const bellB2 = Atomics.load(region.i32, 4160 / 4)
      writer.commit([readerA.slot])
      // Rung by this commit (its bell's wake count moved), not found at its next liveness check.
      expect(Atomics.load(region.i32, 4160 / 4)).toBe(bellB2 + 1)
      expect((yield* Fiber.join(takeB2)).count).toBe(frames)
    }))

  it.scopedLive("a dead observer's line is taken over; reapDead frees it", () =>
    Effect.gen(function*() {
      const { rings, region } = yield* openQuietRings
      const ring = address()
      const inspector = yield* rings.inspect(ring)
      const observerLine = ring.offset + 64 * ring.readerSlots
      // A line as a killed observer leaves it: observing, its pid gone, its target never reached.
      region.u32[observerLine / 4] = 3
      region.i32[(observerLine + 8) / 4] = 2 ** 31 - 1
      expect(inspector.reader(ring.readerSlots - 1)).toMatchObject({ state: "observing", pid: 2 ** 31 - 1 })
      expect(yield* rings.reapDead(ring)).toEqual([ring.readerSlots - 1])
      region.u32[observerLine / 4] = 3
      const reader = yield* rings.reader(ring)
      const writer = yield* rings.writer(ring)
      const target = yield* writer.write(payload(0, 40))
      const waiting = yield* Effect.fork(
        rings.awaitProgress(ring, target, () => inspector.reader(reader.slot).delivered >= target, UNRUNG_MS)
      )
      while (inspector.reader(ring.readerSlots - 1).pid !== process.pid) yield* Effect.sleep("1 millis")
      yield* reader.take()
      expect(yield* Fiber.join(waiting)).toBe(true)
    }))
})
