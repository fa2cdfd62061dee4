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
import { livePins } from "./DirectoryHolders.js"
import { BlockState, type DirectoryArea, PAGE_BYTES, PageRecordView } from "./DirectoryRecords.js"
import { DirectoryTable } from "./DirectoryTable.js"

export interface SpaceBlock {
  readonly state: number
  readonly bytes: number
  readonly ownerSlot: number
  readonly ownerGeneration: number
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
 * Who holds the heap, largest first: each live object by its blocks' bytes, and deleted objects'
 * blocks with the live processes whose pins keep them (a block in use whose owner is no live
 * entry — a create cut short, or an entry that cannot be read — shows as deleted too, until a
 * writer takes over and retires it). The blocks of entries a writer taking over deleted because
 * it could not read them are said apart (`damaged`): the processes that opened those objects
 * before the damage may still write there.
 */
export const spaceHolders = (
  region: CxlMemoryShape,
  area: DirectoryArea,
  blocks: ReadonlyArray<SpaceBlock>,
  entries: ReadonlyArray<DirectoryEntry>
): ReadonlyArray<SpaceHolder> => {
  const live = new Map(entries.map((e) => [`${e.slot}:${e.generation}`, e]))
  const held = new Map<string, { kind: SpaceHolder["kind"]; name: string; bytes: number }>()
  let retired = 0
  let retiredDamaged = 0
  for (const block of blocks) {
    if (block.state === BlockState.retired) {
      if (block.ownerDamaged === true) retiredDamaged += block.bytes
      else retired += block.bytes
    }
    if (block.state !== BlockState.used) continue
    const key = `${block.ownerSlot}:${block.ownerGeneration}`
    const owner = live.get(key)
    const found = held.get(key) ??
      { kind: owner?.kind ?? "deleted", name: owner?.name ?? `(entry slot ${block.ownerSlot})`, bytes: 0 }
    found.bytes += block.bytes
    held.set(key, found)
  }
  const holders: Array<SpaceHolder> = [...held.values()].map((h) => ({ ...h, pinnedBy: [] }))
  const pids = retired + retiredDamaged > 0 ? [...new Set(livePins(region, area).map((p) => p.pid))] : []
  if (retired > 0) holders.push({ kind: "deleted", name: "objects", bytes: retired, pinnedBy: pids })
  if (retiredDamaged > 0) holders.push({ kind: "damaged", name: "objects", bytes: retiredDamaged, pinnedBy: pids })
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
  const entries = new DirectoryTable(region, area).list()
  const usage = usageOf(area, blocks, entries.length)
  return new RegionFull({
    requested: blockBytes(orderFor(bytes)),
    largestFreeBytes: usage.largestFreeBytes,
    freeBytes: usage.freeBytes,
    heapBytes: area.config.heapBytes,
    ...namedHolders(spaceHolders(region, area, blocks, entries))
  })
}
