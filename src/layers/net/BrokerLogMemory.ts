/**
 * The log a broker uses (Appender, AckTracker, Topics), in memory: the log core's fakes run
 * together over one `MemoryLogStore` — Topics, one Appender per broker slot, the AckTracker,
 * and the Sequencer running in the background — so brokers over it are ordered by the same
 * OrderEngine and session table as over the region, and a full PBR or Blog is backpressure
 * as there. Every topic orders in mode 5. Several brokers in one process share one log
 * (`forBroker`).
 */
import { Context, Effect, Layer, type Scope } from "effect"
import { AckTracker, type AckTrackerShape } from "../../services/log/AckTracker.js"
import { Appender, type AppenderShape, type BrokerSlotTaken } from "../../services/log/Appender.js"
import { Consumers } from "../../services/log/Consumers.js"
import { LogReader } from "../../services/log/LogReader.js"
import type {
  InvalidSequencerOptions,
  SequencerLeaseHeld,
  SequencerShape,
  SessionGapIdleTooShort
} from "../../services/log/Sequencer.js"
import {
  type AckLevel,
  type InvalidTopicSpec,
  type ReplicationUnavailable,
  type TopicExists,
  Topics,
  type TopicSpaceError,
  type TopicsShape
} from "../../services/log/Topics.js"
import type { BrokerLog } from "../../services/net/Broker.js"
import type { NotDirectoryWriter } from "../../services/region/Directory.js"
import * as AckTrackerMemory from "../log/AckTrackerMemory.js"
import * as AppenderMemory from "../log/AppenderMemory.js"
import * as ConsumersMemory from "../log/ConsumersMemory.js"
import {
  defaultLogConfig,
  defaultTopicShape,
  type LogConfig,
  type LogConfigInvalid,
  topicMemoryFor,
  validateLogConfig
} from "../log/Layout.js"
import * as LogReaderMemory from "../log/LogReaderMemory.js"
import {
  defaultStoreSpace,
  findTopic,
  makeMemoryStore,
  type MemoryBatch,
  type MemoryLogStore
} from "../log/MemoryStore.js"
import * as SequencerMemory from "../log/SequencerMemory.js"
import { heldBytes } from "../log/TopicShape.js"
import * as TopicsMemory from "../log/TopicsMemory.js"

export interface MemoryLogOptions {
  /** Order 5; replication factor 2 acknowledges level 2 only at the durable frontier a test (or `memoryMarks`) sets. */
  readonly topics: ReadonlyArray<
    { readonly name: string; readonly ackLevel?: AckLevel; readonly replicationFactor?: 1 | 2 }
  >
  /** How long a gap in a session may stay open before the session is fenced. Default 2 s. */
  readonly holdTimeoutMs?: number
  /**
   * Keep every ordered batch (with its payload) for `ordered()`, as tests' audits need
   * (default); otherwise only the last GOI window's are kept.
   */
  readonly retainOrdered?: boolean
  /** Session lines per topic (a power of two). */
  readonly sessionSlots?: number
  /** Broker slots, each with its Appender: broker ids 0..brokers-1. Default 4. */
  readonly brokers?: number
  /** Largest batch payload the log takes. Default 1 MiB (a broker's default). */
  readonly maxBatchBytes?: number
  /**
   * Room in the heap for this many writer lanes besides the topics' own records (a full region:
   * a writer past them has no lane in its topic). Default: no bound.
   */
  readonly heapLanes?: number
}

/** A batch of the total order; message i of it has total order `totalOrder + i`. */
export type OrderedBatch = Pick<
  MemoryBatch,
  "broker" | "clientId" | "sessionEpoch" | "batchSeq" | "messageCount" | "totalOrder" | "payload"
>

/** A topic's counts, as the sequencer published them. */
export interface MemoryLogStats {
  /** In the total order. */
  readonly batches: number
  readonly messages: number
  /** Dropped as duplicates (and acknowledged again). */
  readonly duplicates: number
  /** Held behind a gap now. */
  readonly held: number
  /** Dropped without ordering: of fenced, closed or never registered sessions. */
  readonly dropped: number
}

export interface MemoryLog {
  readonly store: MemoryLogStore
  readonly topics: TopicsShape<never>
  /** Broker `brokerId`'s Appender (its slot is claimed for the log's lifetime, so brokers may come and go over it). */
  readonly appender: (brokerId: number) => AppenderShape
  readonly acks: AckTrackerShape
  /** What broker `brokerId` needs of the log, and the LogReader and Consumers it serves subscribers with. */
  readonly forBroker: (brokerId: number) => Context.Context<BrokerLog | LogReader | Consumers>
  /** Returns once a sequencer round moves nothing: everything appended before is ordered, held or dropped. */
  readonly settle: Effect.Effect<void>
  /** The topic's total order so far (batches, in order; only the last GOI window's unless `retainOrdered`). */
  readonly ordered: (topic: string) => ReadonlyArray<OrderedBatch>
  readonly stats: (topic: string) => MemoryLogStats
}

/** Options that cannot make a log (`LogConfigInvalid`, `TopicExists`, …); the rest cannot happen over a fresh store. */
export type MemoryLogError =
  | LogConfigInvalid
  | TopicExists
  | TopicSpaceError
  // The store's Topics share the live create's type; the store is its own writer and never fails so.
  | NotDirectoryWriter
  | ReplicationUnavailable
  | InvalidTopicSpec
  | BrokerSlotTaken
  | SequencerLeaseHeld
  | InvalidSequencerOptions
  | SessionGapIdleTooShort

