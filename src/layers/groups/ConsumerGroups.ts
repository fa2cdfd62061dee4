/**
 * ConsumerGroups (services/groups/ConsumerGroups.ts): `consumerGroupsOver`, every group's rules
 * over a backing — the region holding the groups' objects, its directory, who creates and removes
 * objects, the log's reader and (for dead letters) a publisher — and the live layer, whose backing
 * is the mapped region: objects are created by the head's coordinator, the topic read in place.
 * The fake (ConsumerGroupsMemory.ts) runs the same code over a private region.
 */
import { type ConfigError, Effect, Layer, Option, Stream } from "effect"
import { withoutCallerDeadline } from "../../services/control/CallerDeadline.js"
import { Coordinator, type CoordinatorShape } from "../../services/control/Coordinator.js"
import {
  ConsumerGroups,
  type ConsumerGroupsShape,
  GroupCorrupt,
  GroupExists,
  GroupNotFound,
  type GroupSpec,
  InvalidGroupSpec
} from "../../services/groups/ConsumerGroups.js"
import { GROUP_SETTINGS } from "../../services/groups/GroupSettings.js"
import { Consumers, type ConsumersShape } from "../../services/log/Consumers.js"
import { LogReader, type LogReaderShape } from "../../services/log/LogReader.js"
import { Publisher, type PublisherShape } from "../../services/net/Publisher.js"
import { CxlMemory, type CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { Directory, type DirectoryShape } from "../../services/region/Directory.js"
import { settingsConfig } from "../../Settings.js"
import { deadLetterWriter } from "./GroupDeadLetters.js"
import { holdOf, makeHold, sweepHolds } from "./GroupHold.js"
import { encodeHeader, groupBytes, type GroupConfig, KEY_BUCKETS } from "./GroupLayout.js"
import { joinGroup } from "./GroupMember.js"
import { ClaimLiveness } from "./GroupMembers.js"
import { type GroupObject, groupOf, openGroup } from "./GroupObject.js"
import { groupSpecProblem, lookedUp, nameRefusal, refuseJoin, startOf } from "./GroupSpecs.js"
import { describeGroup, pendingOf } from "./GroupStatus.js"

/** A new group's defaults and a member's, as the settings table gives them (CXLOG_GROUP_*). */
export type GroupDefaults = Effect.Effect.Success<typeof groupDefaults>
export const groupDefaults = settingsConfig(GROUP_SETTINGS.settings)

export interface GroupsBacking {
  /** The bytes the groups' objects lie in: the directory's region. */
  readonly region: CxlMemoryShape
  readonly directory: DirectoryShape
  /** Who writes the directory: the head's coordinator, or the fake's own writer. */
  readonly objects: Pick<CoordinatorShape, "createObject" | "removeObject">
  readonly reader: LogReaderShape
  /** The log's named consumers: each group's hold on its topic is one of cxlog's own (GroupHold.ts). */
  readonly consumers: ConsumersShape
  /** Writes dead letters; none in this process: a group with a dead-letter topic fails them (`DeadLetterFailed`). */
  readonly publisher: PublisherShape | undefined
  readonly defaults: GroupDefaults
}

export const consumerGroupsOver = (backing: GroupsBacking): ConsumerGroupsShape => {
  const { region, directory, objects, reader, defaults } = backing
  const consumers = backing.consumers.own
  const liveness = new ClaimLiveness(defaults.checkEveryMs)
  const open = (name: string) => openGroup(region, directory, name, liveness)
  /** What the group's topic holds now, undefined when the topic it was made on is gone (deleted, or another of its name since). */
  const topicBounds = (group: GroupObject) =>
    Effect.scoped(Effect.gen(function*() {
      const cursor = yield* reader.subscribe(group.config.topic, { from: "latest" })
      if (cursor.topic.generation !== group.config.topicGeneration) return undefined
      return yield* reader.bounds(group.config.topic)
    })).pipe(Effect.orElseSucceed(() => undefined))
  const describe = (group: GroupObject) =>
    Effect.gen(function*() {
      const bounds = yield* topicBounds(group)
      const hold = yield* holdOf(consumers, group)
      const nowMs = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      return describeGroup(group, bounds, nowMs, hold)
    })

  const create = (spec: GroupSpec) =>
    Effect.gen(function*() {
      const badName = nameRefusal(spec.name)
      if (badName !== undefined) return yield* badName
      // Members rely on each other's compare-and-swaps, which a non-coherent region's hosts cannot trust.
      const problem = region.coherence === "coherent"
        ? groupSpecProblem(spec)
        : "consumer groups need a coherent region (CXLOG_COHERENCE=coherent)"
      if (problem !== undefined) return yield* new InvalidGroupSpec({ group: spec.name, reason: problem })
      // Its own topic first: with both missing, that is the one to create first.
      const start = yield* startOf(reader, spec)
      if (spec.deadLetterTopic !== undefined) {
        const deadLetterTopic = spec.deadLetterTopic
        yield* reader.bounds(deadLetterTopic).pipe(
          Effect.catchTag("TopicNotFound", (e) =>
            Effect.fail(
              new InvalidGroupSpec({
                group: spec.name,
                reason: e.unreadable === undefined
                  ? `its dead-letter topic ${deadLetterTopic} does not exist: create it first`
                  : `its dead-letter topic: ${e.message}`
              })
            ))
        )
      }
      const config: GroupConfig = {
        topic: spec.topic,
        topicGeneration: start.topic.generation,
        byKey: spec.byKey === true,
        ackWaitMs: spec.ackWaitMs ?? defaults.ackWaitMs,
        maxDeliver: spec.maxDeliver ?? defaults.maxDeliver,
        deadLetterTopic: spec.deadLetterTopic,
        startOffset: start.offset,
        createdAtMs: yield* Effect.clockWith((clock) => clock.currentTimeMillis),
        memberSlots: spec.memberSlots ?? defaults.memberSlots,
        pendingSlots: spec.pendingSlots ?? defaults.pendingSlots,
        holdRetention: spec.holdRetention !== false,
        buckets: spec.byKey === true ? KEY_BUCKETS : 0
      }
      const entry = yield* objects.createObject({
        kind: "group",
        name: spec.name,
        bytes: groupBytes(config),
        params: [],
        initial: encodeHeader(config)
      }).pipe(Effect.catchTag("NameTaken", () => Effect.fail(new GroupExists({ group: spec.name }))))
      yield* sweepHolds(consumers, directory, spec.topic)
      if (config.holdRetention) {
        yield* makeHold(consumers, entry, start).pipe(
          Effect.tapError(() =>
            Effect.ignore(
              withoutCallerDeadline(
                objects.removeObject({ kind: "group", name: spec.name, generation: entry.generation })
              )
            )
          )
        )
      }
      const group = groupOf(region, entry, liveness)
      // Just written by this build: it reads back, or the region is not what this process maps.
      if (group instanceof GroupCorrupt) return yield* Effect.die(group)
      return yield* describe(group)
    })

  // Every group by name, each described, or said to be unreadable (never left out in silence).
  const overview = Effect.flatMap(directory.list("group"), (entries) => {
    const readable: Array<GroupObject> = []
    const unreadable: Array<GroupCorrupt> = []
    for (const entry of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const group = groupOf(region, entry, liveness)
      if (group instanceof GroupCorrupt) unreadable.push(group)
      else readable.push(group)
    }
    return Effect.map(Effect.forEach(readable, describe), (groups) => ({ groups, unreadable }))
  })

  return {
    create,
    describe: (name) => lookedUp(name, () => Effect.flatMap(open(name), describe)),
    list: Effect.map(overview, (all) => all.groups),
    overview,
    pending: (name) => lookedUp(name, () => Effect.map(open(name), pendingOf)),
    delete: (name) =>
      lookedUp(name, () => directory.lookup("group", name)).pipe(
        Effect.flatMap((entry) =>
          Effect.gen(function*() {
            // Read while the object is there (its memory may be another's once it is gone); a corrupt one names no topic.
            const group = groupOf(region, entry, liveness)
            yield* objects.removeObject({ kind: "group", name, generation: entry.generation })
            // Its hold goes with it, with any other of the topic's whose group is gone (a member still
            // holding it removes it as it leaves).
            if (group instanceof GroupCorrupt) return
            yield* sweepHolds(consumers, directory, group.config.topic)
          })
        ),
        Effect.catchTag("ObjectNotFound", () => Effect.fail(new GroupNotFound({ group: name })))
      ),
    join: (name, options = {}) =>
      Stream.unwrap(
        lookedUp(name, () =>
          Effect.map(Effect.zipRight(refuseJoin(name, options.maxInFlight), open(name)), (group) =>
            joinGroup(group, directory, reader, consumers, deadLetterWriter(name, group.config, backing.publisher), {
              maxInFlight: options.maxInFlight ?? defaults.maxInFlight,
              checkEveryMs: defaults.checkEveryMs
            })))
      )
  }
}

// ---- the region ---------------------------------------------------------------------

/**
 * Over the mapped region: the groups' objects are the directory's, created and removed through
 * the head's coordinator; members read the topic in place. Dead letters go through the process's
 * `Publisher` when it has one (provide it beside this layer).
 */
export const make = (
  options: Partial<GroupDefaults> = {}
): Effect.Effect<
  ConsumerGroupsShape,
  ConfigError.ConfigError,
  CxlMemory | Directory | Coordinator | LogReader | Consumers
> =>
  Effect.gen(function*() {
    const defaults = { ...(yield* groupDefaults), ...options }
    return consumerGroupsOver({
      region: yield* CxlMemory,
      directory: yield* Directory,
      objects: yield* Coordinator,
      reader: yield* LogReader,
      consumers: yield* Consumers,
      publisher: Option.getOrUndefined(yield* Effect.serviceOption(Publisher)),
      defaults
    })
  })

export const layer = (
  options: Partial<GroupDefaults> = {}
): Layer.Layer<ConsumerGroups, ConfigError.ConfigError, CxlMemory | Directory | Coordinator | LogReader | Consumers> =>
  Layer.effect(ConsumerGroups, make(options))
