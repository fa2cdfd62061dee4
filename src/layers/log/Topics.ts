/**
 * Topics: the one creation and lookup algorithm (`topicsOver`) over a topic table, and the
 * live layer, whose table is the topic objects of the region's directory, each with its
 * descriptor at the start of its extent (the fake's is the in-process store: TopicsMemory.ts).
 * Also the table readers every region layer uses to resolve a topic name. A topic's id is its
 * directory slot; reading a topic records where it lives for this process (`LogArea.place`).
 */
import { Effect, Layer, Option, Schema } from "effect"
import {
  type DiskRetention,
  InvalidTopicSpec,
  REPLICATION_FACTORS,
  ReplicationUnavailable,
  type TopicDescription,
  TopicExists,
  type TopicInfo,
  TopicNotDeletable,
  TopicNotFound,
  Topics,
  type TopicsHeap,
  type TopicSpaceError,
  TopicSpec,
  topicSpecConflict,
  type TopicsShape
} from "../../services/log/Topics.js"
import { CxlMemory, type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import {
  type DirectoryEntry,
  DirectoryWriter,
  type DirectoryWriterShape,
  NotDirectoryWriter
} from "../../services/region/Directory.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import {
  blogBytesOf,
  type LogArea,
  type LogConfig,
  minBlogBytes,
  minTopicBytes,
  TOPIC_DESCRIPTOR_BYTES
} from "./Layout.js"
import { isLineOwnerAlive } from "./Participants.js"
import { Descriptor, DescriptorState } from "./Records.js"
import { DescriptorView } from "./RecordViews.js"
import { regionReader, RegionReadTopic } from "./RegionReadTopic.js"
import { SessionTable } from "./SessionTable.js"
import { describeOver, regionHeap } from "./TopicDescriptions.js"
import { topicPins } from "./TopicPins.js"

/** Where topics are kept: the region's directory or the store's array. A topic is never renamed; a deleted one's name may name a new topic. */
export interface TopicTable {
  readonly list: () => ReadonlyArray<TopicInfo>
  /** A live topic as it is now (TopicDescriptions.ts). */
  readonly describe: (info: TopicInfo) => TopicDescription
  /** The memory topics take their extents from, while `topics` topics live. */
  readonly heap: (topics: number) => TopicsHeap
  /** Whether `info` still names a live topic (not deleted, its slot not given to another). */
  readonly isCurrent: (info: TopicInfo) => boolean
  /** Makes `spec` a topic (a checked spec whose name is not taken, its memory given): the new topic, or why there is no room. */
  readonly add: (spec: TopicSpec & { readonly memory: number }) => Effect.Effect<
    TopicInfo,
    TopicExists | TopicSpaceError | NotDirectoryWriter
  >
  /** Deletes a live topic (see `TopicsShape.delete`). */
  readonly remove: (info: TopicInfo) => Effect.Effect<void, TopicNotFound | NotDirectoryWriter>
}

/**
 * Resolves names to topics, caching hits while they stay current (a deleted topic's name is looked
 * up afresh). A miss lists the topics once and caches every one it finds: a process that takes up a
 * thousand topics in a row (a publisher of many topics, its broker) lists them once, not a thousand times.
 */
export const resolverOver = (list: () => ReadonlyArray<TopicInfo>, isCurrent: (info: TopicInfo) => boolean) => {
  const cache = new Map<string, TopicInfo>()
  return (name: string): Effect.Effect<TopicInfo, TopicNotFound> =>
    Effect.suspend(() => {
      const cached = cache.get(name)
      if (cached !== undefined && isCurrent(cached)) return Effect.succeed(cached)
      cache.delete(name)
      for (const topic of list()) cache.set(topic.name, topic)
      const found = cache.get(name)
      return found === undefined ? Effect.fail(new TopicNotFound({ name })) : Effect.succeed(found)
    })
}

/** A topic's memory, as asked or the region's default, if its Blogs can each hold two of the largest batches. */
export const topicMemory = (config: LogConfig, spec: TopicSpec): Effect.Effect<number, InvalidTopicSpec> => {
  const memory = spec.memory ?? config.topicMemoryBytes
  return blogBytesOf(config, memory) >= minBlogBytes(config)
    ? Effect.succeed(memory)
    : Effect.fail(
      new InvalidTopicSpec({
        reason:
          `topic ${spec.name}: memory ${memory} bytes cannot give each of its ${config.maxBrokers} writer lanes room for two batches of ${config.maxBatchBytes} bytes (CXLOG_LOG_MAX_BATCH_BYTES): give it at least ${
            minTopicBytes(config)
          } bytes`
      })
    )
}

