/**
 * The Channels service over a directory, a way to create directory objects and the rings: the
 * one engine of the live layers and the fake (Channels.ts, ChannelsMemory.ts).
 */
import { Effect, type Scope } from "effect"
import type { RingsShape } from "../../services/control/Rings.js"
import {
  ChannelInUse,
  ChannelNotFound,
  type ChannelOptions,
  ChannelRemoved,
  type ChannelShape,
  type ChannelsShape,
  ChannelUnavailable,
  InvalidChannel
} from "../../services/ipc/Channels.js"
import { CHANNEL_SETTINGS } from "../../services/ipc/ChannelSettings.js"
import { type DirectoryEntry, type DirectoryShape, nameNotText } from "../../services/region/Directory.js"
import { settingsConfig } from "../../Settings.js"
import { jsonCodec } from "../control/JsonCodec.js"
import { binaryValues } from "./BinaryValues.js"
import { entryShape, ringAddresses } from "./ChannelLayout.js"
import { openChannelObject } from "./ChannelObject.js"
import { type ClaimedWriter, claimWriter, rawPublisher, typedPublisher } from "./ChannelPublisher.js"
import { rawSubscription, typedSubscription } from "./ChannelSubscriber.js"
import { heldOnSuccess } from "./HeldOnSuccess.js"
import { type CreateObject, type RemoveObject, unlessHeadLost } from "./ObjectCreator.js"
import { liveUsers } from "./ObjectUsers.js"

/** What an open that names none of these gets (CXLOG_CHANNEL_*: ChannelSettings.ts). */
export type ChannelDefaults = Effect.Effect.Success<typeof channelDefaults>
export const channelDefaults = settingsConfig(CHANNEL_SETTINGS.settings)

/** What is wrong with an open's options beyond the shape (ChannelLayout's `shapeProblem`), or undefined. */
const optionsProblem = ({ publishTimeoutMs, spinMicros, subscriberBuffer }: ChannelOptions): string | undefined => {
  if (publishTimeoutMs !== undefined && !(publishTimeoutMs > 0)) {
    return `publishTimeoutMs ${publishTimeoutMs} must be a positive number of milliseconds`
  }
  if (subscriberBuffer !== undefined && !(Number.isInteger(subscriberBuffer) && subscriberBuffer >= 1)) {
    return `subscriberBuffer ${subscriberBuffer} must be an integer of at least 1`
  }
  if (spinMicros !== undefined && !(Number.isInteger(spinMicros) && spinMicros >= 0)) {
    return `spinMicros ${spinMicros} must be a whole number of microseconds (0: the process's own)`
  }
  return undefined
}

/**
 * Wraps an `acquire` (slots on a channel's rings) to fail `ChannelRemoved` once the channel was
 * removed since it was opened: a removal refuses only while its rings have live writers or
 * readers (ObjectUsers.ts), so an object of it opened before and used only now would write and
 * read memory no later open finds.
 * Looked at before the slots are taken and again once they are held, where a removal that looks
 * at the rings after that sees them; per slot taken, not per value. An acquire that fails (that
 * second look, or a subscription that found no free reader slot on its third ring) gives back at
 * once what it took: reader slots left attached in the caller's scope would never read, and hold
 * their writers back.
 */
const unlessRemoved = (directory: DirectoryShape, name: string, entry: DirectoryEntry) => {
  const current = Effect.suspend(() =>
    directory.isCurrent(entry) ? Effect.void : Effect.fail(new ChannelRemoved({ name }))
  )
  return <A, E>(acquire: Effect.Effect<A, E, Scope.Scope>): Effect.Effect<A, E | ChannelRemoved, Scope.Scope> =>
    Effect.zipRight(current, heldOnSuccess(Effect.zipLeft(acquire, current)))
}

