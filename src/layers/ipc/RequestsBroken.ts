/**
 * A caller's request ring that a service's server read past (ReadPastCorruption.ts), as the
 * service's own error, and where it goes when the serve names no one to tell.
 */
import { Effect } from "effect"
import type { RingBreak } from "../../services/control/Rings.js"
import { ServiceRequestsBroken } from "../../services/ipc/Services.js"

export const requestsBroken = (name: string, caller: number, { error, resumedAt }: RingBreak) =>
  new ServiceRequestsBroken({
    name,
    caller,
    position: error.position,
    reason: error.message,
    ...(resumedAt === undefined ? {} : { resumedAt })
  })

/** Who hears of a break: the serve's `onBroken`, else a warning. */
export const tellBroken = (onBroken: ((broken: ServiceRequestsBroken) => Effect.Effect<void>) | undefined) =>
  onBroken ?? ((broken: ServiceRequestsBroken) => Effect.logWarning(broken.message))
