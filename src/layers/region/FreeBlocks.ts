/**
 * One order's free blocks in the buddy allocator (BuddyAllocator.ts): which start pages are free,
 * and the lowest of them, which an allocation takes. The lowest comes from a binary min-heap of
 * start pages; a page taken out of the set stays in the heap until it surfaces (or the heap is
 * rebuilt once it holds twice the free blocks), so taking any block is O(1) and finding the
 * lowest O(log n), where scanning the set made each allocation in a heap fragmented into n free
 * blocks of its order cost n.
 */
export class FreeBlocks {
  private readonly pages = new Set<number>()
  /** A min-heap of start pages, a superset of `pages` (entries no longer free are skipped). */
  private heap: Array<number> = []

  get size(): number {
    return this.pages.size
  }

  has(page: number): boolean {
    return this.pages.has(page)
  }

  add(page: number): void {
    if (this.pages.has(page)) return
    this.pages.add(page)
    this.push(page)
  }

  delete(page: number): void {
    this.pages.delete(page)
    // Stale entries are dropped as they surface; a heap mostly stale is made again from the set.
    if (this.heap.length > 2 * this.pages.size + 64) this.heap = [...this.pages].sort((a, b) => a - b)
  }

  /** The lowest free start page, or undefined when none is free. */
  lowest(): number | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0]!
      if (this.pages.has(top)) return top
      this.pop()
    }
    return undefined
  }

  /** The free start pages, in no particular order. */
  values(): IterableIterator<number> {
    return this.pages.values()
  }

  private push(page: number): void {
    const heap = this.heap
    let i = heap.length
    heap.push(page)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]! <= page) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = page
  }

  private pop(): void {
    const heap = this.heap
    const last = heap.pop()!
    if (heap.length === 0) return
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= heap.length) break
      const right = left + 1
      const child = right < heap.length && heap[right]! < heap[left]! ? right : left
      if (heap[child]! >= last) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = last
  }
}
