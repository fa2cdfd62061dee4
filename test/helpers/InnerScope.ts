/**
 * A scope a test closes when it wants (a server stopped, a caller gone, a region unmapped first),
 * forked from the test's own so it closes with it at the latest, pass or fail: one left open would
 * keep its fibers, readers and regions past the test, into the next file of the fork.
 */
import { Effect, ExecutionStrategy, Scope } from "effect"

export const innerScope: Effect.Effect<Scope.CloseableScope, never, Scope.Scope> = Effect.flatMap(
  Effect.scope,
  (outer) => Scope.fork(outer, ExecutionStrategy.sequential)
)
