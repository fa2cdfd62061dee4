/**
 * A caller's slot of a service: the first whose request ring has no live writer (a dead caller's
 * is taken over: a ring's writer is named by pid and start time). Both kinds of caller — an Rpc
 * client (ServiceCaller.ts) and a frame client (ServiceFrames.ts) — take theirs this way.
 */
import { Effect, Either, type Scope } from "effect"
import type { RingAddress } from "../../services/control/Rings.js"
import { ServiceCallersBusy, ServiceUnavailable } from "../../services/ipc/Services.js"

/**
 * What `claim` makes of the first caller slot it can take, for the scope: a slot whose request
 * ring a live caller writes fails `claim` with `RingWriterBusy`, holding nothing, and the next is
 * tried; any other failure is `ServiceUnavailable`, and no slot free `ServiceCallersBusy`.
 */
export const claimCallerSlot = <A>(
  name: string,
  requests: ReadonlyArray<RingAddress>,
  claim: (
    caller: number,
    ring: RingAddress
  ) => Effect.Effect<A, { readonly _tag: string; readonly message: string }, Scope.Scope>
): Effect.Effect<A, ServiceCallersBusy | ServiceUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    for (const [caller, ring] of requests.entries()) {
      const claimed = yield* Effect.either(claim(caller, ring))
      if (Either.isRight(claimed)) return claimed.right
      if (claimed.left._tag !== "RingWriterBusy") {
        return yield* new ServiceUnavailable({ name, reason: claimed.left.message })
      }
    }
    return yield* new ServiceCallersBusy({ name, callerSlots: requests.length })
  })
