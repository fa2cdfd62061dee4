/**
 * The sequencer's fence, one process over a fake region (the live layer's code): a head whose
 * lease a newer head took writes nothing in its next round; a newer head that wins the lease
 * while the old one is inside a round (its marker in the lease line names a live process)
 * waits for that round to end before it orders anything.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { goiEntryOffset, pbrSlotOffset } from "../../src/layers/log/Layout.js"
import { LeaseLine } from "../../src/layers/log/Records.js"
import { GoiEntryView, LeaseLineView, OrderLineView, PbrSlotView } from "../../src/layers/log/RecordViews.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import { Offsets } from "../../src/layers/region/Superblock.js"
import { appendSimple, regionCluster, smallConfig } from "../fixtures/log-harness.js"

const lease = Offsets.sequencerLease

describe("sequencer fencing (fake region)", () => {
  it.scopedLive("a head whose lease a newer head took fails its next round with SequencerLeaseLost and writes nothing", () =>
    Effect.gen(function*() {
      const cluster = yield* regionCluster(CxlMemoryMemoryLayers.makeMemory)(smallConfig)
      const { memory, area } = cluster.region!
      const { id: topicId } = yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
      const appender = yield* cluster.appender(0)
      const old = yield* cluster.sequencer({ leaseMs: 60_000 })
      yield* old.step
      for (let seq = 0; seq < 3; seq++) yield* appendSimple(appender, "t", 7, 1, seq)

      // A standby's takeover: it swaps the lease's occurrence and bumps the epoch (Sequencer.ts tryAcquire).
      const leaseLine = new LeaseLineView(memory)
      expect(leaseLine.swapOccurrence(lease, leaseLine.occurrence(lease), 0x5555)).toBe(true)
      leaseLine.setEpoch(lease, old.epoch + 1)
      expect(old.holdsLease()).toBe(false)

      const lost = yield* Effect.flip(old.step)
      expect(lost).toMatchObject({ _tag: "SequencerLeaseLost", epoch: old.epoch })
      const goi = new GoiEntryView(memory)
      const pbr = new PbrSlotView(memory)
      expect(goi.holds(goiEntryOffset(area, topicId, 0), 0)).toBe(false)
      for (let p = 0; p < 3; p++) expect(pbr.finished(pbrSlotOffset(area, topicId, 0, p), p)).toBe(false)
      expect(new OrderLineView(memory).committed(area.orderLine(topicId))).toBe(0)
      expect(Atomics.load(memory.i32, (lease + LeaseLine.round) / 4)).toBe(0)
    }))

  it.scopedLive("a new holder waits while the old head is inside a round (its marker names a live process), then orders", () =>
    Effect.gen(function*() {
      const cluster = yield* regionCluster(CxlMemoryMemoryLayers.makeMemory)(smallConfig)
      const { memory } = cluster.region!
      yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
      const old = yield* cluster.sequencer({ leaseMs: 60_000 })
      yield* old.step
      // The old head stalled inside a round: its marker (a live process: our parent) and a lapsed lease.
      Atomics.store(memory.i32, (lease + LeaseLine.round) / 4, process.ppid)
      new LeaseLineView(memory).setExpiresAtMs(lease, Date.now() - 1)

      const taking = yield* Effect.fork(cluster.sequencer({ leaseMs: 60_000 }))
      // A window, not a wait: the new holder looks at the marker every 2, 4, … 100 ms; over several
      // looks it must not take over while the marker names a live process.
      yield* Effect.sleep("300 millis")
      expect(taking.unsafePoll()).toBe(null)
      // The old head's round ends: the new holder goes on, one epoch later, and the old head is fenced.
      Atomics.store(memory.i32, (lease + LeaseLine.round) / 4, 0)
      const fresh = yield* Fiber.join(taking)
      expect(fresh.epoch).toBe(old.epoch + 1)
      expect(yield* Effect.flip(old.step)).toMatchObject({ _tag: "SequencerLeaseLost" })
      yield* fresh.step
    }))
})
