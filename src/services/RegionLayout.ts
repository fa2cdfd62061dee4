/**
 * RegionLayout: where every domain's area lies in the one region — the process table, the
 * control rings, the log area, the directory and its heap — as every process computes it from the superblock's parameters
 * (layers/RegionLayout.ts).
 */
import { Context } from "effect"
import type { RingAddress } from "./control/Rings.js"
import type { LogArea, LogConfig } from "./log/LogArea.js"
import type { DirectoryArea, DirectoryConfig } from "./region/DirectoryArea.js"
import type { ProcessTableLocation } from "./region/ProcessSlot.js"

export interface ControlConfig {
  readonly maxProcesses: number
  readonly requestRingBytes: number
  readonly broadcastRingBytes: number
  readonly appRings: number
  readonly appRingBytes: number
  readonly appRingReaders: number
}

export interface RegionConfig {
  readonly control: ControlConfig
  readonly log: LogConfig
  readonly directory: DirectoryConfig
}

export interface Layout {
  readonly config: RegionConfig
  readonly processTable: ProcessTableLocation
  readonly requestRing: (slot: number) => RingAddress
  readonly broadcastRing: RingAddress
  readonly appRing: (index: number) => RingAddress
  readonly isRequestRing: (ringId: number) => boolean
  /** Every control ring, by id. */
  readonly ring: (ringId: number) => RingAddress | undefined
  readonly log: LogArea
  /** The directory of named objects and the heap their extents come from. */
  readonly directory: DirectoryArea
  readonly totalBytes: number
}

/** The region's layout, as every process computes it from the superblock. */
export class RegionLayout extends Context.Tag("cxlog/RegionLayout")<RegionLayout, Layout>() {}
