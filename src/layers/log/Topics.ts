/**
 * Topics layers: `layer` keeps the topic table in the region's log area; `layerMemory` in
 * an in-process store (see LogMemory.ts). Also the table readers every region layer uses
 * to resolve a topic name.
 */
import { Effect, Layer, Schema } from "effect"
import { CxlMemory, type CxlMemoryShape } from "../../services/region/CxlMemory.js"
import {
  InvalidTopicSpec,
  ReplicationUnavailable,
  TopicExists,
  type TopicInfo,
  TopicNotFound,
  Topics,
  type TopicsShape,
  TopicSpec,
  TopicTableFull
} from "../../services/log/Topics.js"
import type { LogArea } from "./Layout.js"
import { makeMemoryTopic, type MemoryLogStore } from "./MemoryStore.js"
import { Descriptor, DescriptorState } from "./Records.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const ORDERS = new Set([0, 2, 4, 5])

/** The ready topic at table index `t`, or undefined; a descriptor that fails its checks reads as absent. */
export const readTopic = (region: CxlMemoryShape, area: LogArea, t: number): TopicInfo | undefined => {
  const at = area.descriptor(t)
  region.invalidate(at, 128)
  if (Atomics.load(region.i32, (at + Descriptor.state) / 4) !== DescriptorState.ready) return undefined
  const order = region.i32[(at + Descriptor.order) / 4]!
  const ackLevel = region.i32[(at + Descriptor.ackLevel) / 4]!
  const replicationFactor = region.i32[(at + Descriptor.replicationFactor) / 4]!
  const nameBytes = region.i32[(at + Descriptor.nameBytes) / 4]!
  if (!ORDERS.has(order) || ackLevel < 0 || ackLevel > 2 || replicationFactor < 1 || nameBytes < 1 || nameBytes > Descriptor.maxNameBytes) {
    return undefined
  }
  const name = decoder.decode(region.bytes.subarray(at + Descriptor.name, at + Descriptor.name + nameBytes))
  return { id: t, name, order: order as TopicInfo["order"], ackLevel: ackLevel as TopicInfo["ackLevel"], replicationFactor }
}

export const listTopics = (region: CxlMemoryShape, area: LogArea): ReadonlyArray<TopicInfo> => {
  const topics: Array<TopicInfo> = []
  for (let t = 0; t < area.config.maxTopics; t++) {
    const topic = readTopic(region, area, t)
    if (topic !== undefined) topics.push(topic)
  }
  return topics
}

/** Resolves names to topics, caching hits (topics are never deleted or renamed). */
export const topicResolver = (region: CxlMemoryShape, area: LogArea) => {
  const cache = new Map<string, TopicInfo>()
  return (name: string): Effect.Effect<TopicInfo, TopicNotFound> =>
    Effect.suspend(() => {
      const cached = cache.get(name)
      if (cached !== undefined) return Effect.succeed(cached)
      const found = listTopics(region, area).find((t) => t.name === name)
      if (found === undefined) return Effect.fail(new TopicNotFound({ name }))
      cache.set(name, found)
      return Effect.succeed(found)
    })
}

const decodeSpec = (spec: TopicSpec) =>
  Schema.decodeUnknown(TopicSpec)(spec).pipe(Effect.mapError((e) => new InvalidTopicSpec({ reason: e.message })))

const checkReplication = (spec: TopicSpec) =>
  spec.replicationFactor > 1 ? Effect.fail(new ReplicationUnavailable({ name: spec.name, replicationFactor: spec.replicationFactor })) : Effect.void

export const make = (area: LogArea): Effect.Effect<TopicsShape, never, CxlMemory> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const create = (input: TopicSpec) =>
      Effect.gen(function*() {
        const spec = yield* decodeSpec(input)
        yield* checkReplication(spec)
        const name = encoder.encode(spec.name)
        if (listTopics(region, area).some((t) => t.name === spec.name)) return yield* new TopicExists({ name: spec.name })
        for (let t = 0; t < area.config.maxTopics; t++) {
          const at = area.descriptor(t)
          const state = (at + Descriptor.state) / 4
          if (Atomics.compareExchange(region.i32, state, DescriptorState.free, DescriptorState.creating) !== DescriptorState.free) continue
          region.i32[(at + Descriptor.order) / 4] = spec.order
          region.i32[(at + Descriptor.ackLevel) / 4] = spec.ackLevel
          region.i32[(at + Descriptor.replicationFactor) / 4] = spec.replicationFactor
          region.i32[(at + Descriptor.nameBytes) / 4] = name.length
          region.bytes.set(name, at + Descriptor.name)
          region.publish(at, 128)
          Atomics.store(region.i32, state, DescriptorState.ready)
          region.publish(at, 64)
          return { id: t, ...spec }
        }
        return yield* new TopicTableFull({ maxTopics: area.config.maxTopics })
      })
    const resolve = topicResolver(region, area)
    return { create, lookup: resolve, list: Effect.sync(() => listTopics(region, area)) }
  })

export const layer = (area: LogArea): Layer.Layer<Topics, never, CxlMemory> => Layer.effect(Topics, make(area))

export const makeMemory = (store: MemoryLogStore): TopicsShape => ({
  create: (input) =>
    Effect.gen(function*() {
      const spec = yield* decodeSpec(input)
      yield* checkReplication(spec)
      if (store.topics.some((t) => t.info.name === spec.name)) return yield* new TopicExists({ name: spec.name })
      if (store.topics.length >= store.config.maxTopics) return yield* new TopicTableFull({ maxTopics: store.config.maxTopics })
      const info = { id: store.topics.length, ...spec }
      store.topics.push(makeMemoryTopic(store.config, info))
      store.signal.notify()
      return info
    }),
  lookup: (name) =>
    Effect.suspend(() => {
      const topic = store.topics.find((t) => t.info.name === name)
      return topic === undefined ? Effect.fail(new TopicNotFound({ name })) : Effect.succeed(topic.info)
    }),
  list: Effect.sync(() => store.topics.map((t) => t.info))
})

export const layerMemory = (store: MemoryLogStore): Layer.Layer<Topics> => Layer.succeed(Topics, makeMemory(store))