/** Creates a topic: a valid spec, replication the log can give, memory that can hold it, a name not taken, room. */
const createTopic = (table: TopicTable, config: LogConfig, input: TopicSpec) =>
  Effect.gen(function*() {
    const spec = yield* Schema.decodeUnknown(TopicSpec)(input).pipe(
      Effect.mapError((e) => new InvalidTopicSpec({ reason: e.message }))
    )
    if (!REPLICATION_FACTORS.includes(spec.replicationFactor)) {
      return yield* new ReplicationUnavailable({ name: spec.name, replicationFactor: spec.replicationFactor })
    }
    const conflict = topicSpecConflict(spec)
    if (conflict !== undefined) {
      return yield* new InvalidTopicSpec({ reason: `topic ${spec.name}: ${conflict}` })
    }
    const memory = yield* topicMemory(config, spec)
    if (table.list().some((t) => t.name === spec.name)) return yield* new TopicExists({ name: spec.name })
    return yield* table.add({ ...spec, memory })
  })

/** Deletes a topic: one the log can delete (its copy on disk, if any, is not deleted yet), looked up afresh. */
const deleteTopic = (table: TopicTable, name: string) =>
  Effect.gen(function*() {
    const info = table.list().find((t) => t.name === name)
    if (info === undefined) return yield* new TopicNotFound({ name })
    if (info.replicationFactor > 1) {
      return yield* new TopicNotDeletable({
        name,
        reason:
          "it has a copy on disk (replication factor 2), and deleting that copy is not built yet: stop the head and remove its streams topic-NAME and state-NAME from the data directory"
      })
    }
    return yield* table.remove(info)
  })

/** The Topics service over a table. */
export const topicsOver = (table: TopicTable, config: LogConfig): TopicsShape<never> => {
  const lookup = resolverOver(table.list, table.isCurrent)
  return {
    create: (spec) => createTopic(table, config, spec),
    lookup,
    list: Effect.sync(table.list),
    delete: (name) => deleteTopic(table, name),
    describe: (name) => Effect.map(lookup(name), table.describe),
    overview: Effect.sync(() => {
      const topics = table.list().map(table.describe)
      return {
        topics,
        heap: table.heap(topics.length),
        retention: { goiSlots: config.goiSlots, maxBrokers: config.maxBrokers }
      }
    })
  }
}

// ---- the region's topic table -------------------------------------------------------

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const ORDERS = new Set([0, 2, 4, 5])

/**
 * The ready topic in directory entry `entry` (its extent holds its descriptor), recorded as placed
 * for this process; undefined when the descriptor fails its checks (a corrupt region is never trusted).
 */
const readTopicEntry = (region: CxlMemoryShape, area: LogArea, entry: DirectoryEntry): TopicInfo | undefined => {
  const descriptors = new DescriptorView(region)
  const at = entry.extent.offset
  if (entry.kind !== "topic") return undefined
  region.invalidate(at, TOPIC_DESCRIPTOR_BYTES)
  if (descriptors.state(at) !== DescriptorState.ready) return undefined
  const memory = descriptors.memoryBytes(at)
  const blogBytes = blogBytesOf(area.config, memory)
  if (!(memory <= entry.extent.bytes) || blogBytes < minBlogBytes(area.config)) return undefined
  const order = descriptors.order(at)
  const ackLevel = descriptors.ackLevel(at)
  const replicationFactor = descriptors.replicationFactor(at)
  const nameBytes = descriptors.nameBytes(at)
  if (
    !ORDERS.has(order) || ackLevel < 0 || ackLevel > 2 || replicationFactor < 1 || nameBytes < 1 ||
    nameBytes > Descriptor.maxNameBytes
  ) {
    return undefined
  }
  const name = decoder.decode(region.bytes.subarray(at + Descriptor.name, at + Descriptor.name + nameBytes))
  if (name !== entry.name) return undefined
  const prior = area.placed(entry.slot)
  // What this process still keeps of a deleted topic in this slot is dropped before its offsets name the new one.
  if (prior !== undefined && prior.generation !== entry.generation) topicPins(region, area).supersede(entry.slot)
  area.place(entry.slot, { offset: at, bytes: entry.extent.bytes, blogBytes, generation: entry.generation })
  const info = {
    id: entry.slot,
    generation: entry.generation,
    name,
    order: order as TopicInfo["order"],
    ackLevel: ackLevel as TopicInfo["ackLevel"],
    replicationFactor,
    memory
  }
  const diskRetention = retentionOf(descriptors.diskRetentionBytes(at), descriptors.diskRetentionMs(at))
  return diskRetention === undefined ? info : { ...info, diskRetention }
}

