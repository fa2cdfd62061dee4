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
import { roundedTopicBytes } from "./Layout.js"
import { StoreReadTopic } from "./LogReaderMemory.js"
import {
  clearSubscriberLines,
  liveTopics,
  makeMemoryTopic,
  type MemoryLogStore,
  type NoOptions
} from "./MemoryStore.js"
import { describeOver } from "./TopicDescriptions.js"
import { perTopic, topicsOver } from "./Topics.js"

/** As the heap: each topic takes its memory rounded up to a power of two of pages. */
const heldBytes = (topic: { readonly memory?: number }) => roundedTopicBytes(topic.memory ?? 0)

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<TopicsShape<never>> =>
  Effect.sync(() =>
    topicsOver({
      list: () => liveTopics(store).map((t) => t.info),
      describe: describeOver({
        readTopic: perTopic((info) => new StoreReadTopic(store, store.topics[info.id]!)),
        sessions: (info) => store.topics[info.id]!.sessions,
        lines: store.lines,
        memoryBytes: (info) => info.memory ?? store.config.topicMemoryBytes,
        blogBytes: (info) => store.topics[info.id]!.blogBytes
      }),
      heap: () => {
        // A store without a bound (a broker's log in tests) says so with the largest size a count can have.
        const heapBytes = Math.min(store.space.heapBytes, Number.MAX_SAFE_INTEGER)
        const freeBytes = heapBytes - liveTopics(store).reduce((sum, t) => sum + heldBytes(t.info), 0)
        // One free extent: the store does not fragment.
        return { heapBytes, freeBytes, largestFreeBytes: freeBytes }
      },
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
      add: (spec) =>
        Effect.suspend((): Effect.Effect<TopicInfo, TopicSpaceError> => {
          const { maxTopics, heapBytes } = store.space
          const live = liveTopics(store)
          if (live.length >= maxTopics) {
            return Effect.fail(new DirectoryFull({ entrySlots: maxTopics, objects: live.length }))
          }
          const used = live.reduce((sum, t) => sum + heldBytes(t.info), 0)
          const requested = heldBytes(spec)
          if (used + requested > heapBytes) {
            return Effect.fail(
              new RegionFull({
                requested,
                largestFreeBytes: heapBytes - used,
                freeBytes: heapBytes - used,
                heapBytes,
                holders: live.map((t) => ({
                  kind: "topic" as const,
                  name: t.info.name,
                  bytes: heldBytes(t.info),
                  pinnedBy: []
                })).sort((a, b) => b.bytes - a.bytes).slice(0, 5)
              })
            )
          }
          const reused = store.topics.findIndex((t) => t.deleted)
          const id = reused >= 0 ? reused : store.topics.length
          const info = { id, generation: ++store.generation, ...spec }
          if (reused >= 0) clearSubscriberLines(store, id)
          store.topics[id] = makeMemoryTopic(store, info)
          store.signal.notify()
          return Effect.succeed(info)
        })
    }, store.config)
  )

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<Topics> =>
  Layer.effect(Topics, makeMemory(store, options))
