/**
 * The Coordinator contract, run against the live layer (a real region, RPC over rings, each
 * participant with its own process slot in this process) and the in-process fake.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as CoordinatorLayers from "../../src/layers/control/Coordinator.js"
import * as CoordinatorMemoryLayers from "../../src/layers/control/CoordinatorMemory.js"
import * as RingsMemoryLayers from "../../src/layers/control/RingsMemory.js"
import { oneBrokerLogConfig } from "../../src/layers/log/LogRegion.js"
import { makeMemoryStore } from "../../src/layers/log/MemoryStore.js"
import * as TopicsLayers from "../../src/layers/log/Topics.js"
import * as TopicsMemoryLayers from "../../src/layers/log/TopicsMemory.js"
import * as DirectoryLayers from "../../src/layers/region/Directory.js"
import {
  defaultControlConfig,
  type Layout,
  regionBytes,
  type RegionConfig,
  RegionLayout,
  resolve
} from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import { withCallerDeadline, withoutCallerDeadline } from "../../src/services/control/CallerDeadline.js"
import {
  type BarrierMode,
  type BarrierOptions,
  Coordinator,
  type CoordinatorShape,
  type Member
} from "../../src/services/control/Coordinator.js"
import { Rings, type RingsShape } from "../../src/services/control/Rings.js"
import type { TrimTarget } from "../../src/services/log/Topics.js"
import { TRIM_TARGETS_THAT_ARE_NONE } from "../fixtures/trim-targets.js"
import { uniqueRegion } from "../helpers/Processes.js"

const config: RegionConfig = {
  directory: { entrySlots: 16, holderLines: 4, heapBytes: 4 << 20 },
  control: { ...defaultControlConfig, maxProcesses: 8, appRings: 2, appRingBytes: 64 << 10 },
  log: oneBrokerLogConfig
}

interface Cluster {
  readonly layout: Layout
  readonly rings: RingsShape
  /** A new participant whose membership lasts as long as `scope`. */
  readonly participant: (role: Member["role"], scope: Scope.Scope) => Effect.Effect<CoordinatorShape, unknown>
}

const live: Effect.Effect<Cluster, unknown, Scope.Scope> = Effect.gen(function*() {
  const name = yield* uniqueRegion("coord-contract")
  const region = yield* Layer.build(Roles.createRegion({ name }, config))
  const head = yield* Layer.build(
    CoordinatorLayers.layerServer({ checkEveryMs: 50 }).pipe(
      // The head's Topics, writing the directory as the head does.
      Layer.provideMerge(Layer.unwrapEffect(Effect.map(RegionLayout, (l) =>
        TopicsLayers.layer(l.log).pipe(
          Layer.provide(DirectoryLayers.layerWriter({ area: l.directory, epoch: 1, reclaimEveryMs: 0 }))
        )))),
      Layer.provideMerge(Roles.controlTransport),
      Layer.provideMerge(Roles.processSlot("head", 0)),
      Layer.provide(Layer.succeedContext(region))
    )
  )
  return {
    layout: Context.get(region, RegionLayout),
    rings: Context.get(head, Rings),
    participant: (role, scope) =>
      Layer.buildWithScope(
        Roles.coordinatorClient().pipe(
          Layer.provideMerge(Roles.controlTransport),
          Layer.provideMerge(Roles.processSlot(role)),
          Layer.provide(Layer.succeedContext(region))
        ),
        scope
      ).pipe(Effect.map((context) => Context.get(context, Coordinator)))
  }
})

const memory: Effect.Effect<Cluster, unknown, Scope.Scope> = Effect.gen(function*() {
  const layout = yield* resolve(config, regionBytes(config))
  const rings = yield* RingsMemoryLayers.makeMemory
  const hub = yield* CoordinatorMemoryLayers.makeMemoryHub(
    layout,
    yield* TopicsMemoryLayers.makeMemory(makeMemoryStore(config.log))
  ).pipe(
    Effect.provideService(Rings, rings)
  )
  return {
    layout,
    rings,
    participant: (role, scope) => Scope.extend(CoordinatorMemoryLayers.makeMemoryClient(hub, role), scope)
  }
})

const joined = (cluster: Cluster, n: number, group: string) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const participants = yield* Effect.forEach(Array.from({ length: n }), () => cluster.participant("worker", scope))
    for (const p of participants) yield* p.joinGroup(group)
    return participants
  })

