import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { defaultTopicShape } from "../../src/layers/log/Layout.js"
import { directoryFor } from "../../src/layers/log/LogRegion.js"
import { DescriptorState } from "../../src/layers/log/Records.js"
import { DescriptorView } from "../../src/layers/log/RecordViews.js"
import * as TopicsLayers from "../../src/layers/log/Topics.js"
import { blogBytesOfShape, type TopicShape, unworkableMemory } from "../../src/layers/log/TopicShape.js"
import { largestBlockBytes } from "../../src/layers/region/BuddyAllocator.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { DirectoryHeaderView, EntryView } from "../../src/layers/region/DirectoryRecords.js"
import { writerOver } from "../../src/layers/region/DirectoryWriter.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { parseSize, showSize } from "../../src/Settings.js"
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
        // Its memory and writers, as the region's defaults or as asked, the largest message they allow; an id of its own.
        expect(a).toEqual({
          id: a.id,
          generation: a.generation,
          name: "orders",
          order: 5,
          ackLevel: 1,
          replicationFactor: 1,
          memory: smallConfig.topicMemoryBytes,
          writers: smallConfig.topicWriters,
          maxMessageBytes: smallConfig.maxBatchBytes - 16
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
        const shape = defaultTopicShape(smallConfig) as TopicShape
        // No writer has written it: its records alone.
        expect(yield* topics.describe("described")).toEqual({
          ...info,
          memoryBytes,
          usedBytes: shape.mainBytes,
          lanes: 0,
          blogBytesPerLane: blogBytesOfShape(shape),
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
        const durable = yield* cluster.reader.subscribe("described", { from: "earliest", durable: true })
        const consumers = yield* consumersOf(cluster)
        yield* consumers.join("described", "billing", { offset: 2, globalSeq: 0 })

        const described = yield* topics.describe("described")
        expect(described).toMatchObject({
          earliest: 0,
          end: 5,
          orderedBatches: 2,
          sessions: 1,
          lanes: 1,
          usedBytes: shape.mainBytes + shape.laneBytes
        })
        expect(described.subscribers).toEqual([{ pid: process.pid, alive: true, durable: true, behindBatches: 2 }])
        expect(described.consumers).toEqual([
          { name: "billing", committed: 2, lag: 3, member: process.pid, cutOff: false }
        ])
        expect(yield* topics.describe("other")).toMatchObject({ end: 0, subscribers: [], consumers: [] })

        const overview = yield* topics.overview
        expect(overview.topics).toEqual([described, yield* topics.describe("other")])
        // The heap holds both topics' records and the one lane written.
        expect(overview.heap.freeBytes).toBe(overview.heap.heapBytes - 2 * shape.mainBytes - shape.laneBytes)
        expect(overview.heap.largestFreeBytes).toBeLessThanOrEqual(overview.heap.freeBytes)
        // The durable reader read to the end is behind by nothing.
        yield* durable.poll(() => {})
        expect((yield* topics.describe("described")).subscribers).toEqual([
          { pid: process.pid, alive: true, durable: true, behindBatches: 0 }
        ])

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
        for (const name of [".lead", "trail.", "a..b", "."]) {
          const dotted = yield* Effect.flip(topics.create({ name, order: 2, ackLevel: 1, replicationFactor: 1 }))
          expect(dotted.message).toBe(
            `invalid topic: topic ${name}: a new topic's name has no empty part between dots (no leading, trailing or double dot)`
          )
        }
        expect(yield* Effect.flip(topics.create({ name: "m", order: 3 as 2, ackLevel: 1, replicationFactor: 1 })))
          .toMatchObject({
            _tag: "InvalidTopicSpec"
          })
        // A field the spec has no name for (a JavaScript caller's typo) is refused naming it, not left out.
        const typo = { name: "typo", order: 2, ackLevel: 1, replicationFactor: 1, memoryBytes: 1 << 20 } as const
        expect((yield* Effect.flip(topics.create(typo as unknown as Parameters<typeof topics.create>[0]))).message)
          .toBe(
            `invalid topic: topic typo: memoryBytes: is unexpected, expected: "name" | "order" | "ackLevel" | "replicationFactor" | "diskRetention" | "memory" | "writers" | "maxMessageBytes" | "retention"`
          )
        // A memory too small for every writer's lane of 8 KiB, or a message its lanes cannot hold, is refused as such.
        const tiny = yield* Effect.flip(
          topics.create({ name: "tiny", order: 2, ackLevel: 1, replicationFactor: 1, memory: 16 << 10 })
        )
        expect(tiny).toMatchObject({ _tag: "InvalidTopicSpec" })
        expect(tiny.message).toContain("gives each of 4 writer lanes less than 8KiB: give it at least 32KiB")
        const big = yield* Effect.flip(
          topics.create({
            name: "big",
            order: 2,
            ackLevel: 1,
            replicationFactor: 1,
            memory: 64 << 10,
            maxMessageBytes: 32 << 10
          })
        )
        expect(big).toMatchObject({ _tag: "InvalidTopicSpec" })
        expect(big.message).toContain("a message of 32768 bytes needs lanes of at least 128KiB")
        // A lane larger than any extent the heap can give (however empty) could never be had: refused
        // at the create, with advice that is taken.
        const heapBytes = directoryFor(smallConfig, TEST_TOPICS).heapBytes
        const largest = largestBlockBytes(heapBytes)
        const advised = (message: string) => {
          const size = /give it at most (\S+)$/.exec(message)?.[1]
          return size === undefined ? Number.NaN : Either.getOrThrow(parseSize(size))
        }
        const huge = yield* Effect.flip(
          topics.create({ name: "huge", order: 2, ackLevel: 1, replicationFactor: 1, memory: 8 * largest, writers: 4 })
        )
        expect(huge).toMatchObject({ _tag: "InvalidTopicSpec" })
        expect(huge.message).toContain(
          `a lane of ${showSize(2 * largest)}, more than the region's heap (${
            showSize(heapBytes)
          }, CXLOG_HEAP_BYTES) can ever give one object (${showSize(largest)}): give it at most`
        )
        const memory = advised(huge.message)
        expect(memory).toBeLessThanOrEqual(4 * largest)
        yield* topics.create({ name: "huge", order: 2, ackLevel: 1, replicationFactor: 1, memory, writers: 4 })
        // Lanes are taken as writers first write: four that the heap could not hold at once are a topic.
        yield* topics.create({
          name: "wide",
          order: 2,
          ackLevel: 1,
          replicationFactor: 1,
          memory: 2 * largest,
          writers: 4
        })
        yield* topics.delete("huge")
        yield* topics.delete("wide")
        // Over the region's batch limit no memory helps: the refusal names the largest message there is.
        const overLimit = yield* Effect.flip(
          topics.create({
            name: "over",
            order: 2,
            ackLevel: 1,
            replicationFactor: 1,
            maxMessageBytes: smallConfig.maxBatchBytes
          })
        )
        expect(overLimit).toMatchObject({ _tag: "InvalidTopicSpec" })
        expect(overLimit.message).toContain(
          `over the region's batch limit of ${smallConfig.maxBatchBytes} bytes (CXLOG_LOG_MAX_BATCH_BYTES): the largest message is ${
            smallConfig.maxBatchBytes - 16
          } bytes`
        )
        expect(
          (yield* topics.create({
            name: "small",
            order: 2,
            ackLevel: 1,
            replicationFactor: 1,
            memory: 64 << 10,
            writers: 1,
            maxMessageBytes: 20_000
          })).maxMessageBytes
        ).toBe(20_000)
        const beyond = yield* Effect.flip(
          topics.create({ name: "w", order: 2, ackLevel: 1, replicationFactor: 1, writers: smallConfig.maxBrokers + 1 })
        )
        expect(beyond.message).toContain(`writers ${smallConfig.maxBrokers + 1} must be a whole number from 1 to 4`)
      }))
  })
}

