/**
 * What a topic's storage holds of its order when a sequencer takes the topic on (TopicRecovery.ts):
 * the brokers' published sequencer lines and the GOI, from the region or the in-process store.
 */

/** A broker's sequencer line as its storage holds it. */
export interface BrokerCounts {
  readonly consumedThrough: number
  readonly orderedBatches: number
  readonly orderedMessages: number
  readonly duplicates: number
  readonly dropped: number
}

/** A GOI entry as its storage holds it. */
export interface OrderedEntry {
  readonly broker: number
  readonly pbrSeq: number
  readonly clientId: number
  readonly sessionEpoch: number
  readonly batchSeq: number
  readonly totalOrder: number
  readonly messageCount: number
}

/** What a topic's storage holds of its order when a sequencer takes the topic on: the published lines and the GOI. */
export interface OrderHistory {
  /** The published frontier: batches in the order, and the message offset after them. */
  readonly committed: number
  readonly totalOrder: number
  /** Fenced sessions, as the last round counted them. */
  readonly fencedSessions: number
  readonly broker: (b: number) => BrokerCounts
  /** GOI entry `g`, or undefined when the storage does not hold it. */
  readonly entry: (g: number) => OrderedEntry | undefined
}
