/**
 * The directory's entries as an open-addressing hash table keyed by (kind, name), linear probing.
 * Readers take no lock: each entry is read under its sequence lock (`version` odd while the writer
 * rewrites it, changed if it did meanwhile: read again), so a lookup never sees half an entry.
 * A deleted entry stays as a marker (`deleted`) that probes pass over, until the writer sweeps the
 * markers that end a probe run (`sweepDeleted`), so chains stay as short as the live objects make them.
 */
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import {
  type DirectoryEntry,
  MAX_NAME_BYTES,
  MAX_OBJECT_PARAMS,
  type ObjectKind
} from "../../services/region/Directory.js"
import {
  BlockState,
  type DirectoryArea,
  Entry,
  ENTRY_BYTES,
  EntryState,
  EntryView,
  PAGE_BYTES,
  PAGE_RECORD_BYTES,
  PageRecordView
} from "./DirectoryRecords.js"

export const OBJECT_KINDS: ReadonlyArray<ObjectKind> = ["topic", "group", "channel", "service"]

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** FNV-1a over the kind's index and the name's UTF-8 bytes; never 0 (0 marks no hash). */
export const nameHash = (kind: ObjectKind, name: Uint8Array): number => {
  let h = 0x811c9dc5 ^ OBJECT_KINDS.indexOf(kind)
  h = Math.imul(h, 0x01000193)
  for (let i = 0; i < name.length; i++) {
    h ^= name[i]!
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) || 1
}

export const encodeName = (name: string): Uint8Array => encoder.encode(name)

/**
 * How often a reader re-reads an entry caught mid-rewrite before it takes the entry as being
 * written (`BUSY`): a rewrite takes a microsecond, but a writer that died mid-rewrite leaves it
 * open until the next writer closes it, and a reader must not wait for that.
 */
const MAX_RETRIES = 4096
/** The state a reader gives an entry it never caught still: a create or delete in progress, neither visible yet. */
const BUSY = -1

/** An entry as one consistent read: its state, and the object if live. */
interface EntrySnapshot {
  readonly state: number
  /** The generation its entry words say (a deleted entry keeps the one it had). */
  readonly generation: number
  readonly hash: number
  readonly entry: DirectoryEntry | undefined
}

export class DirectoryTable {
  private readonly entries: EntryView
  private readonly pages: PageRecordView
  private readonly mask: number
  constructor(private readonly region: CxlMemoryShape, private readonly area: DirectoryArea) {
    this.entries = new EntryView(region)
    this.pages = new PageRecordView(region)
    this.mask = area.config.entrySlots - 1
  }

  get slots(): number {
    return this.mask + 1
  }

  /** Slot `slot` read whole under its sequence lock. */
  read(slot: number): EntrySnapshot {
    return this.readIf(slot, () => true)
  }

