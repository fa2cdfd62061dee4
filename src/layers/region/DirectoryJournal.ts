/**
 * The directory's change journal: a ring of the latest creates and deletes, (slot, generation,
 * kind, created or deleted), written by the directory's one writer. A process that follows the
 * objects of a kind (the sequencer follows topics) reads only the changes since it last looked,
 * where listing every entry slot at every change would make creating n objects cost n × slots.
 *
 * Change n (counted from 1) is the ring's record n mod `journalRecords`; its number is its commit
 * word, stored after its fields, and the header's `changes` (the count) is stored after the
 * record: a reader that read the count C finds changes ..C whole. The writer overwrites change
 * n's record only when it journals change n + records, after the count reached n + records − 1;
 * so a reader that read changes after..upTo and then reads a count below after + records read
 * nothing overwritten. One that fell further behind, or finds a record of another number (a
 * writer that took over skipped the ring, a corrupt region), lists the table instead
 * (DirectoryFollower.ts). Counts are 32-bit and wrap: they are compared by difference.
 */
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { ObjectKind } from "../../services/region/Directory.js"
import { type DirectoryArea, DirectoryHeaderView, JOURNAL_RECORD_BYTES } from "./DirectoryRecords.js"
import { OBJECT_KINDS } from "./DirectoryTable.js"
import { WordView } from "./WordView.js"

/** A journal record (16 bytes, 4 to a line, all the writer's). */
const Record = {
  number: 0, // i32: the change's number (the count once it is journaled), stored last
  slot: 4, // i32: the entry slot
  generation: 8, // i32: the object's generation (generations only grow)
  change: 12 // i32: the kind's index in OBJECT_KINDS, | 256 for a create, | 512 for a delete
} as const

const CREATED = 256
const DELETED = 512

/** One create or delete, as the journal tells it. */
export interface DirectoryChange {
  readonly slot: number
  readonly generation: number
  readonly kind: ObjectKind
  /** True for a create, false for a delete. */
  readonly created: boolean
}

class JournalRecordView extends WordView {
  number(at: number): number {
    return Atomics.load(this.i32, (at + Record.number) / 4)
  }
  storeNumber(at: number, v: number): void {
    Atomics.store(this.i32, (at + Record.number) / 4, v)
  }
  slot(at: number): number {
    return this.i32[(at + Record.slot) / 4]!
  }
  generation(at: number): number {
    return this.i32[(at + Record.generation) / 4]!
  }
  change(at: number): number {
    return this.i32[(at + Record.change) / 4]!
  }
  setFields(at: number, slot: number, generation: number, change: number): void {
    this.i32[(at + Record.slot) / 4] = slot
    this.i32[(at + Record.generation) / 4] = generation
    this.i32[(at + Record.change) / 4] = change
  }
}

export class DirectoryJournal {
  private readonly records: JournalRecordView
  private readonly header: DirectoryHeaderView
  constructor(private readonly region: CxlMemoryShape, private readonly area: DirectoryArea) {
    this.records = new JournalRecordView(region)
    this.header = new DirectoryHeaderView(region)
  }

  /** The changes journaled so far (a 32-bit count that wraps); while it reads the same, so does every list of the table. */
  count(): number {
    this.region.invalidate(this.area.header, LINE_BYTES)
    return this.header.changes(this.area.header)
  }

  /**
   * The changes after `after` up to `upTo` (counts, `upTo` read from `count`), oldest first; undefined
   * when the ring no longer holds them all, or a record reads as no change (the caller lists the table).
   */
  since(after: number, upTo: number): ReadonlyArray<DirectoryChange> | undefined {
    const behind = (upTo - after) | 0
    if (behind < 0 || behind >= this.area.journalRecords) return undefined
    const changes: Array<DirectoryChange> = []
    for (let i = 1; i <= behind; i++) {
      const n = (after + i) | 0
      const at = this.area.journalRecord(n)
      this.region.invalidate(at, JOURNAL_RECORD_BYTES)
      if (this.records.number(at) !== n) return undefined
      const change = this.decode(at)
      if (change === undefined) return undefined
      changes.push(change)
    }
    // Read whole only if the writer has not come round to the first of them since.
    return ((this.count() - after) | 0) < this.area.journalRecords ? changes : undefined
  }

  /** A record's fields, checked: a slot outside the table, an unknown kind or change read as none. */
  private decode(at: number): DirectoryChange | undefined {
    const slot = this.records.slot(at)
    const generation = this.records.generation(at)
    const change = this.records.change(at)
    const kind = OBJECT_KINDS[change & 255]
    const op = change & ~255
    if (
      kind === undefined || (op !== CREATED && op !== DELETED) || !Number.isInteger(slot) || slot < 0 ||
      slot >= this.area.config.entrySlots || generation <= 0
    ) {
      return undefined
    }
    return { slot, generation, kind, created: op === CREATED }
  }

  // ---- the writer's ----------------------------------------------------------------

  /** Journals a change whose entry already reads as it now is: the record, then the count that makes it visible. */
  append(change: DirectoryChange): void {
    const n = (this.header.changes(this.area.header) + 1) | 0
    const at = this.area.journalRecord(n)
    this.records.setFields(
      at,
      change.slot,
      change.generation,
      OBJECT_KINDS.indexOf(change.kind) | (change.created ? CREATED : DELETED)
    )
    this.region.publish(at, JOURNAL_RECORD_BYTES)
    this.records.storeNumber(at, n)
    this.region.publish(at, JOURNAL_RECORD_BYTES)
    this.header.storeChanges(this.area.header, n)
    this.region.publish(this.area.header, LINE_BYTES)
  }

  /**
   * Moves the count a whole ring on with no record: every reader lists the table at its next look.
   * A writer taking over does it, since its predecessor may have changed entries it never journaled
   * (a rewrite it died in, closed by its successor).
   */
  skipRing(): void {
    const at = this.area.header
    this.header.storeChanges(at, (this.header.changes(at) + this.area.journalRecords) | 0)
    this.region.publish(at, LINE_BYTES)
  }
}
