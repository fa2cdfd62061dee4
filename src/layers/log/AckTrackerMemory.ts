/** AckTracker fake: `ackTrackerOver` (AckTracker.ts) reading the in-process store. */
import { Effect, Layer } from "effect"
import { AckTracker, type AckTrackerShape } from "../../services/log/AckTracker.js"
import { type AckTopic, ackTrackerOver } from "./AckTracker.js"
import { type MemoryLogStore, type MemoryTopic, memoryTopic, type NoOptions } from "./MemoryStore.js"

const storeTopic = (store: MemoryLogStore, topic: MemoryTopic): AckTopic => ({
  info: topic.info,
  sessions: topic.sessions,
  brokers: topic.brokers.length,
  sent: (b) => topic.brokers[b].head,
  acked: (b) => topic.brokers[b].consumedThrough,
  owned: (b) => store.owners.has(b),
  progress: () => topic.progress,
  durableFailure: () => topic.durableFailure,
  deleted: () => topic.deleted,
  totalOrder: (b, pbrSeq) => {
    const broker = topic.brokers[b]
    const batch = broker?.pbr[pbrSeq - broker.reclaimed]
    return batch !== undefined && batch.pbrSeq === pbrSeq && batch.finished && batch.globalSeq >= 0
      ? batch.totalOrder
      : undefined
  }
})

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<AckTrackerShape> =>
  Effect.sync(() =>
    ackTrackerOver({
      topic: (name) => Effect.map(memoryTopic(store, name), (topic) => storeTopic(store, topic)),
      await: store.signal.await,
      watch: store.signal.watch
    })
  )

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<AckTracker> =>
  Layer.effect(AckTracker, makeMemory(store, options))
