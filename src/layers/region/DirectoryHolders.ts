/**
 * Pins on directory objects, as epochs (epoch-based reclamation): a process that uses an object's
 * bytes first announces the directory's pin epoch in its holder line, then checks the object is
 * still live. The writer deletes by marking the entry deleted and then bumping the epoch to E; an
 * extent retired at E is freed once no live holder announces an epoch below E (a holder that
 * announced E or later did so after the delete and found the object gone). A holder line names its
 * process by pid and start time (LineClaim.ts), so a dead holder's pins count for nothing and its
 * line is taken over by the next process that needs one. docs/region.md walks through the orderings.
 */
import { Effect } from "effect"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { HolderLinesFull } from "../../services/region/Directory.js"
import { type DirectoryArea, DirectoryHeaderView, HOLDER_LINE_BYTES, HolderLineView } from "./DirectoryRecords.js"
import { isLineOwnerAlive, newOccurrence } from "./LineClaim.js"

/** This process's holder line and the pins in force on it, by epoch. */
export class HolderLine {
  private readonly holders: HolderLineView
  private readonly header: DirectoryHeaderView
  private line = -1
  private occurrence = 0
  /** Pins in force by the epoch each announced; the line shows the oldest. */
  private readonly pins = new Map<number, number>()

  constructor(private readonly region: CxlMemoryShape, private readonly area: DirectoryArea) {
    this.holders = new HolderLineView(region)
    this.header = new DirectoryHeaderView(region)
  }

  /** Claims a free line, or a dead holder's, by compare-and-swap of its (occurrence, pid) pair. */
  private claim(): number | HolderLinesFull {
    {
      if (this.line >= 0) return this.line
      const occurrence = newOccurrence()
      for (let line = 0; line < this.area.config.holderLines; line++) {
        const at = this.area.holder(line)
        const held = this.holders.occurrence(at)
        const pid = this.holders.pid(at)
        if (held !== 0 && isLineOwnerAlive(pid, held)) continue
        if (!this.holders.swapClaim(at, held, pid, occurrence, process.pid)) continue
        this.holders.storePinned(at, 0)
        this.region.publish(at, HOLDER_LINE_BYTES)
        this.line = line
        this.occurrence = occurrence
        return line
      }
      return new HolderLinesFull({ holderLines: this.area.config.holderLines })
    }
  }

  private show(): void {
    let oldest = 0
    for (const epoch of this.pins.keys()) if (oldest === 0 || epoch < oldest) oldest = epoch
    const at = this.area.holder(this.line)
    this.holders.storePinned(at, oldest)
    this.region.publish(at, HOLDER_LINE_BYTES)
  }

  /** Announces a pin at the current epoch; the caller checks its object is live after this, and calls `unpin` with the epoch. */
  pin(): Effect.Effect<number, HolderLinesFull> {
    return Effect.suspend(() => {
      const epoch = this.pinNow()
      return typeof epoch === "number" ? Effect.succeed(epoch) : Effect.fail(epoch)
    })
  }

  /** `pin` without an Effect, for holders that pin on a hot path. */
  pinNow(): number | HolderLinesFull {
    const claimed = this.claim()
    if (typeof claimed !== "number") return claimed
    this.region.invalidate(this.area.header, HOLDER_LINE_BYTES)
    const epoch = this.header.pinEpoch(this.area.header)
    const count = this.pins.get(epoch) ?? 0
    this.pins.set(epoch, count + 1)
    if (count === 0) this.show()
    return epoch
  }

  /** The directory's pin epoch now: a pin older than it may keep a deleted object's extents. */
  epochNow(): number {
    this.region.invalidate(this.area.header, HOLDER_LINE_BYTES)
    return this.header.pinEpoch(this.area.header)
  }

  unpin(epoch: number): void {
    const count = this.pins.get(epoch) ?? 0
    if (count <= 1) {
      this.pins.delete(epoch)
      this.show()
    } else {
      this.pins.set(epoch, count - 1)
    }
  }

  /** Gives the line back (the process's directory closes): pins first, then the claim. */
  release(): void {
    if (this.line < 0) return
    const at = this.area.holder(this.line)
    this.pins.clear()
    this.holders.storePinned(at, 0)
    this.region.publish(at, HOLDER_LINE_BYTES)
    this.holders.swapClaim(at, this.occurrence, process.pid, 0, 0)
    this.region.publish(at, HOLDER_LINE_BYTES)
    this.line = -1
  }
}

/** A live holder's oldest pin in force. */
export interface LivePin {
  readonly pid: number
  readonly epoch: number
}

/** Every live holder's oldest pin (lines of dead holders count for nothing). */
export const livePins = (region: CxlMemoryShape, area: DirectoryArea): ReadonlyArray<LivePin> => {
  const holders = new HolderLineView(region)
  const pins: Array<LivePin> = []
  for (let line = 0; line < area.config.holderLines; line++) {
    const at = area.holder(line)
    region.invalidate(at, HOLDER_LINE_BYTES)
    const occurrence = holders.occurrence(at)
    if (occurrence === 0) continue
    const epoch = holders.pinned(at)
    const pid = holders.pid(at)
    // This process is alive by definition; another is asked of /proc.
    if (epoch !== 0 && (pid === process.pid || isLineOwnerAlive(pid, occurrence))) pins.push({ pid, epoch })
  }
  return pins
}
