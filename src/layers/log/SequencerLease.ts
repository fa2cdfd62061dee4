/**
 * The sequencer lease, a line of the superblock: one head orders at a time. Taking it
 * (`acquireLease`: the lease free, expired or its holder gone, then an earlier holder's round
 * waited out: `awaitEarlierRound`), holding it (`renewLease`), the round's fence (`beginRound`
 * / `endRound`, on the `writing` marker), the `waiting` word appenders read before ringing,
 * and letting it go (`releaseLease`).
 */
import { Effect } from "effect"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { SequencerEarlierRoundStopped, SequencerLeaseHeld, SequencerLeaseLost } from "../../services/log/Sequencer.js"
import { isPidAlive, isPidStopped } from "../region/ProcessInfo.js"
import { readHeadLease } from "./HeadLease.js"
import { Offsets } from "../region/Superblock.js"
import { LeaseLine } from "./Records.js"
import { LeaseLineView } from "./RecordViews.js"

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
}

export const sequencerLease = (
  region: CxlMemoryShape,
  settings: { readonly occurrence: number; readonly leaseMs: number; readonly doorbell: number; readonly earlierRoundWaitMs: number }
): SequencerLease => ({ region, lines: new LeaseLineView(region), at: Offsets.sequencerLease, ...settings })

/** Takes the lease if it is free, expired or its holder is gone: the new epoch; else who holds it. */
const tryAcquire = (l: SequencerLease): number | SequencerLeaseHeld => {
  const { lines, at, region } = l
  const lease = readHeadLease(lines, Date.now())
  if (lease.held || !lines.swapOccurrence(at, lease.holder, l.occurrence)) return new SequencerLeaseHeld({ pid: lease.pid, expiresAtMs: lease.expiresAtMs })
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

/**
 * The fence, after winning the lease: an earlier holder may be inside a round (it checked
 * the lease before we took it, then stalled). Wait until its marker clears, or names a
 * process that is gone (SIGKILL: cleared here) or this one (we hold the lease and began no
 * round: a head killed mid-round whose pid we were given, in a restarted container or pid
 * namespace). The marker is a bare pid, so a live process it names may be an unrelated one
 * that reuses a killed head's pid: past `earlierRoundWaitMs`, one that is not stopped is
 * taken to be such (no round lasts that long) and the marker is cleared; one stopped inside
 * the round fails this head (SequencerEarlierRoundStopped), since it would write on once
 * resumed.
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
      const marker = lines.writing(at)
      if (marker === 0) return
      if (marker === process.pid || !isPidAlive(marker)) {
        lines.exchangeWriting(at, marker, 0)
        continue
      }
      const waitedMs = Date.now() - started
      if (waitedMs >= earlierRoundWaitMs) {
        if (isPidStopped(marker)) return yield* new SequencerEarlierRoundStopped({ pid: marker, waitedMs })
        yield* Effect.logWarning(`sequencer: process ${marker}, named by an earlier head's round marker, ran ${waitedMs} ms without ending the round: not a head inside one (a reused pid); marker cleared`)
        lines.exchangeWriting(at, marker, 0)
        continue
      }
      if (!warned && waitedMs >= l.leaseMs) {
        warned = true
        yield* Effect.logWarning(`sequencer: process ${marker} of an earlier epoch is stopped inside a round; ordering waits until it finishes the round or is gone (at most ${earlierRoundWaitMs} ms while it runs)`)
      }
      yield* Effect.sleep(pollMs)
      pollMs = Math.min(pollMs * 2, 100)
    }
  })

/** Takes the lease within `waitMs` and waits out an earlier holder's round: the new epoch. */
export const acquireLease = (l: SequencerLease, waitMs: number): Effect.Effect<number, SequencerLeaseHeld | SequencerEarlierRoundStopped> =>
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

export const leaseLost = (l: SequencerLease, epoch: number): SequencerLeaseLost => new SequencerLeaseLost({ epoch, holderPid: l.lines.pid(l.at) })

/**
 * Enters a round's writes: Dekker's handshake with a new holder. Publish our pid as the round's
 * marker, then check the lease; a new holder swaps the lease, then reads the marker (both
 * sequentially consistent), so either we see its lease and write nothing (false), or it sees
 * our marker and waits for the round to end (`awaitEarlierRound`). A marker we find set while
 * we hold the lease belongs to a fenced head between its own two steps (the earlier holder's
 * round was waited out at acquisition): we overwrite it, and its check then fails.
 */
export const beginRound = (l: SequencerLease): boolean => {
  const { lines, at } = l
  const pid = process.pid
  const seen = lines.exchangeWriting(at, 0, pid)
  if (seen !== 0 && seen !== pid) {
    if (!holdsLease(l)) return false
    lines.storeWriting(at, pid)
  }
  if (holdsLease(l)) return true
  lines.exchangeWriting(at, pid, 0)
  return false
}

export const endRound = (l: SequencerLease): void => {
  l.lines.exchangeWriting(l.at, process.pid, 0)
}

/** Moves the lease's expiry on, or fails if another head took it meanwhile. */
export const renewLease = (l: SequencerLease, epoch: number): Effect.Effect<void, SequencerLeaseLost> =>
  Effect.suspend(() => {
    if (!holdsLease(l)) return Effect.fail(leaseLost(l, epoch))
    l.lines.setExpiresAtMs(l.at, Date.now() + l.leaseMs)
    l.region.publish(l.at + LeaseLine.expiresAtMs, 8)
    return Effect.void
  })

/** Says whether this head waits on its doorbell for batches (appenders ring it only then). */
export const markWaiting = (l: SequencerLease, waiting: 0 | 1): void => {
  l.lines.storeWaiting(l.at, waiting)
  l.region.publish(l.at + LeaseLine.waiting, 4)
}
