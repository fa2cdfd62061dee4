/**
 * The live Rings layer: rings placed in the region (CxlMemory) at their addresses, waiting on
 * this process's Doorbell. The fake (RingsMemory.ts) runs the same engine (RingRegion.ts).
 */
import { Effect, Layer } from "effect"
import {
  InvalidRingAddress,
  type RingAddress,
  ringFootprint,
  Rings,
  type RingsShape
} from "../../services/control/Rings.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { validateAddress } from "./RingFrames.js"
import { lines } from "./RingLines.js"
import { ringsOver } from "./RingRegion.js"

/** Rings in the region: needs the region and this process's doorbell. */
export const make: Effect.Effect<RingsShape, never, CxlMemory | Doorbell> = Effect.gen(function*() {
  const region = yield* CxlMemory
  const doorbell = yield* Doorbell
  const place = (address: RingAddress) =>
    validateAddress(address).pipe(
      Effect.zipRight(region.check(address.offset, ringFootprint(address.dataBytes, address.readerSlots))),
      Effect.mapError((e) =>
        e._tag === "RegionOutOfBounds"
          ? new InvalidRingAddress({
            ring: address.id,
            reason: `ring does not fit in the ${region.size}-byte region at offset ${address.offset}`
          })
          : e
      ),
      Effect.as({ region, doorbell, lines: lines(address) })
    )
  return ringsOver(place)
})

export const layer: Layer.Layer<Rings, never, CxlMemory | Doorbell> = Layer.effect(Rings, make)
