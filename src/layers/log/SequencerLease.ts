/**
 * The sequencer lease, a line of the superblock: one head orders at a time. Taking it
 * (`acquireLease`: the lease free, expired or its holder gone, then an earlier holder's round
 * waited out: `awaitEarlierRound`), holding it (`renewLease`), the round marker (`beginRound` /
 * `endRound` for the head, `beginAppenderRound` / `endAppenderRound` for an appender ordering
 * its own batches), `markReady`, the `waiting` word appenders read before ringing, and letting
 * it go (`releaseLease`).
 */
import { Effect } from "effect"
import {
  SequencerEarlierRoundStopped,
  SequencerLeaseHeld,
  SequencerLeaseLost,
  type SequencerShape
} from "../../services/log/Sequencer.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { isPidStopped, isProcessAlive, ownStartTag } from "../region/ProcessInfo.js"
import { Offsets } from "../region/Superblock.js"
import { readHeadLease } from "./HeadLease.js"
import { LeaseLine } from "./Records.js"
import { LeaseLineView, roundHolder, roundHolderPid, roundHolderTag } from "./RecordViews.js"

/** A round is plain code taking milliseconds; a marker set far longer than this names no head inside one unless its process is stopped. */
export const EARLIER_ROUND_WAIT_MS = 60_000

/** This head's claim on the lease line. */
export interface SequencerLease {
  readonly region: CxlMemoryShape
  readonly lines: LeaseLineView
  /** The lease line's offset. */
  readonly at: number
  /** This head's claim identity in the line. */
  readonly occurrence: number
  readonly leaseMs: number
  /** This head's doorbell, named in the line for appenders to ring. */
  readonly doorbell: number
  /** How long an earlier head's round marker naming a live process is waited on (`awaitEarlierRound`). */
  readonly earlierRoundWaitMs: number
  /** Told by a renewal that found the lease expired, with how long it had been (`renewLease`). */
  readonly lapseEnded: Set<(lapsedMs: number) => void>
}

export const sequencerLease = (
  region: CxlMemoryShape,
  settings: {
    readonly occurrence: number
    readonly leaseMs: number
    readonly doorbell: number
    readonly earlierRoundWaitMs: number
  }
): SequencerLease => ({
  region,
  lines: new LeaseLineView(region),
  at: Offsets.sequencerLease,
  lapseEnded: new Set(),
  ...settings
})

/** Takes the lease if it is free, expired or its holder is gone: the new epoch; else who holds it. */
const tryAcquire = (l: SequencerLease): number | SequencerLeaseHeld => {
  const { lines, at, region } = l
  const lease = readHeadLease(lines, Date.now())
  if (lease.held || !lines.swapOccurrence(at, lease.holder, l.occurrence)) {
    return new SequencerLeaseHeld({ pid: lease.pid, expiresAtMs: lease.expiresAtMs })
  }
  const epoch = lines.epoch(at) + 1
  lines.setEpoch(at, epoch)
  lines.setDoorbell(at, l.doorbell)
  lines.setExpiresAtMs(at, Date.now() + l.leaseMs)
  region.publish(at, LINE_BYTES)
  lines.storePid(at, process.pid)
  return epoch
}

/** Lets the lease go, if this head still holds it. */
export const releaseLease = (l: SequencerLease): void => {
  const { lines, at } = l
  if (lines.occurrence(at) !== l.occurrence) return
  lines.storePid(at, 0)
  lines.setDoorbell(at, 0)
  lines.setExpiresAtMs(at, 0)
  lines.swapOccurrence(at, l.occurrence, 0)
  l.region.publish(at, LINE_BYTES)
}

/** This process as the round marker names it. */
let ownHolder: bigint | undefined
export const ownRoundHolder = (): bigint => (ownHolder ??= roundHolder(process.pid, ownStartTag()))

/** Whether the process a round marker names still runs (a later process under its pid does not count). */
export const roundHolderAlive = (holder: bigint): boolean =>
  isProcessAlive(roundHolderPid(holder), roundHolderTag(holder))

