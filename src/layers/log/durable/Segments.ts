/** Segments over the local disk: the segment engine (SegmentLog.ts) over node:fs/promises. */
import { Effect, Layer } from "effect"
import { resolve } from "node:path"
import { Segments, type SegmentsShape } from "../../../services/log/Segments.js"
import { nodeSegmentFiles } from "./SegmentFiles.js"
import { segmentsOver } from "./SegmentLog.js"

export interface SegmentsOptions {
  /** The data directory: one subdirectory per stream. */
  readonly directory: string
}

export const make = (options: SegmentsOptions): Effect.Effect<SegmentsShape> =>
  Effect.sync(() => segmentsOver(nodeSegmentFiles, resolve(options.directory)))

export const layer = (options: SegmentsOptions): Layer.Layer<Segments> => Layer.effect(Segments, make(options))
