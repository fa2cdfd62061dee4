/**
 * drainOnStop over the fakes, in one process: a writer member and a reader member of group
 * `g` (the memory coordinator and channels over one in-memory Rings), each in a scope of its own,
 * both stopped together (their scopes closed by interruption, as runMain closes a program's on
 * SIGTERM). The writer's stop publishes its last values after a pause: with the group, the reader
 * handles them all before its scope goes on closing; without one (the control) its consumer takes
 * what is there at its stop and ends first. A scope that closes otherwise than by interruption
 * (a failure) does not fence.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, FiberId, Scope } from "effect"
import * as CoordinatorMemoryLayers from "../../src/layers/control/CoordinatorMemory.js"
import * as RingsMemoryLayers from "../../src/layers/control/RingsMemory.js"
import { channelDefaults, makeChannels } from "../../src/layers/ipc/ChannelEngine.js"
import { drainConsumer, drainOnStop } from "../../src/layers/ipc/DrainOnStop.js"
import { oneBrokerLogConfig } from "../../src/layers/log/LogRegion.js"
import { makeMemoryStore } from "../../src/layers/log/MemoryStore.js"
import * as TopicsMemoryLayers from "../../src/layers/log/TopicsMemory.js"
import {
  makeMemory as makeDirectoryMemory,
  makeMemoryDirectory,
  makeWriterMemory
} from "../../src/layers/region/DirectoryMemory.js"
import { defaultControlConfig, regionBytes, type RegionConfig, resolve } from "../../src/layers/RegionLayout.js"
import { Coordinator } from "../../src/services/control/Coordinator.js"
import { Rings } from "../../src/services/control/Rings.js"
import { Tick } from "../fixtures/channel-tick.js"

const config: RegionConfig = {
  directory: { entrySlots: 16, holderLines: 4, heapBytes: 4 << 20 },
  control: { ...defaultControlConfig, maxProcesses: 8, appRings: 2, appRingBytes: 64 << 10 },
  log: oneBrokerLogConfig
}
/**
 * Published before the stop, and handled at once, so the reader's backlog takes it no time: with no
 * group its consumer has ended LAST_AFTER_MS before the writer's last values, however loaded the
 * machine (a handler that slept per value put that end past them on a busy runner).
 */
const BEFORE = 40
const LAST = 20
const LAST_AFTER_MS = 1_000

/**
 * The writer and the reader, set up, and their stop: what the writer published and the reader
 * handled once both scopes have closed with `exit`.
 */
const scenario = (group: string | undefined, exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function*() {
    const layout = yield* resolve(config, regionBytes(config))
    const rings = yield* RingsMemoryLayers.makeMemory
    const hub = yield* CoordinatorMemoryLayers.makeMemoryHub(
      layout,
      yield* TopicsMemoryLayers.makeMemory(makeMemoryStore(config.log))
    ).pipe(Effect.provideService(Rings, rings))
    const store = makeMemoryDirectory(config.directory)
    const directoryWriter = yield* makeWriterMemory(store, { epoch: 1 }).pipe(Effect.orDie)
    const channels = makeChannels(
      yield* makeDirectoryMemory(store),
      directoryWriter.create,
      rings,
      yield* channelDefaults,
      (_, entry) => directoryWriter.remove(entry)
    )
    const shape = { writerSlots: 1, readerSlots: 1, ringBytes: 4096, subscriberBuffer: 1 }
    /** A member of its own scope running `setUp` in it. */
    const member = <A, E>(setUp: Effect.Effect<A, E, Coordinator | Scope.Scope>) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const coordinator = yield* Scope.extend(CoordinatorMemoryLayers.makeMemoryClient(hub, "worker"), scope)
        yield* setUp.pipe(Effect.provideService(Coordinator, coordinator), Scope.extend(scope))
        return scope
      })
    let handled = 0
    let published = 0
    const reader = yield* member(Effect.gen(function*() {
      const ticks = yield* channels.open("ticks", Tick, shape)
      const subscription = yield* ticks.subscribe
      const handle = Effect.sync(() => handled++)
      yield* drainOnStop({
        channels: [ticks],
        consumers: [drainConsumer(subscription, () => handle)],
        ...(group === undefined ? {} : { group })
      })
    }))
    const writer = yield* member(Effect.gen(function*() {
      const ticks = yield* channels.open("ticks", Tick, shape)
      const publisher = yield* ticks.publisher
      const publish = (count: number) =>
        publisher.publishAll(Array.from({ length: count }, () => ({ source: "w", n: published++ })))
      yield* drainOnStop({ channels: [ticks], ...(group === undefined ? {} : { group }) })
      // Its stop's own work, before its arrival: a pause, then its last values.
      yield* Effect.addFinalizer(() => Effect.sleep(LAST_AFTER_MS).pipe(Effect.zipRight(Effect.orDie(publish(LAST)))))
      yield* publish(BEFORE)
    }))
    yield* Effect.all([Scope.close(writer, exit), Scope.close(reader, exit)], {
      concurrency: "unbounded",
      discard: true
    })
    return { published, handled }
  })

const stopped = Exit.interrupt(FiberId.none)

describe("drainOnStop over the fakes", () => {
  it.scopedLive(
    "stopped together, the reader handles every value the writer published, its last ones included",
    () =>
      Effect.gen(function*() {
        const { handled, published } = yield* scenario("g", stopped)
        expect(published).toBe(BEFORE + LAST)
        expect(handled).toBe(published)
      }),
    30_000
  )

  it.scopedLive(
    "the control, without a group: the reader's consumer ends before the writer's last values",
    () =>
      Effect.gen(function*() {
        const { handled, published } = yield* scenario(undefined, stopped)
        expect(published).toBe(BEFORE + LAST)
        // What was there at its stop, handled; the writer's last values came after its consumer ended.
        expect(handled).toBe(BEFORE)
      }),
    30_000
  )

  it.scopedLive(
    "a scope closed by a failure does not fence: the same as without a group",
    () =>
      Effect.gen(function*() {
        const { handled } = yield* scenario("g", Exit.fail("crashed"))
        expect(handled).toBe(BEFORE)
      }),
    30_000
  )
})
