/**
 * The coordinator's guard against a lapse of its head's lease (src/layers/control/LapseGuard.ts),
 * over the live lease code on a fake region and in-memory request rings: a change read while the
 * lease is expired is refused, and so is one sent before the renewal that ended the lapse, however
 * the resumed head's renewal and its reading of requests are ordered; one sent after runs.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeLapseGuard } from "../../src/layers/control/LapseGuard.js"
import * as RingsMemory from "../../src/layers/control/RingsMemory.js"
import { acquireLease, leaseLapses, renewLease, sequencerLease } from "../../src/layers/log/SequencerLease.js"
import { privateRegion } from "../../src/layers/region/CxlMemoryMemory.js"
import { Rings } from "../../src/services/control/Rings.js"

const requestRing = (slot: number) => ({ id: 10 + slot, offset: slot * 8192, dataBytes: 4096, readerSlots: 1 })
const asked = () => "cxlog.createTopic (request 1 of process slot 0)"

describe("LapseGuard", () => {
  it.scopedLive(
    "refuses a change read while the lease is expired, or sent before the renewal that ended the lapse; runs one sent after",
    () =>
      Effect.gen(function*() {
        const lease = sequencerLease(privateRegion(8192), {
          occurrence: 7,
          leaseMs: 1_000,
          doorbell: 0,
          earlierRoundWaitMs: 0
        })
        const epoch = yield* acquireLease(lease, 0)
        const rings = yield* Rings
        const requests = [yield* rings.inspect(requestRing(0)), yield* rings.inspect(requestRing(1))]
        const writer = yield* rings.writer(requestRing(0))
        const guard = makeLapseGuard("r", { epoch, ...leaseLapses(lease) }, requests)

        const nextFrameAt = yield* writer.write(new Uint8Array(24))
        expect(guard.refusal(0, 0, asked)).toBeUndefined()

        // Stopped past its lease and resumed: a change read before the renewal is refused.
        lease.lines.setExpiresAtMs(lease.at, Date.now() - 500)
        expect(guard.refusal(0, 0, asked)).toMatchObject({
          _tag: "HeadUnavailable",
          region: "r",
          pid: process.pid,
          epoch,
          state: "lapse-refused",
          waitingFor: asked()
        })

        // The renewal ends the lapse: a change sent before it is still refused, whenever it is read.
        yield* renewLease(lease, epoch)
        const refused = guard.refusal(0, 0, asked)
        expect(refused).toMatchObject({ _tag: "HeadUnavailable", state: "lapse-refused" })
        expect(refused!.lapsedMs).toBeGreaterThanOrEqual(500)
        // Sent after the renewal (its frame starts where the ring stood then), or from a ring that held none: run.
        yield* writer.write(new Uint8Array(24))
        expect(guard.refusal(0, nextFrameAt, asked)).toBeUndefined()
        expect(guard.refusal(1, 0, asked)).toBeUndefined()

        // A renewal in time ends no lapse; a guard taken off hears of none.
        yield* renewLease(lease, epoch)
        expect(guard.refusal(0, nextFrameAt, asked)).toBeUndefined()
        guard.close()
        lease.lines.setExpiresAtMs(lease.at, Date.now() - 500)
        yield* renewLease(lease, epoch)
        expect(guard.refusal(0, nextFrameAt, asked)).toBeUndefined()
      }).pipe(Effect.provide(RingsMemory.layerMemory))
  )
})
