/**
 * Two members in one process, each over a mapping of its own of the same region (two
 * `Roles.groupMember` layers, as two facades of one app make): each must see the other as a
 * live member of this process — not as a line of its pid that nobody here holds, which would be
 * a dead member's — so neither takes the other's messages over while both run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { ConsumerGroups } from "../../src/services/groups/ConsumerGroups.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { groupsRegionEnv, regionClient, regionMember } from "../fixtures/groups-harness.js"
import { forkCli } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

const MESSAGES = 400

describe("members of one process over two mappings of the region", () => {
  it.scopedLive(
    "share the messages: each delivered once, none taken over from the other",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("group-mappings")
        const head = yield* forkCli(["head", "--topic", "jobs"], groupsRegionEnv(region))
        yield* head.event("ready")
        const client = yield* Layer.build(regionClient(region, "jobs"))
        yield* Effect.gen(function*() {
          yield* (yield* ConsumerGroups).create({ name: "workers", topic: "jobs", ackWaitMs: 600_000 })
          const publisher = yield* Publisher
          for (let i = 0; i < MESSAGES; i++) yield* publisher.publish(new TextEncoder().encode(`job ${i}`))
          yield* publisher.flush(10_000)
        }).pipe(Effect.provide(client))
        const seen: Array<[number, number, number]> = []
        const all = yield* Deferred.make<void>()
        // Each member holds its messages a moment (a few ms of work), so the other looks while it holds some.
        const member = (id: number) =>
          Effect.flatMap(ConsumerGroups, (groups) =>
            groups.join("workers", { maxInFlight: 8 }).pipe(
              Stream.mapEffect((d) =>
                Effect.gen(function*() {
                  yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
                  seen.push([d.offset, d.deliveryCount, id])
                  expect(yield* d.ack).toBe(true)
                  if (seen.length === MESSAGES) Deferred.unsafeDone(all, Effect.void)
                })
              ),
              Stream.runDrain
            )).pipe(Effect.provide(regionMember(region)), Effect.fork)
        const members = [yield* member(1), yield* member(2)]
        yield* Deferred.await(all).pipe(Effect.timeout("60 seconds"))
        yield* Fiber.interruptAll(members)
        expect(seen.filter(([, deliveries]) => deliveries > 1), "delivered again").toEqual([])
        expect(seen.map(([offset]) => offset).sort((a, b) => a - b)).toEqual(
          Array.from({ length: MESSAGES }, (_, i) => i)
        )
        expect(new Set(seen.map(([, , id]) => id)).size).toBe(2)
      }),
    120_000
  )
})
