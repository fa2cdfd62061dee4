/**
 * The Channels fake: the live engine (ChannelEngine.ts) over a directory and rings in this
 * process's memory (DirectoryMemory, RingsMemory), with its own directory writer. The same
 * objects, ring slots, frames, backpressure and errors; only where the bytes live differs.
 */
import { Effect, Layer, type Scope } from "effect"
import type { RingsShape } from "../../services/control/Rings.js"
import { Channels, type ChannelsShape } from "../../services/ipc/Channels.js"
import { makeMemory as makeRingsMemory } from "../control/RingsMemory.js"
import { makeMemory as makeDirectoryMemory, makeMemoryDirectory, makeWriterMemory } from "../region/DirectoryMemory.js"
import type { DirectoryConfig } from "../region/DirectoryRecords.js"
import { channelDefaults, makeChannels } from "./ChannelEngine.js"

const DEFAULT_DIRECTORY: DirectoryConfig = { entrySlots: 256, holderLines: 8, heapBytes: 64 << 20 }

/**
 * Channels in this process over `rings`: given the rings a memory coordinator's hub runs over
 * (CoordinatorMemoryLayers.makeMemoryHub), its fences drain these channels (an app's test of
 * its draining shutdown).
 */
export const makeMemory = (
  rings: RingsShape,
  directory: DirectoryConfig = DEFAULT_DIRECTORY
): Effect.Effect<ChannelsShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const store = makeMemoryDirectory(directory)
    const writer = yield* makeWriterMemory(store, { epoch: 1 }).pipe(Effect.orDie)
    // The settings' defaults as the live layer reads them (an unreadable CXLOG_CHANNEL_* is a defect here).
    const defaults = yield* Effect.orDie(channelDefaults)
    return makeChannels(yield* makeDirectoryMemory(store), writer.create, rings, defaults, (_, entry) =>
      writer.remove(entry))
  })

/** Channels in this process only: for an application's own tests and single-process use. */
export const layerMemory = (directory: DirectoryConfig = DEFAULT_DIRECTORY): Layer.Layer<Channels> =>
  Layer.scoped(Channels, Effect.flatMap(makeRingsMemory, (rings) => makeMemory(rings, directory)))
