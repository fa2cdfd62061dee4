/**
 * A reader waiting for a ring's next writer (`awaitWriter`) sees a writer that opened, wrote and
 * closed before it looked: the frames are read, not left behind a close that looks like the last.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as RingsMemory from "../../src/layers/control/RingsMemory.js"
import { Rings } from "../../src/services/control/Rings.js"

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
