/**
 * The reply ring's writer waits for room within a bound: a reader that holds the ring back (here
 * attached and never reading) makes `notify` fail typed, naming the ring and that reader, rather
 * than wait for ever while the outbound queue grows.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as RpcLayers from "../../src/layers/control/Rpc.js"
import { Rings } from "../../src/services/control/Rings.js"
import { openRegionRings } from "../fixtures/ring-harness.js"
import { Announcement, layout } from "../fixtures/rpc-methods.js"

describe("the reply ring's bound", () => {
  it.scopedLive(
    "notify fails with RingFull naming the slowest reader once the ring stays full past the writer's bound",
    () =>
      Effect.gen(function*() {
        const { rings } = yield* openRegionRings()()
        const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
        const { replies, requests } = layout(65536)
        const server = yield* rpc.serve<never>({ replies, requests }, [])
        const stuck = yield* rings.reader(replies)
        const text = "x".repeat(1000)
        // 64 KiB of ring: some 60 notices fit, the next waits for the stuck reader, then fails.
        let sent = 0
        let outcome: Exit.Exit<number, unknown> = Exit.succeed(0)
        while (Exit.isSuccess(outcome) && sent < 200) {
          outcome = yield* Effect.exit(server.notify(Announcement, { text }))
          sent++
        }
        expect(sent).toBeGreaterThan(50)
        expect(sent).toBeLessThan(200)
        expect(outcome).toMatchObject({
          _tag: "Failure",
          cause: { error: { _tag: "RingFull", ring: replies.id, slowestSlot: stuck.slot } }
        })
      }),
    30_000
  )
})
