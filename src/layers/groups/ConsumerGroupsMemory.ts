/**
 * ConsumerGroups fake: `consumerGroupsOver` (ConsumerGroups.ts) over the in-process log store
 * and a directory of this process's own (DirectoryMemory.ts: the live directory over a private
 * region), whose writer creates and removes the groups' objects as the head's would. The groups'
 * tables, their members' claims and every compare-and-swap are the live code's; only where the
 * bytes live differs.
 */
import { type ConfigError, Effect, Layer, Option, Scope } from "effect"
import { ConsumerGroups, type ConsumerGroupsShape } from "../../services/groups/ConsumerGroups.js"
import { Publisher } from "../../services/net/Publisher.js"
import type { DirectoryWriterShape } from "../../services/region/Directory.js"
import { objectChanges } from "../control/CoordinatorObjects.js"
import * as ConsumersMemory from "../log/ConsumersMemory.js"
import * as LogReaderMemory from "../log/LogReaderMemory.js"
import type { MemoryLogStore } from "../log/MemoryStore.js"
import * as DirectoryMemory from "../region/DirectoryMemory.js"
import type { DirectoryConfig } from "../region/DirectoryRecords.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import { consumerGroupsOver, type GroupDefaults, groupDefaults } from "./ConsumerGroups.js"

/** The groups' store: the log they read, and the directory (with its one writer) their objects live in. */
export interface MemoryGroupsStore {
  readonly log: MemoryLogStore
  readonly directory: DirectoryMemory.MemoryDirectory
  readonly writer: DirectoryWriterShape
}

/** Room for a few dozen groups of the default size. */
export const defaultGroupsDirectory: DirectoryConfig = { entrySlots: 256, holderLines: 16, heapBytes: 32 << 20 }

/**
 * A store over `log`. Its writer frees deleted groups' extents when an allocation needs the room
 * (no tick: the store is a plain value without a lifetime, as the log's is).
 */
export const makeMemoryGroupsStore = (
  log: MemoryLogStore,
  config: DirectoryConfig = defaultGroupsDirectory
): MemoryGroupsStore => {
  const directory = DirectoryMemory.makeMemoryDirectory(config)
  const writer = Effect.runSync(
    Effect.flatMap(
      Scope.make(),
      (scope) =>
        DirectoryMemory.makeWriterMemory(directory, { epoch: 1, reclaimEveryMs: 0 }).pipe(
          Scope.extend(scope),
          Effect.orDie
        )
    )
  )
  return { log, directory, writer }
}

export const makeMemory = (
  store: MemoryGroupsStore,
  options: Partial<GroupDefaults> = {}
): Effect.Effect<ConsumerGroupsShape, ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const { region, area } = store.directory
    const table = new DirectoryTable(region, area)
    const changes = objectChanges({ region, writer: store.writer, lookup: (kind, name) => table.lookup(kind, name) })
    return consumerGroupsOver({
      region,
      directory: yield* DirectoryMemory.makeMemory(store.directory),
      objects: { createObject: changes.create, removeObject: changes.remove },
      reader: yield* LogReaderMemory.makeMemory(store.log),
      consumers: yield* ConsumersMemory.makeMemory(store.log),
      publisher: Option.getOrUndefined(yield* Effect.serviceOption(Publisher)),
      defaults: { ...(yield* groupDefaults), ...options }
    })
  })

export const layerMemory = (
  store: MemoryGroupsStore,
  options: Partial<GroupDefaults> = {}
): Layer.Layer<ConsumerGroups, ConfigError.ConfigError> => Layer.scoped(ConsumerGroups, makeMemory(store, options))
