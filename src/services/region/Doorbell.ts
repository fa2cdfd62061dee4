/**
 * Doorbell: how a process waits for shared-memory conditions without blocking its event loop.
 *
 * Each process owns one doorbell: a 64-byte line in the region holding a 32-bit wake count
 * and a `parked` flag, and (over a live region) a wake FIFO that libuv watches on the
 * process's own loop. Waiting fibers register a condition; once the process has nothing else
 * to run, it spins briefly (while recent waits say spinning pays and the machine is not
 * oversubscribed), then parks: publishes `parked`, re-checks every condition, and returns to the
 * event loop. A wake's callback re-checks them and resumes the satisfied waiters directly.
 * Writers call `ring(bell)` after they commit: only when the owner is parked, and only the
 * ringer whose compare-and-swap clears `parked`, writes one byte into the owner's FIFO — one
 * kernel wake of the owner's JS thread — so an uncontended commit costs two atomic loads.
 */
import { Context, Data, type Effect } from "effect"
import { LINE_BYTES } from "./CxlMemory.js"

/** Bytes of a doorbell line: wake count at +0, parked flag at +4, the identity of its owner's wake FIFO at +8, its owner's pid at +12, the rest reserved. */
export const DOORBELL_BYTES = LINE_BYTES

export interface DoorbellShape {
  /** Region offset of this process's doorbell line (give it to writers that should ring it). */
  readonly offset: number
  /**
   * Resolves `true` as soon as `condition()` holds, `false` after `timeoutMs`. The condition
   * is re-checked after every wake, so it must be cheap and side-effect free.
   */
  readonly await: (condition: () => boolean, timeoutMs: number) => Effect.Effect<boolean>
  /**
   * A standing waiter served from callbacks, with no fiber: whenever `condition()` holds at a
   * re-check (a wake, a park's re-check, a spin), `onReady(true)` runs right there, in the wake's
   * own callback; when it has not held for `everyMs()` ms, `onReady(false)`. It stays registered
   * (and the process parks and is woken for it like for any waiter) until the returned function
   * is called. It is not checked as it registers: the caller checks once after registering
   * (while parked, that is the re-check that makes a lost wake impossible). `onReady` must
   * consume what made the condition true, must not throw, and must not block: it runs inside
   * the doorbell's sweep. `spinMicros` raises this process's spin ceiling while the watch stands
   * (a reader whose frames come back within a round trip: a call's replies, a server's requests);
   * the spin stays adaptive under it.
   */
  readonly watch: (
    condition: () => boolean,
    onReady: (satisfied: boolean) => void,
    everyMs: () => number,
    spinMicros?: number
  ) => () => void
  /** Rings the doorbell line at `bell` (any process's): cheap when its owner is not parked; a dead owner is skipped. */
  readonly ring: (bell: number) => void
  /** Re-checks this process's waiters now (after a local commit that a local fiber waits on). */
  readonly poke: () => void
}

/** This process's wake FIFO could not be made or opened (its directory is not a private one of this user, or a system call failed). */
export class WakeFifoUnavailable
  extends Data.TaggedError("WakeFifoUnavailable")<{ readonly path: string; readonly reason: string }>
{
  override get message() {
    return `doorbell wake FIFO ${this.path}: ${this.reason}`
  }
}

export class Doorbell extends Context.Tag("cxlog/Doorbell")<Doorbell, DoorbellShape>() {}
