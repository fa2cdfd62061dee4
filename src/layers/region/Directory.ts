/**
 * The directory's live layers over a region: `layer` (every process: lookups, lists, pins) and
 * `layerWriter` (the head, under its lease: creates, deletes, extents, reclamation). The fake
 * (DirectoryMemory.ts) runs this same code over a private region.
 */
import { Effect, Layer, type Scope } from "effect"
import { CxlMemory, type CxlMemoryShape } from "../../services/region/CxlMemory.js"
import {
  Directory,
  type DirectoryShape,
  DirectoryWriter,
  type DirectoryWriterShape,
  type NotDirectoryWriter,
  ObjectDeleted,
  ObjectNotFound
} from "../../services/region/Directory.js"
import { CADENCE_MS, everyTick } from "./Cadence.js"
import { HolderLine } from "./DirectoryHolders.js"
import type { DirectoryArea } from "./DirectoryRecords.js"
import { heapBlocks, spaceHolders, usageOf } from "./DirectorySpace.js"
import { DirectoryTable } from "./DirectoryTable.js"
import { writerOver } from "./DirectoryWriter.js"

/** The directory as any process reads it, over `region`; its holder line is given back when the scope closes. */
export const directoryOver = (
  region: CxlMemoryShape,
  area: DirectoryArea
): Effect.Effect<DirectoryShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const table = new DirectoryTable(region, area)
    const holder = new HolderLine(region, area)
    yield* Effect.addFinalizer(() => Effect.sync(() => holder.release()))
    return {
      lookup: (kind, name) =>
        Effect.suspend(() => {
          const found = table.lookup(kind, name)
          return found === undefined ? Effect.fail(new ObjectNotFound({ kind, name })) : Effect.succeed(found)
        }),
      list: (kind) => Effect.sync(() => table.list(kind)),
      isCurrent: (entry) => table.isCurrent(entry),
      // Pinned before the look (the epoch protocol's order); a pin that finds the object deleted is
      // given back at once, not left in the caller's scope holding back what is removed after it.
      hold: (entry) =>
        Effect.uninterruptible(Effect.flatMap(holder.pin(), (epoch) => {
          if (table.isCurrent(entry)) return Effect.addFinalizer(() => Effect.sync(() => holder.unpin(epoch)))
          holder.unpin(epoch)
          return Effect.fail(new ObjectDeleted({ kind: entry.kind, name: entry.name }))
        })),
      usage: Effect.sync(() => usageOf(area, heapBlocks(region, area), table.list().length)),
      holders: Effect.sync(() => spaceHolders(region, area, heapBlocks(region, area), table))
    }
  })

export const make = (area: DirectoryArea): Effect.Effect<DirectoryShape, never, CxlMemory | Scope.Scope> =>
  Effect.flatMap(CxlMemory, (region) => directoryOver(region, area))

export const layer = (area: DirectoryArea): Layer.Layer<Directory, never, CxlMemory> =>
  Layer.scoped(Directory, make(area))

export interface WriterOptions {
  readonly area: DirectoryArea
  /** The writer's epoch (the head's cluster epoch): a writer of a later epoch fences this one out. */
  readonly epoch: number
  /**
   * How often deleted objects' extents are checked for freeing while any wait (default: the shared
   * cadence, 500 ms); 0: never by a tick, only when an allocation finds no room or `reclaim` is called.
   */
  readonly reclaimEveryMs?: number
}

/**
 * The directory's writer over the region: takes the directory over at `epoch` (formatting a
 * new region's heap, or rebuilding the allocator from the page map), and frees deleted objects'
 * extents at every tick while any are retired.
 */
export const makeWriter = (
  options: WriterOptions
): Effect.Effect<DirectoryWriterShape, NotDirectoryWriter, CxlMemory | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const writer = yield* writerOver(region, options.area, options.epoch)
    if (options.reclaimEveryMs === 0) return writer.shape
    yield* everyTick(
      () => options.reclaimEveryMs ?? CADENCE_MS,
      Effect.suspend(() => (writer.retiredBlocks() > 0 ? Effect.asVoid(writer.shape.reclaim) : Effect.void))
    ).pipe(Effect.forkScoped)
    return writer.shape
  })

export const layerWriter = (options: WriterOptions): Layer.Layer<DirectoryWriter, NotDirectoryWriter, CxlMemory> =>
  Layer.scoped(DirectoryWriter, makeWriter(options))
