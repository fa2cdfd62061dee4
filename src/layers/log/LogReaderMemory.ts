/** LogReader fake: `logReaderOver` (LogReader.ts) reading the in-process store's GOI and payloads. */
import { Effect, Layer } from "effect"
import { LogReader, type LogReaderShape, SubscriberTableFull } from "../../services/log/LogReader.js"
import { reclaimMemory } from "./AppenderMemory.js"
import type { BatchView, ReadTopic } from "./LogReader.js"
import { logReaderOver } from "./LogReader.js"
import { type MemoryBatch, type MemoryLogStore, memoryTopic, type MemoryTopic, type NoOptions } from "./MemoryStore.js"
import { perTopic } from "./Topics.js"

/** Batch `g` while the topic retains it. */
const entry = (topic: MemoryTopic, g: number): MemoryBatch | undefined => {
  const batch = g >= topic.goiBase ? topic.goi[g - topic.goiBase] : undefined
  return batch !== undefined && !batch.reclaimed ? batch : undefined
}

/** Points `view` at a stored batch. */
const loadStored = (topic: MemoryTopic, g: number, view: BatchView): "ok" | "gone" => {
  const batch = entry(topic, g)
  if (batch === undefined) return "gone"
  view.globalSeq = g
  view.totalOrder = batch.totalOrder
  view.messageCount = batch.messageCount
  view.clientId = batch.clientId
  view.sessionEpoch = batch.sessionEpoch
  view.batchSeq = batch.batchSeq
  view.brokerId = batch.broker
  view.crc32c = batch.crc32c
  view.bytes = batch.payload
  view.words = new Uint32Array(batch.payload.buffer)
  view.offset = batch.payload.byteOffset
  view.length = batch.payload.length
  view.source = batch
  return "ok"
}

/** Durable cursors of the store's topic: each holds retention until its scope closes; moving one reclaims what it frees. */
const durableCursors = (store: MemoryLogStore, topic: MemoryTopic) => {
  let nextId = 1
  return (cursor: number) =>
    Effect.suspend(() => {
      if (topic.cursors.size >= store.config.subscriberSlots) {
        return Effect.fail(new SubscriberTableFull({ topic: topic.info.name, slots: store.config.subscriberSlots }))
      }
      const id = nextId++
      return Effect.acquireRelease(Effect.sync(() => topic.cursors.set(id, cursor)), () =>
        Effect.sync(() => {
          topic.cursors.delete(id)
          store.signal.notify()
        })).pipe(Effect.as((next: number) => {
          if (!topic.cursors.has(id)) return
          topic.cursors.set(id, next)
          for (const broker of topic.brokers) reclaimMemory(topic, broker)
          store.signal.notify()
        }))
    })
}

const storeTopic = (store: MemoryLogStore, topic: MemoryTopic): ReadTopic => ({
  info: topic.info,
  committed: () => topic.goiBase + topic.goi.length,
  total: () => topic.totalOrder,
  oldest: () => topic.goiBase,
  retained: (g) => entry(topic, g) !== undefined,
  totalOrderOf: (g) => entry(topic, g)?.totalOrder,
  load: (g, view) => loadStored(topic, g, view),
  stillThere: (g, view) => entry(topic, g) === view.source,
  hold: durableCursors(store, topic)
})

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<LogReaderShape> =>
  Effect.sync(() => {
    const topicOf = perTopic((info) => storeTopic(store, store.topics[info.id]))
    return logReaderOver({
      topic: (name) => Effect.map(memoryTopic(store, name), (topic) => topicOf(topic.info)),
      await: (condition, timeoutMs) => store.signal.await(condition, timeoutMs)
    })
  })

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<LogReader> => Layer.effect(LogReader, makeMemory(store, options))
