/**
 * A handler's outcome larger than the reply ring takes (a quarter of it) is never sent: its caller
 * is told so at once with `RpcHandlerDefect` naming the size and the limit — a typed failure as a
 * success is — rather than wait out its bound for a reply the server dropped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as RpcLayers from "../../src/layers/control/Rpc.js"
import { Rings } from "../../src/services/control/Rings.js"
import * as RpcApi from "../../src/services/control/Rpc.js"
import { openRegionRings } from "../fixtures/ring-harness.js"
import { Add, layout } from "../fixtures/rpc-methods.js"

class Verbose extends Schema.TaggedError<Verbose>()("Verbose", { text: Schema.String }) {}
const Sized = RpcApi.method("Sized", {
  payload: Schema.Struct({ bytes: Schema.Number, fail: Schema.Boolean }),
  success: Schema.String,
  failure: Verbose
})

describe("a reply larger than the reply ring takes", () => {
  it.scopedLive(
    "a success or a typed failure too large is RpcHandlerDefect naming its size; the server keeps serving",
    () =>
      Effect.gen(function*() {
        const { rings } = yield* openRegionRings()()
        const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
        const { replies, requests } = layout(65536)
        yield* rpc.serve({ replies, requests }, [
          RpcApi.handle(
            Sized,
            ({ bytes, fail }) =>
              fail ? Effect.fail(new Verbose({ text: "x".repeat(bytes) })) : Effect.succeed("x".repeat(bytes))
          ),
          RpcApi.handle(Add, ({ a, b }) => Effect.succeed(a + b))
        ])
        const client = yield* rpc.client({ client: 0, requests: requests[0]!.ring, replies })
        // The reply ring is 64 KiB: its frames are 16 KiB at most. The bound is far past a reply sent at once.
        const call = (fail: boolean) => Effect.flip(client.call(Sized, { bytes: 20_000, fail }, { timeoutMs: 5_000 }))
        for (const fail of [false, true]) {
          const refused = yield* call(fail)
          expect(refused).toMatchObject({ _tag: "RpcHandlerDefect", method: "Sized" })
          expect(refused.message).toMatch(
            /a 200\d\d-byte (reply|failure) exceeds the reply ring's 16\d\d\d-byte frame limit/
          )
        }
        expect(yield* Effect.flip(client.call(Sized, { bytes: 10, fail: true }))).toMatchObject({
          _tag: "Verbose",
          text: "xxxxxxxxxx"
        })
        expect(yield* client.call(Add, { a: 1, b: 2 })).toBe(3)
      }),
    60_000
  )
})
