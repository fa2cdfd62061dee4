/**
 * Topics fake: `topicsOver` (Topics.ts) with the store's array as the table, its room the
 * store's space (a topic count for the directory's slots, a byte budget for the heap).
 */
import { Effect, Layer } from "effect"
import type { TopicInfo, TopicSpaceError, TopicsShape } from "../../services/log/Topics.js"
import { Topics } from "../../services/log/Topics.js"
import { DirectoryFull, RegionFull } from "../../services/region/Directory.js"
import { roundedTopicBytes } from "./Layout.js"
import { makeMemoryTopic, type MemoryLogStore, type NoOptions } from "./MemoryStore.js"
import { topicsOver } from "./Topics.js"

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<TopicsShape> =>
  Effect.sync(() =>
    topicsOver({
      list: () => store.topics.map((t) => t.info),
      add: (spec) =>
        Effect.suspend((): Effect.Effect<TopicInfo, TopicSpaceError> => {
          const { maxTopics, heapBytes } = store.space
          if (store.topics.length >= maxTopics) {
            return Effect.fail(new DirectoryFull({ entrySlots: maxTopics, objects: store.topics.length }))
          }
          // As the heap: each topic takes its memory rounded up to a power of two of pages.
          const held = (memory: number) => roundedTopicBytes(memory)
          const used = store.topics.reduce((sum, t) => sum + held(t.info.memory ?? 0), 0)
          if (used + held(spec.memory) > heapBytes) {
            return Effect.fail(
              new RegionFull({
                requested: held(spec.memory),
                largestFreeBytes: heapBytes - used,
                freeBytes: heapBytes - used,
                heapBytes,
                holders: store.topics.map((t) => ({
                  kind: "topic" as const,
                  name: t.info.name,
                  bytes: held(t.info.memory ?? 0),
                  pinnedBy: []
                })).sort((a, b) => b.bytes - a.bytes).slice(0, 5)
              })
            )
          }
          const info = { id: store.topics.length, ...spec }
          store.topics.push(makeMemoryTopic(store, info))
          store.signal.notify()
          return Effect.succeed(info)
        })
    }, store.config)
  )

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<Topics> =>
  Layer.effect(Topics, makeMemory(store, options))
