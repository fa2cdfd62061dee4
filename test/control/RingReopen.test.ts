/**
 * A reader waiting for a ring's next writer (`awaitWriter`) sees a writer that opened, wrote and
 * closed before it looked, and one that opened while it looked: the frames are read, not left
 * behind a close or a death that looks like the last.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect, Either, Fiber, Scope } from "effect"
import { spawnSync } from "node:child_process"
import { ControlLineView, lines, ringLineViews } from "../../src/layers/control/RingLines.js"
import { ringsOver } from "../../src/layers/control/RingRegion.js"
import * as RingsMemory from "../../src/layers/control/RingsMemory.js"
import { privateRegion } from "../../src/layers/region/CxlMemoryMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { SUPERBLOCK_BYTES } from "../../src/layers/region/Superblock.js"
import {
  type RingAddress,
  ringFootprint,
  type RingReader,
  Rings,
  type RingWriter
} from "../../src/services/control/Rings.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { DOORBELL_BYTES } from "../../src/services/region/Doorbell.js"

const ring = { id: 7, offset: 0, dataBytes: 4096, readerSlots: 2 }

describe("Rings: a writer that came and went while the reader looked elsewhere", () => {
  it.scopedLive("awaitWriter is true for a later writer closed already, and its frames are read", () =>
    Effect.gen(function*() {
      const rings = yield* Rings
      const reader = yield* rings.reader(ring)
      yield* Effect.scoped(Effect.flatMap(rings.writer(ring), (w) => w.write(new Uint8Array([1]))))
      expect((yield* reader.take(1_000)).frame(0)).toEqual(new Uint8Array([1]))
      expect((yield* Effect.flip(reader.take(1_000)))._tag).toBe("RingClosed")
      yield* Effect.scoped(Effect.flatMap(rings.writer(ring), (w) => w.write(new Uint8Array([2]))))
      expect(yield* reader.awaitWriter(10_000)).toBe(true)
      expect((yield* reader.take(1_000)).frame(0)).toEqual(new Uint8Array([2]))
    }).pipe(Effect.provide(RingsMemory.layerMemory)))
})

/**
 * A writer opening while its ring's reader looks. The reader records which writer ended (closed
 * or died) and then waits for a later one: it must never record the writer that is opening, or
 * that writer's frames go unread for as long as the wait's bound (the coordinator's requests of a
 * process that took a slot over: every join of it unanswered). Each case runs the opening at the
 * point between two of the reader's loads, through the line view both sides use.
 */
const RING_AT = SUPERBLOCK_BYTES + DOORBELL_BYTES
const raced: RingAddress = { id: 8, offset: RING_AT, dataBytes: 4096, readerSlots: 2 }
const racedLines = lines(raced)

/** Rings over one private region, with its control line at hand. */
const racedRings = Effect.gen(function*() {
  const doorbell = yield* DoorbellLayers.make({ offset: SUPERBLOCK_BYTES, spinMicros: 0 }).pipe(
    Effect.provideService(CxlMemory, privateRegion(2 * 4096)),
    Effect.orDie
  )
  const region = privateRegion(Math.ceil((RING_AT + ringFootprint(raced.dataBytes, raced.readerSlots)) / 4096) * 4096)
  const rings = ringsOver(() => Effect.succeed({ region, doorbell, lines: racedLines }))
  const scope = yield* Effect.scope
  return {
    rings,
    control: ringLineViews(region).control,
    /** A writer opened synchronously (in this test's scope), as another process would. */
    openWriter: () => Effect.runSync(Scope.extend(rings.writer(raced), scope))
  }
})

/** The next frame as a reader that reads for good takes it: after an end, it waits for the next writer (bounded). */
const nextFrame = (reader: RingReader) =>
  Effect.gen(function*() {
    for (;;) {
      const taken = yield* Effect.either(reader.take(2_000))
      if (Either.isRight(taken)) {
        if (taken.right.count > 0) return Array.from(taken.right.frame(0))
        return yield* Effect.die(new Error("no frame within 2 s"))
      }
      const ended = taken.left._tag
      if (ended !== "RingClosed" && ended !== "RingWriterDead") return yield* Effect.die(taken.left)
      if (!(yield* reader.awaitWriter(2_000))) {
        return yield* Effect.die(new Error(`after ${ended}, the writer that opened meanwhile was not seen within 2 s`))
      }
    }
  })

