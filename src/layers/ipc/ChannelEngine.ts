/**
 * The Channels service over a directory, a way to create directory objects and the rings: the
 * one engine of the live layers and the fake (Channels.ts, ChannelsMemory.ts).
 */
import { Effect } from "effect"
import type { RingsShape } from "../../services/control/Rings.js"
import type { ChannelOptions, ChannelShape, ChannelsShape } from "../../services/ipc/Channels.js"
import type { DirectoryShape } from "../../services/region/Directory.js"
import { jsonCodec } from "../control/JsonCodec.js"
import { DEFAULT_SHAPE, ringAddresses } from "./ChannelLayout.js"
import { type CreateObject, openChannelObject } from "./ChannelObject.js"
import { claimWriter, rawWrite, typedPublisher } from "./ChannelPublisher.js"
import { rawSubscription, typedSubscription } from "./ChannelSubscriber.js"

const DEFAULT_PUBLISH_TIMEOUT_MS = 10_000
const DEFAULT_SUBSCRIBER_BUFFER = 256

const shapeOf = (options: ChannelOptions): ChannelShape => ({
  writerSlots: options.writerSlots ?? DEFAULT_SHAPE.writerSlots,
  readerSlots: options.readerSlots ?? DEFAULT_SHAPE.readerSlots,
  ringBytes: options.ringBytes ?? DEFAULT_SHAPE.ringBytes
})

export const makeChannels = (directory: DirectoryShape, create: CreateObject, rings: RingsShape): ChannelsShape => {
  const openObject = (name: string, options: ChannelOptions) =>
    Effect.map(openChannelObject(directory, create, name, shapeOf(options)), (found) => ({
      ...found,
      addresses: ringAddresses(found.entry, found.shape),
      publishTimeoutMs: options.publishTimeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS
    }))
  return {
    open: (name, schema, options = {}) =>
      Effect.map(openObject(name, options), ({ addresses, entry, publishTimeoutMs, shape }) => {
        const codec = jsonCodec(schema)
        return {
          name,
          entry,
          shape,
          publisher: Effect.map(
            claimWriter(rings, name, addresses, publishTimeoutMs),
            ({ ring, writer }) => typedPublisher(name, codec, writer, ring)
          ),
          subscribe: typedSubscription(
            rings,
            name,
            codec,
            addresses,
            options.subscriberBuffer ?? DEFAULT_SUBSCRIBER_BUFFER
          )
        }
      }),
    openRaw: (name, options = {}) =>
      Effect.map(openObject(name, options), ({ addresses, entry, publishTimeoutMs, shape }) => ({
        name,
        entry,
        shape,
        publisher: Effect.map(
          claimWriter(rings, name, addresses, publishTimeoutMs),
          ({ ring, writer }) => ({ writer, write: rawWrite(name, writer, ring) })
        ),
        subscribe: rawSubscription(rings, name, addresses)
      })),
    list: Effect.map(directory.list("channel"), (entries) => entries.map((entry) => entry.name))
  }
}
