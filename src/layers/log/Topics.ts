/**
 * Topics: the one creation and lookup algorithm (`topicsOver`) over a topic table, and the
 * live layer, whose table is the topic objects of the region's directory, each with its
 * descriptor at the start of its extent (the fake's is the in-process store: TopicsMemory.ts).
 * Also the table readers every region layer uses to resolve a topic name. A topic's id is its
 * directory slot; reading a topic records where it lives for this process (`LogArea.place`).
 */
import { Effect, Layer, Option } from "effect"
import { durableFailureOf } from "../../services/log/AckTracker.js"
import { DiskCopies, type DiskCopiesShape } from "../../services/log/DiskCopies.js"
import {
  checkTopicSpec,
  checkTrimTarget,
  InvalidTopicSpec,
  REPLICATION_FACTORS,
  ReplicationUnavailable,
  type TopicDescription,
  TopicExists,
  type TopicInfo,
  TopicNotDeletable,
  TopicNotFound,
  TopicNotTrimmable,
  Topics,
  type TopicsHeap,
  type TopicSpaceError,
  TopicSpec,
  topicSpecConflict,
  type TopicsShape,
  type TrimTarget,
  type UnreadableTopic
} from "../../services/log/Topics.js"
import { CxlMemory, type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { DirectoryWriter, type DirectoryWriterShape, NotDirectoryWriter } from "../../services/region/Directory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { largestBlockBytes } from "../region/BuddyAllocator.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import type { LogArea, LogConfig } from "./Layout.js"
import { isLineOwnerAlive, retentionMoved } from "./Participants.js"
import { boundsOf } from "./ReadPositions.js"
import type { ReadTopic } from "./ReadSource.js"
import { DescriptorState } from "./Records.js"
import { DescriptorView, OrderLineView } from "./RecordViews.js"
import { lookingReader, RegionReadTopic } from "./RegionReadTopic.js"
import { readRetained, type Retained, writeRetained } from "./RetentionLines.js"
import { SessionTable } from "./SessionTable.js"
import { describeOver, regionHeap } from "./TopicDescriptions.js"
import { readTopicEntry, writeDescriptor } from "./TopicDescriptors.js"
import { laneCount } from "./TopicLanes.js"
import { topicLister, unreadableTopics } from "./TopicList.js"
import { heldBytes, type TopicShape, topicShape, unworkableMemory } from "./TopicShape.js"
import { TRIM_TRIES, trimPoint } from "./TopicTrim.js"
import { removeUnreadableTopic } from "./TopicUnreadable.js"

/** Where topics are kept: the region's directory or the store's array. A topic is never renamed; a deleted one's name may name a new topic. */
export interface TopicTable {
  readonly list: () => ReadonlyArray<TopicInfo>
  /** The live topic of that name, if any; or why one that may be it cannot be read (a corrupt region). */
  readonly find: (name: string) => TopicInfo | string | undefined
  /** The topics of the table that `listed` (its list) leaves out because they cannot be read. Absent where none can be. */
  readonly unreadable?: (listed: ReadonlyArray<TopicInfo>) => ReadonlyArray<UnreadableTopic>
  /** A live topic as it is now (TopicDescriptions.ts). */
  readonly describe: (info: TopicInfo) => TopicDescription
  /** The memory topics take their extents from, while `topics` topics live. */
  readonly heap: (topics: number) => TopicsHeap
  /** The largest extent the heap can give one object, however empty: a lane past it could never be had. */
  readonly largestExtentBytes: number
  /** The heap's whole size: a topic whose lanes and index add up past it could never have them all. */
  readonly heapBytes: number
  /** Whether `info` still names a live topic (not deleted, its slot not given to another). */
  readonly isCurrent: (info: TopicInfo) => boolean
  /** Makes `spec` a topic (a checked spec whose name is not taken, of this shape): the new topic, or why there is no room. */
  readonly add: (spec: TopicSpec, shape: TopicShape) => Effect.Effect<
    TopicInfo,
    TopicExists | TopicSpaceError | NotDirectoryWriter
  >
  /** Deletes a live topic (see `TopicsShape.delete`). */
  readonly remove: (info: TopicInfo) => Effect.Effect<void, TopicNotFound | NotDirectoryWriter>
  /**
   * Deletes the topic of that name whose directory entry is sound but whose descriptor cannot be
   * read (a region's, damaged): its name and memory come back. `why` is what the lookup said. A topic
   * whose entry itself is corrupt is deleted when the entry still says its name; one whose entry does
   * not is not (`TopicNotFound` saying so). Absent where no topic can be unreadable.
   */
  readonly removeUnreadable?: (name: string, why: string) => Effect.Effect<void, TopicNotFound | NotDirectoryWriter>
  /** The topic's total order as a reader sees it (where a trim cuts). */
  readonly reader: (info: TopicInfo) => ReadTopic
  /** What the topic holds from now (its retention line). */
  readonly retained: (info: TopicInfo) => Retained
  /** Moves what the topic holds forward (the directory's writer only), and wakes what waits for room. */
  readonly setRetained: (info: TopicInfo, retained: Retained) => Effect.Effect<void, NotDirectoryWriter>
}

/** No topic of that name; `unreadable`: one that may be it is there but cannot be read (why). */
const missing = (name: string, unreadable: string | undefined) =>
  new TopicNotFound(unreadable === undefined ? { name } : { name, unreadable })

/** A name a JavaScript caller gave that is no string names no topic (it is not looked up as its text). */
const notAName = (name: string) => typeof name !== "string"

/** Resolves names to topics, caching hits while they stay current (a deleted topic's name is looked up afresh). */
export const resolverOver = (
  find: (name: string) => TopicInfo | string | undefined,
  isCurrent: (info: TopicInfo) => boolean
) => {
  const cache = new Map<string, TopicInfo>()
  return (name: string): Effect.Effect<TopicInfo, TopicNotFound> =>
    Effect.suspend(() => {
      if (notAName(name)) return Effect.fail(missing(String(name), undefined))
      const cached = cache.get(name)
      if (cached !== undefined && isCurrent(cached)) return Effect.succeed(cached)
      cache.delete(name)
      const found = find(name)
      if (found === undefined || typeof found === "string") return Effect.fail(missing(name, found))
      cache.set(name, found)
      return Effect.succeed(found)
    })
}

/** A topic's shape from its spec (memory, writers, largest message, or the region's defaults), if one can hold it. */
export const shapeOf = (config: LogConfig, spec: TopicSpec): Effect.Effect<TopicShape, InvalidTopicSpec> => {
  const shape = topicShape(config, {
    memory: spec.memory ?? config.topicMemoryBytes,
    writers: spec.writers ?? config.topicWriters,
    maxMessageBytes: spec.maxMessageBytes
  })
  return typeof shape === "string"
    ? Effect.fail(new InvalidTopicSpec({ reason: `topic ${spec.name}: ${shape}` }))
    : Effect.succeed(shape)
}

/**
 * Creates a topic: a valid spec, replication the log can give (a copy on disk only through a head
 * that keeps copies: `copies`), memory that can hold it, a name not taken, room.
 */
const createTopic = (table: TopicTable, config: LogConfig, input: TopicSpec, copies: DiskCopiesShape | undefined) =>
  Effect.gen(function*() {
    const spec = yield* checkTopicSpec(input)
    if (spec.name.split(".").includes("")) {
      // Patterns (`orders.*`) match a name's dot-separated parts: an empty one no pattern could name.
      return yield* new InvalidTopicSpec({
        reason:
          `topic ${spec.name}: a new topic's name has no empty part between dots (no leading, trailing or double dot)`
      })
    }
    if (!REPLICATION_FACTORS.includes(spec.replicationFactor)) {
      return yield* new ReplicationUnavailable({ name: spec.name, replicationFactor: spec.replicationFactor })
    }
    if (spec.replicationFactor > 1 && copies?.keeps === false) {
      // Its ACK 2 would wait for a disk that nothing writes, and its copy could never be deleted.
      return yield* new ReplicationUnavailable({
        name: spec.name,
        replicationFactor: spec.replicationFactor,
        reason:
          "keeps a copy on disk, and the head runs without a data directory: start the head with --data-dir DIR (CXLOG_DATA_DIR), or use 1"
      })
    }
    const conflict = topicSpecConflict(spec)
    if (conflict !== undefined) {
      return yield* new InvalidTopicSpec({ reason: `topic ${spec.name}: ${conflict}` })
    }
    const shape = yield* shapeOf(config, spec)
    const unworkable = unworkableMemory(shape, table)
    if (unworkable !== undefined) return yield* new InvalidTopicSpec({ reason: `topic ${spec.name}: ${unworkable}` })
    // An entry that cannot be read takes no name: the new topic is found before it.
    if (typeof table.find(spec.name) === "object") return yield* new TopicExists({ name: spec.name })
    const info = yield* table.add(spec, shape)
    // Until its disk writer holds retention, a burst published to it could be recycled before it is on disk.
    if (spec.replicationFactor > 1 && copies?.keeps === true) {
      if (!(yield* copies.awaitWriting(info, WRITER_START_MS))) {
        yield* Effect.logWarning(
          `topics: the disk writer of topic ${spec.name} did not start within ${WRITER_START_MS} ms; what is published to it before it does may not reach the disk`
        )
      }
    }
    return info
  })

/** How long a create of a topic with a copy on disk waits for its writer. */
const WRITER_START_MS = 10_000

/** The live topic of that name, looked up afresh, or TopicNotFound (saying why when it cannot be read). */
const found = (table: TopicTable, name: string): Effect.Effect<TopicInfo, TopicNotFound> => {
  if (notAName(name)) return Effect.fail(missing(String(name), undefined))
  const info = table.find(name)
  return info === undefined || typeof info === "string" ? Effect.fail(missing(name, info)) : Effect.succeed(info)
}

/**
 * Deletes a topic, looked up afresh. A replication factor 2 topic's copy on disk goes first
 * (`copies`: the head's; elsewhere such a topic is not deletable here), so the topic leaves the
 * directory only once nothing on disk can bring it back.
 */
const deleteTopic = (table: TopicTable, name: string, copies: DiskCopiesShape | undefined) =>
  Effect.gen(function*() {
    const unreadable = notAName(name) ? undefined : table.find(name)
    // What it held cannot be read anyway: deleting it is the way to its name and memory again.
    if (typeof unreadable === "string" && table.removeUnreadable !== undefined) {
      return yield* table.removeUnreadable(name, unreadable)
    }
    const info = yield* found(table, name)
    if (info.replicationFactor > 1) {
      if (copies === undefined) {
        return yield* new TopicNotDeletable({
          name,
          reason:
            "it has a copy on disk (replication factor 2), which only its head deletes: delete it through the head"
        })
      }
      yield* copies.remove(info)
    }
    return yield* table.remove(info)
  })

/**
 * Trims a topic: one held in the region alone (a copy on disk keeps its own retention), cut where
 * `target` says (`trimPoint`, tried again when the window moved under it), never back.
 */
const trimTopic = (table: TopicTable, name: string, given: TrimTarget, asked: "trim" | "purge" = "trim") =>
  Effect.gen(function*() {
    const info = yield* found(table, name)
    const target = yield* checkTrimTarget(info.name, given)
    if (info.replicationFactor > 1) {
      return yield* new TopicNotTrimmable({
        name,
        reason: "it has a copy on disk (replication factor 2), which keeps its own retention (diskRetention)",
        asked
      })
    }
    const reader = table.reader(info)
    for (let tries = 0; tries < TRIM_TRIES; tries++) {
      const now = table.retained(info)
      const point = trimPoint(reader, target, now)
      if (point === "moved") continue
      if (point.firstOffset > now.firstOffset) yield* table.setRetained(info, point)
      return boundsOf(reader)
    }
    return yield* new TopicNotTrimmable({
      name,
      reason:
        `its retained window moved under ${TRIM_TRIES} tries (the log is recycling as fast as it is read); try again`,
      asked
    })
  })

/** The Topics service over a table; with `copies` (the head's), replication factor 2 topics are deletable, their copy on disk with them. */
export const topicsOver = (table: TopicTable, config: LogConfig, copies?: DiskCopiesShape): TopicsShape<never> => {
  const lookup = resolverOver(table.find, table.isCurrent)
  return {
    create: (spec) => createTopic(table, config, spec, copies),
    lookup,
    list: Effect.sync(table.list),
    delete: (name) => deleteTopic(table, name, copies),
    describe: (name) => Effect.map(lookup(name), table.describe),
    overview: Effect.sync(() => {
      const listed = table.list()
      const topics = listed.map(table.describe)
      // A topic the list could not read is said, never left out in silence.
      const unreadable = table.unreadable?.(listed) ?? []
      return { topics, heap: table.heap(topics.length), ...(unreadable.length === 0 ? {} : { unreadable }) }
    }),
    trim: (name, target) => trimTopic(table, name, target),
    purge: (name) => trimTopic(table, name, { beforeOffset: Number.MAX_SAFE_INTEGER }, "purge")
  }
}

// ---- the region's topic table -------------------------------------------------------

/** Whether `info` still names a live topic of the region (its directory entry is its generation's). */
export const isCurrentTopic = (region: CxlMemoryShape, area: LogArea) => {
  const table = new DirectoryTable(region, area.directory)
  return (info: TopicInfo): boolean => table.isCurrent({ slot: info.id, generation: info.generation })
}

/**
 * The region's live topic of that name, looked up in its directory (a hash probe, no list); or why
 * a topic that may be it cannot be read (a corrupt region is never trusted, and never unexplained).
 */
export const regionTopicFinder = (region: CxlMemoryShape, area: LogArea) => {
  const table = new DirectoryTable(region, area.directory)
  const descriptors = new DescriptorView(region)
  return (name: string): TopicInfo | string | undefined => {
    const { corrupt, found } = table.probe("topic", name)
    if (found === undefined) {
      if (corrupt < 0) return undefined
      const why = `directory entry ${corrupt} of its name's hash is corrupt (its fields out of range)`
      return table.undecoded(corrupt)?.name === name
        ? `${why}; deleting the topic frees its entry and memory (what it held cannot be read)`
        : `${why}, its name too, so nothing says which topic it is and no delete frees it: a head taking the region ` +
          `over (a restart of the head) deletes it, and its memory comes back once no process that opened it holds it`
    }
    const info = readTopicEntry(region, area, found)
    if (info !== undefined) return info
    // Marked deleted, its entry still there: a delete under way (the entry goes next), so no topic of that name.
    return descriptors.state(found.extent.offset) === DescriptorState.deleted
      ? undefined
      : `its descriptor (directory entry ${found.slot}) is corrupt; deleting the topic frees its name and memory (what it held cannot be read)`
  }
}

/** Resolves names to the region's topics. */
export const topicResolver = (region: CxlMemoryShape, area: LogArea) =>
  resolverOver(regionTopicFinder(region, area), isCurrentTopic(region, area))

/** `make` once per topic (by id and generation): the per-topic state a layer keeps, made afresh for a new topic in a deleted one's slot. */
export const perTopic = <A>(make: (info: TopicInfo) => A): (info: TopicInfo) => A => {
  const made = new Map<number, { readonly generation: number; readonly value: A }>()
  return (info) => {
    let found = made.get(info.id)
    if (found === undefined || found.generation !== info.generation) {
      found = { generation: info.generation, value: make(info) }
      made.set(info.id, found)
    }
    return found.value
  }
}

/** Each topic's session table in the region. */
export const regionSessionTables = (region: CxlMemoryShape, area: LogArea) =>
  perTopic((info) => regionSessionTable(region, area, info.id))

/** Topic `t`'s session table in the region (the topic read by this process). */
export const regionSessionTable = (region: CxlMemoryShape, area: LogArea, t: number): SessionTable =>
  new SessionTable(region, area.sessions(t), area.registryLine(t), area.placeOf(t).shape.sessionSlots)

/** A topic object in the directory, its descriptor written before its name is published. */
const addTopic = (
  region: CxlMemoryShape,
  area: LogArea,
  writer: DirectoryWriterShape,
  spec: TopicSpec,
  shape: TopicShape
) =>
  writer.create(
    { kind: "topic", name: spec.name, bytes: shape.mainBytes },
    (extent) => writeDescriptor(region, extent.offset, spec, shape)
  ).pipe(
    Effect.catchTags({
      NameTaken: () => Effect.fail(new TopicExists({ name: spec.name })),
      // The name was checked against the topic name pattern, which the directory's allows.
      InvalidObjectName: (e) => Effect.die(e)
    }),
    Effect.flatMap((entry) => {
      const info = readTopicEntry(region, area, entry)
      return info === undefined
        ? Effect.dieMessage(`topic ${spec.name}: its descriptor reads back invalid`)
        : Effect.succeed(info)
    })
  )

/**
 * Deletes a topic object: its descriptor says so first (a process holding the topic learns it
 * with one load), then its directory entry goes (the name is free; the extent is retired and
 * freed once no pin can touch it: TopicPins.ts).
 */
const removeTopic = (region: CxlMemoryShape, area: LogArea, writer: DirectoryWriterShape, info: TopicInfo) =>
  Effect.suspend(() => {
    const entry = new DirectoryTable(region, area.directory).read(info.id).entry
    if (entry === undefined || entry.generation !== info.generation) {
      return Effect.fail(new TopicNotFound({ name: info.name }))
    }
    const at = entry.extent.offset
    new DescriptorView(region).storeState(at, DescriptorState.deleted)
    region.publish(at, LINE_BYTES)
    return writer.remove(entry).pipe(
      Effect.catchTag("ObjectDeleted", () => Effect.fail(new TopicNotFound({ name: info.name })))
    )
  })

/** The region's topics; they are created where the directory's writer is (the head), elsewhere NotDirectoryWriter. */
export const make = (area: LogArea): Effect.Effect<TopicsShape<never>, never, CxlMemory> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const writer = yield* Effect.serviceOption(DirectoryWriter)
    // The head's doorbell, to wake appends that wait for the room a trim frees (only the head trims).
    const doorbell = yield* Effect.serviceOption(Doorbell)
    // The head's, when it keeps copies on disk: a replication factor 2 topic's goes with its deletion.
    const copies = yield* Effect.serviceOption(DiskCopies)
    const notWriter = new NotDirectoryWriter({ epoch: 0, writerEpoch: 0 })
    const reading = perTopic((info) => new RegionReadTopic(lookingReader(region, area), info))
    const orderLines = new OrderLineView(region)
    return topicsOver(
      {
        reader: reading,
        retained: (info) => readRetained(region, area, info.id),
        setRetained: (info, retained) =>
          Option.isNone(writer) ? Effect.fail(notWriter) : Effect.sync(() => {
            writeRetained(region, area, info.id, retained)
            if (Option.isSome(doorbell)) retentionMoved(region, area, doorbell.value, info.id)
          }),
        list: topicLister(region, area),
        find: regionTopicFinder(region, area),
        unreadable: unreadableTopics(region, area, regionTopicFinder(region, area)),
        describe: describeOver({
          readTopic: reading,
          sessions: regionSessionTables(region, area),
          lines: { region, area, alive: isLineOwnerAlive },
          memoryBytes: (info) => area.placeOf(info.id).shape.memoryBytes,
          lanes: (info) => laneCount(region, area, info.id),
          usedBytes: (info) => heldBytes(area.placeOf(info.id).shape, laneCount(region, area, info.id)),
          blogBytes: (info) => area.blogBytes(info.id),
          diskCopyStopped: (info) => {
            const line = area.orderLine(info.id)
            region.invalidate(line, LINE_BYTES)
            return durableFailureOf(orderLines.durableFailure(line))
          }
        }),
        heap: (topics) => regionHeap(region, area, topics),
        largestExtentBytes: largestBlockBytes(area.directory.config.heapBytes),
        heapBytes: area.directory.config.heapBytes,
        isCurrent: isCurrentTopic(region, area),
        add: (spec, shape) =>
          Option.isSome(writer) ? addTopic(region, area, writer.value, spec, shape) : Effect.fail(notWriter),
        remove: (info) =>
          Option.isSome(writer) ? removeTopic(region, area, writer.value, info) : Effect.fail(notWriter),
        removeUnreadable: (name, why) =>
          Option.isSome(writer)
            ? removeUnreadableTopic(
              region,
              area,
              writer.value,
              name,
              why,
              (info) => removeTopic(region, area, writer.value, info)
            )
            : Effect.fail(notWriter)
      },
      area.config,
      Option.getOrUndefined(copies)
    )
  })

export const layer = (area: LogArea): Layer.Layer<Topics, never, CxlMemory> => Layer.effect(Topics, make(area))
