/**
 * The Channels fake: the live engine (ChannelEngine.ts) over a directory and rings in this
 * process's memory (DirectoryMemory, RingsMemory), with its own directory writer. The same
 * objects, ring slots, frames, backpressure and errors; only where the bytes live differs.
 */
import { Effect, Layer } from "effect"
import { Channels } from "../../services/ipc/Channels.js"
import { makeMemory as makeRingsMemory } from "../control/RingsMemory.js"
import { makeMemory as makeDirectoryMemory, makeMemoryDirectory, makeWriterMemory } from "../region/DirectoryMemory.js"
import type { DirectoryConfig } from "../region/DirectoryRecords.js"
import { channelDefaults, makeChannels } from "./ChannelEngine.js"

const DEFAULT_DIRECTORY: DirectoryConfig = { entrySlots: 256, holderLines: 8, heapBytes: 64 << 20 }

/** Channels in this process only: for an application's own tests and single-process use. */
export const layerMemory = (directory: DirectoryConfig = DEFAULT_DIRECTORY): Layer.Layer<Channels> =>
  Layer.scoped(
    Channels,
    Effect.gen(function*() {
      const store = makeMemoryDirectory(directory)
      const writer = yield* makeWriterMemory(store, { epoch: 1 }).pipe(Effect.orDie)
      // The settings' defaults as the live layer reads them (an unreadable CXLOG_CHANNEL_* is a defect here).
      const defaults = yield* Effect.orDie(channelDefaults)
      return makeChannels(yield* makeDirectoryMemory(store), writer.create, yield* makeRingsMemory, defaults)
    })
  )
