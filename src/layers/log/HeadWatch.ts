/**
 * Watching the head from the region: its sequencer lease line in the superblock says who
 * holds the lease (occurrence, pid, epoch) and until when. Waiters call `check` between
 * doorbell waits (every `checkEveryMs`, never per message); it costs a few loads and, while
 * a holder's pid is published, a look at that process (HeadLease.ts judges the head).
 */
import { Effect } from "effect"
import { headLostMsConfig, HeadUnavailable } from "../../services/log/HeadWatch.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { alignedDelayMs } from "../region/Cadence.js"
import { Offsets } from "../region/Superblock.js"
import { readHeadLease } from "./HeadLease.js"
import { LeaseLineView } from "./RecordViews.js"

/**
 * How often a waiter on the head looks at its lease while nothing else wakes it: a quarter of
 * the bound (so a loss is reported within 1.25 × the bound), at most once a second, at least
 * every 50 ms for small bounds.
 */
export const headCheckMs = (boundMs: number): number => Math.min(1_000, Math.max(50, boundMs / 4))

export interface HeadWatch {
  readonly boundMs: number
  /** How often waiters call `check` (see `headCheckMs`). */
  readonly checkEveryMs: number
  /** Undefined while the head is available, or unavailable for at most the bound; else the error for `waitingFor`. */
  readonly check: (waitingFor: () => string) => HeadUnavailable | undefined
  /** Whether the head was available at the last `check`. */
  readonly available: () => boolean
  /** Whether some head had held the lease by the last `check` (its epoch above 0): else none ever did. */
  readonly everHeld: () => boolean
}

export const makeHeadWatch = (region: CxlMemoryShape, boundMs: number): HeadWatch => {
  const lines = new LeaseLineView(region)
  let unavailableSince: number | undefined
  let lastPid = 0
  let lastEpoch = 0
  let everHeld = false
  return {
    boundMs,
    checkEveryMs: headCheckMs(boundMs),
    available: () => unavailableSince === undefined,
    everHeld: () => everHeld,
    check: (waitingFor) => {
      region.invalidate(Offsets.sequencerLease, LINE_BYTES)
      const now = Date.now()
      const lease = readHeadLease(lines, now)
      if (lease.holder !== 0 || lease.epoch !== 0) everHeld = true
      if (lease.pid > 0) {
        lastPid = lease.pid
        lastEpoch = lease.epoch
      }
      if (lease.held) {
        unavailableSince = undefined
        return undefined
      }
      unavailableSince ??= now
      // A lease that lapsed before this process looked counts from its expiry.
      const since = lease.expiresAtMs > 0 ? Math.min(unavailableSince, lease.expiresAtMs) : unavailableSince
      const lapsedMs = now - since
      if (lapsedMs <= boundMs) return undefined
      const state = lease.holder === 0
        ? (lease.epoch === 0 ? "never-started" : "released")
        : lease.running
        ? "lease-lapsed"
        : "exited"
      return new HeadUnavailable({
        region: region.name,
        pid: lastPid,
        epoch: lastEpoch,
        state,
        lapsedMs,
        boundMs,
        waitingFor: waitingFor()
      })
    }
  }
}

/** A watch whose bound comes from `CXLOG_HEAD_LOST_MS` unless given. */
export const headWatch = (region: CxlMemoryShape, boundMs?: number) =>
  Effect.map(boundMs === undefined ? headLostMsConfig : Effect.succeed(boundMs), (ms) => makeHeadWatch(region, ms))

/** Checks the head every `checkEveryMs` (on the shared cadence's grid) until `done()`; fails once it has been unavailable past the bound. */
const pollHead = (
  watch: HeadWatch,
  waitingFor: () => string,
  done: () => boolean
): Effect.Effect<void, HeadUnavailable> =>
  Effect.gen(function*() {
    for (;;) {
      const lost = watch.check(waitingFor)
      if (lost !== undefined) return yield* lost
      if (done()) return
      yield* Effect.sleep(alignedDelayMs(watch.checkEveryMs))
    }
  })

/** Waits until the head is available (checking every `checkEveryMs`); fails once it has been unavailable past the bound. */
export const awaitHead = (watch: HeadWatch, waitingFor: () => string): Effect.Effect<void, HeadUnavailable> =>
  pollHead(watch, waitingFor, watch.available)

/**
 * Fails once the head has been unavailable past the bound, looking every `checkEveryMs`: for a
 * role that depends on the head as a whole (a broker), beside its own event-driven waits.
 */
export const failWhenHeadLost = (watch: HeadWatch, waitingFor: () => string): Effect.Effect<never, HeadUnavailable> =>
  Effect.zipRight(pollHead(watch, waitingFor, () => false), Effect.never)
