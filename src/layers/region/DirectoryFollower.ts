/**
 * Follows the directory's live objects of one kind for a process that keeps state per object (the
 * sequencer per topic): each look tells which objects are new and which are gone since the last.
 * It reads the change journal (DirectoryJournal.ts): one atomic load while nothing changed, and
 * only the changes since when something did. On its first look, and whenever it fell behind the
 * journal's ring, it lists the table's slots instead and compares the listing with what it knew.
 *
 * It keeps the live objects it knows (slot → generation). A listing and the changes journaled
 * while it ran may overlap; they apply in any order to the same result because generations only
 * grow: a create older than what a slot is known to hold is stale, and a delete removes only the
 * very generation it names.
 */
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { ObjectKind } from "../../services/region/Directory.js"
import type { DirectoryChange } from "./DirectoryJournal.js"
import { DirectoryJournal } from "./DirectoryJournal.js"
import type { DirectoryArea } from "./DirectoryRecords.js"
import { DirectoryTable } from "./DirectoryTable.js"

/** An object by its slot and generation. */
export interface SlotGeneration {
  readonly slot: number
  readonly generation: number
}

/** What changed since the last look: objects gone (deleted, or their slot now another's), then objects new. */
export interface FollowedChanges {
  readonly deleted: ReadonlyArray<SlotGeneration>
  readonly created: ReadonlyArray<SlotGeneration>
}

const NOTHING: FollowedChanges = { deleted: [], created: [] }

export class DirectoryFollower {
  private readonly table: DirectoryTable
  private readonly journal: DirectoryJournal
  /** The live objects of the kind as of the last look. */
  private readonly live = new Map<number, number>()
  /** The journal's count the last look read through; undefined: list the table at the next. */
  private seen: number | undefined
  private listed = 0

  constructor(region: CxlMemoryShape, area: DirectoryArea, private readonly kind: ObjectKind) {
    this.table = new DirectoryTable(region, area)
    this.journal = new DirectoryJournal(region, area)
  }

  /** Looks that listed the table (the first, and those that fell behind the ring). */
  get listings(): number {
    return this.listed
  }

  /** Forgets what it knew: the next look lists the table and tells every live object as new. */
  reset(): void {
    this.live.clear()
    this.seen = undefined
  }

  /** The objects new and gone since the last look. */
  changes(): FollowedChanges {
    const count = this.journal.count()
    if (count === this.seen) return NOTHING
    /** The generation each slot touched held before this look (undefined: none). */
    const before = new Map<number, number | undefined>()
    const journaled = this.seen === undefined ? undefined : this.journal.since(this.seen, count)
    if (journaled === undefined) this.relist(before)
    else for (const change of journaled) this.apply(change, before)
    this.seen = count
    if (before.size === 0) return NOTHING
    const deleted: Array<SlotGeneration> = []
    const created: Array<SlotGeneration> = []
    for (const [slot, was] of before) {
      const now = this.live.get(slot)
      if (now === was) continue
      if (was !== undefined) deleted.push({ slot, generation: was })
      if (now !== undefined) created.push({ slot, generation: now })
    }
    return { deleted, created }
  }

  private touch(slot: number, before: Map<number, number | undefined>): void {
    if (!before.has(slot)) before.set(slot, this.live.get(slot))
  }

  private apply(change: DirectoryChange, before: Map<number, number | undefined>): void {
    const known = this.live.get(change.slot)
    if (change.created) {
      if (known !== undefined && known >= change.generation) return
      // Another kind's object in the slot means the object known there is gone; it is nothing to follow itself.
      if (known === undefined && change.kind !== this.kind) return
      this.touch(change.slot, before)
      if (change.kind === this.kind) this.live.set(change.slot, change.generation)
      else this.live.delete(change.slot)
    } else if (known === change.generation) {
      this.touch(change.slot, before)
      this.live.delete(change.slot)
    }
  }

  /** Lists every slot (the count was read before, so what changes meanwhile is journaled after it). */
  private relist(before: Map<number, number | undefined>): void {
    this.listed++
    const listed = new Map<number, number>()
    for (const entry of this.table.liveSlots(this.kind)) listed.set(entry.slot, entry.generation)
    for (const [slot, generation] of this.live) {
      if (listed.get(slot) !== generation) this.touch(slot, before)
    }
    for (const [slot, generation] of listed) {
      if (this.live.get(slot) !== generation) this.touch(slot, before)
    }
    this.live.clear()
    for (const [slot, generation] of listed) this.live.set(slot, generation)
  }
}