export const makeChannels = (
  directory: DirectoryShape,
  create: CreateObject,
  rings: RingsShape,
  defaults: ChannelDefaults,
  removeObject: RemoveObject
): ChannelsShape => {
  const shapeOf = (options: ChannelOptions): ChannelShape => ({
    writerSlots: options.writerSlots ?? defaults.writerSlots,
    readerSlots: options.readerSlots ?? defaults.readerSlots,
    ringBytes: options.ringBytes ?? defaults.ringBytes
  })
  const openObject = (name: string, options: ChannelOptions, fingerprint = 0) => {
    const notText = nameNotText(name)
    if (notText !== undefined) return Effect.fail(new ChannelUnavailable({ name: String(name), reason: notText }))
    const problem = optionsProblem(options)
    if (problem !== undefined) return Effect.fail(new InvalidChannel({ name, reason: problem }))
    return Effect.map(openChannelObject(directory, create, name, shapeOf(options), fingerprint), (found) => ({
      ...found,
      addresses: ringAddresses(found.entry, found.shape),
      publishTimeoutMs: options.publishTimeoutMs ?? defaults.publishTimeoutMs
    }))
  }
  /**
   * The channel object `opened`: its publisher (`publisherOf` over the writer slot it claims)
   * and its subscriptions, each failing `ChannelRemoved` once the channel was removed.
   */
  const channelOf = <P, S, E>(
    name: string,
    opened: Effect.Effect.Success<ReturnType<typeof openObject>>,
    publisherOf: (claimed: ClaimedWriter) => P,
    subscription: Effect.Effect<S, E, Scope.Scope>
  ) => {
    const current = unlessRemoved(directory, name, opened.entry)
    return {
      name,
      entry: opened.entry,
      shape: opened.shape,
      publisher: current(Effect.map(claimWriter(rings, name, opened.addresses, opened.publishTimeoutMs), publisherOf)),
      subscribe: current(subscription)
    }
  }
  return {
    open: (name, schema, options = {}) => {
      const binary = binaryValues(schema.ast)
      const codec = jsonCodec(schema)
      return Effect.map(openObject(name, options, binary?.fingerprint), (opened) =>
        channelOf(
          name,
          opened,
          (claimed) => typedPublisher(name, codec, binary, claimed),
          typedSubscription(
            rings,
            name,
            codec,
            binary,
            opened.addresses,
            options.subscriberBuffer ?? defaults.subscriberBuffer,
            options.spinMicros ?? defaults.spinMicros
          )
        ))
    },
    openRaw: (name, options = {}) =>
      Effect.map(openObject(name, options), (opened) =>
        channelOf(
          name,
          opened,
          (claimed) => rawPublisher(name, claimed),
          rawSubscription(rings, name, opened.addresses, options.spinMicros ?? defaults.spinMicros)
        )),
    list: Effect.map(directory.list("channel"), (entries) => entries.map((entry) => entry.name)),
    remove: (name) =>
      Effect.gen(function*() {
        if (nameNotText(name) !== undefined) return yield* new ChannelNotFound({ name: String(name) })
        const unavailable = (e: { readonly message: string }) => new ChannelUnavailable({ name, reason: e.message })
        const entry = yield* directory.lookup("channel", name).pipe(
          Effect.catchTag("ObjectNotFound", () => Effect.fail(new ChannelNotFound({ name })))
        )
        const shape = entryShape(entry)
        // An entry that does not read as a channel's names no rings to look at for users, and no
        // process can open it: it is removed as it is (a process that had it open keeps its memory
        // by its pin until it closes it).
        if (!(shape instanceof InvalidChannel)) {
          const pids = yield* liveUsers(rings, ringAddresses(entry, shape)).pipe(Effect.mapError(unavailable))
          if (pids.length > 0) return yield* new ChannelInUse({ name, pids })
        }
        yield* removeObject("channel", entry).pipe(
          Effect.catchIf((e) => e._tag === "ObjectNotFound" || e._tag === "ObjectDeleted", () =>
            Effect.fail(new ChannelNotFound({ name }))),
          Effect.mapError((e) => (e instanceof ChannelNotFound ? e : unlessHeadLost(unavailable)(e)))
        )
      })
  }
}
