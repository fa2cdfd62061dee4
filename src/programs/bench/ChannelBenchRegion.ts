/**
 * The region `cxlog bench --type channel` runs in: a bell line per process and a directory, no
 * log and no control plane (a channel needs neither), and the live Channels layer over it. The
 * bench process creates it and holds the directory's writer (as a head does), so it creates the
 * channels; its peer attaches and opens them by name.
 */
import { Layer } from "effect"
import * as RingsLayers from "../../layers/control/Rings.js"
import * as ChannelsLayers from "../../layers/ipc/Channels.js"
import * as CxlMemoryLayers from "../../layers/region/CxlMemory.js"
import * as DirectoryLayers from "../../layers/region/Directory.js"
import {
  alignToPage,
  directoryAreaBytes,
  type DirectoryConfig,
  makeDirectoryArea
} from "../../layers/region/DirectoryRecords.js"
import * as DoorbellLayers from "../../layers/region/Doorbell.js"
import { SUPERBLOCK_BYTES } from "../../layers/region/Superblock.js"
import { DOORBELL_BYTES } from "../../services/region/Doorbell.js"

const DIRECTORY: DirectoryConfig = { entrySlots: 16, holderLines: 4, heapBytes: 32 << 20 }
/** Bell lines after the superblock: the bench (0) and its peer (1). */
const BELLS = 2
/** The directory after them, on a page of its own: its heap's extents are whole pages (each reserved as it is handed out). */
const DIRECTORY_AT = alignToPage(SUPERBLOCK_BYTES + BELLS * DOORBELL_BYTES)
const REGION_BYTES = alignToPage(DIRECTORY_AT + directoryAreaBytes(DIRECTORY))

/** Live Channels over `region`: created, with the directory's writer, by the bench (bell 0); attached by its peer (bell 1). */
export const benchChannels = (region: string, role: "bench" | "peer") => {
  const area = makeDirectoryArea(DIRECTORY_AT, DIRECTORY)
  const memory = CxlMemoryLayers.layer(
    role === "bench" ? { name: region, size: REGION_BYTES, mode: "create" } : { name: region, mode: "attach" }
  )
  const bell = DoorbellLayers.layer({ offset: SUPERBLOCK_BYTES + (role === "bench" ? 0 : 1) * DOORBELL_BYTES })
  const directory = role === "bench"
    ? Layer.merge(DirectoryLayers.layer(area), DirectoryLayers.layerWriter({ area, epoch: 1, reclaimEveryMs: 60_000 }))
    : DirectoryLayers.layer(area)
  const rings = RingsLayers.layer.pipe(Layer.provide(bell))
  return ChannelsLayers.layer.pipe(Layer.provide(Layer.merge(directory, rings)), Layer.provide(memory))
}
