/**
 * What the directory's heap holds and who holds it: read from the page map by any process
 * (`heapBlocks`), or given by the writer from its allocator's index, and summed up the same way.
 */
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import {
  type DirectoryEntry,
  type DirectoryUsage,
  RegionFull,
  type SpaceHolder
} from "../../services/region/Directory.js"
import { blockBytes, orderFor } from "./BuddyAllocator.js"
import { type LivePin, livePins } from "./DirectoryHolders.js"
import { BlockState, type DirectoryArea, EntryState, PAGE_BYTES, PageRecordView } from "./DirectoryRecords.js"
import { DirectoryTable, encodeName, nameHash, OBJECT_KINDS } from "./DirectoryTable.js"

export interface SpaceBlock {
  readonly state: number
  readonly bytes: number
  readonly ownerSlot: number
  readonly ownerGeneration: number
  /** The pin epoch it was retired at (a retired block): a pin older than that keeps it. */
  readonly retiredAt: number
  /** Retired because its owner's directory entry could not be read. */
  readonly ownerDamaged?: boolean
}

/** The page map walked from its first page, each block once; a torn or corrupt record counts as a free page. */
export const heapBlocks = (region: CxlMemoryShape, area: DirectoryArea): ReadonlyArray<SpaceBlock> => {
  const records = new PageRecordView(region)
  const blocks: Array<SpaceBlock> = []
  for (let page = 0; page < area.heapPages;) {
    const record = records.read(area.pageRecord(page))
    const fits = record.state !== BlockState.interior && page % 2 ** record.order === 0 &&
      page + 2 ** record.order <= area.heapPages
    const pages = fits ? 2 ** record.order : 1
    blocks.push({
      state: fits ? record.state : BlockState.free,
      bytes: pages * PAGE_BYTES,
      ownerSlot: record.ownerSlot,
      ownerGeneration: record.ownerGeneration,
      retiredAt: record.retiredAt,
      ownerDamaged: fits && record.ownerDamaged === true
    })
    page += pages
  }
  return blocks
}

export const usageOf = (
  area: DirectoryArea,
  blocks: ReadonlyArray<SpaceBlock>,
  objects: number
): DirectoryUsage => {
  let freeBytes = 0
  let largestFreeBytes = 0
  let usedBytes = 0
  let retiredBytes = 0
  for (const block of blocks) {
    if (block.state === BlockState.free) {
      freeBytes += block.bytes
      largestFreeBytes = Math.max(largestFreeBytes, block.bytes)
    } else if (block.state === BlockState.used) {
      usedBytes += block.bytes
    } else {
      retiredBytes += block.bytes
    }
  }
  return {
    heapBytes: area.config.heapBytes,
    freeBytes,
    largestFreeBytes,
    usedBytes,
    retiredBytes,
    objects,
    entrySlots: area.config.entrySlots,
    holderLines: area.config.holderLines
  }
}

/**
 * What holds the blocks of (slot, generation) when no listed entry does: the entry itself when it is
 * live and cannot be read (`unreadable`: the name and kind it still says), else a create or delete the
 * writer has not finished (`unfinished`: its entry is not written yet, or reads deleted with its blocks
 * not yet retired) — under way, or cut short when its head stopped, until a writer takes over.
 */
const unlistedOwner = (table: DirectoryTable, slot: number, generation: number): Omit<SpaceHolder, "bytes"> => {
  const unreadable = table.undecoded(slot)
  // By slot: a live entry's slot is no create's under way, and a damaged entry's generation word may not be its blocks'.
  if (unreadable !== undefined) {
    const name = unreadable.name
    const objectKind = name === undefined
      ? undefined
      : OBJECT_KINDS.find((kind) => nameHash(kind, encodeName(name)) === unreadable.hash)
    return {
      kind: "unreadable",
      name: name ?? "",
      pinnedBy: [],
      slot,
      ...(objectKind === undefined ? {} : { objectKind })
    }
  }
  const { generation: at, state } = table.read(slot)
  const change = state === EntryState.deleted && at === generation ? "delete" : "create"
  return { kind: "unfinished", name: change, pinnedBy: [], slot }
}

