/**
 * A topic's descriptor: the 256 bytes at the start of its extent that say what it is (its spec,
 * shape and retention), written before its name is published and read back, checked, by every
 * process that finds the topic in the directory.
 */
import type { DiskRetention, Retention, TopicInfo, TopicSpec } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DirectoryEntry } from "../../services/region/Directory.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import { type LogArea, placeFor } from "./Layout.js"
import { Descriptor, DescriptorState, DiscardCode } from "./Records.js"
import { DescriptorView } from "./RecordViews.js"
import { topicPins } from "./TopicPins.js"
import { TOPIC_DESCRIPTOR_BYTES, type TopicShape, topicShape, withShape } from "./TopicShape.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })
const ORDERS = new Set([0, 2, 4, 5])

/**
 * The ready topic in directory entry `entry` (its extent holds its descriptor), recorded as placed
 * for this process; undefined when the descriptor fails its checks (a corrupt region is never trusted).
 */
export const readTopicEntry = (region: CxlMemoryShape, area: LogArea, entry: DirectoryEntry): TopicInfo | undefined => {
  const descriptors = new DescriptorView(region)
  const at = entry.extent.offset
  if (entry.kind !== "topic") return undefined
  region.invalidate(at, TOPIC_DESCRIPTOR_BYTES)
  if (descriptors.state(at) !== DescriptorState.ready) return undefined
  const stored = descriptors.readShape(at)
  // The shape is what the topic's memory, writers and largest message give: anything else is corrupt.
  const shape = topicShape(area.config, {
    memory: stored.memoryBytes,
    writers: stored.writers,
    maxMessageBytes: stored.maxMessageBytes
  })
  if (typeof shape === "string" || !sameShape(shape, stored) || shape.mainBytes > entry.extent.bytes) return undefined
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
  if (prior === undefined || prior.generation !== entry.generation) {
    // What this process still keeps of a deleted topic in this slot is dropped before its offsets name the new one.
    if (prior !== undefined) topicPins(region, area).supersede(entry.slot)
    area.place(entry.slot, placeFor(area.config, shape, at, entry.extent.bytes, entry.generation))
  }
  const info = withShape({
    id: entry.slot,
    generation: entry.generation,
    name,
    order: order as TopicInfo["order"],
    ackLevel: ackLevel as TopicInfo["ackLevel"],
    replicationFactor
  }, shape)
  const diskRetention = retentionOf(descriptors.diskRetentionBytes(at), descriptors.diskRetentionMs(at))
  const retention = regionRetentionOf(
    descriptors.retentionMaxAgeMs(at),
    descriptors.retentionMaxMessages(at),
    descriptors.discard(at)
  )
  return {
    ...info,
    ...(diskRetention === undefined ? {} : { diskRetention }),
    ...(retention === undefined ? {} : { retention })
  }
}

/** A topic's retention in the region as its descriptor keeps it (none: no bound, discard new). */
const regionRetentionOf = (ageMs: number, messages: number, discard: number): Retention | undefined => {
  const maxAgeMs = bound(ageMs)
  const maxMessages = bound(messages)
  const old = discard === DiscardCode.old
  if (maxAgeMs === undefined && maxMessages === undefined && !old) return undefined
  return {
    ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
    ...(maxMessages === undefined ? {} : { maxMessages }),
    ...(old ? { discard: "old" as const } : {})
  }
}

const SHAPE_FIELDS = [
  "memoryBytes",
  "writers",
  "mainBytes",
  "laneBytes",
  "pbrSlots",
  "goiSlots",
  "sessionSlots",
  "maxBatchBytes",
  "maxMessageBytes"
] as const satisfies ReadonlyArray<keyof TopicShape>

const sameShape = (a: TopicShape, b: TopicShape): boolean => SHAPE_FIELDS.every((f) => a[f] === b[f])

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

/** Writes a new topic's descriptor at the start of its (zeroed) extent and publishes it, state word last. */
export const writeDescriptor = (region: CxlMemoryShape, at: number, spec: TopicSpec, shape: TopicShape) => {
  const descriptors = new DescriptorView(region)
  const name = encoder.encode(spec.name)
  descriptors.setOrder(at, spec.order)
  descriptors.setAckLevel(at, spec.ackLevel)
  descriptors.setReplicationFactor(at, spec.replicationFactor)
  descriptors.setNameBytes(at, name.length)
  descriptors.setDiskRetention(at, spec.diskRetention?.maxBytes ?? 0, spec.diskRetention?.maxAgeMs ?? 0)
  descriptors.writeShape(at, shape)
  descriptors.setRetentionMaxAgeMs(at, spec.retention?.maxAgeMs ?? 0)
  descriptors.setRetentionMaxMessages(at, spec.retention?.maxMessages ?? 0)
  descriptors.setDiscard(at, spec.retention?.discard === "old" ? DiscardCode.old : DiscardCode.new)
  region.bytes.set(name, at + Descriptor.name)
  region.publish(at, TOPIC_DESCRIPTOR_BYTES)
  descriptors.storeState(at, DescriptorState.ready)
  region.publish(at, LINE_BYTES)
}
