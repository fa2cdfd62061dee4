/**
 * The Rings service over rings placed in region bytes, wiring the ring engine: its lines and
 * their views (RingLines), the writer (RingWriterCore) and reader (RingReaderCore) cores,
 * inspection and reaping (RingReap), progress watches (RingProgressWatch). The live layer
 * places rings in the process's region (Rings.ts), the fake each in a private in-process one
 * (RingsMemory.ts).
 */
import { Effect, Metric } from "effect"
import { ringReadersReaped } from "../../Metrics.js"
import { InvalidRingAddress, type RingAddress, type RingsShape } from "../../services/control/Rings.js"
import { makeReader, makeWriter } from "./RingEndpoints.js"
import { validateFraction } from "./RingFrames.js"
import type { PlacedRing } from "./RingLines.js"
import { awaitProgressOf, type ProgressWatch } from "./RingProgressWatch.js"
import { openReader } from "./RingReaderCore.js"
import { inspector, reapDeadSlots, reapSlot } from "./RingReap.js"
import { openWriter } from "./RingWriterCore.js"

const DEFAULT_MAX_FRAME_FRACTION = 0.25
const DEFAULT_WRITE_TIMEOUT_MS = 10_000

const countReaped = (slots: number) => Metric.incrementBy(ringReadersReaped, slots)

const validateSlot = (address: RingAddress, slot: number) =>
  Number.isInteger(slot) && slot >= 0 && slot < address.readerSlots
    ? Effect.void
    : Effect.fail(new InvalidRingAddress({ ring: address.id, reason: `no reader slot ${slot}` }))

/**
 * The Rings service over rings that `place` validates and puts in region bytes: the live layer
 * places every ring in the process's region, the fake each in a private region of its own.
 */
export const ringsOver = (
  place: (address: RingAddress) => Effect.Effect<PlacedRing, InvalidRingAddress>
): RingsShape => {
  /** This process's progress watches, by ring offset. */
  const watches = new Map<number, ProgressWatch>()
  return {
    writer: (address, options) =>
      Effect.gen(function*() {
        const { region, doorbell, lines: l } = yield* place(address)
        const maxFrameBytes = yield* validateFraction(address, options?.maxFrameFraction ?? DEFAULT_MAX_FRAME_FRACTION)
        const core = yield* Effect.acquireRelease(
          openWriter(region, doorbell, l, maxFrameBytes, countReaped, {
            takeOver: options?.takeOver === true,
            freeStalledReaderAfterMs: options?.freeStalledReaderAfterMs
          }),
          (core) => Effect.sync(core.close)
        )
        return makeWriter(core, options?.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS)
      }),
    reader: (address, options) =>
      Effect.gen(function*() {
        const { region, doorbell, lines: l } = yield* place(address)
        const core = yield* Effect.acquireRelease(
          openReader(region, doorbell, l, options?.slot, options?.spinMicros ?? 0),
          (core) => Effect.sync(core.detach)
        )
        return makeReader(core)
      }),
    inspect: (address) => Effect.map(place(address), (placed) => inspector(placed.region, placed.lines)),
    awaitProgress: (address, target, reached, timeoutMs) =>
      Effect.flatMap(place(address), (placed) => awaitProgressOf(placed, watches, target, reached, timeoutMs)),
    reap: (address, slot, occurrence) =>
      Effect.gen(function*() {
        const { region, doorbell, lines: l } = yield* place(address)
        yield* validateSlot(address, slot)
        const reaped = reapSlot(region, doorbell, l, slot, false, occurrence)
        if (reaped) yield* countReaped(1)
        return reaped
      }),
    reapDead: (address) =>
      Effect.gen(function*() {
        const { region, doorbell, lines: l } = yield* place(address)
        const reaped = reapDeadSlots(region, doorbell, l)
        yield* countReaped(reaped.length)
        return reaped
      })
  }
}
