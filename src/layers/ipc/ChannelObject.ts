/**
 * Finding a channel object by name, or creating it: a lookup in place first (no round trip);
 * only a name not found asks the directory's writer — the head itself, or the head through the
 * coordinator (ObjectCreator.ts). Two processes creating one name race at the writer, which has
 * one winner: the loser's `NameTaken` sends it back to the lookup.
 */
import { Effect, type Scope } from "effect"
import { type ChannelShape, ChannelUnavailable, InvalidChannel } from "../../services/ipc/Channels.js"
import type { DirectoryEntry, DirectoryShape, NameTaken } from "../../services/region/Directory.js"
import { channelBytes, entryShape, shapeParams, shapeProblem } from "./ChannelLayout.js"
import type { CreateObject } from "./ObjectCreator.js"

/** Attempts at find-or-create: a name deleted between a lost race and the lookup after it tries again, twice at most. */
const ATTEMPTS = 3

export interface FoundChannel {
  readonly entry: DirectoryEntry
  readonly shape: ChannelShape
}

const unavailable = (name: string) => (e: { readonly message: string }) =>
  new ChannelUnavailable({ name, reason: e.message })

const findOrCreate = (
  directory: DirectoryShape,
  create: CreateObject,
  name: string,
  shape: ChannelShape,
  attempt: number
): Effect.Effect<DirectoryEntry, ChannelUnavailable> =>
  directory.lookup("channel", name).pipe(
    Effect.catchTag("ObjectNotFound", () =>
      create({ kind: "channel", name, bytes: channelBytes(shape), params: shapeParams(shape) }).pipe(
        Effect.catchIf(
          (e): e is NameTaken =>
            e._tag === "NameTaken" && attempt < ATTEMPTS,
          () => findOrCreate(directory, create, name, shape, attempt + 1)
        ),
        Effect.mapError(unavailable(name))
      ))
  )

/**
 * The live channel of that name (created with `shape` if there is none), pinned for the scope:
 * its extent is not reused while this process may still touch its rings.
 */
export const openChannelObject = (
  directory: DirectoryShape,
  create: CreateObject,
  name: string,
  shape: ChannelShape
): Effect.Effect<FoundChannel, ChannelUnavailable | InvalidChannel, Scope.Scope> =>
  Effect.gen(function*() {
    const problem = shapeProblem(shape)
    if (problem !== undefined) return yield* new InvalidChannel({ name, reason: problem })
    const entry = yield* findOrCreate(directory, create, name, shape, 1)
    const found = entryShape(entry)
    if (found instanceof InvalidChannel) return yield* found
    yield* directory.hold(entry).pipe(Effect.mapError(unavailable(name)))
    return { entry, shape: found }
  })
