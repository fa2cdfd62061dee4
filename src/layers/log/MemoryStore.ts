/**
 * The in-process store behind every log fake (TopicsMemory, AppenderMemory, SequencerMemory,
 * AckTrackerMemory, LogReaderMemory, ConsumersMemory): the same records as the region's log
 * area, as JS arrays and maps, with the same capacities (PBR slots, Blog bytes and their
 * positions, GOI window) so backpressure and out-of-range behave alike. Its subscriber lines
 * (durable subscribers, named consumers) and its doorbell are the region's own records in a
 * private region, run by the live code. One store per simulated cluster; share it between the
 * layers. Each fake is `makeMemory(store, options)` / `layerMemory(store, options)`.
 */
import { Effect, Scope } from "effect"
import type { DurableFailure } from "../../services/log/AckTracker.js"
import { type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import { CxlMemory, type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { RegionFull } from "../../services/region/Directory.js"
import { DOORBELL_BYTES, type DoorbellShape } from "../../services/region/Doorbell.js"
import { privateRegion } from "../region/CxlMemoryMemory.js"
import { namedHolders } from "../region/DirectorySpace.js"
import * as DoorbellLayers from "../region/Doorbell.js"
import { SUPERBLOCK_BYTES } from "../region/Superblock.js"
import type { AppendCursors } from "./AppendRoom.js"
import { defaultLogConfig, type LogConfig } from "./Layout.js"
import { livenessCache, lowestDurableCursor, type SubscriberArea } from "./Participants.js"
import { type PbrKindCode } from "./Records.js"
import { NOTHING_TRIMMED, type Retained } from "./RetentionLines.js"
import { memorySessionTable, type SessionTable } from "./SessionTable.js"
import { heldBytes, laneBlog, type TopicShape } from "./TopicShape.js"

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
  /** Its shape, as the region gives a topic of its memory and writers (TopicShape.ts). */
  readonly shape: TopicShape
  /** Each lane's Blog capacity, as the region gives a topic of its shape. */
  readonly blogBytes: number
  /** Every writer slot's broker record; those in `lanes` have written here. */
  readonly brokers: Array<MemoryBroker>
  /** The writer slots that have a lane here (a region topic's lane table). */
  readonly lanes: Set<number>
  /** Retained GOI entries: goi[i] has global seq goiBase + i. */
  readonly goi: Array<MemoryBatch>
  goiBase: number
  totalOrder: number
  /** The same session table code as the region's, over a private buffer. */
  readonly sessions: SessionTable
  progress: number
  /** Rounds that published the topic, and the fenced sessions the last one counted (the order line's words in the region). */
  rounds: number
  fencedSessions: number
  /** The store's subscriber lines, this topic's among them. */
  readonly lines: StoreLines
  /** Set when the durable tier stopped writing the topic's copy on disk (the order line's word in the region). */
  durableFailure: DurableFailure | undefined
  /** Set by a delete; its id is given to the next topic made, under a new generation. */
  deleted: boolean
  /** What a trim left it (the region's retention line). */
  retained: Retained
}

/** The options of a fake that has none (every fake is made as `(store, options)`). */
export type NoOptions = Readonly<Record<string, never>>

/** Wakes waiters when anything in the store moved: the fakes' doorbell (`makeSignal`). */
export interface LogSignal {
  /** Re-checks every waiter's condition, once the notifying code has run. */
  readonly notify: () => void
  readonly await: DoorbellShape["await"]
  readonly watch: DoorbellShape["watch"]
}

/** The store's subscriber lines, in its private region as the log area places them in the region. */
export interface StoreLines {
  readonly region: CxlMemoryShape
  readonly area: SubscriberArea
  /** Whether a line's owner runs, as the live layers judge it. */
  readonly alive: (pid: number, occurrence: number) => boolean
}

/** The store's room for topics, as a region's directory and heap give it. */
export interface StoreSpace {
  /** Topics it holds at most (the directory's usable slots). */
  readonly maxTopics: number
  /** What the topics' memory may add up to (the heap). */
  readonly heapBytes: number
}

export const defaultStoreSpace: StoreSpace = { maxTopics: 1024, heapBytes: 2 ** 31 }

export interface MemoryLogStore {
  readonly config: LogConfig
  readonly space: StoreSpace
  /** Topics by id (their index). */
  readonly topics: Array<MemoryTopic>
  readonly lines: StoreLines
  readonly signal: LogSignal
  /** Broker slot owners (Appender occurrences). */
  readonly owners: Map<number, number>
  /** The sequencer holding the (in-process) lease, 0 when none. */
  sequencer: number
  epoch: number
  /** The last topic generation handed out (as the directory's count). */
  generation: number
}

/** The store's private region: its superblock, the doorbell line, then each topic's subscriber lines. */
const DOORBELL_AT = SUPERBLOCK_BYTES
const SUBSCRIBERS_AT = DOORBELL_AT + DOORBELL_BYTES
const PAGE = 4096

const storeLines = (config: LogConfig, space: StoreSpace): StoreLines => {
  const slots = config.subscriberSlots
  const bytes = SUBSCRIBERS_AT + space.maxTopics * slots * LINE_BYTES
  return {
    region: privateRegion(Math.max(2, Math.ceil(bytes / PAGE)) * PAGE),
    area: { config, subscriber: (topic, s) => SUBSCRIBERS_AT + (topic * slots + s) * LINE_BYTES },
    alive: livenessCache()
  }
}

/**
 * The store's signal: the live doorbell over the store's private region, never spinning (only
 * this thread could satisfy a waiter while it spins); `notify` is its ring of its own bell.
 * Its scope is never closed: the store is a plain value without a lifetime, and over a private
 * region the doorbell holds no descriptor, only a timer it unrefs whenever nothing waits.
 */
const makeSignal = (region: CxlMemoryShape): LogSignal => {
  const doorbell = Effect.runSync(
    Effect.flatMap(Scope.make(), (scope) =>
      DoorbellLayers.make({ offset: DOORBELL_AT, spinMicros: 0 }).pipe(
        Scope.extend(scope),
        Effect.provideService(CxlMemory, region),
        Effect.orDie
      ))
  )
  const signal: LogSignal = { notify: doorbell.poke, await: doorbell.await, watch: doorbell.watch }
  signalDoorbells.set(signal, doorbell)
  return signal
}

/** The doorbell behind each store's signal, which only tests ask for (`signalDoorbell`). */
const signalDoorbells = new WeakMap<LogSignal, DoorbellShape>()

/** The doorbell behind `store`'s signal (tests: `DoorbellLayers.internalsOf` tells how its waits were settled). */
export const signalDoorbell = (store: MemoryLogStore): DoorbellShape | undefined => signalDoorbells.get(store.signal)

export const makeMemoryStore = (
  config: LogConfig = defaultLogConfig,
  space: StoreSpace = defaultStoreSpace
): MemoryLogStore => {
  const lines = storeLines(config, space)
  return {
    config,
    space,
    topics: [],
    lines,
    signal: makeSignal(lines.region),
    owners: new Map(),
    sequencer: 0,
    epoch: 0,
    generation: 0
  }
}

export const makeMemoryTopic = (
  { config, lines }: MemoryLogStore,
  info: TopicInfo,
  shape: TopicShape
): MemoryTopic => ({
  info,
  shape,
  blogBytes: laneBlog(shape.laneBytes, shape.pbrSlots).bytes,
  lanes: new Set(),
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
  sessions: memorySessionTable(shape.sessionSlots),
  progress: 0,
  rounds: 0,
  fencedSessions: 0,
  lines,
  durableFailure: undefined,
  deleted: false,
  retained: NOTHING_TRIMMED
})

/** What a store topic takes of the store's heap: its main extent and its lanes, as a region's does. */
export const topicHeldBytes = (topic: MemoryTopic): number => heldBytes(topic.shape, topic.lanes.size)

/** What the store's live topics take of its heap. */
export const storeHeldBytes = (store: MemoryLogStore): number =>
  liveTopics(store).reduce((sum, t) => sum + topicHeldBytes(t), 0)

/** The store's live topics. */
export const liveTopics = (store: MemoryLogStore): ReadonlyArray<MemoryTopic> => store.topics.filter((t) => !t.deleted)

/** Zeroes a deleted topic's subscriber lines before its id names another topic (as freeing a region's extent zeroes it). */
export const clearSubscriberLines = ({ config, lines }: MemoryLogStore, topic: number): void => {
  const first = lines.area.subscriber(topic, 0)
  lines.region.bytes.fill(0, first, first + config.subscriberSlots * LINE_BYTES)
}

/**
 * The lowest batch the topic's readers hold (Infinity when none does): its durable subscribers'
 * and named consumers' cursors, never below what a trim dropped; under discard `old`, none.
 */
export const lowestCursor = ({ info, lines, retained }: MemoryTopic): number => {
  if (info.retention?.discard === "old") return Infinity
  const lowest = lowestDurableCursor(lines.region, lines.area, info.id, lines.alive)
  return lowest === Infinity ? Infinity : Math.max(lowest, retained.firstBatch)
}

/** The store's live topic of that name, or undefined. */
export const findTopic = (store: MemoryLogStore, name: string): MemoryTopic | undefined =>
  store.topics.find((t) => !t.deleted && t.info.name === name)

export const memoryTopic = (store: MemoryLogStore, name: string): Effect.Effect<MemoryTopic, TopicNotFound> =>
  Effect.suspend(() => {
    const topic = findTopic(store, name)
    return topic === undefined ? Effect.fail(new TopicNotFound({ name })) : Effect.succeed(topic)
  })

/** RegionFull when the store's heap has no room for `bytes` more, naming its largest holders as a region's would. */
export const storeFull = (store: MemoryLogStore, bytes: number): RegionFull | undefined => {
  const { heapBytes } = store.space
  const used = storeHeldBytes(store)
  if (used + bytes <= heapBytes) return undefined
  return new RegionFull({
    requested: bytes,
    largestFreeBytes: heapBytes - used,
    freeBytes: heapBytes - used,
    heapBytes,
    ...namedHolders(
      liveTopics(store).map((t) => ({
        kind: "topic" as const,
        name: t.info.name,
        bytes: topicHeldBytes(t),
        pinnedBy: []
      })).sort((a, b) => b.bytes - a.bytes)
    )
  })
}
