/**
 * The log area's contract: its configuration and every offset in it, absolute in the region.
 * layers/log/Layout.ts computes them (sizes, validation, `makeLogArea`); the region's layout
 * (services/RegionLayout.ts) holds one. Topics are objects of the region's directory, each in an
 * extent of its own: a per-topic offset holds once this process has read the topic (`place`).
 */
import type { DirectoryArea } from "../region/DirectoryArea.js"

/** A topic's shape (layers/log/TopicShape.ts computes it at its create; its descriptor keeps it). */
export interface TopicShape {
  readonly memoryBytes: number
  readonly writers: number
  readonly mainBytes: number
  readonly laneBytes: number
  readonly pbrSlots: number
  readonly goiSlots: number
  readonly sessionSlots: number
  readonly maxBatchBytes: number
  readonly maxMessageBytes: number
}

/** The log area's configuration: its own sizes, the caps of every topic's shape, and a topic's defaults. */
export interface LogConfig {
  /** Writer slots: brokers and local publishers, each a slot of its own while it runs. */
  readonly maxBrokers: number
  /** The most batch headers a topic's writer lane has; a power of two. */
  readonly pbrSlots: number
  /** The memory a topic's writer lanes share when its create gives none. */
  readonly topicMemoryBytes: number
  /** The writers (lanes) a topic has room for when its create gives none. */
  readonly topicWriters: number
  /** The most global order index entries a topic has. */
  readonly goiSlots: number
  /** The most client sessions a topic has; a power of two. */
  readonly sessionSlots: number
  /** Registered subscriber cursors per topic. */
  readonly subscriberSlots: number
  /** Processes that can ask the sequencer to ring them when the log moves. */
  readonly listenerSlots: number
  /** The largest batch payload a topic takes at most; a multiple of 8. */
  readonly maxBatchBytes: number
}

/** Where a topic lives for this process: its main extent, its shape, and the lanes it has read. */
export interface TopicPlace {
  /** The main extent's offset from the region's base (a multiple of 4096). */
  readonly offset: number
  readonly bytes: number
  readonly shape: TopicShape
  /** The directory generation of the topic placed (a later topic in the same slot has another). */
  readonly generation: number
  /** Where its GOI starts. */
  readonly goi: number
  /** Where each lane's Blog starts in the lane, and its payload bytes (a multiple of 64). */
  readonly blogAt: number
  readonly blogBytes: number
  /** Each writer slot's lane offset once this process has read it from the lane table (0: none or not read). */
  readonly lanes: Array<number>
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
  /** The head's lane answers (layers/log/TopicLanes.ts). */
  readonly laneAnswers: number
  /** A bit per topic id that a writer left work to the head in (TopicMarks.ts). */
  readonly topicMarks: number
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
  /** The head's line of what the topic retains (its first batch and offset kept). */
  readonly retentionLine: (topic: number) => number
  readonly laneTable: (topic: number) => number
  /** Writer slot `broker`'s lane offset as this process last read it (0: none, or not read yet). */
  readonly laneOf: (topic: number, broker: number) => number
  /** The per-lane offsets below need the lane read first (a lane not read is a defect). */
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
