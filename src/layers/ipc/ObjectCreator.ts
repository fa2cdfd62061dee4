/**
 * How a process creates and removes the named objects of the IPC runtime (channels, services):
 * the directory's one writer makes them, so a process that holds the DirectoryWriter (the head)
 * calls it, and any other member of the region asks the head through the coordinator (`createObject`, `removeObject`),
 * as consumer groups do. Two processes creating one name race at the writer, which has one winner:
 * the loser's `NameTaken` sends it back to its lookup.
 */
import { Effect, Option } from "effect"
import { type AppObjectKind, Coordinator } from "../../services/control/Coordinator.js"
import { HeadUnavailable } from "../../services/log/HeadWatch.js"
import {
  type DirectoryEntry,
  type DirectoryShape,
  DirectoryWriter,
  type NameTaken,
  NotDirectoryWriter,
  type ObjectSpec
} from "../../services/region/Directory.js"

/** An object of the IPC runtime to create: its extent starts zeroed (no header travels with it). */
export interface AppObjectSpec extends ObjectSpec {
  readonly kind: AppObjectKind
}

/** Creates a directory object: the writer's own `create`, or a request to the head that has it. */
export type CreateObject = (
  spec: AppObjectSpec
) => Effect.Effect<DirectoryEntry, NameTaken | { readonly _tag: string; readonly message: string }>

const NO_HEADER = new Uint8Array(0)

/** This process's way to create objects: the writer it holds, else the head's coordinator, else none (`NotDirectoryWriter`). */
export const objectCreator: Effect.Effect<CreateObject> = Effect.gen(function*() {
  const writer = yield* Effect.serviceOption(DirectoryWriter)
  if (Option.isSome(writer)) return (spec) => writer.value.create(spec)
  const coordinator = yield* Effect.serviceOption(Coordinator)
  if (Option.isSome(coordinator)) {
    return (spec) => coordinator.value.createObject({ ...spec, params: spec.params ?? [], initial: NO_HEADER })
  }
  return () => Effect.fail(new NotDirectoryWriter({ epoch: 0, writerEpoch: 0 }))
})

/** Removes an object of the IPC runtime: the writer's own `remove`, or a request to the head that has it. */
export type RemoveObject = (
  kind: AppObjectKind,
  entry: DirectoryEntry
) => Effect.Effect<void, { readonly _tag: string; readonly message: string }>

/** This process's way to remove objects, as `objectCreator` is to create them. */
export const objectRemover: Effect.Effect<RemoveObject> = Effect.gen(function*() {
  const writer = yield* Effect.serviceOption(DirectoryWriter)
  if (Option.isSome(writer)) return (_, entry) => writer.value.remove(entry)
  const coordinator = yield* Effect.serviceOption(Coordinator)
  if (Option.isSome(coordinator)) {
    return (kind, entry) => coordinator.value.removeObject({ kind, name: entry.name, generation: entry.generation })
  }
  return () => Effect.fail(new NotDirectoryWriter({ epoch: 0, writerEpoch: 0 }))
})

/**
 * A create or remove that failed for the head being gone stays `HeadUnavailable` (what an
 * application acts on, as when joining: a head to start); any other failure is the object's own `other`.
 */
export const unlessHeadLost =
  <F>(other: (e: { readonly _tag: string; readonly message: string }) => F) =>
  <E extends { readonly _tag: string; readonly message: string }>(e: E): F | HeadUnavailable =>
    e instanceof HeadUnavailable ? e : other(e)

/** Attempts at find-or-create: a name deleted between a lost race and the lookup after it tries again, twice at most. */
const ATTEMPTS = 3

/**
 * The live object of `spec`'s kind and name: found in place first (no round trip), created only
 * when not found; a lost race to create it (`NameTaken`) looks it up again.
 */
export const findOrCreate = (
  directory: DirectoryShape,
  create: CreateObject,
  spec: AppObjectSpec,
  attempt = 1
): Effect.Effect<DirectoryEntry, { readonly _tag: string; readonly message: string }> =>
  directory.lookup(spec.kind, spec.name).pipe(
    Effect.catchTag("ObjectNotFound", () =>
      create(spec).pipe(
        Effect.catchIf(
          (e): e is NameTaken => e._tag === "NameTaken" && attempt < ATTEMPTS,
          () => findOrCreate(directory, create, spec, attempt + 1)
        )
      ))
  )
