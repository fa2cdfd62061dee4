/**
 * The live Channels layer: channels in the region's directory, their rings over the region
 * (Rings). A channel not found is created by the directory's writer: by this process when it
 * holds the DirectoryWriter (the head), else by the head through the coordinator, when this
 * process is a member of the region (ObjectCreator.ts). With neither, it is `ChannelUnavailable`.
 */
import { type ConfigError, Effect, Layer } from "effect"
import { Rings } from "../../services/control/Rings.js"
import { Channels, type ChannelsShape } from "../../services/ipc/Channels.js"
import { Directory } from "../../services/region/Directory.js"
import { channelDefaults, makeChannels } from "./ChannelEngine.js"
import { objectCreator, objectRemover } from "./ObjectCreator.js"

export const make: Effect.Effect<ChannelsShape, ConfigError.ConfigError, Directory | Rings> = Effect.gen(function*() {
  return makeChannels(
    yield* Directory,
    yield* objectCreator,
    yield* Rings,
    yield* channelDefaults,
    yield* objectRemover
  )
})

/**
 * Channels over the region's directory and rings; with a DirectoryWriter in context this process
 * creates them, with a Coordinator (a member of the region) the head does.
 */
export const layer: Layer.Layer<Channels, ConfigError.ConfigError, Directory | Rings> = Layer.effect(Channels, make)
