/**
 * The log area's contract: its configuration and every offset in it, absolute in the region.
 * layers/log/Layout.ts computes them (sizes, validation, `makeLogArea`); the region's layout
 * (services/RegionLayout.ts) holds one. Topics are objects of the region's directory, each in an
 * extent of its own: a per-topic offset holds once this process has read the topic (`place`).
 */
import type { DirectoryArea } from "../region/DirectoryArea.js"

export interface LogConfig {
  readonly maxBrokers: number
  /** Batch headers per (topic, broker) ring; a power of two. */
  readonly pbrSlots: number
  /** A topic's memory in the region (its extent: records, GOI, and each writer lane's PBR and Blog) when its create gives none. */
  readonly topicMemoryBytes: number
  /** Global order index entries per topic; a power of two. */
  readonly goiSlots: number
  /** Client sessions per topic; a power of two. */
  readonly sessionSlots: number
  /** Registered subscriber cursors per topic. */
  readonly subscriberSlots: number
  /** Processes that can ask the sequencer to ring them when the log moves. */
  readonly listenerSlots: number
  /** Largest batch payload; a multiple of 8. */
  readonly maxBatchBytes: number
}

/** Where a topic lives: its extent in the region's heap and the size of its Blogs. */
export interface TopicPlace {
  /** The extent's offset from the region's base (a multiple of 4096). */
  readonly offset: number
  readonly bytes: number
  /** Payload bytes of each writer lane's Blog; a multiple of 4096. */
  readonly blogBytes: number
  /** The directory generation of the topic placed (a later topic in the same slot has another). */
  readonly generation: number
}

/** Every offset of the log area, absolute in the region. */
export interface LogArea {
  readonly base: number
  readonly config: LogConfig
  readonly bytes: number
  /** The directory whose topic objects hold the topics. */
  readonly directory: DirectoryArea
  readonly brokerOwner: (broker: number) => number
  readonly listener: (slot: number) => number
  /** Records where topic `topic` lives, for this process (Topics.ts does, as it reads a topic). */
  readonly place: (topic: number, place: TopicPlace) => void
  /** Where topic `topic` lives; a topic this process has not read is a defect. */
  readonly placeOf: (topic: number) => TopicPlace
  /** Where topic `topic` was last placed by this process, if it was. */
  readonly placed: (topic: number) => TopicPlace | undefined
  /** Payload bytes of each of the topic's Blogs. */
  readonly blogBytes: (topic: number) => number
  readonly topic: (topic: number) => number
  readonly descriptor: (topic: number) => number
  readonly orderLine: (topic: number) => number
  readonly registryLine: (topic: number) => number
  readonly brokerLine: (topic: number, broker: number) => number
  readonly sequencerLine: (topic: number, broker: number) => number
  /** Written by the replicator (replicated-through), once replication exists. */
  readonly replicaLine: (topic: number, broker: number) => number
  readonly subscriber: (topic: number, slot: number) => number
  readonly sessions: (topic: number) => number
  readonly goi: (topic: number) => number
  readonly pbr: (topic: number, broker: number) => number
  readonly blog: (topic: number, broker: number) => number
}