/**
 * The fence, after winning the lease: an earlier holder (or an appender, in its own round) may
 * be inside a round it began before we took the lease. Wait until the marker clears, or names
 * a process that is gone (SIGKILL: cleared here; this head's first round then recovers every
 * topic, and appenders run none until it has: `markReady`). A live process it names past
 * `earlierRoundWaitMs` that is not stopped is taken to be an unrelated one reusing a pid the
 * start tag could not tell apart (no round lasts that long) and the marker is cleared; one
 * stopped inside the round fails this head (SequencerEarlierRoundStopped), since it would write
 * on once resumed.
 */
const awaitEarlierRound = (l: SequencerLease): Effect.Effect<void, SequencerEarlierRoundStopped> =>
  Effect.gen(function*() {
    const { lines, at, earlierRoundWaitMs } = l
    const started = Date.now()
    let warned = false
    // A round ends within a millisecond or two; a marker still there after that names a stalled or
    // stopped process, which may stay so for the whole wait: look less and less often (at most every 100 ms).
    let pollMs = 2
    for (;;) {
      const marker = lines.round(at)
      if (marker === 0n) return
      const pid = roundHolderPid(marker)
      if (pid === process.pid || !roundHolderAlive(marker)) {
        lines.exchangeRound(at, marker, 0n)
        continue
      }
      const waitedMs = Date.now() - started
      if (waitedMs >= earlierRoundWaitMs) {
        if (isPidStopped(pid)) return yield* new SequencerEarlierRoundStopped({ pid, waitedMs })
        yield* Effect.logWarning(
          `sequencer: process ${pid}, named by the round marker, ran ${waitedMs} ms without ending the round: not a process inside one (a reused pid); marker cleared`
        )
        lines.exchangeRound(at, marker, 0n)
        continue
      }
      if (!warned && waitedMs >= l.leaseMs) {
        warned = true
        yield* Effect.logWarning(
          `sequencer: process ${pid} is stopped inside a round; ordering waits until it finishes the round or is gone (at most ${earlierRoundWaitMs} ms while it runs)`
        )
      }
      yield* Effect.sleep(pollMs)
      pollMs = Math.min(pollMs * 2, 100)
    }
  })

/** Takes the lease within `waitMs` and waits out an earlier holder's round: the new epoch. */
export const acquireLease = (
  l: SequencerLease,
  waitMs: number
): Effect.Effect<number, SequencerLeaseHeld | SequencerEarlierRoundStopped> =>
  Effect.gen(function*() {
    const deadline = Date.now() + waitMs
    for (;;) {
      const outcome = tryAcquire(l)
      if (typeof outcome === "number") {
        // Failing, this head lets the lease go as at release, for a head started again.
        yield* Effect.tapError(awaitEarlierRound(l), () => Effect.sync(() => releaseLease(l)))
        return outcome
      }
      if (Date.now() >= deadline) return yield* outcome
      yield* Effect.sleep(Math.min(50, Math.max(1, deadline - Date.now())))
    }
  })

export const holdsLease = (l: SequencerLease): boolean => l.lines.occurrence(l.at) === l.occurrence

export const leaseLost = (l: SequencerLease, epoch: number): SequencerLeaseLost =>
  new SequencerLeaseLost({ epoch, holderPid: l.lines.pid(l.at) })

/**
 * How the head's attempt to enter a round went: `entered`; `lost` (another head holds the lease:
 * write nothing); `busy` (a live process is inside a round: an appender ordering its own
 * batches, or a fenced head between its two steps; both end within microseconds, so try again
 * soon); `recover` (the marker named a process that died inside a round: this head took it over
 * and must take every topic on again from the region before ordering, as at a restart).
 */
export type RoundEntry = "entered" | "lost" | "busy" | "recover"

/**
 * Enters a round's writes. The marker is taken by a compare-and-swap from 0, so rounds never
 * overlap whoever runs them. Then Dekker's handshake with a new holder: publish the marker, then
 * check the lease; a new holder swaps the lease, then reads the marker (both sequentially
 * consistent), so either we see its lease and write nothing (`lost`), or it sees our marker and
 * waits for the round to end (`awaitEarlierRound`).
 */
