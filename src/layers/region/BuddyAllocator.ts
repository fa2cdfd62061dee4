/**
 * The heap's allocator: a buddy system over 4 KiB pages. A block is 2^order pages at a multiple
 * of its own size (from the heap's start); freeing a block merges it with its buddy while the
 * buddy is free, so free space never splinters below what the blocks in use force, and a heap
 * whose objects are all gone is whole again. The truth is the page map in the region (one record
 * per page: which block starts there, its state and owner), written by the one writer; the free
 * lists are this process's index of it, rebuilt from the map when a writer takes over. Every
 * operation runs to its end synchronously, so only a writer's death leaves the map mid-change,
 * and `rebuild` makes it whole: pages inside a block read as interior again.
 */
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import {
  BlockState,
  type BlockStateCode,
  type DirectoryArea,
  PAGE_BYTES,
  PAGE_RECORD_BYTES,
  PageRecordView
} from "./DirectoryRecords.js"
import { FreeBlocks } from "./FreeBlocks.js"

/** A block in use or retired: where, how big, whose. */
export interface HeldBlock {
  readonly page: number
  readonly order: number
  readonly state: BlockStateCode
  readonly ownerSlot: number
  readonly ownerGeneration: number
  readonly retiredAt: number
  /** Retired because its owner's directory entry could not be read (DirectoryRecords.ts). */
  readonly ownerDamaged?: boolean
}

/** The order of the smallest block of at least `bytes` (1 byte or more). */
export const orderFor = (bytes: number): number => {
  const pages = Math.max(1, Math.ceil(bytes / PAGE_BYTES))
  return Math.ceil(Math.log2(pages))
}

export const blockBytes = (order: number): number => PAGE_BYTES * 2 ** order

/** The largest block a heap of `heapBytes` can ever hand out: the largest power of two of pages in it (`format`'s first). */
export const largestBlockBytes = (heapBytes: number): number => {
  const pages = Math.floor(heapBytes / PAGE_BYTES)
  return pages < 1 ? 0 : blockBytes(Math.floor(Math.log2(pages)))
}

export class BuddyAllocator {
  private readonly records: PageRecordView
  /** Free block starts by order. */
  private readonly free: Array<FreeBlocks> = []
  /** Blocks in use or retired, by start page. */
  private readonly held = new Map<number, HeldBlock>()
  /** The start pages of retired blocks. */
  private readonly retiredPages = new Set<number>()
  /** The start pages each entry slot's object holds (its generation is in each block). */
  private readonly byOwner = new Map<number, Set<number>>()
  private freePages = 0

  constructor(private readonly region: CxlMemoryShape, private readonly area: DirectoryArea) {
    this.records = new PageRecordView(region)
  }

  private record(page: number) {
    return this.area.pageRecord(page)
  }

  private writeRecord(page: number, block: Omit<HeldBlock, "page">): void {
    const at = this.record(page)
    this.records.write(at, block)
    this.region.publish(at, PAGE_RECORD_BYTES)
  }

  private clearRecord(page: number): void {
    const at = this.record(page)
    this.records.clear(at)
    this.region.publish(at, PAGE_RECORD_BYTES)
  }

  private hold(block: HeldBlock): void {
    this.held.set(block.page, block)
    if (block.state === BlockState.retired) this.retiredPages.add(block.page)
    ;(this.byOwner.get(block.ownerSlot) ?? this.byOwner.set(block.ownerSlot, new Set()).get(block.ownerSlot)!).add(
      block.page
    )
  }

  private unhold(block: HeldBlock): void {
    this.held.delete(block.page)
    this.retiredPages.delete(block.page)
    const pages = this.byOwner.get(block.ownerSlot)
    pages?.delete(block.page)
    if (pages?.size === 0) this.byOwner.delete(block.ownerSlot)
  }

  private addFree(page: number, order: number): void {
    ;(this.free[order] ??= new FreeBlocks()).add(page)
    this.freePages += 2 ** order
    this.writeRecord(page, { order, state: BlockState.free, ownerSlot: 0, ownerGeneration: 0, retiredAt: 0 })
  }

  private takeFree(page: number, order: number): void {
    this.free[order]!.delete(page)
    this.freePages -= 2 ** order
  }

  /** The heap as its first free blocks: the largest aligned blocks that tile it, in order. */
  format(): void {
    let page = 0
    while (page < this.area.heapPages) {
      let order = 0
      while (page % 2 ** (order + 1) === 0 && page + 2 ** (order + 1) <= this.area.heapPages) order++
      this.addFree(page, order)
      page += 2 ** order
    }
  }