  /** Slot `slot` under its sequence lock; the object is decoded only when `wanted(state, hash)`, the rest is left undefined. */
  private readIf(slot: number, wanted: (state: number, hash: number) => boolean): EntrySnapshot {
    const at = this.area.entry(slot)
    const e = this.entries
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      this.region.invalidate(at, ENTRY_BYTES)
      const before = e.version(at)
      if ((before & 1) === 1) continue
      const state = e.state(at)
      const generation = e.generation(at)
      const hash = e.hash(at)
      const entry = state === EntryState.live && wanted(state, hash) ? this.decode(at, slot) : undefined
      if (e.version(at) === before) return { state, generation, hash, entry }
    }
    return { state: BUSY, generation: 0, hash: 0, entry: undefined }
  }

  /** Whether the entry's fields are each in range (a corrupt region is never trusted): read without decoding its name. */
  private inRange(at: number, slot: number): boolean {
    const e = this.entries
    const nameBytes = e.nameBytes(at)
    const paramCount = e.paramCount(at)
    return OBJECT_KINDS[e.kind(at)] !== undefined && nameBytes >= 1 && nameBytes <= MAX_NAME_BYTES &&
      paramCount >= 0 && paramCount <= MAX_OBJECT_PARAMS && this.ownsItsExtent(at, slot)
  }

  /**
   * Whether the page map says the entry's main extent is a block in use by this very entry (its slot
   * and generation): every extent is such a block before its entry is published, so an entry whose
   * generation (or extent) was corrupted reads as damaged, never as a live object whose memory is
   * another's, or no one's (which a writer taking over would retire under it).
   */
  private ownsItsExtent(at: number, slot: number): boolean {
    const e = this.entries
    const offset = e.offset(at)
    const page = (offset - this.area.heap) / PAGE_BYTES
    if (!Number.isSafeInteger(page) || page < 0 || page >= this.area.heapPages) return false
    const record = this.area.pageRecord(page)
    this.region.invalidate(record, PAGE_RECORD_BYTES)
    const block = this.pages.read(record)
    return block.state === BlockState.used && block.ownerSlot === slot && block.ownerGeneration === e.generation(at) &&
      e.bytes(at) === PAGE_BYTES * 2 ** block.order && this.region.inBounds(offset, e.bytes(at))
  }

  /** The live entry's fields; a field out of its range reads as no entry. */
  private decode(at: number, slot: number): DirectoryEntry | undefined {
    if (!this.inRange(at, slot)) return undefined
    const e = this.entries
    const kind = OBJECT_KINDS[e.kind(at)]!
    const nameBytes = e.nameBytes(at)
    const paramCount = e.paramCount(at)
    const offset = e.offset(at)
    const bytes = e.bytes(at)
    const params: Array<number> = []
    for (let i = 0; i < paramCount; i++) params.push(e.param(at, i))
    return {
      slot,
      generation: e.generation(at),
      kind,
      name: decoder.decode(this.region.bytes.slice(at + Entry.name, at + Entry.name + nameBytes)),
      extent: { offset, bytes },
      params,
      createdAtMs: e.createdAtMs(at)
    }
  }

  /**
   * The probe for (kind, name): the live entry if there is one, and the first slot a create may
   * take (a deleted marker or the empty slot that ends the run); -1 when every slot was probed.
   * `corrupt` is the first live entry of the name's hash whose fields are out of range (-1: none):
   * perhaps the object asked for, which then cannot be read.
   */
  probe(
    kind: ObjectKind,
    name: string
  ): { readonly found: DirectoryEntry | undefined; readonly free: number; readonly corrupt: number } {
    const hash = nameHash(kind, encodeName(name))
    let free = -1
    let corrupt = -1
    for (let i = 0; i <= this.mask; i++) {
      const slot = (hash + i) & this.mask
      // Only an entry of the same hash is decoded: a probe passes the others on two words.
      const snapshot = this.readIf(slot, (_, h) => h === hash)
      if (snapshot.state === EntryState.empty) return { found: undefined, free: free < 0 ? slot : free, corrupt }
      if (snapshot.state === EntryState.live) {
        const entry = snapshot.entry
        if (snapshot.hash === hash && entry !== undefined && entry.kind === kind && entry.name === name) {
          return { found: entry, free, corrupt }
        }
        if (snapshot.hash === hash && entry === undefined && corrupt < 0) corrupt = slot
      } else if (snapshot.state === EntryState.deleted && free < 0) {
        free = slot
      }
    }
    return { found: undefined, free, corrupt }
  }

  lookup(kind: ObjectKind, name: string): DirectoryEntry | undefined {
    return this.probe(kind, name).found
  }

  list(kind?: ObjectKind): ReadonlyArray<DirectoryEntry> {
    const found: Array<DirectoryEntry> = []
    for (let slot = 0; slot <= this.mask; slot++) {
      const { entry } = this.read(slot)
      if (entry !== undefined && (kind === undefined || entry.kind === kind)) found.push(entry)
    }
    return found
  }

  /**
   * The live objects of `kind` as (slot, generation) pairs, read under each entry's lock without
   * decoding names: what a process that follows the objects needs to see which are new or gone.
   */
  liveSlots(kind: ObjectKind): ReadonlyArray<{ readonly slot: number; readonly generation: number }> {
    const code = OBJECT_KINDS.indexOf(kind)
    const e = this.entries
    return this.scanLive((at, slot) => e.kind(at) === code ? { slot, generation: e.generation(at) } : undefined)
  }

  /**
   * The slots of live entries whose fields are out of range (`undecoded` reads what is left of each),
   * found on a few words per live entry, no name decoded.
   */
  unreadableSlots(): ReadonlyArray<number> {
    return this.scanLive((at, slot) => this.inRange(at, slot) ? undefined : slot)
  }

  /**
   * What `look` reads of each live entry (undefined: nothing), under the entry's lock: read again
   * while a writer holds it or moved it meanwhile, and only what was read of a still-live entry kept.
   */
  private scanLive<T>(look: (at: number, slot: number) => T | undefined): Array<T> {
    const found: Array<T> = []
    const e = this.entries
    for (let slot = 0; slot <= this.mask; slot++) {
      const at = this.area.entry(slot)
      this.region.invalidate(at, ENTRY_BYTES)
      // Most slots are empty or deleted: passed on one load. One becoming live meanwhile is journaled after it is
      // published (DirectoryJournal.ts), so whoever follows the objects learns it at its next look.
      if (e.state(at) !== EntryState.live) continue
      for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
        if (attempt > 0) this.region.invalidate(at, ENTRY_BYTES)
        const before = e.version(at)
        if ((before & 1) === 1) continue
        const value = e.state(at) === EntryState.live ? look(at, slot) : undefined
        if (e.version(at) !== before) continue
        if (value !== undefined) found.push(value)
        break
      }
    }
    return found
  }

  /**
   * What can still be read of live entry `slot` whose fields are out of range (so it decodes as no
   * object): its generation, its hash, and its name when the name's length is in range (undefined
   * when not, or when the entry is not such an entry: empty, deleted, sound, or being rewritten).
   */
  undecoded(slot: number): { readonly generation: number; readonly hash: number; readonly name?: string } | undefined {
    const at = this.area.entry(slot)
    const e = this.entries
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      this.region.invalidate(at, ENTRY_BYTES)
      const before = e.version(at)
      if ((before & 1) === 1) continue
      const undecodable = e.state(at) === EntryState.live && this.decode(at, slot) === undefined
      const nameBytes = e.nameBytes(at)
      const name = nameBytes >= 1 && nameBytes <= MAX_NAME_BYTES
        ? decoder.decode(this.region.bytes.slice(at + Entry.name, at + Entry.name + nameBytes))
        : undefined
      const read = { generation: e.generation(at), hash: e.hash(at), ...(name === undefined ? {} : { name }) }
      if (e.version(at) === before) return undecodable ? read : undefined
    }
    return undefined
  }

  /** Whether slot `entry.slot` still holds that very object: live, same generation. */
  isCurrent(entry: Pick<DirectoryEntry, "slot" | "generation">): boolean {
    const at = this.area.entry(entry.slot)
    const e = this.entries
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      this.region.invalidate(at, ENTRY_BYTES)
      const before = e.version(at)
      if ((before & 1) === 1) continue
      const current = e.state(at) === EntryState.live && e.generation(at) === entry.generation
      if (e.version(at) === before) return current
    }
    return false
  }

  // ---- the writer's ----------------------------------------------------------------

  /** Rewrites slot `slot` under its sequence lock: odd version, fields, publish, even version. */
  private rewrite(slot: number, write: (at: number) => void): void {
    const at = this.area.entry(slot)
    const version = this.entries.version(at)
    // An odd version left by a writer that died mid-rewrite is closed by this one.
    const open = (version & 1) === 1 ? version : version + 1
    this.entries.storeVersion(at, open)
    write(at)
    this.region.publish(at, ENTRY_BYTES)
    this.entries.storeVersion(at, open + 1)
    this.region.publish(at, ENTRY_BYTES)
  }

  /** Publishes a live entry in `slot` (a slot `probe` gave as free). */
  insert(slot: number, entry: Omit<DirectoryEntry, "slot">): DirectoryEntry {
    const name = encodeName(entry.name)
    this.rewrite(slot, (at) => {
      const e = this.entries
      e.setState(at, EntryState.live)
      e.setGeneration(at, entry.generation)
      e.setKind(at, OBJECT_KINDS.indexOf(entry.kind))
      e.setHash(at, nameHash(entry.kind, name))
      e.setNameBytes(at, name.length)
      e.setCreatedAtMs(at, entry.createdAtMs)
      e.setExtent(at, entry.extent.offset, entry.extent.bytes)
      e.setParamCount(at, entry.params.length)
      for (let i = 0; i < MAX_OBJECT_PARAMS; i++) e.setParam(at, i, entry.params[i] ?? 0)
      this.region.bytes.fill(0, at + Entry.name, at + Entry.name + MAX_NAME_BYTES)
      this.region.bytes.set(name, at + Entry.name)
    })
    return { ...entry, slot }
  }

  /** Marks the entry deleted: its name is free, probes pass over it. */
  markDeleted(slot: number): void {
    this.rewrite(slot, (at) => this.entries.setState(at, EntryState.deleted))
  }

  /**
   * Empties the deleted markers that end a probe run (the slot after them is empty), walking
   * back from `slot`: no probe needs them any more, and probes stay short over many deletes.
   */
  sweepDeleted(slot: number): void {
    if (this.read((slot + 1) & this.mask).state !== EntryState.empty) return
    for (let s = slot, n = 0; n <= this.mask && this.read(s).state === EntryState.deleted; n++) {
      this.rewrite(s, (at) => this.entries.setState(at, EntryState.empty))
      s = (s - 1) & this.mask
    }
  }

  /** Closes a rewrite a dead writer left open (odd version): the entry goes back to what its state word says. */
  closeOpenRewrites(): ReadonlyArray<number> {
    const closed: Array<number> = []
    for (let slot = 0; slot <= this.mask; slot++) {
      const at = this.area.entry(slot)
      if ((this.entries.version(at) & 1) === 0) continue
      // Half written: the create it belonged to never answered; the slot is given up.
      this.rewrite(slot, (at) => this.entries.setState(at, EntryState.deleted))
      closed.push(slot)
    }
    return closed
  }
}
