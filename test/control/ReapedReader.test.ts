/**
 * A reader whose slot was freed under it (the coordinator frees a stopped process's reply-ring
 * slot) is a stranger to that slot from then on: it never writes to the line, which may be a
 * successor's; a reap in the middle of its scan is `ReaderReaped`, not `RingCorrupt`; and a frame
 * the writer overwrote once the slot no longer held it back is never handed on.
 *
 * "Meanwhile" is made exact: the ring lives in a region whose `invalidate` (which the reader calls
 * at known points of a read) runs, once, what another process would have done at that instant.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, Stream } from "effect"
import { lines } from "../../src/layers/control/RingLines.js"
import { reapSlot } from "../../src/layers/control/RingReap.js"
import { ringsOver } from "../../src/layers/control/RingRegion.js"
import { privateRegion } from "../../src/layers/region/CxlMemoryMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { SUPERBLOCK_BYTES } from "../../src/layers/region/Superblock.js"
import { type RingAddress, ringFootprint, type RingReader, type RingWriter } from "../../src/services/control/Rings.js"
import { CxlMemory, type CxlMemoryShape } from "../../src/services/region/CxlMemory.js"
import { DOORBELL_BYTES } from "../../src/services/region/Doorbell.js"

const RING_AT = SUPERBLOCK_BYTES + DOORBELL_BYTES
const ring: RingAddress = { id: 9, offset: RING_AT, dataBytes: 256, readerSlots: 3 }
const l = lines(ring)
const readerLine = (slot: number) => l.line(slot)
const observerLine = readerLine(ring.readerSlots - 1)

/** Payload `n`: 24 bytes derived from n (a 32-byte frame), so an overwritten frame shows. */
const payload = (n: number) => Uint8Array.from({ length: 24 }, (_, i) => (n * 31 + i * 7) & 0xff)
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

/** Rings over one private region whose `invalidate` runs `meanwhile` (once) when it names `at`. */
const harness = (coherence: "coherent" | "non-coherent") =>
  Effect.gen(function*() {
    const doorbell = yield* DoorbellLayers.make({ offset: SUPERBLOCK_BYTES, spinMicros: 0 }).pipe(
      Effect.provideService(CxlMemory, privateRegion(2 * 4096)),
      Effect.orDie
    )
    const base = privateRegion(Math.ceil((RING_AT + ringFootprint(ring.dataBytes, ring.readerSlots)) / 4096) * 4096)
    let pending: { readonly at: number; readonly run: () => void } | undefined
    const region: CxlMemoryShape = {
      ...base,
      coherence,
      publish: () => {},
      invalidate: (offset) => {
        if (pending === undefined || pending.at !== offset) return
        const { run } = pending
        pending = undefined
        run()
      }
    }
    const rings = ringsOver(() => Effect.succeed({ region, doorbell, lines: l }))
    const scope = yield* Effect.scope
    return {
      region,
      rings,
      meanwhile: (at: number, run: () => void) => {
        pending = { at, run }
      },
      fired: () => pending === undefined,
      /** What the coordinator does to a stopped process's reply slot, synchronously. */
      reap: (slot: number) => expect(reapSlot(region, doorbell, l, slot, false)).toBe(true),
      /** Another reader attaching to `slot`, synchronously (in this test's scope). */
      attach: (slot: number) => Effect.runSync(Scope.extend(rings.reader(ring, { slot }), scope))
    }
  })

/** Writes payloads `from`.. until the data area is full again: every byte of it is overwritten. */
const overwriteAll = (writer: RingWriter, from: number) => {
  for (let n = from; n < from + ring.dataBytes / 32; n++) {
    const at = writer.tryReserve(24)
    expect(at).toBeGreaterThanOrEqual(0)
    writer.bytes.set(payload(n), at)
  }
  writer.commit()
}