const contract = (label: string, makeCluster: Effect.Effect<Cluster, unknown, Scope.Scope>) =>
  describe(`Coordinator contract: ${label}`, () => {
    it.scopedLive("members join, are listed, and leave with their scope", () =>
      Effect.gen(function*() {
        const cluster = yield* makeCluster
        const scope = yield* Effect.scope
        const a = yield* cluster.participant("broker", scope)
        const bScope = yield* Scope.make()
        const b = yield* cluster.participant("client", bScope)
        expect((yield* a.members()).map((m) => m.slot).sort()).toEqual([a.self.slot, b.self.slot].sort())
        expect((yield* a.members("brokers")).map((m) => m.slot)).toEqual([a.self.slot])
        yield* Scope.close(bScope, Exit.void)
        expect((yield* a.members()).map((m) => m.slot)).toEqual([a.self.slot])
        expect(yield* Effect.flip(a.members("no-such-group"))).toMatchObject({ _tag: "UnknownGroup" })
      }))

    it.scopedLive("rendezvous: every participant gets the same round, and the name is reusable", () =>
      Effect.gen(function*() {
        const cluster = yield* makeCluster
        const ps = yield* joined(cluster, 3, "g")
        for (let round = 1; round <= 3; round++) {
          const results = yield* Effect.forEach(ps, (p) => p.barrier("r", { mode: "rendezvous", group: "g" }), {
            concurrency: "unbounded"
          })
          expect(new Set(results.map((r) => r.round))).toEqual(new Set([round]))
          expect(results[0]!.participants.slice().sort()).toEqual(ps.map((p) => p.self.slot).sort())
        }
      }))

    it.scopedLive("delivery fence: a slow reader has been handed every frame the writer wrote before arriving", () =>
      Effect.gen(function*() {
        const cluster = yield* makeCluster
        const [writerP, readerP] = yield* joined(cluster, 2, "fence")
        const writer = yield* cluster.rings.writer(cluster.layout.appRing(0))
        const reader = yield* cluster.rings.reader(cluster.layout.appRing(0))
        let invoked = 0
        yield* reader.consume(() => Effect.zipRight(Effect.sync(() => invoked++), Effect.sleep("5 millis"))).pipe(
          Effect.forkScoped
        )
        yield* writer.writeAll(Array.from({ length: 20 }, (_, i) => new Uint8Array([i])))
        const writerSide = yield* Effect.fork(writerP!.barrier("f", { mode: "delivery-fence", group: "fence" }))
        const released = yield* readerP!.barrier("f", { mode: "delivery-fence", group: "fence" })
        expect(invoked).toBe(20)
        expect((yield* Fiber.join(writerSide)).round).toBe(released.round)
        expect(released.drainedBytes).toBeGreaterThan(0)
      }))

    it.scopedLive("mixed modes, reserved names, strangers and timeouts are typed errors", () =>
      Effect.gen(function*() {
        const cluster = yield* makeCluster
        const [a, b] = yield* joined(cluster, 2, "e")
        const first = yield* Effect.fork(Effect.flip(a!.barrier("m", { mode: "rendezvous", group: "e" })))
        // A head start for a's arrival, which nothing outside the coordinator shows: in either order both fail alike.
        yield* Effect.sleep("20 millis")
        expect(yield* Effect.flip(b!.barrier("m", { mode: "delivery-fence", group: "e" }))).toMatchObject({
          _tag: "BarrierModeMismatch"
        })
        expect(yield* Fiber.join(first)).toMatchObject({ _tag: "BarrierModeMismatch" })
        expect(yield* Effect.flip(a!.barrier("cxlog.internal", { mode: "rendezvous", group: "e" }))).toMatchObject({
          _tag: "BarrierNameReserved"
        })
        expect(yield* Effect.flip(a!.barrier("x", { mode: "rendezvous", group: "nobody" }))).toMatchObject({
          _tag: "UnknownGroup"
        })
        expect(yield* Effect.flip(a!.barrier("t", { mode: "rendezvous", group: "e", timeoutMs: 100 }))).toMatchObject({
          _tag: "BarrierTimeout",
          notArrived: [b!.self.slot]
        })
      }))

    it.scopedLive("arguments no coordinator takes are InvalidBarrierOptions, before anything is sent: not CoordinatorUnavailable, which a caller retries", () =>
      Effect.gen(function*() {
        const cluster = yield* makeCluster
        const [a, b] = yield* joined(cluster, 2, "v")
        const refusals: ReadonlyArray<readonly [string, BarrierOptions, string]> = [
          ["tb", { mode: "rendezvous", group: "v", timeoutMs: 0 }, "timeoutMs 0 is not a number of milliseconds"],
          ["tb", { mode: "rendezvous", group: "v", timeoutMs: -1 }, "timeoutMs -1"],
          ["tb", { mode: "rendezvous", group: "v", timeoutMs: NaN }, "timeoutMs NaN"],
          ["tb", { mode: "rendezvous", group: "v", timeoutMs: 3_600_001 }, "at most 3600000"],
          ["tb", { mode: "sometimes" as BarrierMode, group: "v" }, `mode "sometimes" is none of rendezvous`],
          ["tb", { mode: "rendezvous", group: "" }, `group "" is no group's name`],
          ["", { mode: "rendezvous", group: "v" }, "a barrier's name has 1 to 200 characters"]
        ]
        for (const [name, options, reason] of refusals) {
          const refused = yield* Effect.flip(a!.barrier(name, options))
          expect(refused).toMatchObject({ _tag: "InvalidBarrierOptions", barrier: name })
          expect(refused.message).toContain(reason)
        }
        // None of them arrived: the barrier's first round is still to come, and both are in it.
        const rounds = yield* Effect.forEach([a!, b!], (p) => p.barrier("tb", { mode: "rendezvous", group: "v" }), {
          concurrency: "unbounded"
        })
        expect(rounds.map((r) => r.round)).toEqual([1, 1])
      }))

    it.scopedLive("createTopic goes through the coordinator; a second create of the name is TopicExists", () =>
      Effect.gen(function*() {
        const cluster = yield* makeCluster
        const p = yield* cluster.participant("client", yield* Effect.scope)
        const info = yield* p.createTopic({ name: "orders", order: 5, ackLevel: 1, replicationFactor: 1 })
        expect(info).toMatchObject({ name: "orders", order: 5, ackLevel: 1 })
        expect(yield* Effect.flip(p.createTopic({ name: "orders", order: 2, ackLevel: 1, replicationFactor: 1 })))
          .toMatchObject({
            _tag: "TopicExists"
          })
        expect(yield* Effect.flip(p.createTopic({ name: "replicated", order: 2, ackLevel: 2, replicationFactor: 3 })))
          .toMatchObject({
            _tag: "ReplicationUnavailable"
          })
        // A trim target that is none is the caller's mistake, named as such (not the coordinator's failure).
        // A name that is no string names no topic: refused as such, not as the coordinator's failure.
        expect(yield* Effect.flip(p.deleteTopic(42 as unknown as string))).toMatchObject({ _tag: "TopicNotFound" })
        expect(yield* Effect.flip(p.purgeTopic(42 as unknown as string))).toMatchObject({ _tag: "TopicNotFound" })
        for (const target of TRIM_TARGETS_THAT_ARE_NONE) {
          const refused = yield* Effect.flip(p.trimTopic("orders", target as TrimTarget))
          expect(refused).toMatchObject({ _tag: "TopicNotTrimmable", name: "orders" })
          expect(refused.message).toContain("a trim says where with one of beforeOffset, keepMessages or beforeTime")
        }
      }))

    it.scopedLive("a change asked for a caller whose deadline passed is not made, and says so; one that undoes a change is bounded by no caller's deadline", () =>
      Effect.gen(function*() {
        const cluster = yield* makeCluster
        const p = yield* cluster.participant("client", yield* Effect.scope)
        const gaveUp = withCallerDeadline(Date.now() - 1)
        const late = yield* Effect.flip(
          gaveUp(p.createTopic({ name: "late", order: 5, ackLevel: 1, replicationFactor: 1 }))
        )
        expect(late).toMatchObject({ _tag: "CoordinatorUnavailable" })
        expect(late.message).toContain("safe to ask again")
        // Not made: asked again, it is created (not TopicExists).
        expect(yield* p.createTopic({ name: "late", order: 5, ackLevel: 1, replicationFactor: 1 })).toMatchObject({
          name: "late"
        })
        expect(yield* gaveUp(withoutCallerDeadline(p.deleteTopic("late")))).toBeUndefined()
        expect(yield* Effect.flip(p.deleteTopic("late"))).toMatchObject({ _tag: "TopicNotFound" })
      }))
  })

contract("layer (region, RPC over rings)", live)
contract("layerMemory (in-process fake)", memory)
