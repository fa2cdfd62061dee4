/**
 * The Discovery fake: the live engine (Discovery.ts) over a private region of this process laid
 * out as a region's directory and process table are. Share one `MemoryDiscoveryRegion` with a
 * directory writer (DirectoryMemoryLayers) and process slots (ProcessSlotLayers.make) to make
 * objects and processes for it to discover; only where the bytes live differs.
 */
import { Effect, Layer } from "effect"
import { Discovery } from "../../services/ipc/Discovery.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { ProcessTableLocation } from "../../services/region/ProcessSlot.js"
import { privateRegion } from "../region/CxlMemoryMemory.js"
import {
  type DirectoryArea,
  directoryAreaBytes,
  type DirectoryConfig,
  makeDirectoryArea
} from "../region/DirectoryRecords.js"
import { processTableBytes } from "../region/ProcessSlot.js"
import { SUPERBLOCK_BYTES } from "../region/Superblock.js"
import { discoveryOptions, discoveryOver } from "./Discovery.js"

/** A directory and a process table in this process's memory. */
export interface MemoryDiscoveryRegion {
  readonly region: CxlMemoryShape
  /** The directory's area (with `region`, a `MemoryDirectory` for DirectoryMemoryLayers). */
  readonly area: DirectoryArea
  readonly processTable: ProcessTableLocation
}

const DEFAULT_DIRECTORY: DirectoryConfig = { entrySlots: 256, holderLines: 8, heapBytes: 16 << 20 }

export const makeMemoryRegion = (
  options: { readonly directory?: DirectoryConfig; readonly processSlots?: number } = {}
): MemoryDiscoveryRegion => {
  const directory = options.directory ?? DEFAULT_DIRECTORY
  const slots = options.processSlots ?? 16
  const tableAt = SUPERBLOCK_BYTES + directoryAreaBytes(directory)
  return {
    region: privateRegion(tableAt + processTableBytes(slots)),
    area: makeDirectoryArea(SUPERBLOCK_BYTES, directory),
    processTable: { offset: tableAt, slots }
  }
}

/** Discovery over `store` (a new, empty one by default). */
export const layerMemory = (store: MemoryDiscoveryRegion = makeMemoryRegion()): Layer.Layer<Discovery> =>
  Layer.scoped(
    Discovery,
    Effect.gen(function*() {
      // The settings as the live layer reads them (an unreadable CXLOG_DISCOVERY_* is a defect here).
      const options = yield* Effect.orDie(discoveryOptions)
      return yield* discoveryOver(store.region, { directory: store.area, processTable: store.processTable }, options)
    })
  )