export const beginRound = (l: SequencerLease): RoundEntry => {
  const { lines, at } = l
  const me = ownRoundHolder()
  const seen = lines.exchangeRound(at, 0n, me)
  let entry: RoundEntry = "entered"
  if (seen !== 0n && seen !== me) {
    if (!holdsLease(l)) return "lost"
    if (roundHolderAlive(seen)) return "busy"
    // Its holder died inside a round: taken over in one swap, so no appender's round starts on what it left.
    if (lines.exchangeRound(at, seen, me) !== seen) return "busy"
    entry = "recover"
  }
  if (holdsLease(l)) return entry
  lines.exchangeRound(at, me, 0n)
  return "lost"
}

export const endRound = (l: SequencerLease): void => {
  l.lines.exchangeRound(l.at, ownRoundHolder(), 0n)
}

/**
 * This head has taken every topic on from the region (its first round, or the one after a
 * `recover`): appenders may run rounds from now on (`beginAppenderRound`).
 */
export const markReady = (l: SequencerLease): void => {
  l.lines.storeReady(l.at, l.occurrence)
}

/**
 * An appender (a broker or local publisher ordering its own batches, SequencerRound.ts) enters
 * a round: the marker taken from 0, then the lease checked — held by a head that is ready (has
 * taken every topic on) and not expired. The epoch to write, or undefined (the marker is left
 * as it was). The checks follow the marker's swap, so a new holder either sees the marker and
 * waits this round out, or swapped the lease before and this sees its occurrence, not ready yet.
 */
export const beginAppenderRound = (lines: LeaseLineView, nowMs: number): number | undefined => {
  const at = Offsets.sequencerLease
  const me = ownRoundHolder()
  if (lines.exchangeRound(at, 0n, me) !== 0n) return undefined
  const occurrence = lines.occurrence(at)
  if (occurrence !== 0 && lines.ready(at) === occurrence && lines.expiresAtMs(at) > nowMs) return lines.epoch(at)
  lines.exchangeRound(at, me, 0n)
  return undefined
}

/** An appender's round is over. */
export const endAppenderRound = (lines: LeaseLineView): void => {
  lines.exchangeRound(Offsets.sequencerLease, ownRoundHolder(), 0n)
}

/**
 * Moves the lease's expiry on, or fails if another head took it meanwhile. A lease found expired
 * (this process stopped or stalled past it) is a lapse that ends here: `lapseEnded` is told once
 * the new expiry is published, so what it reads then was written before the lease showed held again.
 */
export const renewLease = (l: SequencerLease, epoch: number): Effect.Effect<void, SequencerLeaseLost> =>
  Effect.suspend(() => {
    if (!holdsLease(l)) return Effect.fail(leaseLost(l, epoch))
    const now = Date.now()
    const expiredMs = now - l.lines.expiresAtMs(l.at)
    l.lines.setExpiresAtMs(l.at, now + l.leaseMs)
    l.region.publish(l.at + LeaseLine.expiresAtMs, 8)
    if (expiredMs > 0) { for (const listener of l.lapseEnded) listener(expiredMs) }
    return Effect.void
  })

/** The lease's expiry and its lapses, as the sequencer shows them (the coordinator's LapseGuard.ts reads them). */
export const leaseLapses = (l: SequencerLease): Pick<SequencerShape, "leaseExpiresAtMs" | "onLapseEnd"> => ({
  leaseExpiresAtMs: () => l.lines.expiresAtMs(l.at),
  onLapseEnd: (listener) => {
    l.lapseEnded.add(listener)
    return () => l.lapseEnded.delete(listener)
  }
})

/** Says whether this head waits on its doorbell for batches (appenders ring it only then). */
export const markWaiting = (l: SequencerLease, waiting: 0 | 1): void => {
  l.lines.storeWaiting(l.at, waiting)
  l.region.publish(l.at + LeaseLine.waiting, 4)
}
