/**
 * Topics fake: `topicsOver` (Topics.ts) with the store's array as the table, its room the
 * store's space (a topic count for the directory's slots, a byte budget for the heap). A
 * deleted topic's id goes to the next topic made, under a new generation, as a directory slot does;
 * its memory is back at once (no other process can hold it).
 */
import { Effect, Layer } from "effect"
import type { TopicInfo, TopicSpaceError, TopicsShape } from "../../services/log/Topics.js"
import { TopicNotFound, Topics } from "../../services/log/Topics.js"
import { DirectoryFull, RegionFull } from "../../services/region/Directory.js"
import {
  clearSubscriberLines,
  liveTopics,
  makeMemoryTopic,
  type MemoryLogStore,
  type NoOptions,
  storeHeldBytes,
  topicHeldBytes
} from "./MemoryStore.js"
import { topicsOver, withShape } from "./Topics.js"

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<TopicsShape> =>
  Effect.sync(() =>
    topicsOver({
      list: () => liveTopics(store).map((t) => t.info),
      isCurrent: (info) =>
        store.topics[info.id]?.info.generation === info.generation && !store.topics[info.id]!.deleted,
      remove: (info) =>
        Effect.suspend(() => {
          const topic = store.topics[info.id]
          if (topic === undefined || topic.deleted || topic.info.generation !== info.generation) {
            return Effect.fail(new TopicNotFound({ name: info.name }))
          }
          topic.deleted = true
          store.signal.notify()
          return Effect.void
        }),
      add: (spec, shape) =>
        Effect.suspend((): Effect.Effect<TopicInfo, TopicSpaceError> => {
          const { maxTopics } = store.space
          const live = liveTopics(store)
          if (live.length >= maxTopics) {
            return Effect.fail(new DirectoryFull({ entrySlots: maxTopics, objects: live.length }))
          }
          // As the heap: a topic takes its main extent at its create, each lane at its writer's first append.
          const full = storeFull(store, shape.mainBytes)
          if (full !== undefined) return Effect.fail(full)
          const reused = store.topics.findIndex((t) => t.deleted)
          const id = reused >= 0 ? reused : store.topics.length
          const info = withShape({ id, generation: ++store.generation, ...spec }, shape)
          if (reused >= 0) clearSubscriberLines(store, id)
          store.topics[id] = makeMemoryTopic(store, info, shape)
          store.signal.notify()
          return Effect.succeed(info)
        })
    }, store.config)
  )

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
    holders: liveTopics(store).map((t) => ({
      kind: "topic" as const,
      name: t.info.name,
      bytes: topicHeldBytes(t),
      pinnedBy: []
    })).sort((a, b) => b.bytes - a.bytes).slice(0, 5)
  })
}

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<Topics> =>
  Layer.effect(Topics, makeMemory(store, options))
