import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as RpcLayers from "../../src/layers/control/Rpc.js"
import { Rings } from "../../src/services/control/Rings.js"
import { handle } from "../../src/services/control/Rpc.js"
import { openMemoryRings } from "../fixtures/ring-harness.js"
import { Add, layout } from "../fixtures/rpc-methods.js"

const encoder = new TextEncoder()

/** A request frame as a client writes it (kind 1, no reply slot, tag length, client, request id, tag, JSON payload). */
const requestFrame = (client: number, requestId: number, tag: string) => {
  const tagBytes = encoder.encode(tag)
  const json = encoder.encode("{}")
  const frame = new Uint8Array(12 + tagBytes.length + json.length)
  const view = new DataView(frame.buffer)
  view.setUint8(0, 1)
  view.setUint16(2, tagBytes.length, true)
  view.setUint32(4, client, true)
  view.setUint32(8, requestId, true)
  frame.set(tagBytes, 12)
  frame.set(json, 12 + tagBytes.length)
  return frame
}

describe("Rpc method tags", () => {
  // A buggy client sending made-up method names gets RpcUnknownMethod for each; the server must
  // not keep each name's encoding (for the reply's tag) for good.
  it.scopedLive("unknown-method requests are answered without keeping their tags", () =>
    Effect.gen(function*() {
      const { rings } = yield* openMemoryRings()
      const rpc = yield* RpcLayers.make.pipe(Effect.provideService(Rings, rings))
      const { replies, requests } = layout(65536)
      yield* rpc.serve({ replies, requests }, [handle(Add, ({ a, b }) => Effect.succeed(a + b))])
      const client = yield* rpc.client({ client: 0, requests: requests[0]!.ring, replies })
      expect(yield* client.call(Add, { a: 1, b: 2 })).toBe(3)
      const before = RpcLayers.cachedTags()
      const replyReader = yield* rings.reader(replies)
      const raw = yield* rings.writer(requests[3]!.ring)
      const bogus = 2_000
      let errors = 0
      for (let start = 0; start < bogus; start += 100) {
        yield* raw.writeAll(Array.from({ length: 100 }, (_, i) => requestFrame(3, start + i + 1, `bogus-${start + i}`)))
        while (errors < start + 100) {
          const batch = yield* replyReader.take(5_000)
          for (let i = 0; i < batch.count; i++) {
            const frame = batch.frame(i)
            // Protocol-error replies (kind 4) addressed to client 3.
            if (frame[0] === 4 && new DataView(frame.buffer, frame.byteOffset).getUint32(4, true) === 3) errors++
          }
        }
      }
      expect(errors).toBe(bogus)
      expect(RpcLayers.cachedTags()).toBe(before)
      expect(yield* client.call(Add, { a: 2, b: 3 })).toBe(5)
    }))
})
