/**
 * The log area's contract: its configuration and every offset in it, absolute in the region.
 * layers/log/Layout.ts computes them (sizes, validation, `makeLogArea`); the region's layout
 * (services/RegionLayout.ts) holds one.
 */

export interface LogConfig {
  readonly maxTopics: number
  readonly maxBrokers: number
  /** Batch headers per (topic, broker) ring; a power of two. */
  readonly pbrSlots: number
  /** Payload bytes per (topic, broker); a multiple of 4096. */
  readonly blogBytes: number
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

/** Every offset of the log area, absolute in the region. */
export interface LogArea {
  readonly base: number
  readonly config: LogConfig
  readonly bytes: number
  readonly brokerOwner: (broker: number) => number
  readonly listener: (slot: number) => number
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
