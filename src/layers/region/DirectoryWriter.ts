/**
 * The directory's one writer: creates and deletes entries, hands out and takes back extents,
 * and frees deleted objects' extents once no live pin can touch them. Its state is the region's
 * (entries, page map, header); a writer taking over (a standby head, a restarted one) rebuilds
 * its free lists from the page map, closes a rewrite its predecessor left open, deletes every
 * entry it cannot read (its fields out of range), and retires every block whose owner is not a
 * live entry (a create cut short between its extent and its entry, or such a deleted one) at a
 * fresh pin epoch. Each change first checks the header still names this writer's epoch.
 */
import { Effect } from "effect"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import {
  type DirectoryEntry,
  DirectoryFull,
  type DirectoryWriterShape,
  type Extent,
  InvalidObjectName,
  MAX_OBJECT_PARAMS,
  NameTaken,
  NotDirectoryWriter,
  ObjectDeleted,
  objectNameProblem,
  type ObjectSpec,
  RegionFull
} from "../../services/region/Directory.js"
import { blockBytes, BuddyAllocator, type HeldBlock, orderFor } from "./BuddyAllocator.js"
import { livePins } from "./DirectoryHolders.js"
import { type DirectoryChange, DirectoryJournal } from "./DirectoryJournal.js"
import { BlockState, type DirectoryArea, DirectoryHeaderView } from "./DirectoryRecords.js"
import { namedHolders, type SpaceBlock, spaceHolders } from "./DirectorySpace.js"
import { DirectoryTable, OBJECT_KINDS } from "./DirectoryTable.js"
import { unsafeMakeFifoLock } from "./FifoLock.js"

const asSpaceBlock = (block: HeldBlock): SpaceBlock => ({ ...block, bytes: blockBytes(block.order) })

/** Objects a table of `slots` takes: past 7/8 full, linear probes grow long. */
export const objectCapacity = (slots: number): number => Math.floor((slots * 7) / 8)

export interface WriterState {
  readonly shape: DirectoryWriterShape
  /** Blocks of deleted objects not freed yet. */
  readonly retiredBlocks: () => number
}

export const writerOver = (
  region: CxlMemoryShape,
  area: DirectoryArea,
  epoch: number
): Effect.Effect<WriterState, NotDirectoryWriter> =>
  Effect.suspend(() => {
    const header = new DirectoryHeaderView(region)
    const at = area.header
    const current = header.writerEpoch(at)
    if (current > epoch) return Effect.fail(new NotDirectoryWriter({ epoch, writerEpoch: current }))
    header.storeWriterEpoch(at, epoch)
    region.publish(at, LINE_BYTES)
    const table = new DirectoryTable(region, area)
    const allocator = new BuddyAllocator(region, area)
    let damaged: ReadonlyArray<DamagedEntry> = []
    if (header.formatted(at)) {
      for (const slot of table.closeOpenRewrites()) table.sweepDeleted(slot)
      damaged = deleteDamagedEntries(table)
      // Counted again: a create or delete cut short between its entry and the count left it one off.
      header.setObjects(at, table.list().length)
      // The predecessor may have changed an entry it never journaled (it died first, or this closed it), and this deleted
      // the damaged ones: readers list.
      new DirectoryJournal(region, area).skipRing()
      allocator.rebuild()
      retireOrphans(table, allocator, header, at, new Set(damaged.map((d) => d.slot)))
    } else {
      allocator.format()
      header.storePinEpoch(at, 1)
      region.publish(at, LINE_BYTES)
      header.storeFormatted(at)
      region.publish(at, LINE_BYTES)
    }
    const state = writerState(region, area, epoch, table, allocator)
    // What the predecessor retired, and the orphans, go now if no pin holds them.
    return Effect.forEach(damaged, (d) => Effect.logWarning(damagedEntrySaid(d)), { discard: true }).pipe(
      Effect.zipRight(state.shape.reclaim),
      Effect.as(state)
    )
  })

/** A live entry whose fields are out of range: what can still be read of it. */
interface DamagedEntry {
  readonly slot: number
  readonly name?: string
}

const damagedEntrySaid = (d: DamagedEntry) =>
  `directory: entry ${d.slot}${
    d.name === undefined ? "" : ` (${JSON.stringify(d.name)})`
  } cannot be read (its fields out of range): deleted; its memory is freed once no live process holds it`

/**
 * Deletes every live entry whose fields are out of range, as `remove` deletes (its blocks are
 * retired next, by `retireOrphans`, at a later epoch than this): a process that opened its object
 * before the damage reads the entry as current no more, so it moves no pin past the retirement
 * and takes no new one, and the epochs keep the memory while it still holds the object.
 */
const deleteDamagedEntries = (table: DirectoryTable): ReadonlyArray<DamagedEntry> => {
  const damaged: Array<DamagedEntry> = []
  for (let slot = 0; slot < table.slots; slot++) {
    const entry = table.undecoded(slot)
    if (entry === undefined) continue
    table.markDeleted(slot)
    table.sweepDeleted(slot)
    damaged.push({ slot, ...(entry.name === undefined ? {} : { name: entry.name }) })
  }
  return damaged
}

