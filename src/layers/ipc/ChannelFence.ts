/**
 * Channels in barriers: a channel's writer rings as a fence's streams, so that a delivery or
 * processing fence over a group also drains the channels named — each ring this process
 * writes, by the group's subscribers of it (docs/control-plane/barriers.md).
 *
 * ```ts
 * const streams = yield* channelStreams(channels, ["prices"])
 * yield* coordinator.barrier("step", { mode: "delivery-fence", group: "workers", streams })
 * ```
 */
import { Effect, type Scope } from "effect"
import type { FenceStream } from "../../services/control/Coordinator.js"
import type { ChannelOpenError, ChannelShape, ChannelsShape } from "../../services/ipc/Channels.js"
import type { DirectoryEntry } from "../../services/region/Directory.js"
import { ringAddresses } from "./ChannelLayout.js"

/** An open channel, typed or raw, as a fence needs it: its entry and shape place its writer rings. */
export interface FencedChannel {
  readonly name: string
  readonly entry: DirectoryEntry
  readonly shape: ChannelShape
}

/** An open channel's writer rings, as a barrier's stream. */
export const channelStream = (channel: FencedChannel): FenceStream => ({
  name: channel.name,
  rings: ringAddresses(channel.entry, channel.shape)
})

/** The channels of those names (opened as `openRaw` opens them, pinned for the scope), as a barrier's streams. */
export const channelStreams = (
  channels: ChannelsShape,
  names: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<FenceStream>, ChannelOpenError, Scope.Scope> =>
  Effect.forEach(names, (name) => Effect.map(channels.openRaw(name), channelStream))
