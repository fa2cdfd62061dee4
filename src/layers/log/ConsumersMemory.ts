/**
 * Consumers fake: `consumersOver` (Consumers.ts) over the in-process store, whose subscriber
 * lines sit in its private region; only where the bytes live differs.
 */
import { Effect, Layer } from "effect"
import { Consumers, type ConsumersShape } from "../../services/log/Consumers.js"
import { retentionMovedMemory } from "./AppenderMemory.js"
import { consumersOver } from "./Consumers.js"
import { type MemoryLogStore, memoryTopic, type NoOptions } from "./MemoryStore.js"

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<ConsumersShape> =>
  Effect.sync(() =>
    consumersOver({
      region: store.lines.region,
      area: store.lines.area,
      resolve: (name) => Effect.map(memoryTopic(store, name), (topic) => topic.info),
      end: (info) => store.topics[info.id].totalOrder,
      retentionMoved: (info) => retentionMovedMemory(store, store.topics[info.id])
    })
  )

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<Consumers> =>
  Layer.effect(Consumers, makeMemory(store, options))
