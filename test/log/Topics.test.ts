import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { blogBytesOf, roundedTopicBytes } from "../../src/layers/log/Layout.js"
import { DescriptorView } from "../../src/layers/log/RecordViews.js"
import * as TopicsLayers from "../../src/layers/log/Topics.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import {
  appendSimple,
  consumersOf,
  drain,
  implementations,
  smallConfig,
  TEST_TOPICS,
  testRegion
} from "../fixtures/log-harness.js"

for (const impl of implementations) {
  describe(`Topics contract: ${impl.label}`, () => {
    it.scoped("creates, looks up and lists topics", () =>
      Effect.gen(function*() {
        const { topics } = yield* impl.make()
        const a = yield* topics.create({ name: "orders", order: 5, ackLevel: 1, replicationFactor: 1 })
        const b = yield* topics.create({
          name: "clicks.v2",
          order: 0,
          ackLevel: 0,
          replicationFactor: 1,
          memory: 2 * smallConfig.topicMemoryBytes
        })
        // Its memory, as the region's default or as asked; an id of its own.
        expect(a).toEqual({
          id: a.id,
          generation: a.generation,
          name: "orders",
          order: 5,
          ackLevel: 1,
          replicationFactor: 1,
          memory: smallConfig.topicMemoryBytes
        })
        expect(b.memory).toBe(2 * smallConfig.topicMemoryBytes)
        expect(b.id).not.toBe(a.id)
        expect(b.generation).not.toBe(a.generation)
        expect(yield* topics.lookup("clicks.v2")).toEqual(b)
        expect(yield* topics.lookup("orders")).toEqual(a)
        expect((yield* topics.list).map((t) => t.name)).toEqual(["orders", "clicks.v2"])
      }))

    it.scoped("describes a topic as it is now: its spec, memory, offsets held, batches ordered, sessions, readers and consumers", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const { topics } = cluster
        const info = yield* topics.create({ name: "described", order: 5, ackLevel: 1, replicationFactor: 1 })
        yield* topics.create({ name: "other", order: 2, ackLevel: 1, replicationFactor: 1 })
        const memoryBytes = smallConfig.topicMemoryBytes
        expect(yield* topics.describe("described")).toEqual({
          ...info,
          memoryBytes,
          blogBytesPerBroker: blogBytesOf(smallConfig, memoryBytes),
          earliest: 0,
          end: 0,
          orderedBatches: 0,
          sessions: 0,
          sessionSlots: cluster.sessions("described").capacity,
          subscribers: [],
          consumers: []
        })

        const appender = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(appender, "described", 7, 1, 0, 3)
        yield* appendSimple(appender, "described", 7, 1, 1, 2)
        yield* drain(sequencer)
        // A durable reader at the start, and a named consumer committed inside the first batch.
        yield* cluster.reader.subscribe("described", { from: "earliest", durable: true })
        const consumers = yield* consumersOf(cluster)
        yield* consumers.join("described", "billing", { offset: 2, globalSeq: 0 })

        const described = yield* topics.describe("described")
        expect(described).toMatchObject({ earliest: 0, end: 5, orderedBatches: 2, sessions: 1 })
        expect(described.subscribers).toEqual([{ pid: process.pid, alive: true, durable: true, behindBatches: 2 }])
        expect(described.consumers).toEqual([
          { name: "billing", committed: 2, lag: 3, member: process.pid, cutOff: false }
        ])
        expect(yield* topics.describe("other")).toMatchObject({ end: 0, subscribers: [], consumers: [] })

        const overview = yield* topics.overview
        expect(overview.topics).toEqual([described, yield* topics.describe("other")])
        expect(overview.retention).toEqual({ goiSlots: smallConfig.goiSlots, maxBrokers: smallConfig.maxBrokers })
        // The heap holds both topics' extents, each its memory rounded up to a power of two.
        expect(overview.heap.freeBytes).toBe(overview.heap.heapBytes - 2 * roundedTopicBytes(memoryBytes))
        expect(overview.heap.largestFreeBytes).toBeLessThanOrEqual(overview.heap.freeBytes)

        expect(yield* Effect.flip(topics.describe("nope"))).toMatchObject({ _tag: "TopicNotFound", name: "nope" })
        yield* topics.delete("other")
        expect(yield* Effect.flip(topics.describe("other"))).toMatchObject({ _tag: "TopicNotFound", name: "other" })
        expect((yield* topics.overview).topics.map((t) => t.name)).toEqual(["described"])
      }))

    it.scoped("keeps a replication factor 2 topic's disk retention (what another process reads back too) and refuses one without a disk copy", () =>
      Effect.gen(function*() {
        const { topics } = yield* impl.make()
        const kept = yield* topics.create({
          name: "kept",
          order: 5,
          ackLevel: 2,
          replicationFactor: 2,
          diskRetention: { maxBytes: 10 << 20, maxAgeMs: 86_400_000 }
        })
        yield* topics.create({
          name: "aged",
          order: 5,
          ackLevel: 2,
          replicationFactor: 2,
          diskRetention: { maxAgeMs: 60_000 }
        })
        yield* topics.create({ name: "whole", order: 5, ackLevel: 2, replicationFactor: 2 })
        expect(kept.diskRetention).toEqual({ maxBytes: 10 << 20, maxAgeMs: 86_400_000 })
        const listed = new Map((yield* topics.list).map((t) => [t.name, t.diskRetention]))
        expect(listed.get("kept")).toEqual({ maxBytes: 10 << 20, maxAgeMs: 86_400_000 })
        expect(listed.get("aged")).toEqual({ maxAgeMs: 60_000 })
        expect(listed.get("whole")).toBeUndefined()
        const memoryOnly = yield* Effect.flip(
          topics.create({
            name: "m",
            order: 5,
            ackLevel: 1,
            replicationFactor: 1,
            diskRetention: { maxBytes: 1 << 20 }
          })
        )
        expect(memoryOnly).toMatchObject({ _tag: "InvalidTopicSpec" })
        expect(memoryOnly.message).toContain("needs replication factor 2")
        expect(
          yield* Effect.flip(
            topics.create({ name: "z", order: 5, ackLevel: 2, replicationFactor: 2, diskRetention: { maxBytes: 0 } })
          )
        ).toMatchObject({
          _tag: "InvalidTopicSpec"
        })
      }))

    it.scoped("refuses a duplicate name, an unknown topic, a bad spec, RF > 1 and a full table with typed errors", () =>
      Effect.gen(function*() {
        const { topics } = yield* impl.make()
        yield* topics.create({ name: "t", order: 2, ackLevel: 1, replicationFactor: 1 })
        expect(yield* Effect.flip(topics.create({ name: "t", order: 2, ackLevel: 1, replicationFactor: 1 })))
          .toMatchObject({ _tag: "TopicExists", name: "t" })
        expect(yield* Effect.flip(topics.lookup("nope"))).toMatchObject({ _tag: "TopicNotFound", name: "nope" })
        const rf = yield* Effect.flip(topics.create({ name: "r", order: 2, ackLevel: 2, replicationFactor: 3 }))
        expect(rf).toMatchObject({ _tag: "ReplicationUnavailable", replicationFactor: 3 })
        expect(rf.message).toContain("not available")
        // A copy on disk counts each session's batches in sequence: order 5 only.
        const unordered = yield* Effect.flip(topics.create({ name: "d", order: 2, ackLevel: 2, replicationFactor: 2 }))
        expect(unordered).toMatchObject({ _tag: "InvalidTopicSpec" })
        expect(unordered.message).toContain("needs order 5")
        expect(yield* Effect.flip(topics.create({ name: "bad name!", order: 2, ackLevel: 1, replicationFactor: 1 })))
          .toMatchObject({
            _tag: "InvalidTopicSpec"
          })
        expect(yield* Effect.flip(topics.create({ name: "m", order: 3 as 2, ackLevel: 1, replicationFactor: 1 })))
          .toMatchObject({
            _tag: "InvalidTopicSpec"
          })
        for (let i = 1; i < TEST_TOPICS; i++) {
          yield* topics.create({ name: `t${i}`, order: 2, ackLevel: 1, replicationFactor: 1 })
        }
        // The heap holds TEST_TOPICS topics of the default memory: the next finds no room, and is told who holds it.
        const full = yield* Effect.flip(
          topics.create({ name: "overflow", order: 2, ackLevel: 1, replicationFactor: 1 })
        )
        expect(full).toMatchObject({ _tag: "RegionFull", freeBytes: 0 })
        expect(full.message).toContain("by topic t1")
        expect(full.message).toContain("CXLOG_HEAP_BYTES")
        // A smaller topic does not fit either, but a create with a memory too small for two batches is refused as such.
        expect(
          yield* Effect.flip(
            topics.create({ name: "tiny", order: 2, ackLevel: 1, replicationFactor: 1, memory: 64 << 10 })
          )
        ).toMatchObject({ _tag: "InvalidTopicSpec" })
      }))
  })
}

describe("Topics in the region", () => {
  it.scoped("a process attaching to the region sees the head's topics", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[0]!.make()
      const created = yield* cluster.topics.create({ name: "shared", order: 4, ackLevel: 1, replicationFactor: 1 })
      const attached = yield* CxlMemoryLayers.make({ name: cluster.region!.name, mode: "attach" })
      const other = yield* TopicsLayers.make(testRegion(smallConfig).area).pipe(
        Effect.provideService(CxlMemory, attached)
      )
      expect(yield* other.lookup("shared")).toMatchObject({
        id: created.id,
        order: 4,
        memory: smallConfig.topicMemoryBytes
      })
    }))

  it.scoped("a corrupt descriptor reads as no topic, never as garbage", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const { id } = yield* cluster.topics.create({ name: "x", order: 2, ackLevel: 1, replicationFactor: 1 })
      const { memory, area } = cluster.region!
      new DescriptorView(memory).setNameBytes(area.descriptor(id), 100_000)
      expect(yield* cluster.topics.list).toEqual([])
    }))
})
