/**
 * The deadline of the caller a process acts for. A broker asks the head's coordinator for a
 * change on its remote client's behalf (a topic created through `CxlogAdmin`, a group created by a
 * remote member); the client gives up on its own bound, so a change still waiting in the head's
 * request ring past that bound would be made after the client was told it failed. Set around the
 * work done for that client, it bounds every coordinator call made within it: each carries this
 * deadline to the head, which never runs a request it reads at or past it
 * (docs/control-plane/rpc.md, "A call's deadline"), so the client's answer says whether the change
 * was made.
 */
import { Effect, FiberRef, GlobalValue } from "effect"

/** Wall-clock ms; Infinity: the work is bounded by nobody's deadline but its calls' own bounds. */
export const callerDeadline: FiberRef.FiberRef<number> = GlobalValue.globalValue(
  Symbol.for("cxlog/CallerDeadline"),
  () => FiberRef.unsafeMake(Infinity)
)

/** `effect` with its coordinator calls bounded by `deadlineMs` (wall clock) too. */
export const withCallerDeadline =
  (deadlineMs: number) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.locally(effect, callerDeadline, deadlineMs)

/**
 * `effect` bounded by no caller's deadline: for what undoes a change already made on the
 * caller's behalf (a group's object removed when its hold could not be made), which must not be
 * cut short, or left unsent, because the caller's time ran out meanwhile.
 */
export const withoutCallerDeadline = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, callerDeadline, Infinity)
