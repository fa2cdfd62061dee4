/**
 * A topic's writer lanes: a topic costs its records until a writer first writes it, and each
 * writer's first append gets it a lane (from the head, over a region); a lane the heap has no room
 * for refuses the batch naming the heap; lanes go with their topic; a writer slot's next owner
 * carries on in its lane; with no head to answer, the append fails naming the head. The contract
 * runs over the region (the test process answers as the head) and over the store.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as AppenderLayers from "../../src/layers/log/Appender.js"
import { defaultTopicShape, type LogConfig } from "../../src/layers/log/Layout.js"
import { logRegionLayout } from "../../src/layers/log/LogRegion.js"
import { storeHeldBytes } from "../../src/layers/log/MemoryStore.js"
import { laneCount, serveLanes } from "../../src/layers/log/TopicLanes.js"
import { topicPins } from "../../src/layers/log/TopicPins.js"
import * as TopicsLayers from "../../src/layers/log/Topics.js"
import type { TopicShape } from "../../src/layers/log/TopicShape.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import * as DirectoryLayers from "../../src/layers/region/Directory.js"
import { heapBlocks, usageOf } from "../../src/layers/region/DirectorySpace.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { DirectoryWriter } from "../../src/services/region/Directory.js"
import { Doorbell, type DoorbellShape } from "../../src/services/region/Doorbell.js"
import {
  appendSimple,
  bell,
  drain,
  fillTopics,
  implementations,
  LOG_BASE,
  type LogCluster,
  readAll,
  smallConfig,
  TEST_TOPICS
} from "../fixtures/log-harness.js"
import { until } from "../helpers/ServeProcess.js"

const shape = defaultTopicShape(smallConfig) as TopicShape
const spec = (name: string, writers?: number) => ({
  name,
  order: 5 as const,
  ackLevel: 1 as const,
  replicationFactor: 1,
  ...(writers === undefined ? {} : { writers })
})

/** What the topics take of the heap: the region's page map, or the store's tally. */
const heapUsed = (cluster: LogCluster): number => {
  if (cluster.store !== undefined) return storeHeldBytes(cluster.store)
  const { memory, area } = cluster.region!
  return usageOf(area.directory, heapBlocks(memory, area.directory), 0).usedBytes
}

for (const impl of implementations) {
  describe(`topic lanes: ${impl.label}`, () => {
    it.scoped("a topic costs its records until written; each writer's first append gets it a lane, beyond its writers too", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const one = yield* cluster.topics.create(spec("solo", 1))
        // Memory for one writer: its lane is all of it.
        expect(heapUsed(cluster)).toBe(shape.mainBytes)
        const a = yield* cluster.appender(0)
        yield* appendSimple(a, "solo", 1, 0, 0)
        const lane = one.memory!
        expect(heapUsed(cluster)).toBe(shape.mainBytes + lane)
        yield* appendSimple(a, "solo", 1, 0, 1)
        expect(heapUsed(cluster)).toBe(shape.mainBytes + lane)
        // A second writer of a topic sized for one: a lane of the same size while the heap has room.
        const b = yield* cluster.appender(1)
        yield* appendSimple(b, "solo", 2, 0, 0)
        expect(heapUsed(cluster)).toBe(shape.mainBytes + 2 * lane)
        if (cluster.region !== undefined) {
          expect(laneCount(cluster.region.memory, cluster.region.area, one.id)).toBe(2)
        }
        yield* drain(yield* cluster.sequencer())
        expect((yield* readAll(cluster.reader, "solo")).map((x) => [x.clientId, x.batchSeq])).toEqual([[1, 0], [1, 1], [
          2,
          0
        ]])
      }))

    it.scoped("a lane the heap has no room for refuses its batch naming the heap; what was appended stays", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        // Three topics with every lane written, and two more: room for three of the next topic's four lanes.
        const appenders = yield* fillTopics(
          cluster,
          smallConfig,
          Array.from({ length: TEST_TOPICS - 1 }, (_, i) => `full${i}`)
        )
        yield* cluster.topics.create(spec("last"))
        yield* cluster.topics.create(spec("empty"))
        const refused: Array<unknown> = []
        for (const [b, appender] of appenders.entries()) {
          const outcome = yield* Effect.either(appendSimple(appender, "last", 7, b, 0))
          if (outcome._tag === "Left") refused.push(outcome.left)
        }
        expect(refused).toHaveLength(1)
        // Marked as the heap's refusal, not the batch's: a broker ends that session region-full, the connection goes on.
        expect(refused[0]).toMatchObject({ _tag: "BatchRejected", regionFull: true })
        const { message } = refused[0] as Error
        expect(message).toContain("has no lane in topic last")
        expect(message).toContain("no free extent")
        expect(message).toContain("CXLOG_HEAP_BYTES")
        yield* drain(yield* cluster.sequencer())
        expect(yield* readAll(cluster.reader, "last")).toHaveLength(TEST_TOPICS - 1)
      }))

    it.scoped("lanes go with their topic: once deleted and let go, the heap is as before it", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const before = heapUsed(cluster)
        const appenders = yield* fillTopics(cluster, smallConfig, ["gone"])
        expect(heapUsed(cluster)).toBe(before + shape.mainBytes + smallConfig.topicWriters * shape.laneBytes)
        yield* cluster.topics.delete("gone")
        for (const appender of appenders) yield* Effect.flip(appendSimple(appender, "gone", 99, 9, 1))
        if (cluster.region !== undefined) {
          topicPins(cluster.region.memory, cluster.region.area).tick()
          yield* cluster.region.writer.reclaim
        }
        expect(heapUsed(cluster)).toBe(before)
      }))
  })
}

