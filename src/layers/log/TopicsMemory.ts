/**
 * Topics fake: `topicsOver` (Topics.ts) with the store's array as the table, its room the
 * store's space (a topic count for the directory's slots, a byte budget for the heap). A
 * deleted topic's id goes to the next topic made, under a new generation, as a directory slot does;
 * its memory is back at once (no other process can hold it).
 */
import { Effect, Layer } from "effect"
import type { TopicInfo, TopicSpaceError, TopicsShape } from "../../services/log/Topics.js"
import { TopicNotFound, Topics } from "../../services/log/Topics.js"
import { DirectoryFull } from "../../services/region/Directory.js"
import { largestBlockBytes } from "../region/BuddyAllocator.js"
import { retentionMovedMemory } from "./AppenderMemory.js"
import { storeReadTopic } from "./LogReaderMemory.js"
import {
  clearSubscriberLines,
  findTopic,
  liveTopics,
  makeMemoryTopic,
  type MemoryLogStore,
  type NoOptions,
  storeFull,
  storeHeldBytes,
  topicHeldBytes
} from "./MemoryStore.js"
import { describeOver } from "./TopicDescriptions.js"
import { perTopic, topicsOver } from "./Topics.js"
import { withShape } from "./TopicShape.js"

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<TopicsShape<never>> =>
  Effect.sync(() =>
    topicsOver({
      list: () => liveTopics(store).map((t) => t.info),
      find: (name) => findTopic(store, name)?.info,
      reader: (info) => storeReadTopic(store, info),
      retained: (info) => store.topics[info.id]!.retained,
      setRetained: (info, retained) =>
        Effect.sync(() => {
          const topic = store.topics[info.id]!
          topic.retained = retained
          retentionMovedMemory(store, topic)
        }),
      describe: describeOver({
        readTopic: perTopic((info) => storeReadTopic(store, info)),
        sessions: (info) => store.topics[info.id]!.sessions,
        lines: store.lines,
        memoryBytes: (info) => store.topics[info.id]!.shape.memoryBytes,
        lanes: (info) => store.topics[info.id]!.lanes.size,
        usedBytes: (info) => topicHeldBytes(store.topics[info.id]!),
        blogBytes: (info) => store.topics[info.id]!.blogBytes,
        diskCopyStopped: (info) => store.topics[info.id]!.durableFailure
      }),
      // As the region's buddy heap would: its largest power of two (none for a store without a bound).
      largestExtentBytes: Number.isFinite(store.space.heapBytes)
        ? largestBlockBytes(store.space.heapBytes)
        : Number.POSITIVE_INFINITY,
      heapBytes: store.space.heapBytes,
      heap: () => {
        // A store without a bound (a broker's log in tests) says so with the largest size a count can have.
        const heapBytes = Math.min(store.space.heapBytes, Number.MAX_SAFE_INTEGER)
        const freeBytes = heapBytes - storeHeldBytes(store)
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

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<Topics> =>
  Layer.effect(Topics, makeMemory(store, options))