/** GOI window of a log that retains every ordered batch: more than any test or bench orders. */
const RETAIN_ALL_GOI_SLOTS = 1 << 30
/** PBR slots per broker of a log that does not retain: its GOI window (at least brokers × PBR slots) and the payloads it holds stay small. */
const UNRETAINED_PBR_SLOTS = 256

const nextPowerOfTwo = (n: number) => 2 ** Math.ceil(Math.log2(n))

/** Rounds until one moves nothing (a bound, so a sequencer that never idles is a defect, not a hang). */
export const settleRounds = (sequencer: SequencerShape) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000; i++) {
      const round = yield* sequencer.step
      if (
        round.ordered + round.duplicates + round.held + round.fenced + round.dropped + round.released + round.lapsed ===
          0
      ) return
    }
    return yield* Effect.dieMessage("the memory log's sequencer never went idle")
  }).pipe(Effect.orDie)

/** A heap that holds `options.topics`' records and `options.heapLanes` lanes of them. */
const heapFor = (config: LogConfig, options: MemoryLogOptions): number => {
  const shape = defaultTopicShape(config)
  if (typeof shape === "string") return Number.POSITIVE_INFINITY
  return heldBytes(shape, 0) * options.topics.length + (options.heapLanes ?? 0) * shape.laneBytes
}

export const makeMemoryLog = (options: MemoryLogOptions): Effect.Effect<MemoryLog, MemoryLogError, Scope.Scope> =>
  Effect.gen(function*() {
    const brokers = options.brokers ?? defaultLogConfig.maxBrokers
    const retain = options.retainOrdered ?? true
    const pbrSlots = retain ? defaultLogConfig.pbrSlots : UNRETAINED_PBR_SLOTS
    const maxBatchBytes = options.maxBatchBytes ?? defaultLogConfig.maxBatchBytes
    const shape = {
      ...defaultLogConfig,
      maxBrokers: brokers,
      pbrSlots,
      goiSlots: retain ? RETAIN_ALL_GOI_SLOTS : nextPowerOfTwo(brokers * pbrSlots),
      sessionSlots: options.sessionSlots ?? defaultLogConfig.sessionSlots,
      maxBatchBytes
    }
    // Each topic's Blogs with room for a few of the largest batches (16 MiB at least); the store's
    // topics take no memory but their payloads, so its heap does not bound them.
    const blogBytes = Math.max(16 << 20, Math.ceil((4 * maxBatchBytes) / 4096) * 4096)
    const config = yield* validateLogConfig({
      ...shape,
      topicWriters: brokers,
      topicMemoryBytes: topicMemoryFor(shape, blogBytes)
    })
    const store = makeMemoryStore(config, {
      maxTopics: Math.max(defaultStoreSpace.maxTopics, options.topics.length),
      heapBytes: options.heapLanes === undefined ? Number.POSITIVE_INFINITY : heapFor(config, options)
    })
    const topics = yield* TopicsMemory.makeMemory(store)
    for (const spec of options.topics) {
      yield* topics.create({
        name: spec.name,
        order: 5,
        ackLevel: spec.ackLevel ?? 1,
        replicationFactor: spec.replicationFactor ?? 1
      })
    }
    const appenders: Array<AppenderShape> = []
    for (let brokerId = 0; brokerId < brokers; brokerId++) {
      appenders.push(yield* AppenderMemory.makeMemory(store, { brokerId }))
    }
    const acks = yield* AckTrackerMemory.makeMemory(store)
    const reader = yield* LogReaderMemory.makeMemory(store)
    const consumers = yield* ConsumersMemory.makeMemory(store)
    const sequencer = yield* SequencerMemory.makeMemory(store, { holdTimeoutMs: options.holdTimeoutMs ?? 2_000 })
    yield* Effect.forkScoped(
      sequencer.run.pipe(Effect.catchAllCause((cause) => Effect.logError("the memory log's sequencer stopped", cause)))
    )

    const appender = (brokerId: number) => {
      const shape = appenders[brokerId]
      if (shape === undefined) {
        throw new RangeError(`broker id ${brokerId} is not in [0, ${brokers}) of this memory log`)
      }
      return shape
    }
    const counted = (name: string): MemoryLogStats => {
      const stats = { batches: 0, messages: 0, duplicates: 0, held: 0, dropped: 0 }
      for (const b of findTopic(store, name)?.brokers ?? []) {
        stats.batches += b.orderedBatches
        stats.messages += b.orderedMessages
        stats.duplicates += b.duplicates
        stats.held += b.held
        stats.dropped += b.dropped
      }
      return stats
    }
    return {
      store,
      topics,
      appender,
      acks,
      forBroker: (brokerId) =>
        Context.make(Appender, appender(brokerId)).pipe(
          Context.add(AckTracker, acks),
          Context.add(Topics, topics),
          Context.add(LogReader, reader),
          Context.add(Consumers, consumers)
        ),
      settle: settleRounds(sequencer),
      ordered: (name) => findTopic(store, name)?.goi.slice() ?? [],
      stats: counted
    }
  })

/** Broker `brokerId`'s view of a shared `MemoryLog` (several brokers in one process share one log). */
export const layerMemory = (log: MemoryLog, brokerId: number): Layer.Layer<BrokerLog | LogReader | Consumers> =>
  Layer.succeedContext(log.forBroker(brokerId))

/** A private `MemoryLog` served as broker 0: a broker alone, for tests and the bench's broker process. */
export const layerMemoryStandalone = (
  options: MemoryLogOptions
): Layer.Layer<BrokerLog | LogReader | Consumers, MemoryLogError> =>
  Layer.scopedContext(Effect.map(makeMemoryLog(options), (log) => log.forBroker(0)))
