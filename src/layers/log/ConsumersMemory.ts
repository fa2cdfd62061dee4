/**
 * Named consumers over the in-memory store: the same rules as the region's (Consumers.ts) — a
 * consumer holds retention from its committed batch on, one member at a time — kept per topic
 * in the store's durable cursors (under negative ids, which the LogReader fake never uses). A
 * consumer the appender fake cut off (`cutOffMemory` in AppenderMemory.ts) is one whose cursor
 * left them while it stays in the table.
 */
import { Effect, Layer } from "effect"
import {
  ConsumerBusy,
  type ConsumerLease,
  ConsumerNameInvalid,
  Consumers,
  type ConsumersShape,
  ConsumerTableFull
} from "../../services/log/Consumers.js"
import { reclaimMemory } from "./AppenderMemory.js"
import { consumerNameBytes } from "./Consumers.js"
import { type MemoryLogStore, memoryTopic, type MemoryTopic, type NoOptions } from "./MemoryStore.js"

interface MemoryConsumer {
  readonly id: number
  committed: number
  member: boolean
}

const consumersOf = new WeakMap<MemoryTopic, Map<string, MemoryConsumer>>()

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<ConsumersShape> =>
  Effect.sync(() => {
    let nextId = -1
    const tableOf = (topic: MemoryTopic) => {
      let table = consumersOf.get(topic)
      if (table === undefined) consumersOf.set(topic, table = new Map())
      return table
    }
    const isCutOff = (topic: MemoryTopic, consumer: MemoryConsumer) => !topic.cursors.has(consumer.id)
    /** The batch a consumer's committed offset lies in: where its hold starts when it is resumed. */
    const heldFrom = new WeakMap<MemoryConsumer, number>()
    const move = (topic: MemoryTopic, consumer: MemoryConsumer, offset: number, globalSeq: number) => {
      consumer.committed = offset
      heldFrom.set(consumer, globalSeq)
      topic.cursors.set(consumer.id, globalSeq)
      for (const broker of topic.brokers) reclaimMemory(topic, broker)
      store.signal.notify()
    }

    const join: ConsumersShape["join"] = (name, consumerName, initial) =>
      Effect.gen(function*() {
        const bytes = consumerNameBytes(consumerName)
        if (bytes instanceof ConsumerNameInvalid) return yield* bytes
        const topic = yield* memoryTopic(store, name)
        const table = tableOf(topic)
        const acquire = Effect.suspend((): Effect.Effect<{ consumer: MemoryConsumer; created: boolean }, ConsumerBusy | ConsumerTableFull> => {
          let consumer = table.get(consumerName)
          const created = consumer === undefined
          if (consumer === undefined) {
            // A cut-off consumer keeps its line in the region: it counts here too.
            const cutOff = [...table.values()].filter((c) => isCutOff(topic, c)).length
            if (topic.cursors.size + cutOff >= store.config.subscriberSlots) return Effect.fail(new ConsumerTableFull({ topic: name, slots: store.config.subscriberSlots }))
            consumer = { id: nextId--, committed: initial.offset, member: false }
            table.set(consumerName, consumer)
            heldFrom.set(consumer, initial.globalSeq)
            topic.cursors.set(consumer.id, initial.globalSeq)
          }
          if (consumer.member) return Effect.fail(new ConsumerBusy({ topic: name, name: consumerName, pid: process.pid }))
          consumer.member = true
          return Effect.succeed({ consumer, created })
        })
        const { consumer, created } = yield* Effect.acquireRelease(acquire, ({ consumer }) => Effect.sync(() => void (consumer.member = false)))
        const lease: ConsumerLease = {
          topic: name,
          name: consumerName,
          created,
          committed: () => consumer.committed,
          commit: (offset, globalSeq) => {
            if (table.get(consumerName) !== consumer) return true
            if (isCutOff(topic, consumer)) return false
            move(topic, consumer, offset, globalSeq)
            return true
          },
          cutOff: () => isCutOff(topic, consumer),
          resume: () => {
            if (table.get(consumerName) === consumer && isCutOff(topic, consumer)) topic.cursors.set(consumer.id, heldFrom.get(consumer) ?? 0)
          },
          relinquish: () => {
            if (table.get(consumerName) !== consumer || !topic.cursors.delete(consumer.id)) return
            store.signal.notify()
          }
        }
        return lease
      })

    return {
      join,
      list: (name) =>
        Effect.map(memoryTopic(store, name), (topic) =>
          [...tableOf(topic)].map(([consumerName, c]) => ({
            topic: name,
            name: consumerName,
            committed: c.committed,
            end: topic.totalOrder,
            lag: Math.max(0, topic.totalOrder - c.committed),
            member: c.member ? process.pid : 0,
            cutOff: isCutOff(topic, c)
          }))),
      remove: (name, consumerName) =>
        Effect.flatMap(memoryTopic(store, name), (topic) => {
          const table = tableOf(topic)
          const consumer = table.get(consumerName)
          if (consumer === undefined) return Effect.succeed(false)
          if (consumer.member) return Effect.fail(new ConsumerBusy({ topic: name, name: consumerName, pid: process.pid }))
          table.delete(consumerName)
          topic.cursors.delete(consumer.id)
          for (const broker of topic.brokers) reclaimMemory(topic, broker)
          store.signal.notify()
          return Effect.succeed(true)
        })
    }
  })

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<Consumers> => Layer.effect(Consumers, makeMemory(store, options))
