/**
 * The live Services layer: services in the region's directory, their rings over the region
 * (Rings). A service not found is created by the directory's writer — this process when it holds
 * the DirectoryWriter (the head), else the head through the coordinator (ObjectCreator.ts).
 */
import { type ConfigError, Effect, Layer } from "effect"
import { Rings } from "../../services/control/Rings.js"
import { Services, type ServicesShape } from "../../services/ipc/Services.js"
import { Directory } from "../../services/region/Directory.js"
import { objectCreator, objectRemover } from "./ObjectCreator.js"
import { makeServices, serviceDefaults } from "./ServiceEngine.js"

export const make: Effect.Effect<ServicesShape, ConfigError.ConfigError, Directory | Rings> = Effect.gen(function*() {
  return makeServices(
    yield* Directory,
    yield* objectCreator,
    yield* Rings,
    yield* serviceDefaults,
    yield* objectRemover
  )
})

/**
 * Services over the region's directory and rings; with a DirectoryWriter in context this process
 * creates them, with a Coordinator (a member of the region) the head does.
 */
export const layer: Layer.Layer<Services, ConfigError.ConfigError, Directory | Rings> = Layer.effect(Services, make)
