/**
 * LogReader fake: `logReaderOver` (LogReader.ts) reading the in-process store's GOI and
 * payloads; a durable cursor holds a subscriber line of the store's private region, as in the region.
 */
import { Effect, Layer, type Scope } from "effect"
import { LogReader, type LogReaderShape, type SubscriberTableFull } from "../../services/log/LogReader.js"
import { TopicDeleted, type TopicInfo } from "../../services/log/Topics.js"
import { retentionMovedMemory } from "./AppenderMemory.js"
import { holdCursor } from "./durable/DurableCursor.js"
import { logReaderOver } from "./LogReader.js"
import { type MemoryBatch, type MemoryLogStore, type MemoryTopic, memoryTopic, type NoOptions } from "./MemoryStore.js"
import type { ReadTopic } from "./ReadSource.js"
import type { BatchView } from "./ReadViews.js"
import { perTopic } from "./Topics.js"

/** One topic's GOI window and payloads in the store. */
export class StoreReadTopic implements ReadTopic {
  readonly info: TopicInfo

  constructor(private readonly store: MemoryLogStore, private readonly topic: MemoryTopic) {
    this.info = topic.info
  }

  deleted(): boolean {
    return this.topic.deleted
  }

  /** Nothing to keep: the store's topic stays with the cursor that has it. */
  readonly pin: Effect.Effect<void, TopicDeleted, Scope.Scope> = Effect.suspend(() =>
    this.topic.deleted ? Effect.fail(new TopicDeleted({ name: this.info.name })) : Effect.void
  )

  /** Batch `g` while the topic retains it (a trim's first batch bounds it too). */
  private entry(g: number): MemoryBatch | undefined {
    if (g < this.topic.retained.firstBatch) return undefined
    const batch = g >= this.topic.goiBase ? this.topic.goi[g - this.topic.goiBase] : undefined
    return batch !== undefined && !batch.reclaimed ? batch : undefined
  }

  firstOffset(): number {
    return this.topic.retained.firstOffset
  }

  committed(): number {
    return this.topic.goiBase + this.topic.goi.length
  }

  total(): number {
    return this.topic.totalOrder
  }

  /** The store keeps its batches in arrays: a scan back from the end to the first one gone is cheap. */
  firstHeld(committed: number): number {
    const oldest = Math.max(this.topic.goiBase, this.topic.retained.firstBatch)
    for (let g = committed - 1; g >= oldest; g--) if (this.entry(g) === undefined) return g + 1
    return Math.min(oldest, committed)
  }

  retained(g: number): boolean {
    return this.entry(g) !== undefined
  }

  /** As the region's GOI entry, it outlives its payload: a reclaimed batch (another broker's retention) still has its place. */
  totalOrderOf(g: number): number | undefined {
    return g >= this.topic.goiBase ? this.topic.goi[g - this.topic.goiBase]?.totalOrder : undefined
  }

  /** Points `view` at a stored batch. */
  load(g: number, view: BatchView): "ok" | "gone" {
    const batch = this.entry(g)
    if (batch === undefined) return "gone"
    view.describe(
      g,
      batch.totalOrder,
      batch.messageCount,
      batch.clientId,
      batch.sessionEpoch,
      batch.batchSeq,
      batch.broker,
      batch.crc32c
    )
    view.bytes = batch.payload
    view.words = new Uint32Array(batch.payload.buffer)
    view.offset = batch.payload.byteOffset
    view.length = batch.payload.length
    view.source = batch
    return "ok"
  }

  stillThere(g: number, view: BatchView): boolean {
    return this.entry(g) === view.source
  }

  /** A durable cursor holds retention until its scope closes; moving it reclaims what it frees. */
  hold(cursor: number): Effect.Effect<(next: number) => void, SubscriberTableFull, Scope.Scope> {
    const { store, topic } = this
    return holdCursor(
      store.lines.region,
      store.lines.area,
      0,
      this.info,
      cursor,
      () => retentionMovedMemory(store, topic)
    )
  }
}

/** The store's topic `info` as a reader sees it. */
export const storeReadTopic = (store: MemoryLogStore, info: TopicInfo): ReadTopic =>
  new StoreReadTopic(store, store.topics[info.id]!)

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<LogReaderShape> =>
  Effect.sync(() => {
    const topicOf = perTopic((info) => storeReadTopic(store, info))
    return logReaderOver({
      topic: (name) => Effect.map(memoryTopic(store, name), (topic) => topicOf(topic.info)),
      await: (condition, timeoutMs) => store.signal.await(condition, timeoutMs)
    })
  })

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<LogReader> =>
  Layer.effect(LogReader, makeMemory(store, options))
