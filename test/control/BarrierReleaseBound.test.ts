/**
 * A barrier release the coordinator cannot write (its reply ring stays full past the writer's
 * bound, held back by a reader that attached and never reads) fails that round for every
 * participant with `BarrierReleaseNotSent`, naming the barrier, the round and the ring; the
 * coordinator goes on and releases the next round. Live layers in this process: a real region,
 * RPC over rings, each participant with its own process slot.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import * as CoordinatorLayers from "../../src/layers/control/Coordinator.js"
import { defaultLogConfig } from "../../src/layers/log/Layout.js"
import { defaultControlConfig, type RegionConfig, RegionLayout } from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import * as TopicsLayers from "../../src/layers/log/Topics.js"
import { rpcDroppedReplies } from "../../src/Metrics.js"
import { Coordinator } from "../../src/services/control/Coordinator.js"
import { Rings } from "../../src/services/control/Rings.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** An 8 KiB reply ring: a hundred short replies fill it. */
const config: RegionConfig = {
  control: { ...defaultControlConfig, maxProcesses: 8, appRings: 1, appRingBytes: 4096, broadcastRingBytes: 8192 },
  log: { ...defaultLogConfig, maxTopics: 1, maxBrokers: 1, pbrSlots: 64, blogBytes: 1 << 20, goiSlots: 256, sessionSlots: 64, maxBatchBytes: 64 << 10 }
}

/** The longest barrier name: its release notice is larger than the room the filled ring leaves. */
const BARRIER = "b".repeat(200)

const dropped = Effect.map(Metric.value(rpcDroppedReplies), (state) => state.count)

describe("a barrier release with no room in the reply ring", () => {
  it.scopedLive("fails the round with BarrierReleaseNotSent for every participant; the next round is released", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("release-bound")
      const region = yield* Layer.build(Roles.createRegion({ name }, config))
      const head = yield* Layer.build(
        CoordinatorLayers.layerServer({ checkEveryMs: 50 }).pipe(
          Layer.provideMerge(Layer.unwrapEffect(Effect.map(RegionLayout, (l) => TopicsLayers.layer(l.log)))),
          Layer.provideMerge(Roles.controlTransport),
          Layer.provideMerge(Roles.processSlot("head", 0)),
          Layer.provide(Layer.succeedContext(region))
        )
      )
      const layout = Context.get(region, RegionLayout)
      const rings = Context.get(head, Rings)
      const scope = yield* Effect.scope
      const [a, b] = yield* Effect.forEach([0, 1], () =>
        Layer.buildWithScope(
          Roles.coordinatorClient().pipe(
            Layer.provideMerge(Roles.controlTransport),
            Layer.provideMerge(Roles.processSlot("worker")),
            Layer.provide(Layer.succeedContext(region))
          ),
          scope
        ).pipe(Effect.map((context) => Context.get(context, Coordinator))))
      for (const p of [a!, b!]) yield* p.joinGroup("g")

      // A reader of this (running) process that never reads: the coordinator does not free it,
      // and no writer frees a live reader, so the ring stays full behind it until it detaches.
      const stuckScope = yield* Scope.make()
      const stuck = yield* rings.reader(layout.broadcastRing).pipe(Scope.extend(stuckScope))
      const replies = yield* rings.inspect(layout.broadcastRing)
      const free = () => layout.broadcastRing.dataBytes - (replies.writer().sequence - replies.reader(stuck.slot).processed)
      // Short replies while two more surely fit (padding at the wrap included); then less room is
      // left than the release notice of a 200-character name needs.
      const before = replies.writer().sequence
      expect(yield* Effect.flip(a!.members("none"))).toMatchObject({ _tag: "UnknownGroup" })
      const reply = replies.writer().sequence - before
      while (free() >= 2 * reply) yield* Effect.flip(a!.members("none"))
      expect(free()).toBeLessThan(200)

      const droppedBefore = yield* dropped
      const entered = yield* Effect.forEach([a!, b!], (p) =>
        Effect.fork(Effect.either(p.barrier(BARRIER, { mode: "rendezvous", group: "g", timeoutMs: 30_000 }))))
      // The writer gave up on the notice (its bound is 10 s); then room comes, for the failure replies.
      while ((yield* dropped) === droppedBefore) yield* Effect.sleep("20 millis")
      yield* Scope.close(stuckScope, Exit.void)
      for (const fiber of entered) {
        const outcome = yield* Fiber.join(fiber)
        expect(outcome).toMatchObject({
          _tag: "Left",
          left: { _tag: "BarrierReleaseNotSent", barrier: BARRIER, round: 1, ring: layout.broadcastRing.id }
        })
      }
      // The coordinator goes on: the next round of the same barrier is released.
      const next = yield* Effect.forEach([a!, b!], (p) => p.barrier(BARRIER, { mode: "rendezvous", group: "g" }), { concurrency: "unbounded" })
      expect(next.map((r) => r.round)).toEqual([2, 2])
    }).pipe(Effect.timeoutFail({ duration: "50 seconds", onTimeout: () => new Error("the release test did not finish within 50 s") })), 60_000)
})
