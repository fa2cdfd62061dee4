/**
 * The coordinator's side of `createObject` and `removeObject`: named objects other than topics
 * (consumer groups, channels, services), created and removed by the directory's one writer — the
 * head's — for any process. The object's header bytes travel with the request and are written
 * into its extent before the entry is published, so a process that finds the name finds the
 * header whole. Shared by the head's server (CoordinatorServer.ts) and the fake (CoordinatorMemory.ts).
 */
import { Effect } from "effect"
import type { ObjectCreate, ObjectRemove } from "../../services/control/Coordinator.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import {
  type DirectoryEntry,
  type DirectoryFull,
  type DirectoryWriterShape,
  type InvalidObjectName,
  type NameTaken,
  NotDirectoryWriter,
  type ObjectKind,
  ObjectNotFound,
  type RegionFull
} from "../../services/region/Directory.js"

export interface ObjectChanges {
  readonly create: (
    spec: ObjectCreate
  ) => Effect.Effect<DirectoryEntry, NameTaken | DirectoryFull | RegionFull | InvalidObjectName | NotDirectoryWriter>
  readonly remove: (target: ObjectRemove) => Effect.Effect<void, ObjectNotFound | NotDirectoryWriter>
}

/** A process that does not write the directory (no head's writer in it) refuses every change. */
const notWriter = new NotDirectoryWriter({ epoch: 0, writerEpoch: 0 })

/** The directory an object is written in: its bytes, its one writer, and how a live object is found by kind and name. */
export interface ObjectDirectory {
  readonly region: CxlMemoryShape
  readonly writer: DirectoryWriterShape
  readonly lookup: (kind: ObjectKind, name: string) => DirectoryEntry | undefined
}

/** The changes through `directory` (undefined: this process does not write the directory). */
export const objectChanges = (directory: ObjectDirectory | undefined): ObjectChanges => ({
  create: (spec) =>
    directory === undefined ? Effect.fail(notWriter) : directory.writer.create(
      { kind: spec.kind, name: spec.name, bytes: Math.max(spec.bytes, spec.initial.length), params: spec.params },
      (extent) => {
        directory.region.bytes.set(spec.initial, extent.offset)
        directory.region.publish(extent.offset, spec.initial.length)
      }
    ),
  remove: ({ generation, kind, name }) =>
    Effect.suspend(() => {
      if (directory === undefined) return Effect.fail(notWriter)
      const found = directory.lookup(kind, name)
      if (found === undefined || found.generation !== generation) return Effect.fail(new ObjectNotFound({ kind, name }))
      return Effect.catchTag(
        directory.writer.remove(found),
        "ObjectDeleted",
        () => Effect.fail(new ObjectNotFound({ kind, name }))
      )
    })
})
