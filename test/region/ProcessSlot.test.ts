import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, type Scope } from "effect"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import { ownStartTag } from "../../src/layers/region/ProcessInfo.js"
import * as ProcessSlotLayers from "../../src/layers/region/ProcessSlot.js"
import { CxlMemory, type CxlMemoryShape, type RegionOptions } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { ProcessSlot } from "../../src/services/region/ProcessSlot.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const table = { offset: 8192, slots: 4 }

const contract = (label: string, open: (o: RegionOptions) => Effect.Effect<CxlMemoryShape, unknown, Scope.Scope>) =>
  describe(`ProcessSlot over ${label}`, () => {
    it.scopedLive("claims distinct slots, fails when full, frees on scope close with a new occurrence next time", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("slots")
        const region = yield* open({ name, size: 1 << 20, mode: "create" })
        const claim = Effect.provideService(ProcessSlotLayers.make({ table, role: "worker" }), CxlMemory, region)
        const a = yield* claim
        const b = yield* claim
        expect(a.slot).not.toBe(b.slot)
        expect(a.doorbellOffset).toBe(8192 + a.slot * 128 + 64)
        const info = ProcessSlotLayers.readSlot(region, table, a.slot)
        expect(info).toMatchObject({ state: 2, pid: process.pid, occurrence: 1, role: "worker" })
        expect(ProcessSlotLayers.isSlotLive(info, Date.now(), 1000)).toBe(true)
        yield* claim
        yield* claim
        expect(yield* Effect.flip(Effect.scoped(claim))).toMatchObject({ _tag: "ProcessTableFull", slots: 4 })
        // A slot released by its scope is claimed again with the next occurrence.
        const again = yield* Effect.scoped(Effect.gen(function*() {
          const inner = yield* Effect.provideService(
            ProcessSlotLayers.make({ table: { offset: 8192 + 4 * 128, slots: 1 }, role: "client" }),
            CxlMemory,
            region
          )
          return inner.occurrence
        }))
        const next = yield* Effect.provideService(
          ProcessSlotLayers.make({ table: { offset: 8192 + 4 * 128, slots: 1 }, role: "client" }),
          CxlMemory,
          region
        )
        expect(next.occurrence).toBe(again + 1)
      }))

    it.scopedLive("a slot names its owner by pid and start time: one whose pid now names a later process is claimed", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("slot-reuse")
        const region = yield* open({ name, size: 1 << 20, mode: "create" })
        const single = { offset: 8192 + 8 * 128, slots: 1 }
        const claim = Effect.provideService(
          ProcessSlotLayers.make({ table: single, role: "worker" }),
          CxlMemory,
          region
        )
        const held = yield* claim
        expect(ownStartTag()).toBeGreaterThan(0)
        expect(ProcessSlotLayers.readSlot(region, single, 0)).toMatchObject({
          pid: process.pid,
          startTag: ownStartTag()
        })
        expect(yield* Effect.flip(Effect.scoped(claim))).toMatchObject({ _tag: "ProcessTableFull" })
        // The owner's line as a process that started later under the same pid would find it (start tag, offset 32).
        region.u32[(single.offset + 32) / 4] = ownStartTag() + 1
        const info = ProcessSlotLayers.readSlot(region, single, 0)
        expect(ProcessSlotLayers.isOwnerAlive(info)).toBe(false)
        expect(ProcessSlotLayers.isSlotLive(info, Date.now(), 60_000)).toBe(false)
        const taken = yield* claim
        expect(taken).toMatchObject({ slot: 0, occurrence: held.occurrence + 1 })
        expect(ProcessSlotLayers.isOwnerAlive(ProcessSlotLayers.readSlot(region, single, 0))).toBe(true)
      }))
  })

contract("the native region", CxlMemoryLayers.make)
contract("the in-memory fake", CxlMemoryMemoryLayers.makeMemory)

describe("ProcessSlot across processes", () => {
  it.scopedLive("a SIGKILLed owner's slot is reclaimed with a new occurrence", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("reclaim")
      const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
      const single = { offset: 8192, slots: 1 }
      const child = yield* spawnFixture("slot-holder", [name, "8192", "1"])
      const held = yield* child.next<{ slot: number; occurrence: number }>()
      expect(held).toEqual({ slot: 0, occurrence: 1 })
      const claim = Effect.scoped(
        Effect.provideService(ProcessSlotLayers.make({ table: single, role: "head" }), CxlMemory, region)
      )
      expect(yield* Effect.flip(claim)).toMatchObject({ _tag: "ProcessTableFull" })
      child.process.kill("SIGKILL")
      yield* child.exited
      const mine = yield* Effect.provideService(
        ProcessSlotLayers.make({ table: single, role: "head" }),
        CxlMemory,
        region
      )
      expect(mine).toMatchObject({ slot: 0, occurrence: 2, pid: process.pid, role: "head" })
    }))

  it.scopedLive("the layer provides this process's doorbell on its slot's second line", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("slotbell")
      const layer = ProcessSlotLayers.layer({ table, role: "broker" }).pipe(
        Layer.provideMerge(CxlMemoryMemoryLayers.layerMemory({ name, size: 1 << 20, mode: "create" }))
      )
      const { self, bell } = yield* Effect.all({ self: ProcessSlot, bell: Doorbell }).pipe(Effect.provide(layer))
      expect(bell.offset).toBe(self.doorbellOffset)
    }))
})
