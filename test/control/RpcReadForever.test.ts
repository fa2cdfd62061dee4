/**
 * An Rpc reader's loop (`readForever`) waits for a new writer once its ring closes. A reader still
 * running after its rings' doorbell closed (its scope ended first) gets every wait back at once:
 * the loop must pause between reads then, not spin on the closed ring.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as RingsMemoryLayers from "../../src/layers/control/RingsMemory.js"
import { readForever } from "../../src/layers/control/RpcReadForever.js"
import type { RingAddress } from "../../src/services/control/Rings.js"
import { innerScope } from "../helpers/InnerScope.js"

const address: RingAddress = { id: 7, offset: 0, dataBytes: 4096, readerSlots: 1 }

describe("readForever", () => {
  it.scopedLive("a reader whose doorbell closed under it reads its closed ring once a second, not in a spin", () =>
    Effect.gen(function*() {
      const ringsScope = yield* innerScope
      const rings = yield* RingsMemoryLayers.makeMemory.pipe(Scope.extend(ringsScope))
      yield* rings.writer(address).pipe(Scope.extend(ringsScope))
      const reader = yield* rings.reader(address)
      let reads = 0
      const loop = yield* Effect.fork(
        readForever(() => reader, Effect.suspend(() => (reads++, reader.consume(() => Effect.void))))
      )
      // The writer closes the ring and the doorbell closes: the reader's fiber runs on.
      yield* Scope.close(ringsScope, Exit.void)
      yield* Effect.sleep("1500 millis")
      yield* Fiber.interrupt(loop)
      expect(reads).toBeGreaterThanOrEqual(1)
      expect(reads).toBeLessThanOrEqual(3)
    }))
})
