/** Topics fake: `topicsOver` (Topics.ts) with the store's array as the table. */
import { Effect, Layer } from "effect"
import { Topics, type TopicsShape } from "../../services/log/Topics.js"
import { makeMemoryTopic, type MemoryLogStore, type NoOptions } from "./MemoryStore.js"
import { topicsOver } from "./Topics.js"

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<TopicsShape> =>
  Effect.sync(() =>
    topicsOver({
      maxTopics: store.config.maxTopics,
      list: () => store.topics.map((t) => t.info),
      add: (spec) => {
        if (store.topics.length >= store.config.maxTopics) return undefined
        const info = { id: store.topics.length, ...spec }
        store.topics.push(makeMemoryTopic(store, info))
        store.signal.notify()
        return info
      }
    })
  )

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<Topics> =>
  Layer.effect(Topics, makeMemory(store, options))