/** A region whose topic "t" is written here, but where nobody answers lane requests, and an appender over it. */
const headlessAppender = (name: string, timeoutMs: number) =>
  Effect.gen(function*() {
    const config: LogConfig = smallConfig
    const layout = logRegionLayout(LOG_BASE, config, { entrySlots: 16, holderLines: 4, heapBytes: 16 << 20 })
    const region = yield* CxlMemoryMemoryLayers.makeMemory({
      name,
      size: layout.bytes,
      mode: "create",
      params: layout.params
    })
    const writer = yield* DirectoryLayers.makeWriter({ area: layout.area.directory, epoch: 1, reclaimEveryMs: 0 })
      .pipe(Effect.provideService(CxlMemory, region))
    const topics = yield* TopicsLayers.make(layout.area).pipe(
      Effect.provideService(CxlMemory, region),
      Effect.provideService(DirectoryWriter, writer)
    )
    const { id } = yield* topics.create(spec("t"))
    const doorbell = yield* DoorbellLayers.make({ offset: bell(0), spinMicros: 0 }).pipe(
      Effect.provideService(CxlMemory, region)
    )
    const appender = yield* AppenderLayers.make(layout.area, { brokerId: 0, timeoutMs }).pipe(
      Effect.provideService(CxlMemory, region),
      Effect.provideService(Doorbell, doorbell)
    )
    return { appender, id, region, area: layout.area, writer }
  })

describe("topic lanes in the region", () => {
  it.scoped("a writer slot's next owner finds its lane and carries on in it", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const { id } = yield* cluster.topics.create(spec("kept"))
      yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* cluster.appender(2)
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(first, "kept", 5, 0, seq)
      }))
      const used = heapUsed(cluster)
      const next = yield* cluster.appender(2)
      for (let seq = 3; seq < 5; seq++) yield* appendSimple(next, "kept", 5, 0, seq)
      expect(heapUsed(cluster)).toBe(used)
      expect(laneCount(cluster.region!.memory, cluster.region!.area, id)).toBe(1)
      yield* drain(yield* cluster.sequencer())
      expect((yield* readAll(cluster.reader, "kept")).map((x) => x.batchSeq)).toEqual([0, 1, 2, 3, 4])
    }))

  it.scoped("with no head to answer, a first append fails after its timeout naming the head; nothing is appended", () =>
    Effect.gen(function*() {
      const { appender, id, region, area } = yield* headlessAppender("no-head", 200)
      const refused = yield* Effect.flip(appendSimple(appender, "t", 1, 0, 0))
      expect(refused).toMatchObject({ _tag: "BatchRejected", topic: "t" })
      expect(refused.message).toContain("the head did not answer its request for one within 200 ms")
      expect(laneCount(region, area, id)).toBe(0)
    }))

  it.scopedLive("the head's lane server looks at requests nobody rang for on the cadence's grid, not at a phase of its own", () =>
    Effect.gen(function*() {
      const { area, region, writer } = yield* headlessAppender("lane-grid", 200)
      const doorbell = yield* DoorbellLayers.make({ offset: bell(1), spinMicros: 0 }).pipe(
        Effect.provideService(CxlMemory, region)
      )
      // When each of its waits ends unrung: the moment it was made plus its bound.
      const ends: Array<number> = []
      const recording: DoorbellShape = {
        ...doorbell,
        await: (condition, timeoutMs) =>
          Effect.suspend(() => {
            ends.push(Date.now() + timeoutMs)
            return doorbell.await(condition, timeoutMs)
          })
      }
      yield* serveLanes(region, area, writer, recording, () => undefined)
      yield* until(() => ends.length >= 2, 10_000, () => `two waits (seen ${ends.length})`, 10)
      // Each at a whole second (within what may pass between the two clock reads: a GC pause at most).
      for (const end of ends) expect(Math.min(end % 1_000, 1_000 - (end % 1_000))).toBeLessThanOrEqual(10)
    }))

  it.scoped("an append interrupted while it waits for its lane lets its topic go", () =>
    Effect.gen(function*() {
      const { appender, region, area } = yield* headlessAppender("interrupted-lane", 60_000)
      const pins = topicPins(region, area)
      // Nobody answers the lane request: the append waits holding its topic until interrupted.
      const append = yield* Effect.fork(appendSimple(appender, "t", 1, 0, 0))
      while (pins.held() === 0) yield* Effect.yieldNow()
      yield* Fiber.interrupt(append)
      // A hold kept here would tick against the mapping after it closed.
      expect(pins.held()).toBe(0)
    }))
})