/** Runs `meanwhile` once, right after the next call of the control line view's `method` returns its value. */
const afterNextCall = (method: "closed" | "writer", meanwhile: () => void) => {
  const original = ControlLineView.prototype[method] as (this: ControlLineView, at: number) => unknown
  const spy = vi.spyOn(ControlLineView.prototype, method).mockImplementation(function(this: ControlLineView, at) {
    const value = original.call(this, at)
    spy.mockRestore()
    meanwhile()
    return value as never
  })
  return Effect.addFinalizer(() => Effect.sync(() => spy.mockRestore()))
}

describe("Rings: a writer that opens while the reader looks", () => {
  it.scopedLive("an opening writer never shows its occurrence beside the last writer's close", () =>
    Effect.gen(function*() {
      const { control, openWriter, rings } = yield* racedRings
      yield* Effect.scoped(rings.writer(raced))
      expect(control.closed(racedLines.control)).toBe(true)
      const seen: Array<{ occurrence: number; closed: boolean }> = []
      const original = ControlLineView.prototype.storeOccurrence
      const spy = vi.spyOn(ControlLineView.prototype, "storeOccurrence").mockImplementation(
        function(this: ControlLineView, at, v) {
          original.call(this, at, v)
          seen.push({ occurrence: v, closed: this.closed(at) })
        }
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => spy.mockRestore()))
      const writer = openWriter()
      spy.mockRestore()
      expect(seen).toEqual([{ occurrence: writer.occurrence, closed: false }])
    }))

  it.scopedLive("a writer that opens between the reader's reads of the occurrence and of the close is read", () =>
    Effect.gen(function*() {
      const { openWriter, rings } = yield* racedRings
      const reader = yield* rings.reader(raced)
      yield* Effect.scoped(Effect.flatMap(rings.writer(raced), (w) => w.write(new Uint8Array([1]))))
      expect(yield* nextFrame(reader)).toEqual([1])
      let second: RingWriter | undefined
      yield* afterNextCall("closed", () => (second = openWriter()))
      expect((yield* Effect.flip(reader.take(1_000)))._tag).toBe("RingClosed")
      expect(second, "the writer opened during the reader's look").toBeDefined()
      // As a reader that reads for good goes on after a close (RpcReadForever.ts): it waits for the next writer.
      expect(yield* reader.awaitWriter(2_000)).toBe(true)
      yield* second!.write(new Uint8Array([2]))
      expect(yield* nextFrame(reader)).toEqual([2])
    }))

  it.scopedLive("a writer that takes a dead one's place while the reader checks its liveness is read", () =>
    Effect.gen(function*() {
      const { control, openWriter, rings } = yield* racedRings
      const reader = yield* rings.reader(raced)
      // The first writer dies holding the ring: its line names a process that is gone, not closed.
      yield* rings.writer(raced)
      const gone = spawnSync(process.execPath, ["-e", ""]).pid!
      expect(control.swapWriter(racedLines.control, control.writer(racedLines.control), gone, 1)).toBe(true)
      let second: RingWriter | undefined
      // The reader's wait runs out with nothing written: it checks the writer's liveness.
      yield* afterNextCall("writer", () => (second = openWriter()))
      expect((yield* reader.take(50)).count).toBe(0)
      expect(second, "the writer opened during the liveness check").toBeDefined()
      // Looked at again before the new writer writes: it is not the dead one.
      expect(yield* Effect.either(reader.take(50))).toMatchObject({ _tag: "Right", right: { count: 0 } })
      yield* second!.write(new Uint8Array([3]))
      expect(yield* nextFrame(reader)).toEqual([3])
    }))
})

describe("Rings: a reader waiting for the next writer", () => {
  it.scopedLive("goes on when frames are committed past it, even by the writer it took for dead", () =>
    Effect.gen(function*() {
      const { control, rings } = yield* racedRings
      const reader = yield* rings.reader(raced)
      const writer = yield* rings.writer(raced)
      const at = racedLines.control
      const live = control.writer(at)
      // Its line names a process that is gone: the reader reports the writer dead.
      const gone = spawnSync(process.execPath, ["-e", ""]).pid!
      expect(control.swapWriter(at, live, gone, 1)).toBe(true)
      let ended = yield* Effect.either(reader.take(50))
      for (let looks = 0; Either.isRight(ended) && looks < 100; looks++) ended = yield* Effect.either(reader.take(50))
      expect(ended).toMatchObject({ _tag: "Left", left: { _tag: "RingWriterDead" } })
      // It was not: the line names it again and it writes on.
      expect(control.swapWriter(at, control.writer(at), live.pid, live.start)).toBe(true)
      const waiting = yield* Effect.fork(reader.awaitWriter(10_000))
      yield* writer.write(new Uint8Array([4]))
      expect(yield* Fiber.join(waiting)).toBe(true)
      expect(Array.from((yield* reader.take(1_000)).frame(0))).toEqual([4])
    }))
})
