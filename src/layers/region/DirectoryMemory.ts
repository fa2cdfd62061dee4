/**
 * The directory's fake: the live directory and writer (Directory.ts) over a private region of
 * this process, laid out as the region's directory area is. Only where the bytes live differs;
 * share one `MemoryDirectory` between the reader and writer layers of a simulated cluster.
 */
import { Effect, Layer, type Scope } from "effect"
import { CxlMemory, type CxlMemoryShape } from "../../services/region/CxlMemory.js"
import {
  Directory,
  type DirectoryShape,
  DirectoryWriter,
  type DirectoryWriterShape,
  type NotDirectoryWriter
} from "../../services/region/Directory.js"
import { privateRegion } from "./CxlMemoryMemory.js"
import { directoryOver, makeWriter } from "./Directory.js"
import { type DirectoryArea, directoryAreaBytes, type DirectoryConfig, makeDirectoryArea } from "./DirectoryRecords.js"
import { SUPERBLOCK_BYTES } from "./Superblock.js"

/** A directory's bytes in this process: a private region holding just the directory's area. */
export interface MemoryDirectory {
  readonly region: CxlMemoryShape
  readonly area: DirectoryArea
}

export const makeMemoryDirectory = (config: DirectoryConfig): MemoryDirectory => {
  const region = privateRegion(SUPERBLOCK_BYTES + directoryAreaBytes(config))
  return { region, area: makeDirectoryArea(SUPERBLOCK_BYTES, config) }
}

export const makeMemory = (store: MemoryDirectory): Effect.Effect<DirectoryShape, never, Scope.Scope> =>
  directoryOver(store.region, store.area)

export const layerMemory = (store: MemoryDirectory): Layer.Layer<Directory> =>
  Layer.scoped(Directory, makeMemory(store))

export const makeWriterMemory = (
  store: MemoryDirectory,
  options: { readonly epoch: number; readonly reclaimEveryMs?: number }
): Effect.Effect<DirectoryWriterShape, NotDirectoryWriter, Scope.Scope> =>
  makeWriter({ area: store.area, ...options }).pipe(Effect.provideService(CxlMemory, store.region))

export const layerWriterMemory = (
  store: MemoryDirectory,
  options: { readonly epoch: number; readonly reclaimEveryMs?: number }
): Layer.Layer<DirectoryWriter, NotDirectoryWriter> => Layer.scoped(DirectoryWriter, makeWriterMemory(store, options))
