/**
 * A ring reader whose process is stopped but alive (SIGSTOP) is backpressure, never reaped: its
 * frames are not overwritten under it, however long it is stopped (the writer's own wait for room
 * stays bounded by its timeout). Continued, it reads every frame, in order. Only dead readers are
 * freed by a writer; a stopped member's reply-ring slot is the coordinator's to free
 * (StalledMember.test.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { type RingAddress, ringFootprint } from "../../src/services/control/Rings.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const ring: RingAddress = { id: 1, offset: 16384, dataBytes: 32 << 10, readerSlots: 4 }
/** Doorbell line of child `k`. */
const bell = (k: number) => 4096 + 64 * (k + 1)
const config = (
  name: string,
  k: number,
  extra: object = {}
) => [JSON.stringify({ region: name, bell: bell(k), ring, ...extra })]

describe("a stopped ring reader", () => {
  it.scopedLive(
    "a SIGSTOPped reader holds its writer back past the old stale bound and, continued, reads every frame in order",
    () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("stalled-reader")
        yield* CxlMemoryLayers.make({
          name,
          size: Math.ceil((ring.offset + ringFootprint(ring.dataBytes, ring.readerSlots)) / 4096) * 4096,
          mode: "create"
        })
        const healthy = yield* spawnFixture("ring-reader", config(name, 0))
        const stopped = yield* spawnFixture("ring-reader", config(name, 1))
        // Runs before the fixture's own finalizer kills it: nothing is left stopped.
        yield* Effect.addFinalizer(() => Effect.sync(() => stopped.process.kill("SIGCONT")))
        expect(yield* healthy.next()).toMatchObject({ attached: true })
        expect(yield* stopped.next()).toMatchObject({ attached: true })
        stopped.process.kill("SIGSTOP")
        // 3000 frames of up to 4 KiB: far more than the 32 KiB ring holds.
        const writer = yield* spawnFixture("ring-writer", config(name, 2, { frames: 3000, commitEvery: 4 }))
        expect(yield* writer.next()).toMatchObject({ ready: true })
        // Held back while the reader is stopped: not done after 7 s (a reader stale for 5 s was once freed here).
        expect((yield* Effect.either(writer.next(7_000)))._tag).toBe("Left")
        stopped.process.kill("SIGCONT")
        const done = yield* writer.next<{ sequence: number }>(30_000)
        expect(done).toMatchObject({ done: true })
        for (const reader of [healthy, stopped]) {
          expect(yield* reader.next(30_000)).toMatchObject({ end: "closed", frames: 3000, delivered: done.sequence })
        }
      }),
    90_000
  )
})
