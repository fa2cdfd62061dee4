/**
 * `cxlog groups pending G` for messages given back unseen (`cxlog consume --limit`, a worker closed
 * with jobs it never handed out): waiting, never delivered. They have no first delivery and no time
 * they are due or overdue: the next member that looks takes them. Over the fake, the same engine.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { giveBackUnseen } from "../../src/layers/groups/GroupDelivery.js"
import { pendingTable } from "../../src/programs/admin/Groups.js"
import { ConsumerGroups, type Delivery } from "../../src/services/groups/ConsumerGroups.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { memoryGroups } from "../fixtures/groups-harness.js"

describe("groups pending, of messages given back unseen", () => {
  it.scopedLive("shows no first delivery and no due or overdue for one never delivered; the one held is due in its ackWait", () =>
    Effect.gen(function*() {
      const groups = yield* ConsumerGroups
      yield* groups.create({ name: "pool", topic: "jobs", ackWaitMs: 600_000 })
      const publisher = yield* Publisher
      for (let i = 0; i < 3; i++) yield* publisher.publish(new TextEncoder().encode(`job ${i}`))
      yield* publisher.flush(10_000)
      const pull = yield* Stream.toPull(groups.join("pool", { maxInFlight: 3 }))
      const taken: Array<Delivery> = []
      while (taken.length < 3) taken.push(...Chunk.toReadonlyArray(yield* pull))
      // The first is kept; the two after it go back unseen, as --limit 1 gives back what it took past its limit.
      yield* giveBackUnseen(taken.slice(1))
      const pending = yield* groups.pending("pool")
      expect(pending).toMatchObject([
        { offset: 0, state: "delivered", deliveries: 1 },
        { offset: 1, state: "waiting", deliveries: 0, deadlineMs: 0, firstDeliveredAtMs: 0 },
        { offset: 2, state: "waiting", deliveries: 0, deadlineMs: 0, firstDeliveredAtMs: 0 }
      ])
      const rows = pendingTable("pool", pending, Date.now()).split("\n").slice(2).map((row) => row.trim())
      expect(rows[0]).toMatch(/^0\s+delivered\s+\d+\s+1\s+\d+ms ago\s+in 10m$/)
      expect(rows.slice(1).map((row) => row.split(/\s+/))).toEqual([
        ["1", "waiting", "-", "0", "-", "-"],
        ["2", "waiting", "-", "0", "-", "-"]
      ])
    }).pipe(Effect.provide(memoryGroups(["jobs"]))))
})
