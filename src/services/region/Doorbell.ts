/**
 * Doorbell: how a process waits for shared-memory conditions without blocking its event loop.
 *
 * Each process owns one doorbell: a 64-byte line in the region holding a 32-bit bell word
 * and a `parked` flag. Waiting fibers register a condition; one loop per process checks them
 * all, spins briefly (while recent waits say spinning pays), then parks with a single
 * outstanding native futex wait. Writers call `ring(bell)` after they commit: it bumps the
 * bell word and wakes the futex only when the owner is parked — once per park, by the ringer
 * that clears the `parked` flag — so an uncontended commit costs two atomic loads.
 */
import { Context, type Effect } from "effect"

/** Bytes of a doorbell line: word at +0, parked flag at +4, the rest reserved. */
export const DOORBELL_BYTES = 64

export interface DoorbellShape {
  /** Region offset of this process's doorbell line (give it to writers that should ring it). */
  readonly offset: number
  /**
   * Resolves `true` as soon as `condition()` holds, `false` after `timeoutMs`. The condition
   * is re-checked after every wake, so it must be cheap and side-effect free.
   */
  readonly await: (condition: () => boolean, timeoutMs: number) => Effect.Effect<boolean>
  /** Rings the doorbell line at `bell` (any process's): cheap when its owner is not parked. */
  readonly ring: (bell: number) => void
  /** Re-checks this process's waiters now (after a local commit that a local fiber waits on). */
  readonly poke: () => void
}

export class Doorbell extends Context.Tag("cxlog/Doorbell")<Doorbell, DoorbellShape>() {}