  /**
   * Reads the page map back (a writer taking over): every block's start, state and owner; the
   * records inside blocks cleared. A record that does not make a block (torn by a writer's death
   * mid-change, or corrupt) is taken as the start of a free single page, so the walk always ends.
   */
  rebuild(): void {
    this.free.length = 0
    this.held.clear()
    this.retiredPages.clear()
    this.byOwner.clear()
    this.freePages = 0
    let page = 0
    while (page < this.area.heapPages) {
      const record = this.records.read(this.record(page))
      const fits = record.state !== BlockState.interior && page % 2 ** record.order === 0 &&
        page + 2 ** record.order <= this.area.heapPages
      const order = fits ? record.order : 0
      for (let inner = page + 1; inner < page + 2 ** order; inner++) {
        if (this.records.read(this.record(inner)).state !== BlockState.interior) this.clearRecord(inner)
      }
      if (!fits) this.zero(page, 0)
      if (!fits || record.state === BlockState.free) this.addFree(page, order)
      else this.hold({ ...record, page, order })
      page += 2 ** order
    }
    // Neighbours the walk found free apart (a writer died between a free and its merge) are merged now.
    for (let order = 0; order < this.free.length; order++) {
      for (const page of [...(this.free[order]?.values() ?? [])]) {
        if (this.free[order]?.has(page)) this.merge(page, order)
      }
    }
  }

  /** A block of `order` for (ownerSlot, ownerGeneration): its start page, or undefined when no free block is that large. */
  allocate(order: number, ownerSlot: number, ownerGeneration: number): number | undefined {
    let from = order
    while (from < this.free.length && (this.free[from]?.size ?? 0) === 0) from++
    if (from >= this.free.length) return undefined
    // The lowest free block: allocations stay packed toward the heap's start, large blocks stay whole above.
    const page = this.free[from]!.lowest()!
    this.takeFree(page, from)
    // Split down: the upper half of each split is a free buddy, written before the block it came from shrinks.
    while (from > order) {
      from--
      this.addFree(page + 2 ** from, from)
    }
    const block = { order, state: BlockState.used, ownerSlot, ownerGeneration, retiredAt: 0 } as const
    this.writeRecord(page, block)
    this.hold({ ...block, page })
    return page
  }

  /**
   * Marks a block in use as retired at `epoch`: it is freed once no pin older than that can touch it.
   * `ownerDamaged`: because its owner's entry could not be read (what listings say of it).
   */
  retire(page: number, epoch: number, ownerDamaged = false): void {
    const block = this.held.get(page)
    if (block === undefined || block.state !== BlockState.used) return
    const retired = { ...block, state: BlockState.retired, retiredAt: epoch, ownerDamaged }
    this.hold(retired)
    this.writeRecord(page, retired)
  }

  /**
   * Frees a held block: zeroes it unless it was never `written` (a later owner never sees an
   * earlier one's bytes; its memory goes back to the host), then merges it with its free buddies.
   */
  release(page: number, written = true): void {
    const block = this.held.get(page)
    if (block === undefined) return
    this.unhold(block)
    // One never written (the host could not back it) reads as zeros, and a store to it could fault.
    if (written) this.zero(page, block.order)
    this.addFree(page, block.order)
    this.merge(page, block.order)
  }

  /** Merges the free block at `page` with its buddy, and the result with its own, while they are free. */
  private merge(page: number, order: number): void {
    for (;;) {
      const buddy = page ^ (2 ** order)
      const low = Math.min(page, buddy)
      if (low + 2 ** (order + 1) > this.area.heapPages || !this.free[order]?.has(buddy)) return
      this.takeFree(page, order)
      this.takeFree(buddy, order)
      this.clearRecord(Math.max(page, buddy))
      page = low
      order++
      this.addFree(page, order)
    }
  }

  /** Zeroes a block, giving its memory back to the host where it can (a hole in the region's file). */
  private zero(page: number, order: number): void {
    this.region.discard(this.offsetOf(page), blockBytes(order))
  }

  /**
   * The blocks in use of entry slot `slot`, whatever generation they name: while its entry is live they
   * are its object's (a create takes only a free slot), its generation word corrupted or not.
   */
  usedBySlot(slot: number): ReadonlyArray<HeldBlock> {
    const blocks: Array<HeldBlock> = []
    for (const page of this.byOwner.get(slot) ?? []) {
      const block = this.held.get(page)
      if (block !== undefined && block.state === BlockState.used) blocks.push(block)
    }
    return blocks
  }

  /** The retired blocks, waiting for the pins that may touch them. */
  retiredBlocks(): ReadonlyArray<HeldBlock> {
    return [...this.retiredPages].map((page) => this.held.get(page)!)
  }

  /** The blocks in use and retired. */
  heldBlocks(): ReadonlyArray<HeldBlock> {
    return [...this.held.values()]
  }

  block(page: number): HeldBlock | undefined {
    return this.held.get(page)
  }

  freeBytes(): number {
    return this.freePages * PAGE_BYTES
  }

  largestFreeBytes(): number {
    for (let order = this.free.length - 1; order >= 0; order--) {
      if ((this.free[order]?.size ?? 0) > 0) return blockBytes(order)
    }
    return 0
  }

  /** The page of a heap offset (an extent's). */
  pageOf(offset: number): number {
    return (offset - this.area.heap) / PAGE_BYTES
  }

  offsetOf(page: number): number {
    return this.area.heap + page * PAGE_BYTES
  }
}
