/**
 * A caller's slot of a service: the first whose request ring has no live writer (a dead caller's
 * is taken over: a ring's writer is named by pid and start time). Both kinds of caller — an Rpc
 * client (ServiceCaller.ts) and a frame client (ServiceFrames.ts) — take theirs this way.
 */
import { Effect, Either, type Scope } from "effect"
import type { RingAddress } from "../../services/control/Rings.js"
import { ServiceCallersBusy, ServiceUnavailable } from "../../services/ipc/Services.js"

type ClaimError = { readonly _tag: string; readonly message: string; readonly ring?: number }

/**
 * What `claim` makes of the first caller slot it can take, for the scope: a slot whose request
 * ring a live caller writes fails `claim` with `RingWriterBusy`, holding nothing, and the next is
 * tried. So is a slot whose request ring's own words are damaged (`RingCorrupt` naming that ring:
 * no writer can open it, and only removing the service mends it), said in a warning naming the
 * service and slot, so that one damaged slot does not refuse every caller. Any other failure is
 * `ServiceUnavailable`; no slot free is `ServiceCallersBusy` (naming the damaged slots), and every
 * slot damaged `ServiceUnavailable`.
 */
export const claimCallerSlot = <A>(
  name: string,
  requests: ReadonlyArray<RingAddress>,
  claim: (caller: number, ring: RingAddress) => Effect.Effect<A, ClaimError, Scope.Scope>
): Effect.Effect<A, ServiceCallersBusy | ServiceUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const damaged: Array<number> = []
    for (const [caller, ring] of requests.entries()) {
      const claimed = yield* Effect.either(claim(caller, ring))
      if (Either.isRight(claimed)) return claimed.right
      const error = claimed.left
      if (error._tag === "RingCorrupt" && error.ring === ring.id) {
        damaged.push(caller)
        yield* Effect.logWarning(
          `service ${
            JSON.stringify(name)
          }: caller slot ${caller} skipped: ${error.message} (Services.remove and a new serve mend it)`
        )
      } else if (error._tag !== "RingWriterBusy") {
        return yield* new ServiceUnavailable({ name, reason: error.message })
      }
    }
    if (damaged.length === requests.length) {
      return yield* new ServiceUnavailable({
        name,
        reason: `the request ring of every caller slot is damaged (Services.remove frees its name)`
      })
    }
    return yield* new ServiceCallersBusy({
      name,
      callerSlots: requests.length,
      ...(damaged.length === 0 ? {} : { damaged })
    })
  })