/**
 * Retires every block in use whose owner is no live entry of its generation, at a fresh epoch:
 * those of `damaged` entries' slots marked as such (by slot: a damaged entry's generation word may
 * not be its blocks'; the slot was live, so no create cut short took it).
 */
const retireOrphans = (
  table: DirectoryTable,
  allocator: BuddyAllocator,
  header: DirectoryHeaderView,
  at: number,
  damaged: ReadonlySet<number>
) => {
  const live = new Set(table.list().map((e) => `${e.slot}:${e.generation}`))
  const orphans = allocator.heldBlocks().filter((b) =>
    b.state === BlockState.used && !live.has(`${b.ownerSlot}:${b.ownerGeneration}`)
  )
  if (orphans.length === 0) return
  // After every entry of theirs reads deleted: a pin announced at this epoch or later finds its object gone.
  const retiredAt = header.pinEpoch(at) + 1
  header.storePinEpoch(at, retiredAt)
  for (const block of orphans) {
    allocator.retire(block.page, retiredAt, damaged.has(block.ownerSlot))
  }
}

/**
 * Bytes an extent is reserved by in one step: the host allocates tmpfs pages at about 0.5 ms a MiB
 * on the 2-core VM, so a step holds the writer's event loop a few milliseconds, and a 1 GiB lane's
 * 64 steps let the head's lease, its sequencing and its requests run between them.
 */
const RESERVE_STEP_BYTES = 16 * 2 ** 20

/** Resumes after the event loop has turned (its timers and I/O run), whatever clock the fiber has. */
const eventLoopTurn = Effect.async<void>((resume) => {
  const turn = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(turn))
})

/**
 * Backs [offset, +bytes) a step at a time, the event loop turning between steps: undefined, or
 * why the host could not — the steps backed before then given back, none of it ever written.
 */
const reserveStepwise = (region: CxlMemoryShape, offset: number, bytes: number) =>
  Effect.gen(function*() {
    for (let step = 0; step < bytes; step += RESERVE_STEP_BYTES) {
      if (step > 0) yield* eventLoopTurn
      const unbacked = region.reserve(offset + step, Math.min(RESERVE_STEP_BYTES, bytes - step))
      if (unbacked !== undefined) {
        if (step > 0) region.discard(offset, step)
        return unbacked
      }
    }
    return undefined
  })

/** Frees every retired block no live pin older than its retirement can touch; the bytes freed. */
const reclaimUnpinned = (region: CxlMemoryShape, area: DirectoryArea, allocator: BuddyAllocator): number => {
  const retired = allocator.retiredBlocks()
  if (retired.length === 0) return 0
  let oldest = Number.POSITIVE_INFINITY
  for (const pin of livePins(region, area)) oldest = Math.min(oldest, pin.epoch)
  let freed = 0
  for (const block of retired) {
    if (block.retiredAt > oldest) continue
    allocator.release(block.page)
    freed += blockBytes(block.order)
  }
  return freed
}

/** How many of `entries` are of each kind, in the kinds' order (those with none left out). */
const kindCounts = (entries: ReadonlyArray<DirectoryEntry>) =>
  OBJECT_KINDS.map((kind) => ({ kind, objects: entries.filter((e) => e.kind === kind).length })).filter((k) =>
    k.objects > 0
  )

/** How many live entries cannot be read (their fields out of range): objects no listing shows. */
const unreadableEntries = (table: DirectoryTable) => {
  let count = 0
  for (let slot = 0; slot < table.slots; slot++) if (table.undecoded(slot) !== undefined) count++
  return count
}

/** No block for `bytes` (or none the host could back: `unbacked`), said with the heap's free space and its largest holders. */
const regionFullError = (
  region: CxlMemoryShape,
  area: DirectoryArea,
  table: DirectoryTable,
  allocator: BuddyAllocator,
  bytes: number,
  unbacked?: string
) =>
  new RegionFull({
    ...(unbacked === undefined ? {} : { unbacked }),
    requested: blockBytes(orderFor(bytes)),
    largestFreeBytes: allocator.largestFreeBytes(),
    freeBytes: allocator.freeBytes(),
    heapBytes: area.config.heapBytes,
    ...namedHolders(spaceHolders(region, area, allocator.heldBlocks().map(asSpaceBlock), table))
  })

