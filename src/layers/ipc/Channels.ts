/**
 * The live Channels layer: channels in the region's directory, their rings over the region
 * (Rings). A channel not found is created where the directory's writer is: by this process
 * when it holds the DirectoryWriter (the head), else it is `ChannelUnavailable` naming the
 * head as the one that creates it.
 */
import { type ConfigError, Effect, Layer, Option } from "effect"
import { Rings } from "../../services/control/Rings.js"
import { Channels, type ChannelsShape } from "../../services/ipc/Channels.js"
import { Directory, DirectoryWriter, NotDirectoryWriter } from "../../services/region/Directory.js"
import { channelDefaults, makeChannels } from "./ChannelEngine.js"
import type { CreateObject } from "./ChannelObject.js"

export const make: Effect.Effect<ChannelsShape, ConfigError.ConfigError, Directory | Rings> = Effect.gen(function*() {
  const writer = yield* Effect.serviceOption(DirectoryWriter)
  const create: CreateObject = Option.match(writer, {
    onSome: (w) => w.create,
    onNone: () => () => Effect.fail(new NotDirectoryWriter({ epoch: 0, writerEpoch: 0 }))
  })
  return makeChannels(yield* Directory, create, yield* Rings, yield* channelDefaults)
})

/** Channels over the region's directory and rings; with a DirectoryWriter in context, this process creates them. */
export const layer: Layer.Layer<Channels, ConfigError.ConfigError, Directory | Rings> = Layer.effect(Channels, make)
