/**
 * DiskCopies (the head's copies on disk of replication factor 2 topics), over the in-process disk:
 * a removal stops the topic's writers before its streams go, and both streams go; the removed
 * generation's writers are never started again while a new generation's are; a disk that
 * refuses the removal is `TopicNotDeletable`, and the topic's writers may start again. A create
 * waiting for its topic's writer wakes the tier and resolves once the writer holds the topic.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option } from "effect"
import * as DiskCopiesLayers from "../../src/layers/log/durable/DiskCopies.js"
import { streamOf } from "../../src/layers/log/durable/DurableOrder.js"
import { stateStreamOf } from "../../src/layers/log/durable/DurableTopicState.js"
import { crash, makeMemoryDisk, restart } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import { DiskCopies } from "../../src/services/log/DiskCopies.js"
import { Segments } from "../../src/services/log/Segments.js"
import type { TopicInfo } from "../../src/services/log/Topics.js"

const topic = (generation: number): TopicInfo => ({
  name: "d",
  order: 5,
  ackLevel: 2,
  replicationFactor: 2,
  id: 3,
  generation
})

const withCopies = (disk = makeMemoryDisk()) => {
  const segments = SegmentsMemoryLayers.layerMemory(disk)
  return { disk, layer: Layer.merge(DiskCopiesLayers.layer.pipe(Layer.provide(segments)), segments) }
}

/** Both of the topic's streams, with a record each. */
const writeStreams = Effect.gen(function*() {
  const segments = yield* Segments
  for (const stream of [streamOf("d"), stateStreamOf("d")]) {
    yield* Effect.scoped(Effect.flatMap(segments.open(stream), (log) => log.append(new Uint8Array(8), 1_000)))
  }
})

describe("DiskCopies over the in-process disk", () => {
  it.scopedLive("a removal stops the writers first, then both streams go; that generation never starts again", () => {
    const { layer } = withCopies()
    return Effect.gen(function*() {
      const copies = yield* DiskCopies
      const segments = yield* Segments
      yield* writeStreams
      const seen: Array<string> = []
      const stop = Effect.orDie(Effect.flatMap(segments.streams(), (streams) =>
        Effect.sync(() => {
          seen.push(`stopped with ${streams.join(" ")}`)
        })))
      expect(yield* copies.persisting(topic(1), stop)).toBe(true)
      yield* copies.remove(topic(1))
      expect(seen).toEqual(["stopped with state-d topic-d"])
      expect(yield* segments.streams()).toEqual([])
      // The deletion goes on: the tier's next look must not start that generation's writers again.
      expect(yield* copies.persisting(topic(1), Effect.void)).toBe(false)
      // The name's next topic is another generation.
      expect(yield* copies.persisting(topic(2), Effect.void)).toBe(true)
      yield* copies.gone(topic(1))
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("a disk that refuses the removal is TopicNotDeletable, and the topic's writers may start again", () => {
    const { disk, layer } = withCopies()
    return Effect.gen(function*() {
      const copies = yield* DiskCopies
      yield* writeStreams
      expect(yield* copies.persisting(topic(1), Effect.void)).toBe(true)
      crash(disk)
      const refused = yield* Effect.flip(copies.remove(topic(1)))
      expect(refused).toMatchObject({ _tag: "TopicNotDeletable", name: "d" })
      expect(refused.message).toContain("copy on disk could not be removed")
      restart(disk)
      expect(yield* copies.persisting(topic(1), Effect.void)).toBe(true)
      expect(yield* (yield* Segments).streams()).toEqual(["state-d", "topic-d"])
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("a create waiting for its writer wakes the tier's pause, and resolves once the writer holds the topic", () => {
    const { layer } = withCopies()
    return Effect.gen(function*() {
      const copies = yield* DiskCopies
      // The tier's pause (after its first look): a long one, ended by the create's wake, not by its time.
      const paused = yield* Effect.fork(copies.pause(60_000))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(copies.awaitWriting(topic(1), 60_000))
      yield* Fiber.join(paused)
      expect(yield* Fiber.poll(waiting)).toEqual(Option.none())
      yield* copies.writing(topic(1))
      expect(yield* Fiber.join(waiting)).toBe(true)
      // Another generation is another copy: its own writer, not yet started; bounded.
      expect(yield* copies.awaitWriting(topic(2), 50)).toBe(false)
      expect(yield* copies.awaitWriting(topic(1), 50)).toBe(true)
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("before the tier's first look (the head starting, which waits for its topics' writers itself), a create does not wait", () => {
    const { layer } = withCopies()
    return Effect.gen(function*() {
      const copies = yield* DiskCopies
      expect(yield* copies.awaitWriting(topic(1), 60_000)).toBe(true)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a head without its data directory removes nothing: TopicNotDeletable naming --data-dir", () =>
    Effect.gen(function*() {
      const copies = yield* DiskCopies
      const refused = yield* Effect.flip(copies.remove(topic(1)))
      expect(refused).toMatchObject({ _tag: "TopicNotDeletable", name: "d" })
      expect(refused.message).toContain("--data-dir")
      expect(yield* copies.persisting(topic(1), Effect.void)).toBe(false)
    }).pipe(Effect.provide(DiskCopiesLayers.layerWithoutDataDir)))
})
