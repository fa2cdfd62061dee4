/**
 * A member dropped for a stale heartbeat whose reply reader stays attached learns it from the
 * coordinator's `MemberDroppedNotice`. The notice goes on the reply ring: while that ring has no
 * room, it is tried again at every liveness tick, so a member dropped while the ring was full
 * still learns it once room comes, and joins again. Live layers in this process: a real region,
 * RPC over rings, the member with its own process slot whose heartbeat the test writes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Schedule } from "effect"
import * as ProcessSlotLayers from "../../src/layers/region/ProcessSlot.js"
import * as Roles from "../../src/layers/Roles.js"
import { Coordinator } from "../../src/services/control/Coordinator.js"
import { CoordinatorServer } from "../../src/services/control/CoordinatorServer.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { ProcessSlot } from "../../src/services/region/ProcessSlot.js"
import { headWithSmallReplyRing, stuckReplyReader } from "../helpers/ReplyRing.js"

const STALE_MS = 1_000

describe("a member dropped for a stale heartbeat", () => {
  it.scopedLive("is told once the reply ring has room again, and joins again", () =>
    Effect.gen(function*() {
      const { region, head, layout, rings } = yield* headWithSmallReplyRing("dropped-notice", {
        checkEveryMs: 50,
        heartbeatStaleMs: STALE_MS
      })
      const memory = Context.get(region, CxlMemory)
      const server = Context.get(head, CoordinatorServer)
      // The member's process-table heartbeat is written once by its slot, then by the test only.
      const member = yield* Layer.build(
        Roles.coordinatorClient().pipe(
          Layer.provideMerge(Roles.controlTransport),
          Layer.provideMerge(
            ProcessSlotLayers.layer({ table: layout.processTable, role: "worker", heartbeatMillis: 3_600_000 })
          ),
          Layer.provide(Layer.succeedContext(region))
        )
      )
      const coordinator = Context.get(member, Coordinator)
      const slot = Context.get(member, ProcessSlot).slot
      let beating = true
      const beat = Effect.sync(() =>
        beating && ProcessSlotLayers.writeHeartbeat(memory, layout.processTable, slot, Date.now())
      )
      yield* Effect.forkScoped(Effect.repeat(beat, Schedule.spaced("100 millis")))
      yield* coordinator.joinGroup("g")
      const isMember = () => server.members().some((m) => m.slot === slot)
      expect(isMember()).toBe(true)

      // A reader that never reads holds the reply ring full: no room for the notice.
      const stuck = yield* stuckReplyReader(rings, layout)
      yield* stuck.fill(coordinator, (free, reply) => free >= reply)

      // The heartbeat stops: dropped, and the notice finds no room.
      beating = false
      while (isMember()) yield* Effect.sleep("20 millis")
      const sequenceAtDrop = stuck.sequence()
      // A window, not a wait: a few of the coordinator's ticks, every try of the notice in them failing.
      yield* Effect.sleep(`${4 * 50} millis`)
      expect(stuck.sequence()).toBe(sequenceAtDrop)
      beating = true
      yield* beat

      // Room again: the next tick writes the notice, and the member joins again, its group too.
      yield* stuck.release
      while (!isMember()) yield* Effect.sleep("20 millis")
      // The group went with its last member; it is made again once the member re-joins it.
      const inGroup = coordinator.members("g").pipe(
        Effect.map((members) => members.some((m) => m.slot === slot)),
        Effect.catchTag("UnknownGroup", () => Effect.succeed(false))
      )
      while (!(yield* inGroup)) yield* Effect.sleep("20 millis")
      const released = yield* coordinator.barrier("after", { mode: "rendezvous", group: "g", timeoutMs: 5_000 })
      expect(released.round).toBe(1)
    }).pipe(Effect.timeoutFail({
      duration: "40 seconds",
      onTimeout: () => new Error("the member did not join again within 40 s")
    })), 60_000)
})
