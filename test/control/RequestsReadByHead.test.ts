/**
 * What a join that got no reply says about where it was lost, read from the process's request
 * ring: nothing reads it, the head has not read the last requests, or it read them all.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { requestsReadByHead } from "../../src/layers/control/CoordinatorCalls.js"
import * as RingsMemory from "../../src/layers/control/RingsMemory.js"
import { Rings } from "../../src/services/control/Rings.js"

const ring = { id: 5, offset: 0, dataBytes: 4096, readerSlots: 2 }

describe("requestsReadByHead", () => {
  it.scopedLive("names the bytes of requests the head has not read, and says when it read them all", () =>
    Effect.gen(function*() {
      const rings = yield* Rings
      const requests = yield* rings.inspect(ring)
      const writer = yield* rings.writer(ring)
      yield* writer.write(new Uint8Array(24))
      expect(requestsReadByHead(requests)).toBe("nothing reads this process's request ring")
      const head = yield* rings.reader(ring)
      yield* writer.write(new Uint8Array(24))
      expect(requestsReadByHead(requests)).toBe("the head has not read this process's last 32 bytes of requests")
      expect((yield* head.take(1_000)).count).toBe(1)
      expect(requestsReadByHead(requests)).toBe("the head read every request of this process; no reply reached it")
    }).pipe(Effect.provide(RingsMemory.layerMemory)))
})
