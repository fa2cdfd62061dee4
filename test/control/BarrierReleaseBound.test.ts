/**
 * A barrier release the coordinator cannot write (its reply ring stays full past the writer's
 * bound, held back by a reader that attached and never reads) fails that round for every
 * participant with `BarrierReleaseNotSent`, naming the barrier, the round and the ring; the
 * coordinator goes on and releases the next round. Live layers in this process: a real region,
 * RPC over rings, each participant with its own process slot.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Metric } from "effect"
import * as Roles from "../../src/layers/Roles.js"
import { rpcDroppedReplies } from "../../src/Metrics.js"
import { Coordinator } from "../../src/services/control/Coordinator.js"
import { headWithSmallReplyRing, stuckReplyReader } from "../helpers/ReplyRing.js"

/** The longest barrier name: its release notice is larger than the room the filled ring leaves. */
const BARRIER = "b".repeat(200)

const dropped = Effect.map(Metric.value(rpcDroppedReplies), (state) => state.count)

describe("a barrier release with no room in the reply ring", () => {
  it.scopedLive(
    "fails the round with BarrierReleaseNotSent for every participant; the next round is released",
    () =>
      Effect.gen(function*() {
        const { region, layout, rings } = yield* headWithSmallReplyRing("release-bound", { checkEveryMs: 50 })
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

        const stuck = yield* stuckReplyReader(rings, layout)
        // Short replies while two more surely fit (padding at the wrap included); then less room is
        // left than the release notice of a 200-character name needs.
        yield* stuck.fill(a!, (free, reply) => free >= 2 * reply)
        expect(stuck.free()).toBeLessThan(200)

        const droppedBefore = yield* dropped
        const entered = yield* Effect.forEach(
          [a!, b!],
          (p) => Effect.fork(Effect.either(p.barrier(BARRIER, { mode: "rendezvous", group: "g", timeoutMs: 30_000 })))
        )
        // The writer gave up on the notice (its bound is 10 s); then room comes, for the failure replies.
        while ((yield* dropped) === droppedBefore) yield* Effect.sleep("20 millis")
        yield* stuck.release
        for (const fiber of entered) {
          const outcome = yield* Fiber.join(fiber)
          expect(outcome).toMatchObject({
            _tag: "Left",
            left: { _tag: "BarrierReleaseNotSent", barrier: BARRIER, round: 1, ring: layout.broadcastRing.id }
          })
        }
        // The coordinator goes on: the next round of the same barrier is released.
        const next = yield* Effect.forEach([a!, b!], (p) => p.barrier(BARRIER, { mode: "rendezvous", group: "g" }), {
          concurrency: "unbounded"
        })
        expect(next.map((r) => r.round)).toEqual([2, 2])
      }).pipe(Effect.timeoutFail({
        duration: "50 seconds",
        onTimeout: () => new Error("the release test did not finish within 50 s")
      })),
    60_000
  )
})
