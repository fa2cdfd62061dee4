/**
 * Channels in barriers: a fence whose streams name a channel completes only once the group's
 * subscribers of it have been handed what its writers had written at their arrival. Over the
 * in-memory coordinator and channels sharing one Rings, and over a live region (this process
 * the head, the coordinator answering its members over RPC).
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Ref, Scope } from "effect"
import * as CoordinatorMemoryLayers from "../../src/layers/control/CoordinatorMemory.js"
import * as RingsMemoryLayers from "../../src/layers/control/RingsMemory.js"
import { channelDefaults, makeChannels } from "../../src/layers/ipc/ChannelEngine.js"
import { channelStream } from "../../src/layers/ipc/ChannelFence.js"
import { oneBrokerLogConfig } from "../../src/layers/log/LogRegion.js"
import { makeMemoryStore } from "../../src/layers/log/MemoryStore.js"
import * as TopicsMemoryLayers from "../../src/layers/log/TopicsMemory.js"
import {
  makeMemory as makeDirectoryMemory,
  makeMemoryDirectory,
  makeWriterMemory
} from "../../src/layers/region/DirectoryMemory.js"
import { defaultControlConfig, regionBytes, type RegionConfig, resolve } from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import { Coordinator, type CoordinatorShape } from "../../src/services/control/Coordinator.js"
import { Rings } from "../../src/services/control/Rings.js"
import { Channels, type ChannelsShape } from "../../src/services/ipc/Channels.js"
import { channelHead } from "../fixtures/channel-head.js"
import { Tick } from "../fixtures/channel-tick.js"
import { uniqueRegion } from "../helpers/Processes.js"

const config: RegionConfig = {
  directory: { entrySlots: 16, holderLines: 4, heapBytes: 4 << 20 },
  control: { ...defaultControlConfig, maxProcesses: 8, appRings: 2, appRingBytes: 64 << 10 },
  log: oneBrokerLogConfig
}

const VALUES = 20
const TAKE_MS = 10_000

interface Cluster {
  readonly members: ReadonlyArray<CoordinatorShape>
  readonly channels: ChannelsShape
}

/** The fakes: the memory coordinator and channels over one in-memory Rings. */
const memory: Effect.Effect<Cluster, unknown, Scope.Scope> = Effect.gen(function*() {
  const layout = yield* resolve(config, regionBytes(config))
  const rings = yield* RingsMemoryLayers.makeMemory
  const hub = yield* CoordinatorMemoryLayers.makeMemoryHub(
    layout,
    yield* TopicsMemoryLayers.makeMemory(makeMemoryStore(config.log))
  ).pipe(Effect.provideService(Rings, rings))
  const scope = yield* Effect.scope
  const members = yield* Effect.forEach(
    [1, 2],
    () => Scope.extend(CoordinatorMemoryLayers.makeMemoryClient(hub, "worker"), scope)
  )
  const store = makeMemoryDirectory(config.directory)
  const writer = yield* makeWriterMemory(store, { epoch: 1 }).pipe(Effect.orDie)
  return {
    members,
    channels: makeChannels(
      yield* makeDirectoryMemory(store),
      writer.create,
      rings,
      yield* channelDefaults,
      (_, entry) => writer.remove(entry)
    )
  }
})

/** A live region: this process the head (the coordinator over RPC, the directory's writer), two members as its clients. */
const live: Effect.Effect<Cluster, unknown, Scope.Scope> = Effect.gen(function*() {
  const name = yield* uniqueRegion("channel-fence")
  const { channels, region } = yield* channelHead(name, config)
  const members = yield* Effect.forEach([1, 2], () =>
    Layer.build(
      Roles.coordinatorClient().pipe(
        Layer.provideMerge(Roles.controlTransport),
        Layer.provideMerge(Roles.processSlot("worker")),
        Layer.provide(Layer.succeedContext(region))
      )
    ).pipe(Effect.map((context) => Context.get(context, Coordinator))))
  return { members, channels: Context.get(channels, Channels) }
})

/** Two members of group `fence` and a channel over the same rings, with one subscriber that takes a value every 5 ms. */
const setUp = (cluster: Effect.Effect<Cluster, unknown, Scope.Scope>) =>
  Effect.gen(function*() {
    const { channels, members: [writerMember, readerMember] } = yield* cluster
    for (const member of [writerMember!, readerMember!]) yield* member.joinGroup("fence")
    // One value in the subscription's buffer at most: a frame is handed on only as the one before it is taken.
    const channel = yield* channels.open("ticks", Tick, {
      writerSlots: 2,
      readerSlots: 2,
      ringBytes: 8192,
      subscriberBuffer: 1
    })
    const subscription = yield* channel.subscribe
    const taken = yield* Ref.make(0)
    // The scenario's pace: a slow subscriber, 5 ms a value.
    yield* subscription.take(TAKE_MS).pipe(
      Effect.zipRight(Ref.update(taken, (n) => n + 1)),
      Effect.zipRight(Effect.sleep("5 millis")),
      Effect.forever,
      Effect.forkScoped
    )
    const publisher = yield* channel.publisher
    return { writerMember: writerMember!, readerMember: readerMember!, channel, publisher, taken }
  })

const contract = (label: string, cluster: Effect.Effect<Cluster, unknown, Scope.Scope>) =>
  describe(`Channels in barriers: ${label}`, () => {
    it.scopedLive("a delivery fence over the channel waits for its slow subscriber to be handed every value written before it", () =>
      Effect.gen(function*() {
        const { channel, publisher, readerMember, taken, writerMember } = yield* setUp(cluster)
        yield* publisher.publishAll(Array.from({ length: VALUES }, (_, n) => ({ source: "w", n })))
        const options = { mode: "delivery-fence", group: "fence", streams: [channelStream(channel)] } as const
        const writerSide = yield* Effect.fork(writerMember.barrier("f", options))
        const released = yield* readerMember.barrier("f", options)
        // Handed every value: taken, or the one in its buffer, or the one being handed on.
        expect(yield* Ref.get(taken)).toBeGreaterThanOrEqual(VALUES - 2)
        expect((yield* Fiber.join(writerSide)).round).toBe(released.round)
        expect(released.drainedBytes).toBeGreaterThan(0)
      }))

    it.scopedLive("a processing fence over the channel: every value written before it is in the subscription", () =>
      Effect.gen(function*() {
        const { channel, publisher, readerMember, taken, writerMember } = yield* setUp(cluster)
        yield* publisher.publishAll(Array.from({ length: VALUES }, (_, n) => ({ source: "w", n })))
        const options = { mode: "processing-fence", group: "fence", streams: [channelStream(channel)] } as const
        const writerSide = yield* Effect.fork(writerMember.barrier("p", options))
        yield* readerMember.barrier("p", options)
        yield* Fiber.join(writerSide)
        // Processed: taken, or the one value its buffer holds.
        expect(yield* Ref.get(taken)).toBeGreaterThanOrEqual(VALUES - 1)
      }))

    it.scopedLive("the same fence without the channel's streams does not wait for it", () =>
      Effect.gen(function*() {
        const { publisher, readerMember, taken, writerMember } = yield* setUp(cluster)
        yield* publisher.publishAll(Array.from({ length: VALUES }, (_, n) => ({ source: "w", n })))
        const options = { mode: "delivery-fence", group: "fence" } as const
        const writerSide = yield* Effect.fork(writerMember.barrier("n", options))
        yield* readerMember.barrier("n", options)
        yield* Fiber.join(writerSide)
        expect(yield* Ref.get(taken)).toBeLessThan(VALUES - 2)
      }))
  })

contract("the fakes", memory)
contract("a live region", live)
