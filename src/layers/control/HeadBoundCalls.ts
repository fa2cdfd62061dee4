/**
 * The coordinator client's calls while the head is watched: the head's coordinator answers them,
 * so a call waits for a head that is there or being taken over, not for one that is gone. While
 * any call waits, the head is looked at every `checkEveryMs` (HeadWatch.ts, the look every role
 * waiting on the head takes); once it has been unavailable past `CXLOG_HEAD_LOST_MS`, counted from
 * its lease's expiry, the calls waiting end `HeadUnavailable` naming it and what each waited for,
 * through the signal they share (as barriers share the takeover's), rather than at their own
 * timeouts with nothing said of the head. No fiber or timer is made per call; a call looks at the
 * head itself only as it starts while none waits (or the head is in doubt), so one made once the
 * head has been gone that long fails at once, unsent. A standby that takes the lease over within
 * the bound answers them (the client sends them to it again: Coordinator.ts); a head that holds its
 * lease but is slow to answer is waited for up to each call's own timeout.
 */
import { Effect, type Scope } from "effect"
import { setMaxListeners } from "node:events"
import type { RpcAbandoned } from "../../services/control/Rpc.js"
import { HeadUnavailable } from "../../services/log/HeadWatch.js"
import type { HeadWatch } from "../log/HeadWatch.js"
import { alignedDelayMs } from "../region/Cadence.js"

export interface HeadBoundCalls {
  /**
   * `call`, given the signal that aborts when the head is lost, with its abandonment as
   * `HeadUnavailable` waiting for `waitingFor`. Only that signal may abandon it: any
   * `RpcAbandoned` it fails with is taken for the head's loss. `fate` runs as the call starts;
   * what it returns says, once the head is lost, what became of the call sent (by default: a
   * head that runs again may still act on it).
   */
  readonly during: <A, E extends { readonly _tag: string }, R>(
    waitingFor: () => string,
    call: (headLost: AbortSignal) => Effect.Effect<A, E, R>,
    fate?: () => () => string
  ) => Effect.Effect<A, Exclude<E, RpcAbandoned> | HeadUnavailable, R>
}

/** One signal shared by every call in flight (any number of them): no listener limit to warn about. */
const lostSignal = () => {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}

const mayStillAct = () => "sent: a head that runs again may still act on it"

const isAbandoned = <E extends { readonly _tag: string }>(e: E): e is Extract<E, RpcAbandoned> =>
  e._tag === "RpcAbandoned"

/** Watches `head` while any `during` runs, for the scope. */
export const boundByHead = (head: HeadWatch): Effect.Effect<HeadBoundCalls, never, Scope.Scope> =>
  Effect.gen(function*() {
    let waiting = 0
    let controller = lostSignal()
    /** What the last look that found the head lost said; each call's error is it, waiting for that call's answer. */
    let lost: HeadUnavailable | undefined
    /** A look at the head: once it has been lost past the bound, the calls waiting end (true). */
    const look = () => {
      const found = head.check(() => "its coordinator's answers")
      if (found === undefined) return false
      lost = found
      // Later calls wait on a fresh signal: a standby may take over before the next look.
      const current = controller
      controller = lostSignal()
      current.abort(found.message)
      return true
    }
    const busy = yield* Effect.makeLatch(false)
    // The first call of a busy spell looked as it started (`during`): the next look is a period on.
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* busy.await
      yield* Effect.sleep(alignedDelayMs(head.checkEveryMs))
      if (waiting > 0) look()
    })))
    /** The head's loss for a call waiting for `waitingFor`: `outcome`, what became of the call. */
    const headLost = (waitingFor: () => string, outcome: string) =>
      new HeadUnavailable({
        region: lost!.region,
        pid: lost!.pid,
        epoch: lost!.epoch,
        state: lost!.state,
        lapsedMs: lost!.lapsedMs,
        boundMs: lost!.boundMs,
        waitingFor: `${waitingFor()} (${outcome})`
      })
    return {
      during: <A, E extends { readonly _tag: string }, R>(
        waitingFor: () => string,
        call: (headLost: AbortSignal) => Effect.Effect<A, E, R>,
        fate?: () => () => string
      ) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.suspend(() => {
            // A call that starts while no look is due soon (none waits) or the head is in doubt
            // looks first: one made once the head has been gone past the bound is not sent.
            if ((waiting === 0 || !head.available()) && look()) return Effect.fail(headLost(waitingFor, "not sent"))
            if (waiting++ === 0) busy.unsafeOpen()
            const sent = fate?.() ?? mayStillAct
            return Effect.ensuring(
              Effect.catchIf(
                restore(call(controller.signal)),
                isAbandoned,
                () => Effect.fail(headLost(waitingFor, sent()))
              ),
              Effect.sync(() => {
                if (--waiting === 0) {
                  busy.unsafeClose()
                }
              })
            )
          })
        ) as Effect.Effect<A, Exclude<E, RpcAbandoned> | HeadUnavailable, R>
    }
  })