const writerState = (
  region: CxlMemoryShape,
  area: DirectoryArea,
  epoch: number,
  table: DirectoryTable,
  allocator: BuddyAllocator
): WriterState => {
  const header = new DirectoryHeaderView(region)
  const at = area.header
  const journal = new DirectoryJournal(region, area)

  /**
   * One change at a time: an extent's reservation lets the event loop turn mid-change, and a
   * change holds what it read (a free entry slot, the next generation) until it is written.
   */
  const oneAtATime = unsafeMakeFifoLock()

  const fenced = Effect.suspend(() => {
    const writerEpoch = header.writerEpoch(at)
    return writerEpoch === epoch ? Effect.void : Effect.fail(new NotDirectoryWriter({ epoch, writerEpoch }))
  })

  const reclaim = () => reclaimUnpinned(region, area, allocator)
  const regionFull = (bytes: number, unbacked?: string) =>
    regionFullError(region, area, table, allocator, bytes, unbacked)

  /**
   * A block for (slot, generation), freeing what can be freed first if none is free: its page,
   * undefined when the heap has none that large, or why the host could not back it. The heap is
   * reserved a block at a time (the region's creator reserved only what precedes it): a region's
   * memory is what its objects hold, and a full filesystem is this error, never a writer's SIGBUS.
   */
  const allocate = (bytes: number, slot: number, generation: number) =>
    Effect.gen(function*() {
      const order = orderFor(bytes)
      let page = allocator.allocate(order, slot, generation)
      if (page === undefined && reclaim() > 0) page = allocator.allocate(order, slot, generation)
      if (page === undefined) return undefined
      const unbacked = yield* reserveStepwise(region, allocator.offsetOf(page), blockBytes(order))
      // A writer that took over while the block was reserved owns the page map now: it retires the block as an orphan.
      yield* fenced
      if (unbacked === undefined) return page
      allocator.release(page, false)
      return unbacked
    })

  /** Tells readers the directory changed (the journal's record, then its count), once the entry reads as it now is. */
  const announceChange = (change: DirectoryChange) => journal.append(change)

  const create = (spec: ObjectSpec, initialize?: (extent: Extent) => void) =>
    oneAtATime(Effect.gen(function*() {
      yield* fenced
      const problem = objectNameProblem(spec.name)
      if (problem !== undefined) return yield* new InvalidObjectName({ name: spec.name, reason: problem })
      const params = spec.params ?? []
      if (params.length > MAX_OBJECT_PARAMS || !Number.isSafeInteger(spec.bytes) || spec.bytes < 1) {
        return yield* new InvalidObjectName({
          name: spec.name,
          reason: `an object has 1 byte or more and at most ${MAX_OBJECT_PARAMS} parameters`
        })
      }
      const { found, free } = table.probe(spec.kind, spec.name)
      if (found !== undefined) return yield* new NameTaken({ kind: spec.kind, name: spec.name })
      const objects = header.objects(at)
      if (free < 0 || objects >= objectCapacity(area.config.entrySlots)) {
        const unreadable = unreadableEntries(table)
        return yield* new DirectoryFull({
          entrySlots: area.config.entrySlots,
          objects,
          kinds: kindCounts(table.list()),
          ...(unreadable === 0 ? {} : { unreadable })
        })
      }
      const generation = header.generation(at) + 1
      const page = yield* allocate(spec.bytes, free, generation)
      if (typeof page !== "number") return yield* regionFull(spec.bytes, page)
      header.setGeneration(at, generation)
      const extent: Extent = { offset: allocator.offsetOf(page), bytes: blockBytes(orderFor(spec.bytes)) }
      // The object's own records are written (and published, by `initialize`) before its entry is: a reader that finds the name finds them whole.
      initialize?.(extent)
      const entry = table.insert(free, {
        generation,
        kind: spec.kind,
        name: spec.name,
        extent,
        params,
        createdAtMs: Date.now()
      })
      header.setObjects(at, objects + 1)
      announceChange({ slot: free, generation, kind: spec.kind, created: true })
      return entry
    }))

  const live = (entry: DirectoryEntry) =>
    table.isCurrent(entry) ? Effect.void : Effect.fail(new ObjectDeleted({ kind: entry.kind, name: entry.name }))

  const shape: DirectoryWriterShape = {
    create,
    allocate: (entry, bytes) =>
      oneAtATime(Effect.gen(function*() {
        yield* fenced
        yield* live(entry)
        const page = yield* allocate(bytes, entry.slot, entry.generation)
        if (typeof page !== "number") return yield* regionFull(bytes, page)
        return { offset: allocator.offsetOf(page), bytes: blockBytes(orderFor(bytes)) } satisfies Extent
      })),
    remove: (entry) =>
      oneAtATime(Effect.gen(function*() {
        yield* fenced
        yield* live(entry)
        table.markDeleted(entry.slot)
        header.setObjects(at, header.objects(at) - 1)
        // The epoch moves after the entry reads deleted: a pin announced at it finds the object gone.
        const retiredAt = header.pinEpoch(at) + 1
        header.storePinEpoch(at, retiredAt)
        announceChange({ slot: entry.slot, generation: entry.generation, kind: entry.kind, created: false })
        // By slot: a damaged entry's generation word may not be the one its blocks were handed out to.
        for (const block of allocator.usedBySlot(entry.slot)) allocator.retire(block.page, retiredAt)
        table.sweepDeleted(entry.slot)
        // Freeing (zeroing the extents) is left to the writer's tick, or to an allocation that finds no room.
      })),
    reclaim: oneAtATime(Effect.sync(reclaim))
  }
  return {
    shape,
    retiredBlocks: () => allocator.retiredBlocks().length
  }
}
