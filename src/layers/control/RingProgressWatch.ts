/**
 * The observer side of progress wake-ups: while it watches targets, this process holds the
 * ring's last reader slot as an observer line (never the last free slot, so attaching readers
 * still find one) holding its doorbell and the lowest target, which readers ring on crossing.
 * A line left by a dead observer is taken over. The target is set before the caller checks the
 * readers' progress and readers publish progress before they read it, so one of the two sees
 * the other.
 */
import { Effect } from "effect"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { isPidAlive, isProcessAlive, ownStartTag } from "../region/ProcessInfo.js"
import { type Lines, type ObserverLineView, type PlacedRing, type ReaderLineView, ringLineViews } from "./RingLines.js"
import { claimerOf, claimOf, FREE, isClaim, nextOccurrence, OBSERVING } from "./RingSlotStates.js"

/** Targets this process watches on one ring. */
export interface ProgressWatch {
  /**
   * Watches `target`: readers that cross it ring this process. False when no observer line
   * could be had (the ring's last reader slot is a reader's, or the only free one), so the
   * caller has to poll.
   */
  readonly add: (target: number) => boolean
  /** Stops watching one `add`ed target; the last one frees the observer line. */
  readonly remove: (target: number) => void
}

/** This process's watch of one ring: the observer line and the targets it holds. */
interface WatchState {
  readonly region: CxlMemoryShape
  readonly doorbell: DoorbellShape
  readonly lines: Lines
  readonly observer: ObserverLineView
  readonly reader: ReaderLineView
  /** The ring's last reader slot's line. */
  readonly line: number
  readonly targets: Array<number>
  /** This process's occurrence on the observer line while it holds it (0: not held). */
  occurrence: number
}

const progressWatch = (region: CxlMemoryShape, doorbell: DoorbellShape, l: Lines): ProgressWatch => {
  const { observer, reader } = ringLineViews(region)
  const o: WatchState = {
    region,
    doorbell,
    lines: l,
    observer,
    reader,
    line: l.line(l.address.readerSlots - 1),
    targets: [],
    occurrence: 0
  }
  return { add: (target) => addTarget(o, target), remove: (target) => removeTarget(o, target) }
}

const owned = (o: WatchState): boolean =>
  o.occurrence !== 0 && o.observer.state(o.line) === OBSERVING && o.observer.occurrence(o.line) === o.occurrence

const anotherSlotFree = (o: WatchState): boolean => {
  for (let s = 0; s < o.lines.address.readerSlots - 1; s++) {
    if (o.reader.state(o.lines.line(s)) === FREE) return true
  }
  return false
}

/** Takes the observer line if it is free (and not the last free slot) or its holder is gone. */
const claimLine = (o: WatchState): boolean => {
  const { observer, line } = o
  if (o.lines.address.readerSlots < 2) return false
  const state = observer.state(line)
  const abandoned = (state === OBSERVING && !isProcessAlive(observer.pid(line), observer.start(line))) ||
    (isClaim(state) && !isPidAlive(claimerOf(state)))
  if (!((state === FREE && anotherSlotFree(o)) || abandoned)) return false
  if (!observer.swapState(line, state, claimOf(process.pid))) return false
  o.occurrence = nextOccurrence(observer.occurrence(line))
  observer.setPid(line, process.pid)
  observer.setStart(line, ownStartTag())
  observer.setBell(line, o.doorbell.offset)
  observer.storeOccurrence(line, o.occurrence)
  observer.publishTarget(line, Infinity)
  observer.storeState(line, OBSERVING)
  o.region.publish(line, LINE_BYTES)
  return true
}

const publishLowestTarget = (o: WatchState): void => {
  let lowest = Infinity
  for (const target of o.targets) lowest = Math.min(lowest, target)
  o.observer.publishTarget(o.line, lowest)
  o.region.publish(o.line, LINE_BYTES)
}

const addTarget = (o: WatchState, target: number): boolean => {
  o.targets.push(target)
  if (!owned(o) && !claimLine(o)) {
    o.occurrence = 0
    return false
  }
  publishLowestTarget(o)
  return true
}

const removeTarget = (o: WatchState, target: number): void => {
  const at = o.targets.indexOf(target)
  if (at >= 0) o.targets.splice(at, 1)
  if (!owned(o)) return
  if (o.targets.length > 0) {
    publishLowestTarget(o)
    // A waiter whose target is now the lowest may have been passed without a ring.
    o.doorbell.poke()
    return
  }
  if (o.observer.swapState(o.line, OBSERVING, FREE)) o.region.publish(o.line, LINE_BYTES)
  o.occurrence = 0
}

/** How often `awaitProgress` re-checks when the ring has no observer line to spare. */
const PROGRESS_POLL_MS = 1

/**
 * Waits until `reached()` holds: rung by readers crossing `target` while this process holds the
 * ring's observer line, else re-checking every PROGRESS_POLL_MS. `watches` are this process's,
 * by ring offset.
 */
export const awaitProgressOf = (
  { doorbell, lines: l, region }: PlacedRing,
  watches: Map<number, ProgressWatch>,
  target: number,
  reached: () => boolean,
  timeoutMs: number
): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    if (reached()) return Effect.succeed(true)
    let watch = watches.get(l.address.offset)
    if (watch === undefined) {
      watch = progressWatch(region, doorbell, l)
      watches.set(l.address.offset, watch)
    }
    const rung = watch.add(target)
    const deadline = performance.now() + timeoutMs
    const poll: Effect.Effect<boolean> = Effect.suspend(() => {
      const left = deadline - performance.now()
      return doorbell.await(reached, Math.min(left, PROGRESS_POLL_MS)).pipe(
        Effect.flatMap((ok) => (ok || left <= PROGRESS_POLL_MS ? Effect.succeed(ok) : poll))
      )
    })
    return (rung ? doorbell.await(reached, timeoutMs) : poll).pipe(
      Effect.ensuring(Effect.sync(() => watch.remove(target)))
    )
  })
