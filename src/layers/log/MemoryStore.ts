/**
 * The in-process store behind every log fake (TopicsMemory, AppenderMemory, SequencerMemory,
 * AckTrackerMemory, LogReaderMemory): the same records as the region's log area, as JS
 * arrays and maps, with the same capacities (PBR slots, Blog bytes and their positions, GOI
 * window) so backpressure and out-of-range behave alike. One store per simulated cluster;
 * share it between the layers. Each fake is `makeMemory(store, options)` / `layerMemory(store, options)`.
 */
import { Effect } from "effect"
import type { DurableFailure } from "../../services/log/AckTracker.js"
import { type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import { defaultLogConfig, type LogConfig } from "./Layout.js"
import type { AppendCursors } from "./Appender.js"
import type { PbrKindCode } from "./Records.js"
import { memorySessionTable, type SessionTable } from "./SessionTable.js"

/** A batch in a broker's PBR; once ordered it is also a GOI entry. */
export interface MemoryBatch {
  /** A batch of messages or a session's close marker (PbrKind). */
  readonly kind: PbrKindCode
  readonly broker: number
  readonly pbrSeq: number
  readonly clientId: number
  readonly sessionEpoch: number
  readonly batchSeq: number
  readonly messageCount: number
  readonly crc32c: number
  readonly payload: Uint8Array
  /** Where it sits in its broker's Blog and the bytes it occupies there (line-aligned), as in the region. */
  readonly blogPosition: number
  readonly blogBytes: number
  finished: boolean
  /** The global seq, or a `Dropped` code. */
  globalSeq: number
  totalOrder: number
  reclaimed: boolean
}

/** A broker of a topic: its append cursors, as in the region's broker line, and its PBR. */
export interface MemoryBroker extends AppendCursors {
  /** PBR positions reclaimed..head-1, oldest first. */
  readonly pbr: Array<MemoryBatch>
  /** Batches freed from the PBR whose payload the Blog tail has not passed yet (still readable), oldest first. */
  readonly freed: Array<MemoryBatch>
  /** Appends waiting for room now. */
  roomWaits: number
  consumedThrough: number
  orderedBatches: number
  orderedMessages: number
  duplicates: number
  dropped: number
  held: number
}

export interface MemoryTopic {
  readonly info: TopicInfo
  readonly brokers: Array<MemoryBroker>
  /** Retained GOI entries: goi[i] has global seq goiBase + i. */
  readonly goi: Array<MemoryBatch>
  goiBase: number
  totalOrder: number
  /** The same session table code as the region's, over a private buffer. */
  readonly sessions: SessionTable
  progress: number
  /** Durable subscriber cursors (next global seq to read), by id. */
  readonly cursors: Map<number, number>
  /** Set when the durable tier stopped writing the topic's copy on disk (the order line's word in the region). */
  durableFailure: DurableFailure | undefined
}

/** The options of a fake that has none (every fake is made as `(store, options)`). */
export type NoOptions = Readonly<Record<string, never>>

/** Wakes waiters when anything in the store moved (the fakes' doorbell). */
export interface LogSignal {
  readonly notify: () => void
  /** True as soon as `condition()` holds, false after `timeoutMs`. */
  readonly await: (condition: () => boolean, timeoutMs: number) => Effect.Effect<boolean>
  /** A standing callback waiter, as `DoorbellShape.watch`: checked after each notify, once the notifying code has run. */
  readonly watch: (condition: () => boolean, onReady: (satisfied: boolean) => void, everyMs: () => number) => () => void
}

export interface MemoryLogStore {
  readonly config: LogConfig
  readonly topics: Array<MemoryTopic>
  readonly signal: LogSignal
  /** Broker slot owners (Appender occurrences). */
  readonly owners: Map<number, number>
  /** The sequencer holding the (in-process) lease, 0 when none. */
  sequencer: number
  epoch: number
}

const makeSignal = (): LogSignal => {
  const wakers = new Set<() => void>()
  const once = (condition: () => boolean) =>
    Effect.async<void>((resume) => {
      if (condition()) return resume(Effect.void)
      const wake = () => {
        wakers.delete(wake)
        resume(Effect.void)
      }
      wakers.add(wake)
      return Effect.sync(() => {
        wakers.delete(wake)
      })
    })
  const until = (condition: () => boolean): Effect.Effect<void> =>
    Effect.suspend(() => (condition() ? Effect.void : Effect.flatMap(once(condition), () => until(condition))))
  return {
    notify: () => {
      for (const wake of [...wakers]) wake()
    },
    await: (condition, timeoutMs) =>
      until(condition).pipe(Effect.timeoutTo({ duration: Math.max(0, timeoutMs), onSuccess: () => true, onTimeout: () => false })),
    watch: (condition, onReady, everyMs) => {
      let stopped = false
      let timer: ReturnType<typeof setTimeout> | undefined
      const arm = () => {
        clearTimeout(timer)
        timer = setTimeout(() => {
          arm()
          onReady(false)
        }, everyMs()).unref()
      }
      const check = () => {
        if (stopped || !condition()) return
        arm()
        onReady(true)
      }
      const waker = () => queueMicrotask(check)
      wakers.add(waker)
      arm()
      return () => {
        stopped = true
        wakers.delete(waker)
        clearTimeout(timer)
      }
    }
  }
}

export const makeMemoryStore = (config: LogConfig = defaultLogConfig): MemoryLogStore => ({
  config,
  topics: [],
  signal: makeSignal(),
  owners: new Map(),
  sequencer: 0,
  epoch: 0
})

export const makeMemoryTopic = (config: LogConfig, info: TopicInfo): MemoryTopic => ({
  info,
  brokers: Array.from({ length: config.maxBrokers }, () => ({
    pbr: [],
    freed: [],
    reclaimed: 0,
    head: 0,
    blogHead: 0,
    blogTail: 0,
    appendedMessages: 0,
    ringFullWaits: 0,
    roomWaits: 0,
    consumedThrough: 0,
    orderedBatches: 0,
    orderedMessages: 0,
    duplicates: 0,
    dropped: 0,
    held: 0
  })),
  goi: [],
  goiBase: 0,
  totalOrder: 0,
  sessions: memorySessionTable(config.sessionSlots),
  progress: 0,
  cursors: new Map(),
  durableFailure: undefined
})

/** The lowest durable cursor of the topic (Infinity when none): nothing at or above it may be reused. */
export const lowestCursor = (topic: MemoryTopic): number => {
  let lowest = Infinity
  for (const cursor of topic.cursors.values()) lowest = Math.min(lowest, cursor)
  return lowest
}

/** The store's topic of that name, or undefined. */
export const findTopic = (store: MemoryLogStore, name: string): MemoryTopic | undefined => store.topics.find((t) => t.info.name === name)

export const memoryTopic = (store: MemoryLogStore, name: string): Effect.Effect<MemoryTopic, TopicNotFound> =>
  Effect.suspend(() => {
    const topic = findTopic(store, name)
    return topic === undefined ? Effect.fail(new TopicNotFound({ name })) : Effect.succeed(topic)
  })
