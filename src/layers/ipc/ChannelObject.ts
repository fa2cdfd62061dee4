/**
 * Finding a channel object by name, or creating it: a lookup in place first (no round trip);
 * only a name not found asks the directory's writer — the head itself, or the head through the
 * coordinator (ObjectCreator.ts, where racing creators resolve to one object).
 */
import { Effect, type Scope } from "effect"
import { type ChannelShape, ChannelUnavailable, InvalidChannel } from "../../services/ipc/Channels.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import type { DirectoryEntry, DirectoryShape } from "../../services/region/Directory.js"
import { channelBytes, entryShape, recordedFingerprint, shapeParams, shapeProblem } from "./ChannelLayout.js"
import { type CreateObject, findOrCreate, unlessHeadLost } from "./ObjectCreator.js"

const unavailable = (name: string) => (e: { readonly message: string }) =>
  new ChannelUnavailable({ name, reason: e.message })

export interface FoundChannel {
  readonly entry: DirectoryEntry
  readonly shape: ChannelShape
}

/**
 * The live channel of that name (created with `shape` if there is none), pinned for the scope:
 * its extent is not reused while this process may still touch its rings.
 */
export const openChannelObject = (
  directory: DirectoryShape,
  create: CreateObject,
  name: string,
  shape: ChannelShape,
  fingerprint = 0
): Effect.Effect<FoundChannel, ChannelUnavailable | InvalidChannel | HeadUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const problem = shapeProblem(shape)
    if (problem !== undefined) return yield* new InvalidChannel({ name, reason: problem })
    const entry = yield* findOrCreate(directory, create, {
      kind: "channel",
      name,
      bytes: channelBytes(shape),
      params: shapeParams(shape, fingerprint)
    }).pipe(Effect.mapError(unlessHeadLost(unavailable(name))))
    const found = entryShape(entry)
    if (found instanceof InvalidChannel) return yield* found
    const recorded = recordedFingerprint(entry)
    if (recorded !== 0 && fingerprint !== 0 && recorded !== fingerprint) {
      return yield* new InvalidChannel({
        name,
        reason:
          "its values are another Schema's: in binary a value carries no field names, so this Schema would misread them " +
          "(the writers' and readers' Schemas must have the same fields, in the same order, of the same types)"
      })
    }
    yield* directory.hold(entry).pipe(Effect.mapError(unavailable(name)))
    return { entry, shape: found }
  })