/** The ready topic of id `t` (its directory slot), or undefined. */
export const readTopic = (region: CxlMemoryShape, area: LogArea, t: number): TopicInfo | undefined => {
  if (!Number.isSafeInteger(t) || t < 0 || t >= area.directory.config.entrySlots) return undefined
  const { entry } = new DirectoryTable(region, area.directory).read(t)
  return entry === undefined ? undefined : readTopicEntry(region, area, entry)
}

/** A stored bound is a positive whole number; anything else (0, a torn or hostile value) is no bound. */
const bound = (v: number): number | undefined => (Number.isSafeInteger(v) && v > 0 ? v : undefined)

const retentionOf = (bytes: number, ms: number): DiskRetention | undefined => {
  const maxBytes = bound(bytes)
  const maxAgeMs = bound(ms)
  if (maxBytes === undefined && maxAgeMs === undefined) return undefined
  return { ...(maxBytes === undefined ? {} : { maxBytes }), ...(maxAgeMs === undefined ? {} : { maxAgeMs }) }
}

export const listTopics = (region: CxlMemoryShape, area: LogArea): ReadonlyArray<TopicInfo> => {
  const topics: Array<TopicInfo> = []
  // In the order they were created, as a table's would be.
  const entries = [...new DirectoryTable(region, area.directory).list("topic")].sort((a, b) =>
    a.createdAtMs - b.createdAtMs || a.generation - b.generation
  )
  for (const entry of entries) {
    const topic = readTopicEntry(region, area, entry)
    if (topic !== undefined) topics.push(topic)
  }
  return topics
}

/** Whether `info` still names a live topic of the region (its directory entry is its generation's). */
export const isCurrentTopic = (region: CxlMemoryShape, area: LogArea) => {
  const table = new DirectoryTable(region, area.directory)
  return (info: TopicInfo): boolean => table.isCurrent({ slot: info.id, generation: info.generation })
}

/** Resolves names to the region's topics. */
export const topicResolver = (region: CxlMemoryShape, area: LogArea) =>
  resolverOver(() => listTopics(region, area), isCurrentTopic(region, area))

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
  perTopic((info) =>
    new SessionTable(region, area.sessions(info.id), area.registryLine(info.id), area.config.sessionSlots)
  )

/** Writes a new topic's descriptor at the start of its (zeroed) extent and publishes it, state word last. */
const writeDescriptor = (region: CxlMemoryShape, at: number, spec: TopicSpec & { readonly memory: number }) => {
  const descriptors = new DescriptorView(region)
  const name = encoder.encode(spec.name)
  descriptors.setOrder(at, spec.order)
  descriptors.setAckLevel(at, spec.ackLevel)
  descriptors.setReplicationFactor(at, spec.replicationFactor)
  descriptors.setNameBytes(at, name.length)
  descriptors.setDiskRetention(at, spec.diskRetention?.maxBytes ?? 0, spec.diskRetention?.maxAgeMs ?? 0)
  descriptors.setMemoryBytes(at, spec.memory ?? 0)
  region.bytes.set(name, at + Descriptor.name)
  region.publish(at, TOPIC_DESCRIPTOR_BYTES)
  descriptors.storeState(at, DescriptorState.ready)
  region.publish(at, LINE_BYTES)
}

/** A topic object in the directory, its descriptor written before its name is published. */
const addTopic = (
  region: CxlMemoryShape,
  area: LogArea,
  writer: DirectoryWriterShape,
  spec: TopicSpec & { readonly memory: number }
) =>
  writer.create(
    { kind: "topic", name: spec.name, bytes: spec.memory },
    (extent) => writeDescriptor(region, extent.offset, spec)
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
    const notWriter = new NotDirectoryWriter({ epoch: 0, writerEpoch: 0 })
    // Bounds neither wait nor ring: the doorbell, which only a durable cursor's hold and waits use, is never touched.
    const reader = regionReader(region, area, undefined as never)
    return topicsOver({
      list: () => listTopics(region, area),
      describe: describeOver({
        readTopic: perTopic((info) => new RegionReadTopic(reader, info)),
        sessions: regionSessionTables(region, area),
        lines: { region, area, alive: isLineOwnerAlive },
        memoryBytes: (info) => info.memory ?? area.placeOf(info.id).bytes,
        blogBytes: (info) => area.blogBytes(info.id)
      }),
      heap: (topics) => regionHeap(region, area, topics),
      isCurrent: isCurrentTopic(region, area),
      add: (spec) => Option.isSome(writer) ? addTopic(region, area, writer.value, spec) : Effect.fail(notWriter),
      remove: (info) => Option.isSome(writer) ? removeTopic(region, area, writer.value, info) : Effect.fail(notWriter)
    }, area.config)
  })

export const layer = (area: LogArea): Layer.Layer<Topics, never, CxlMemory> => Layer.effect(Topics, make(area))
