/**
 * Topics: the one creation and lookup algorithm (`topicsOver`) over a topic table, and the
 * live layer, whose table is the descriptors in the region's log area (the fake's is the
 * in-process store: TopicsMemory.ts). Also the table readers every region layer uses to
 * resolve a topic name.
 */
import { Effect, Layer, Schema } from "effect"
import {
  type DiskRetention,
  InvalidTopicSpec,
  REPLICATION_FACTORS,
  ReplicationUnavailable,
  TopicExists,
  type TopicInfo,
  TopicNotFound,
  Topics,
  TopicSpec,
  topicSpecConflict,
  type TopicsShape,
  TopicTableFull
} from "../../services/log/Topics.js"
import { CxlMemory, type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { type LogArea, TOPIC_DESCRIPTOR_BYTES } from "./Layout.js"
import { Descriptor, DescriptorState } from "./Records.js"
import { DescriptorView } from "./RecordViews.js"
import { SessionTable } from "./SessionTable.js"

/** Where topics are kept: the region's descriptors or the store's array. Topics are never deleted or renamed. */
export interface TopicTable {
  readonly maxTopics: number
  readonly list: () => ReadonlyArray<TopicInfo>
  /** Takes a free entry for `spec` (a checked spec whose name is not taken): the new topic, or undefined when none is free. */
  readonly add: (spec: TopicSpec) => TopicInfo | undefined
}

/** Resolves names to topics, caching hits (topics are never deleted or renamed). */
export const resolverOver = (list: () => ReadonlyArray<TopicInfo>) => {
  const cache = new Map<string, TopicInfo>()
  return (name: string): Effect.Effect<TopicInfo, TopicNotFound> =>
    Effect.suspend(() => {
      const cached = cache.get(name)
      if (cached !== undefined) return Effect.succeed(cached)
      const found = list().find((t) => t.name === name)
      if (found === undefined) return Effect.fail(new TopicNotFound({ name }))
      cache.set(name, found)
      return Effect.succeed(found)
    })
}

/** Creates a topic: a valid spec, replication the log can give, a name not taken, a free entry. */
const createTopic = (table: TopicTable, input: TopicSpec) =>
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
    if (table.list().some((t) => t.name === spec.name)) return yield* new TopicExists({ name: spec.name })
    const info = table.add(spec)
    if (info === undefined) return yield* new TopicTableFull({ maxTopics: table.maxTopics })
    return info
  })

/** The Topics service over a table. */
export const topicsOver = (table: TopicTable): TopicsShape => ({
  create: (spec) => createTopic(table, spec),
  lookup: resolverOver(table.list),
  list: Effect.sync(table.list)
})

// ---- the region's topic table -------------------------------------------------------

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const ORDERS = new Set([0, 2, 4, 5])

/** The ready topic at table index `t`, or undefined; a descriptor that fails its checks reads as absent. */
export const readTopic = (region: CxlMemoryShape, area: LogArea, t: number): TopicInfo | undefined => {
  const descriptors = new DescriptorView(region)
  const at = area.descriptor(t)
  region.invalidate(at, TOPIC_DESCRIPTOR_BYTES)
  if (descriptors.state(at) !== DescriptorState.ready) return undefined
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
  const info = {
    id: t,
    name,
    order: order as TopicInfo["order"],
    ackLevel: ackLevel as TopicInfo["ackLevel"],
    replicationFactor
  }
  const diskRetention = retentionOf(descriptors.diskRetentionBytes(at), descriptors.diskRetentionMs(at))
  return diskRetention === undefined ? info : { ...info, diskRetention }
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
  for (let t = 0; t < area.config.maxTopics; t++) {
    const topic = readTopic(region, area, t)
    if (topic !== undefined) topics.push(topic)
  }
  return topics
}

/** Resolves names to the region's topics. */
export const topicResolver = (region: CxlMemoryShape, area: LogArea) => resolverOver(() => listTopics(region, area))

/** `make` once per topic (by id): the per-topic state a layer keeps (topics are never deleted). */
export const perTopic = <A>(make: (info: TopicInfo) => A): (info: TopicInfo) => A => {
  const made = new Map<number, A>()
  return (info) => {
    let found = made.get(info.id)
    if (found === undefined) {
      found = make(info)
      made.set(info.id, found)
    }
    return found
  }
}

/** Each topic's session table in the region. */
export const regionSessionTables = (region: CxlMemoryShape, area: LogArea) =>
  perTopic((info) =>
    new SessionTable(region, area.sessions(info.id), area.registryLine(info.id), area.config.sessionSlots)
  )

/** Claims a free descriptor by compare-and-swap (two creators never both win it) and publishes it, state word last. */
const addTopic = (region: CxlMemoryShape, area: LogArea, spec: TopicSpec): TopicInfo | undefined => {
  const descriptors = new DescriptorView(region)
  const name = encoder.encode(spec.name)
  for (let t = 0; t < area.config.maxTopics; t++) {
    const at = area.descriptor(t)
    if (!descriptors.swapState(at, DescriptorState.free, DescriptorState.creating)) continue
    descriptors.setOrder(at, spec.order)
    descriptors.setAckLevel(at, spec.ackLevel)
    descriptors.setReplicationFactor(at, spec.replicationFactor)
    descriptors.setNameBytes(at, name.length)
    descriptors.setDiskRetention(at, spec.diskRetention?.maxBytes ?? 0, spec.diskRetention?.maxAgeMs ?? 0)
    region.bytes.set(name, at + Descriptor.name)
    region.publish(at, TOPIC_DESCRIPTOR_BYTES)
    descriptors.storeState(at, DescriptorState.ready)
    region.publish(at, LINE_BYTES)
    return { id: t, ...spec }
  }
  return undefined
}

export const make = (area: LogArea): Effect.Effect<TopicsShape, never, CxlMemory> =>
  Effect.map(CxlMemory, (region) =>
    topicsOver({
      maxTopics: area.config.maxTopics,
      list: () => listTopics(region, area),
      add: (spec) => addTopic(region, area, spec)
    }))

export const layer = (area: LogArea): Layer.Layer<Topics, never, CxlMemory> => Layer.effect(Topics, make(area))
