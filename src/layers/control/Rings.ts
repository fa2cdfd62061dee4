/**
 * Layers for Rings: `layer` places rings in the region (CxlMemory) and waits on the
 * process's Doorbell; `layerMemory` is the same contract over in-process queues.
 */
import { Effect, Layer, Metric } from "effect"
import { ringReadersReaped } from "../../Metrics.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { InvalidRingAddress, type RingAddress, ringFootprint, Rings, type RingsShape } from "../../services/control/Rings.js"
import { makeReader, makeWriter } from "./RingEndpoints.js"
import { validateAddress, validateFraction } from "./RingFrames.js"
import {
  awaitMemoryProgress,
  memoryInspector,
  memoryRing,
  type MemoryRing,
  openMemoryReader,
  openMemoryWriter,
  reapMemorySlot
} from "./RingMemory.js"
import { inspector, lines, openReader, openWriter, type ProgressWatch, progressWatch, reapDeadSlots, reapSlot } from "./RingRegion.js"

const DEFAULT_MAX_FRAME_FRACTION = 0.25
const DEFAULT_WRITE_TIMEOUT_MS = 10_000
/** How often `awaitProgress` re-checks when the ring has no observer line to spare. */
const PROGRESS_POLL_MS = 1

const countReaped = (slots: number) => Metric.incrementBy(ringReadersReaped, slots)

const validateSlot = (address: RingAddress, slot: number) =>
  Number.isInteger(slot) && slot >= 0 && slot < address.readerSlots
    ? Effect.void
    : Effect.fail(new InvalidRingAddress({ ring: address.id, reason: `no reader slot ${slot}` }))

/** Rings in the region: needs the region and this process's doorbell. */
export const make: Effect.Effect<RingsShape, never, CxlMemory | Doorbell> = Effect.gen(function*() {
  const region = yield* CxlMemory
  const doorbell = yield* Doorbell
  /** This process's progress watches, by ring offset. */
  const watches = new Map<number, ProgressWatch>()
  const locate = (address: RingAddress) =>
    validateAddress(address).pipe(
      Effect.zipRight(region.check(address.offset, ringFootprint(address.dataBytes, address.readerSlots))),
      Effect.mapError((e) =>
        e._tag === "RegionOutOfBounds"
          ? new InvalidRingAddress({ ring: address.id, reason: `ring does not fit in the ${region.size}-byte region at offset ${address.offset}` })
          : e
      ),
      Effect.as(lines(address))
    )
  return {
    writer: (address, options) =>
      Effect.gen(function*() {
        const l = yield* locate(address)
        const maxFrameBytes = yield* validateFraction(address, options?.maxFrameFraction ?? DEFAULT_MAX_FRAME_FRACTION)
        const core = yield* Effect.acquireRelease(
          openWriter(region, doorbell, l, maxFrameBytes, countReaped),
          (core) => Effect.sync(core.close)
        )
        return makeWriter(core, options?.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS)
      }),
    reader: (address, options) =>
      Effect.gen(function*() {
        const l = yield* locate(address)
        const core = yield* Effect.acquireRelease(openReader(region, doorbell, l, options?.slot), (core) => Effect.sync(core.detach))
        return makeReader(core)
      }),
    inspect: (address) => Effect.map(locate(address), (l) => inspector(region, l)),
    awaitProgress: (address, target, reached, timeoutMs) =>
      Effect.flatMap(locate(address), (l) =>
        Effect.suspend(() => {
          if (reached()) return Effect.succeed(true)
          let watch = watches.get(address.offset)
          if (watch === undefined) {
            watch = progressWatch(region, doorbell, l)
            watches.set(address.offset, watch)
          }
          const rung = watch.add(target)
          const deadline = performance.now() + timeoutMs
          const poll: Effect.Effect<boolean> = Effect.suspend(() => {
            const left = deadline - performance.now()
            return doorbell.await(reached, Math.min(left, PROGRESS_POLL_MS)).pipe(
              Effect.flatMap((ok) => (ok || left <= PROGRESS_POLL_MS ? Effect.succeed(ok) : poll))
            )
          })
          return (rung ? doorbell.await(reached, timeoutMs) : poll).pipe(Effect.ensuring(Effect.sync(() => watch.remove(target))))
        })),
    reap: (address, slot) =>
      Effect.gen(function*() {
        const l = yield* locate(address)
        yield* validateSlot(address, slot)
        const reaped = reapSlot(region, doorbell, l, slot, false)
        if (reaped) yield* countReaped(1)
        return reaped
      }),
    reapDead: (address) =>
      Effect.gen(function*() {
        const reaped = reapDeadSlots(region, doorbell, yield* locate(address))
        yield* countReaped(reaped.length)
        return reaped
      })
  }
})

export const layer: Layer.Layer<Rings, never, CxlMemory | Doorbell> = Layer.effect(Rings, make)

/** Rings over in-process queues; rings are shared by offset within one instance. */
export const makeMemory: Effect.Effect<RingsShape> = Effect.sync(() => {
  const rings = new Map<number, MemoryRing>()
  const locate = (address: RingAddress) =>
    Effect.flatMap(validateAddress(address), () => {
      const existing = rings.get(address.offset)
      if (existing === undefined) {
        const ring = memoryRing(address)
        rings.set(address.offset, ring)
        return Effect.succeed(ring)
      }
      const same = existing.address.id === address.id && existing.address.dataBytes === address.dataBytes &&
        existing.address.readerSlots === address.readerSlots
      return same
        ? Effect.succeed(existing)
        : Effect.fail(new InvalidRingAddress({ ring: address.id, reason: `offset ${address.offset} holds a ring of another shape` }))
    })
  const shape: RingsShape = {
    writer: (address, options) =>
      Effect.gen(function*() {
        const ring = yield* locate(address)
        const maxFrameBytes = yield* validateFraction(address, options?.maxFrameFraction ?? DEFAULT_MAX_FRAME_FRACTION)
        const core = yield* Effect.acquireRelease(openMemoryWriter(ring, maxFrameBytes), (core) => Effect.sync(core.close))
        return makeWriter(core, options?.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS)
      }),
    reader: (address, options) =>
      Effect.gen(function*() {
        const ring = yield* locate(address)
        const core = yield* Effect.acquireRelease(openMemoryReader(ring, options?.slot), (core) => Effect.sync(core.detach))
        return makeReader(core)
      }),
    inspect: (address) => Effect.map(locate(address), memoryInspector),
    awaitProgress: (address, _target, reached, timeoutMs) => Effect.flatMap(locate(address), (ring) => awaitMemoryProgress(ring, reached, timeoutMs)),
    reap: (address, slot) =>
      Effect.gen(function*() {
        const ring = yield* locate(address)
        yield* validateSlot(address, slot)
        const reaped = reapMemorySlot(ring, slot, false)
        if (reaped) yield* countReaped(1)
        return reaped
      }),
    reapDead: (address) =>
      Effect.gen(function*() {
        const ring = yield* locate(address)
        const reaped = ring.slots.flatMap((_, slot) => (reapMemorySlot(ring, slot, true) ? [slot] : []))
        yield* countReaped(reaped.length)
        return reaped
      })
  }
  return shape
})

export const layerMemory: Layer.Layer<Rings> = Layer.effect(Rings, makeMemory)
