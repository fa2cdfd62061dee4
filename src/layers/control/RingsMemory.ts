/**
 * The in-memory fake of Rings: the live ring engine (RingRegion.ts) over in-process bytes.
 * Each ring lives in a private region of the CxlMemory fake, so the fake has the live ring's
 * frames, sequences, padding, backpressure, counters and wake-ups; only where the bytes live
 * differs. No addon, no processes. Rings are shared by offset within one instance.
 */
import { Effect, Layer, type Scope } from "effect"
import {
  InvalidRingAddress,
  type RingAddress,
  ringFootprint,
  Rings,
  type RingsShape
} from "../../services/control/Rings.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { DOORBELL_BYTES } from "../../services/region/Doorbell.js"
import { privateRegion } from "../region/CxlMemoryMemory.js"
import * as DoorbellLayers from "../region/Doorbell.js"
import { SUPERBLOCK_BYTES } from "../region/Superblock.js"
import { validateAddress } from "./RingFrames.js"
import { lines, type PlacedRing } from "./RingLines.js"
import { ringsOver } from "./RingRegion.js"

/**
 * Every private region holds, after its superblock, the line where the instance's doorbell
 * sits in its own region: the ring lines name that offset, and a ring of it is local (a sweep
 * of this process's waiters, never a write to the ring's region).
 */
const DOORBELL_AT = SUPERBLOCK_BYTES
/** Where the ring starts in its private region. */
const RING_AT = DOORBELL_AT + DOORBELL_BYTES

const PAGE = 4096

const sameShape = (a: RingAddress, b: RingAddress) =>
  a.id === b.id && a.dataBytes === b.dataBytes && a.readerSlots === b.readerSlots

/** Rings over in-process bytes; the instance's doorbell closes with the scope. */
export const makeMemory: Effect.Effect<RingsShape, never, Scope.Scope> = Effect.gen(function*() {
  // No spinning: nothing but this thread could satisfy a waiter while it spins.
  const doorbell = yield* DoorbellLayers.make({ offset: DOORBELL_AT, spinMicros: 0 }).pipe(
    Effect.provideService(CxlMemory, privateRegion(2 * PAGE)),
    Effect.orDie
  )
  const placed = new Map<number, PlacedRing>()
  const place = (address: RingAddress) =>
    Effect.flatMap(validateAddress(address), () => {
      const existing = placed.get(address.offset)
      if (existing === undefined) {
        const size = Math.ceil((RING_AT + ringFootprint(address.dataBytes, address.readerSlots)) / PAGE) * PAGE
        const ring: PlacedRing = { region: privateRegion(size), doorbell, lines: lines(address, RING_AT) }
        placed.set(address.offset, ring)
        return Effect.succeed(ring)
      }
      return sameShape(existing.lines.address, address)
        ? Effect.succeed(existing)
        : Effect.fail(
          new InvalidRingAddress({ ring: address.id, reason: `offset ${address.offset} holds a ring of another shape` })
        )
    })
  return ringsOver(place)
})

export const layerMemory: Layer.Layer<Rings> = Layer.scoped(Rings, makeMemory)
