/**
 * Whether a doorbell's ring woke a parked wait. A parked wait is also settled by the park bound's
 * timer, and the timer may fire between the park and the commit (then it, not the ring, finds the
 * commit): so each round parks a wait, counts, commits, and a round in which the timer settled a
 * wait tells nothing; another is taken, at most `rounds`.
 */
import { Effect } from "effect"
import type { DoorbellInternals } from "../../src/layers/region/Doorbell.js"

export interface WakeRound<A, E, R> {
  /** Makes a wait and waits until it is parked; what it returns goes to `commit`. */
  readonly park: (round: number) => Effect.Effect<A, E, R>
  /** Commits what the wait waits for, and waits until the wait ended. */
  readonly commit: (round: number, parked: A) => Effect.Effect<void, E, R>
}

/** True when, in a round the timer settled nothing in, a wake settled a wait; fails if every round's was the timer's. */
export const wokenByRing = <A, E, R>(internals: DoorbellInternals, { commit, park }: WakeRound<A, E, R>, rounds = 3) =>
  Effect.gen(function*() {
    for (let round = 0; round < rounds; round++) {
      const parked = yield* park(round)
      const [woken, timed] = [internals.settledByWake(), internals.settledByTimer()]
      yield* commit(round, parked)
      if (internals.settledByTimer() === timed) return internals.settledByWake() > woken
    }
    return yield* Effect.fail(new Error(`in each of ${rounds} rounds the park bound's timer settled a wait`))
  })
