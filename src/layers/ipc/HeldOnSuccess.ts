/**
 * What an open takes (a pin on a directory entry, slots on its rings) is the caller's only once
 * the open succeeds: one that fails gives back at once what it took on the way, rather than leave
 * it in the caller's scope until that closes — an app retrying a `connect` in its main scope would
 * otherwise hold a pin per attempt, and with them the memory of every object removed since.
 */
import { Effect, ExecutionStrategy, Exit, Scope } from "effect"

/** Runs `acquire` in a scope of its own under the caller's: kept with the caller's on success, closed at once on failure. */
export const heldOnSuccess = <A, E, R>(
  acquire: Effect.Effect<A, E, R>
): Effect.Effect<A, E, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.flatMap(
    Effect.scope,
    (caller) =>
      Effect.flatMap(Scope.fork(caller, ExecutionStrategy.sequential), (own) =>
        Effect.onError(Scope.extend(acquire, own), (cause) => Scope.close(own, Exit.failCause(cause))))
  )