/** The live processes whose pins keep `retired` (a pin older than a block's retirement keeps it). */
const pinnersOf = (pins: ReadonlyArray<LivePin>, retired: ReadonlyArray<SpaceBlock>): ReadonlyArray<number> => {
  const pids = new Set<number>()
  for (const pin of pins) if (retired.some((b) => pin.epoch < b.retiredAt)) pids.add(pin.pid)
  return [...pids]
}

/**
 * Who holds the heap, largest first: each live object by its blocks' bytes, the blocks no listed
 * entry owns by what does (`unlistedOwner`), and deleted objects' blocks with the live processes
 * whose pins keep them. The blocks of entries a writer taking over deleted because it could not
 * read them are said apart (`damaged`): the processes that opened those objects before the damage
 * may still write there.
 */
export const spaceHolders = (
  region: CxlMemoryShape,
  area: DirectoryArea,
  blocks: ReadonlyArray<SpaceBlock>,
  table: DirectoryTable,
  entries: ReadonlyArray<DirectoryEntry> = table.list()
): ReadonlyArray<SpaceHolder> => {
  const live = new Map(entries.map((e) => [`${e.slot}:${e.generation}`, e]))
  const held = new Map<string, SpaceHolder & { bytes: number }>()
  const retired: Array<SpaceBlock> = []
  const retiredDamaged: Array<SpaceBlock> = []
  for (const block of blocks) {
    if (block.state === BlockState.retired) (block.ownerDamaged === true ? retiredDamaged : retired).push(block)
    if (block.state !== BlockState.used) continue
    const key = `${block.ownerSlot}:${block.ownerGeneration}`
    let found = held.get(key)
    if (found === undefined) {
      const owner = live.get(key)
      found = owner === undefined
        ? { ...unlistedOwner(table, block.ownerSlot, block.ownerGeneration), bytes: 0 }
        : { kind: owner.kind, name: owner.name, bytes: 0, pinnedBy: [] }
      held.set(key, found)
    }
    found.bytes += block.bytes
  }
  const holders: Array<SpaceHolder> = [...held.values()]
  const pins = retired.length + retiredDamaged.length > 0 ? livePins(region, area) : []
  const sum = (of: ReadonlyArray<SpaceBlock>) => of.reduce((n, b) => n + b.bytes, 0)
  if (retired.length > 0) {
    holders.push({ kind: "deleted", name: "objects", bytes: sum(retired), pinnedBy: pinnersOf(pins, retired) })
  }
  if (retiredDamaged.length > 0) {
    holders.push({
      kind: "damaged",
      name: "objects",
      bytes: sum(retiredDamaged),
      pinnedBy: pinnersOf(pins, retiredDamaged)
    })
  }
  return holders.sort((a, b) => b.bytes - a.bytes)
}

/** The holders a `RegionFull` names, largest first. */
export const HOLDERS_NAMED = 5

/** What a `RegionFull` says of `holders` (largest first): the first few by name, the rest summed. */
export const namedHolders = (holders: ReadonlyArray<SpaceHolder>) => {
  const rest = holders.slice(HOLDERS_NAMED)
  return {
    holders: holders.slice(0, HOLDERS_NAMED),
    ...(rest.length === 0 ? {} : { others: { holders: rest.length, bytes: rest.reduce((n, h) => n + h.bytes, 0) } })
  }
}

/**
 * Why `bytes` found no room, as any process reads the heap now (the writer that refused an
 * allocation told only that it did): free and largest free bytes, and the largest holders.
 */
export const regionFullNow = (region: CxlMemoryShape, area: DirectoryArea, bytes: number): RegionFull => {
  const blocks = heapBlocks(region, area)
  const table = new DirectoryTable(region, area)
  const entries = table.list()
  const usage = usageOf(area, blocks, entries.length)
  return new RegionFull({
    requested: blockBytes(orderFor(bytes)),
    largestFreeBytes: usage.largestFreeBytes,
    freeBytes: usage.freeBytes,
    heapBytes: area.config.heapBytes,
    ...namedHolders(spaceHolders(region, area, blocks, table, entries))
  })
}