describe("a topic's memory against the heap (unworkableMemory)", () => {
  const KiB = 1024
  const MiB = 1024 * KiB
  const shape = (memoryBytes: number, writers: number, mainBytes: number) => ({
    memoryBytes,
    writers,
    mainBytes,
    laneBytes: memoryBytes / writers
  })
  it("takes a topic whose index and one lane fit, though all its lanes would not at once", () => {
    expect(unworkableMemory(shape(8 * MiB, 2, 256 * KiB), { largestExtentBytes: 8 * MiB, heapBytes: 5 * MiB }))
      .toBeUndefined()
  })
  it("refuses one whose index and one lane are more than the heap, advising memory whose lane fits beside it", () => {
    const heap = { largestExtentBytes: 4 * MiB, heapBytes: 4 * MiB + 128 * KiB }
    expect(unworkableMemory(shape(8 * MiB, 2, 256 * KiB), heap)).toBe(
      "memory 8MiB gives each of its 2 writers a lane of 4MiB, which with its index (256KiB) is more than the region's heap (4224KiB, CXLOG_HEAP_BYTES): give it at most 4MiB"
    )
    expect(unworkableMemory(shape(4 * MiB, 2, 256 * KiB), heap)).toBeUndefined()
    // Not even the smallest lane beside its index: no memory helps.
    expect(unworkableMemory(shape(64 * KiB, 2, 4 * MiB + 126 * KiB), heap)).toContain(
      "the heap has no room for its index and one lane: give the region a larger heap"
    )
  })
})

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

  for (const impl of implementations.slice(0, 2)) {
    it.scoped(`${impl.label}: a list follows creates and deletes, also past more changes than the directory's journal holds`, () =>
      Effect.gen(function*() {
        const { topics } = yield* impl.make()
        const spec = { order: 5, ackLevel: 1, replicationFactor: 1 } as const
        const names = () => Effect.map(topics.list, (list) => list.map((t) => `${t.name}/${t.generation}`))
        const a = yield* topics.create({ name: "a", ...spec })
        const b = yield* topics.create({ name: "b", ...spec })
        expect(yield* names()).toEqual([`a/${a.generation}`, `b/${b.generation}`])
        // 1 200 changes between two lists: the journal (1 024 records) no longer holds the first of them.
        for (let i = 0; i < 600; i++) {
          yield* topics.create({ name: "churn", ...spec })
          yield* topics.delete("churn")
        }
        yield* topics.delete("a")
        const c = yield* topics.create({ name: "c", ...spec })
        const again = yield* topics.create({ name: "a", ...spec })
        expect(yield* names()).toEqual([`b/${b.generation}`, `c/${c.generation}`, `a/${again.generation}`])
        // A few changes: read from the journal alone.
        yield* topics.delete("b")
        yield* topics.create({ name: "churn", ...spec })
        yield* topics.delete("churn")
        expect(yield* names()).toEqual([`c/${c.generation}`, `a/${again.generation}`])
        expect((yield* topics.list).find((t) => t.name === "a")).toEqual(yield* topics.lookup("a"))
      }))
  }

  it.scoped("a corrupt descriptor reads as no topic, never as garbage; looked up, it is not found saying why", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const { id } = yield* cluster.topics.create({ name: "x", order: 2, ackLevel: 1, replicationFactor: 1 })
      const { memory, area } = cluster.region!
      new DescriptorView(memory).setNameBytes(area.descriptor(id), 100_000)
      expect(yield* cluster.topics.list).toEqual([])
      const lost = yield* Effect.flip(cluster.topics.lookup("x"))
      expect(lost).toMatchObject({ _tag: "TopicNotFound", name: "x" })
      expect(lost.message).toBe(
        `topic "x" cannot be read: its descriptor (directory entry ${id}) is corrupt; deleting the topic frees its name and memory (what it held cannot be read)`
      )
      // Marked deleted with its entry still there (a delete under way) it is simply gone, not corrupt.
      const descriptors = new DescriptorView(memory)
      const state = descriptors.state(area.descriptor(id))
      descriptors.storeState(area.descriptor(id), DescriptorState.deleted)
      expect((yield* Effect.flip(cluster.topics.lookup("x"))).message).toBe(`unknown topic "x"`)
      descriptors.storeState(area.descriptor(id), state)
      // Its directory entry corrupt as well (a kind out of range): the entry is named, and no other topic is touched.
      yield* cluster.topics.create({ name: "y", order: 2, ackLevel: 1, replicationFactor: 1 })
      new EntryView(memory).setKind(area.directory.entry(id), 99)
      expect((yield* Effect.flip(cluster.topics.lookup("x"))).message).toBe(
        `topic "x" cannot be read: directory entry ${id} of its name's hash is corrupt (its fields out of range); ` +
          `deleting the topic frees its entry and memory (what it held cannot be read)`
      )
      expect((yield* cluster.topics.list).map((t) => t.name)).toEqual(["y"])
      // A name whose probe meets no corrupt entry is simply unknown.
      expect((yield* Effect.flip(cluster.topics.lookup("z"))).message).toBe(`unknown topic "z"`)
    }))

  it.scoped("a topic whose descriptor is corrupt is deleted all the same: its name and memory come back, no other topic touched", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const spec = { order: 2, ackLevel: 1, replicationFactor: 1 } as const
      const free = () => Effect.map(cluster.topics.overview, (o) => o.heap.freeBytes)
      const empty = yield* free()
      const { id } = yield* cluster.topics.create({ name: "x", ...spec })
      yield* cluster.topics.create({ name: "y", ...spec })
      const withBoth = yield* free()
      const { area, memory, writer } = cluster.region!
      new DescriptorView(memory).setNameBytes(area.descriptor(id), 100_000)
      // Its name stays taken while it is there: a create of it is refused, not made beside it.
      expect(yield* Effect.flip(cluster.topics.create({ name: "x", ...spec }))).toMatchObject({ _tag: "TopicExists" })
      yield* cluster.topics.delete("x")
      expect((yield* Effect.flip(cluster.topics.lookup("x"))).message).toBe(`unknown topic "x"`)
      expect((yield* cluster.topics.list).map((t) => t.name)).toEqual(["y"])
      // Its memory is freed once the writer reclaims it (no pin holds it).
      yield* writer.reclaim
      expect(yield* free()).toBeGreaterThan(withBoth)
      const again = yield* cluster.topics.create({ name: "x", ...spec })
      expect(yield* cluster.topics.lookup("x")).toMatchObject({ name: "x", generation: again.generation })
      yield* cluster.topics.delete("x")
      yield* cluster.topics.delete("y")
      yield* writer.reclaim
      expect(yield* free()).toBe(empty)
    }))

  it.scoped("a topic whose directory entry is corrupt and still says its name is deleted by it; one that does not say it is not", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const spec = { order: 2, ackLevel: 1, replicationFactor: 1 } as const
      const free = () => Effect.map(cluster.topics.overview, (o) => o.heap.freeBytes)
      const x = yield* cluster.topics.create({ name: "x", ...spec })
      const y = yield* cluster.topics.create({ name: "y", ...spec })
      const z = yield* cluster.topics.create({ name: "z", ...spec })
      const withAll = yield* free()
      const { area, memory, writer } = cluster.region!
      const entries = new EntryView(memory)
      // x's kind and z's name length as no build writes them: neither decodes into an object.
      entries.setKind(area.directory.entry(x.id), 99)
      const zNameBytes = entries.nameBytes(area.directory.entry(z.id))
      entries.setNameBytes(area.directory.entry(z.id), 100_000)
      // A list says x by the name its entry still says, with what deletes it; z's says no name: said by its slot, with
      // the memory it holds and what frees it.
      expect((yield* cluster.topics.overview).unreadable).toEqual([{
        name: "x",
        reason: `directory entry ${x.id} of its name's hash is corrupt (its fields out of range); deleting the topic ` +
          `frees its entry and memory (what it held cannot be read)`
      }, {
        name: "",
        slot: z.id,
        reason: `it holds 0.03 MiB of the region's memory, and no topic's name deletes it: a head taking the region ` +
          `over (a restart of the head) deletes it, and its memory comes back once no process that opened it holds it`
      }])
      yield* cluster.topics.delete("x")
      expect((yield* Effect.flip(cluster.topics.lookup("x"))).message).toBe(`unknown topic "x"`)
      // Its memory is what the page map says its entry owns: freed at the writer's reclaim, y's untouched.
      yield* writer.reclaim
      expect(yield* free()).toBeGreaterThan(withAll)
      expect(yield* cluster.topics.describe("y")).toMatchObject({ name: "y", generation: y.generation })
      // z's entry names no topic any more: it is not deleted, and its error says what holds and until when.
      const stuck = yield* Effect.flip(cluster.topics.delete("z"))
      expect(stuck.message).toBe(
        `topic "z" cannot be read: directory entry ${z.id} of its name's hash is corrupt (its fields out of range), ` +
          `its name too, so nothing says which topic it is and no delete frees it: a head taking the region over ` +
          `(a restart of the head) deletes it, and its memory comes back once no process that opened it holds it`
      )
      // Its name written back, it is z's again, and deleted as such.
      entries.setNameBytes(area.directory.entry(z.id), zNameBytes)
      yield* cluster.topics.delete("z")
      yield* cluster.topics.create({ name: "x", ...spec })
      yield* cluster.topics.delete("x")
      yield* writer.reclaim
      // As the error says: a writer taking over deletes an entry that names nothing, and frees its memory (no pin holds it).
      const w = yield* cluster.topics.create({ name: "w", ...spec })
      entries.setNameBytes(area.directory.entry(w.id), 100_000)
      const held = yield* free()
      const header = new DirectoryHeaderView(memory)
      const next = yield* writerOver(memory, area.directory, header.writerEpoch(area.directory.header) + 1)
      yield* next.shape.reclaim
      expect(yield* free()).toBeGreaterThan(held)
      // Deleted: its name's probe meets it no more.
      expect((yield* Effect.flip(cluster.topics.lookup("w"))).message).toBe(`unknown topic "w"`)
    }))
})