describe("a reaped reader", () => {
  it.scopedLive("never writes to its slot once reaped and taken: the successor's counters, waiting flag and attachment stay its own", () =>
    Effect.gen(function*() {
      const { region, rings, reap, attach } = yield* harness("coherent")
      const writer = yield* rings.writer(ring)
      const inspector = yield* rings.inspect(ring)
      const stale = yield* Scope.make()
      const a = yield* Scope.extend(rings.reader(ring, { slot: 0 }), stale)
      yield* writer.write(payload(0))
      expect((yield* a.take()).count).toBe(1) // a: delivered 32, processed 0 (published with its next read)
      yield* writer.write(payload(1))
      reap(0)
      const b = attach(0) // at the head: 64
      expect(b.occurrence).toBe(a.occurrence + 1)
      yield* a.complete // would publish a's processed (32)
      expect(inspector.reader(0)).toMatchObject({
        state: "attached",
        occurrence: b.occurrence,
        delivered: 64,
        processed: 64
      })
      expect(yield* Effect.flip(a.take())).toMatchObject({ _tag: "ReaderReaped", slot: 0, occurrence: a.occurrence })
      // b waits for frames: its waiting flag stands while a waits for a writer and detaches.
      const waitingWord = (readerLine(0) + 48) / 4
      const flag = () => Atomics.load(region.u32, waitingWord) & 1
      const waiting = yield* Effect.fork(b.take())
      for (let turns = 0; turns < 1000 && flag() === 0; turns++) yield* Effect.yieldNow()
      expect(flag()).toBe(1)
      expect(yield* a.awaitWriter(1)).toBe(true)
      expect(flag()).toBe(1)
      yield* Scope.close(stale, Exit.void) // a detaches
      expect(flag()).toBe(1)
      expect(inspector.reader(0)).toMatchObject({
        state: "attached",
        occurrence: b.occurrence,
        delivered: 64,
        processed: 64
      })
      // A commit rings b (still waiting, still attached).
      yield* writer.write(payload(2))
      expect(Array.from((yield* Fiber.join(waiting)).frame(0))).toEqual(Array.from(payload(2)))
    }))

  it.scopedLive("reaped and its slot taken in the middle of a read: no heartbeat of its own lands on the successor's line", () =>
    Effect.gen(function*() {
      const { region, rings, meanwhile, fired, reap, attach } = yield* harness("coherent")
      const writer = yield* rings.writer(ring)
      const inspector = yield* rings.inspect(ring)
      const a = yield* rings.reader(ring, { slot: 0 })
      yield* writer.write(payload(0))
      let b: RingReader | undefined
      meanwhile(l.control, () => {
        reap(0)
        b = attach(0)
        region.f64[(readerLine(0) + 40) / 8] = 0 // a heartbeat only b could have left (a's would be the time)
      })
      expect(yield* Effect.flip(a.take())).toMatchObject({ _tag: "ReaderReaped", slot: 0, occurrence: a.occurrence })
      expect(fired()).toBe(true)
      expect(inspector.reader(0)).toMatchObject({ state: "attached", occurrence: b!.occurrence, heartbeatMs: 0 })
    }))

  it.scopedLive("reaped on a quiet ring between its ownership check and reading the head: its counters never land on the successor that starts where it stopped", () =>
    Effect.gen(function*() {
      const { rings, meanwhile, fired, reap, attach } = yield* harness("coherent")
      const writer = yield* rings.writer(ring)
      const inspector = yield* rings.inspect(ring)
      const a = yield* rings.reader(ring, { slot: 0 })
      yield* writer.write(payload(0))
      expect((yield* a.take()).count).toBe(1)
      yield* a.complete // a: delivered and processed 32, the head: the ring is quiet
      let b: RingReader | undefined
      // a checked the slot is its own; then it is reaped, b attaches at the head (32, where a's
      // counters stand), and a frame is written that a is about to read but b has not.
      meanwhile(l.control, () => {
        reap(0)
        b = attach(0)
        const at = writer.tryReserve(24)
        writer.bytes.set(payload(1), at)
        writer.commit()
      })
      expect(yield* Effect.flip(a.take())).toMatchObject({ _tag: "ReaderReaped", slot: 0, occurrence: a.occurrence })
      expect(fired()).toBe(true)
      expect(inspector.reader(0)).toMatchObject({
        state: "attached",
        occurrence: b!.occurrence,
        delivered: 32,
        processed: 32
      })
      // b still gets the frame, and only then has delivered it.
      expect(Array.from((yield* b!.take()).frame(0))).toEqual(Array.from(payload(1)))
      expect(inspector.reader(0)).toMatchObject({ delivered: 64, processed: 32 })
    }))

  it.scopedLive("reaped between its ownership check and reading the head: ReaderReaped, not RingCorrupt", () =>
    Effect.gen(function*() {
      const { rings, meanwhile, reap } = yield* harness("coherent")
      const writer = yield* rings.writer(ring)
      const reader = yield* rings.reader(ring, { slot: 0 })
      yield* writer.write(payload(0))
      // Freed, the writer runs more than a ring ahead of the reader's position.
      meanwhile(l.control, () => {
        reap(0)
        overwriteAll(writer, 100)
      })
      expect(yield* Effect.flip(reader.take())).toMatchObject({
        _tag: "ReaderReaped",
        slot: 0,
        occurrence: reader.occurrence
      })
    }))

  it.scopedLive("reaped between reading the head and reading the frames (non-coherent): ReaderReaped, not RingCorrupt", () =>
    Effect.gen(function*() {
      const { rings, meanwhile, reap } = yield* harness("non-coherent")
      const writer = yield* rings.writer(ring)
      const reader = yield* rings.reader(ring, { slot: 0 })
      yield* writer.writeAll([payload(0), payload(1)])
      // The frame headers the reader then reads belong to later positions.
      meanwhile(l.data, () => {
        reap(0)
        overwriteAll(writer, 100)
      })
      expect(yield* Effect.flip(reader.take())).toMatchObject({
        _tag: "ReaderReaped",
        slot: 0,
        occurrence: reader.occurrence
      })
    }))

  describe("a frame overwritten after the reap is never handed on", () => {
    /**
     * Three frames, read by `read`; the reader is reaped as it publishes its first `delivered`
     * (it reads the observer line then) and the writer overwrites the whole data area.
     */
    const overwrittenWhileHandedOn = (
      read: (reader: RingReader, seen: Array<Uint8Array>) => Effect.Effect<unknown, unknown>
    ) =>
      Effect.gen(function*() {
        const { rings, meanwhile, fired, reap } = yield* harness("coherent")
        const writer = yield* rings.writer(ring)
        const reader = yield* rings.reader(ring, { slot: 0 })
        yield* writer.writeAll([payload(0), payload(1), payload(2)])
        meanwhile(observerLine, () => {
          reap(0)
          overwriteAll(writer, 100)
        })
        const seen: Array<Uint8Array> = []
        const error = yield* Effect.flip(read(reader, seen))
        expect(fired()).toBe(true)
        expect(error).toMatchObject({ _tag: "ReaderReaped", slot: 0, occurrence: reader.occurrence })
        // Whatever was handed on is the writer's frame for that position.
        seen.forEach((frame, n) => expect(sameBytes(frame, payload(n))).toBe(true))
      })

    it.scopedLive("consume", () =>
      overwrittenWhileHandedOn((reader, seen) =>
        reader.consume((frame) => Effect.sync(() => seen.push(frame.slice())))
      ))

    it.scopedLive("consumeSync", () =>
      overwrittenWhileHandedOn((reader, seen) => reader.consumeSync((frame) => void seen.push(frame.slice()))))

    it.scopedLive("take", () =>
      overwrittenWhileHandedOn((reader, seen) =>
        Effect.map(reader.take(), (batch) => {
          for (let i = 0; i < batch.count; i++) seen.push(batch.frame(i).slice())
        })
      ))

    it.scopedLive("stream (copies)", () =>
      overwrittenWhileHandedOn((reader, seen) =>
        Stream.runForEach(reader.stream, (frame) => Effect.sync(() => seen.push(frame.bytes)))
      ))
  })
})
