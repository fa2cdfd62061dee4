/**
 * The Services fake: the live engine (ServiceEngine.ts, cxlog's Rpc) over a directory and rings
 * in this process's memory (DirectoryMemory, RingsMemory), with its own directory writer. The
 * same objects, caller slots, frames, timeouts and errors; servers and callers in one process.
 */
import { Effect, Layer } from "effect"
import { Services } from "../../services/ipc/Services.js"
import { makeMemory as makeRingsMemory } from "../control/RingsMemory.js"
import { makeMemory as makeDirectoryMemory, makeMemoryDirectory, makeWriterMemory } from "../region/DirectoryMemory.js"
import type { DirectoryConfig } from "../region/DirectoryRecords.js"
import { makeServices, serviceDefaults } from "./ServiceEngine.js"

const DEFAULT_DIRECTORY: DirectoryConfig = { entrySlots: 256, holderLines: 8, heapBytes: 64 << 20 }

/** Services in this process only: for an application's own tests and single-process use. */
export const layerMemory = (directory: DirectoryConfig = DEFAULT_DIRECTORY): Layer.Layer<Services> =>
  Layer.scoped(
    Services,
    Effect.gen(function*() {
      const store = makeMemoryDirectory(directory)
      const writer = yield* makeWriterMemory(store, { epoch: 1 }).pipe(Effect.orDie)
      // The settings' defaults as the live layer reads them (an unreadable CXLOG_SERVICE_* is a defect here).
      const defaults = yield* Effect.orDie(serviceDefaults)
      return makeServices(
        yield* makeDirectoryMemory(store),
        (spec) => writer.create(spec),
        yield* makeRingsMemory,
        defaults,
        (_, entry) => writer.remove(entry)
      )
    })
  )
