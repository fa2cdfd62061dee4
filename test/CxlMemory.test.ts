import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, type Scope } from "effect"
import * as CxlMemoryLayers from "../src/layers/CxlMemory.js"
import { Offsets } from "../src/layers/Superblock.js"
import { loadAddon, regionKind } from "../src/native/Native.js"
import { type CxlMemoryShape, type RegionOptions } from "../src/services/CxlMemory.js"
import { spawnFixture, uniqueRegion } from "./helpers/Processes.js"

type Open = (options: RegionOptions) => Effect.Effect<CxlMemoryShape, unknown, Scope.Scope>

const SIZE = 1 << 20
const utf8 = (s: string) => new TextEncoder().encode(s)

/** One contract, two implementations: the mapped region and the in-process fake. */
const contract = (label: string, open: Open) =>
  describe(`CxlMemory contract: ${label}`, () => {
    it.scoped("creates, then attaches to the same bytes", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("contract")
        const a = yield* open({ name, size: SIZE, mode: "create", params: [7, 11] })
        const b = yield* open({ name, mode: "attach" })
        expect(a.created).toBe(true)
        expect(b.created).toBe(false)
        expect(b.size).toBe(SIZE)
        expect(b.params).toEqual([7, 11])
        Atomics.store(a.i32, 4096 / 4, 1234)
        expect(Atomics.load(b.i32, 4096 / 4)).toBe(1234)
      }))

    it.scoped("create over an existing region fails with RegionExists", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("exists")
        yield* open({ name, size: SIZE, mode: "create" })
        const error = yield* Effect.flip(open({ name, size: SIZE, mode: "create" }))
        expect(error).toMatchObject({ _tag: "RegionExists", name })
      }))

    it.scoped("attach to a missing region fails with RegionMissing", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("missing")
        const error = yield* Effect.flip(open({ name, mode: "attach" }))
        expect(error).toMatchObject({ _tag: "RegionMissing", name })
      }))

    it.scoped("a layout version or size mismatch is a typed error", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("mismatch")
        yield* open({ name, size: SIZE, mode: "create" })
        expect(yield* Effect.flip(open({ name, mode: "attach", layoutVersion: 99 }))).toMatchObject({
          _tag: "RegionLayoutMismatch",
          expected: 99,
          found: 1
        })
        expect(yield* Effect.flip(open({ name, mode: "attach", size: SIZE * 2 }))).toMatchObject({
          _tag: "RegionSizeMismatch",
          expected: SIZE * 2,
          found: SIZE
        })
      }))

    it.scoped("a corrupt superblock is a typed error", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("corrupt")
        const a = yield* open({ name, size: SIZE, mode: "create" })
        a.u32[Offsets.magic / 4] = 0xdeadbeef
        expect(yield* Effect.flip(open({ name, mode: "attach" }))).toMatchObject({ _tag: "RegionCorrupt" })
      }))

    it.scoped("rejects sizes that are not whole pages", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("size")
        expect(yield* Effect.flip(open({ name, size: 5000, mode: "create" }))).toMatchObject({ _tag: "InvalidRegionSize" })
        expect(yield* Effect.flip(open({ name, mode: "create" }))).toMatchObject({ _tag: "InvalidRegionSize" })
      }))

    it.scoped("out-of-range access is a typed error, in range is a zero-copy view", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("bounds")
        const r = yield* open({ name, size: SIZE, mode: "create" })
        expect(yield* Effect.flip(r.slice(SIZE - 8, 16))).toMatchObject({ _tag: "RegionOutOfBounds", offset: SIZE - 8, length: 16 })
        expect(yield* Effect.flip(r.check(-1, 4))).toMatchObject({ _tag: "RegionOutOfBounds" })
        expect(yield* Effect.flip(r.wait(SIZE, 0, 10))).toMatchObject({ _tag: "RegionOutOfBounds" })
        const view = yield* r.slice(8192, 4)
        view[0] = 9
        expect(r.bytes[8192]).toBe(9)
      }))

    it.scopedLive("doorbell: not-equal, timed-out, and woken by another fiber", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("bell")
        const r = yield* open({ name, size: SIZE, mode: "create" })
        const bell = 8192
        Atomics.store(r.i32, bell / 4, 5)
        expect(yield* r.wait(bell, 4, 1000)).toBe("not-equal")
        expect(yield* r.wait(bell, 5, 20)).toBe("timed-out")
        const waiter = yield* Effect.fork(r.wait(bell, 5, 10_000))
        let woken = 0
        for (let i = 0; i < 200 && woken === 0; i++) {
          yield* Effect.sleep("5 millis")
          woken = r.wake(bell)
        }
        expect(woken).toBe(1)
        expect(yield* Fiber.join(waiter)).toBe("woken")
      }))

    it.scoped("crc32c matches the published vectors", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("crc")
        const r = yield* open({ name, size: SIZE, mode: "create" })
        const digits = utf8("123456789")
        expect(r.crc32c(digits, 0, digits.length)).toBe(0xe3069283)
        expect(r.crc32c(new Uint8Array(32), 0, 32)).toBe(0x8a9136aa)
        expect(r.crc32c(new Uint8Array(32).fill(0xff), 0, 32)).toBe(0x62a8ab43)
        const ascending = Uint8Array.from({ length: 32 }, (_, i) => i)
        expect(r.crc32c(ascending, 0, 32)).toBe(0x46dd794e)
        // chaining: crc(a ++ b) = crc(b, seed = crc(a))
        expect(r.crc32c(digits, 4, 5, r.crc32c(digits, 0, 4))).toBe(0xe3069283)
      }))

    it.scoped("non-coherent publish records the ranges it writes back", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("flush")
        const r = yield* open({ name, size: SIZE, mode: "create", coherence: "non-coherent" })
        r.flushLog.start()
        r.publish(8192, 128)
        r.publish(16384, 64)
        const log = Array.from(r.flushLog.take())
        r.flushLog.stop()
        expect(log).toEqual([8192, 128, 16384, 64])
      }))

    it.effect("the creator unlinks the region when its scope closes", () =>
      Effect.gen(function*() {
        const name = yield* Effect.scoped(uniqueRegion("unlink"))
        yield* Effect.scoped(open({ name, size: SIZE, mode: "create" }))
        const exit = yield* Effect.exit(Effect.scoped(open({ name, mode: "attach" })))
        expect(Exit.isFailure(exit)).toBe(true)
      }))
  })

contract("layer (native region)", CxlMemoryLayers.make)
contract("layerMemory (in-process fake)", CxlMemoryLayers.makeMemory)

describe("native region across processes", () => {
  it.scopedLive("a child attaches, writes with Atomics and wakes the parent; the parent wakes the child", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("xproc")
      const region = yield* CxlMemoryLayers.make({ name, size: SIZE, mode: "create", params: [42] })
      const [valueOffset, parentBell, childBell, parentAck, childAck] = [8192, 8256, 8320, 8384, 8448]
      const child = yield* spawnFixture("region-peer", [name, ...[valueOffset, 987654, parentBell, childBell, parentAck, childAck].map(String)])
      const attached = yield* child.next<{ attached: boolean; size: number; params: Array<number> }>()
      expect(attached).toMatchObject({ attached: true, size: SIZE, params: [42] })
      // The bell word stays 0, so only the child's wake can end this wait before its timeout.
      expect(yield* region.wait(parentBell, 0, 20_000)).toBe("woken")
      expect(Atomics.load(region.i32, valueOffset / 4)).toBe(987654)
      Atomics.store(region.i32, parentAck / 4, 1)
      expect(yield* child.next()).toMatchObject({ wrote: 987654, wokeParent: true })
      while (Atomics.load(region.i32, childAck / 4) === 0) {
        region.wake(childBell)
        yield* Effect.sleep("2 millis")
      }
      expect(yield* child.next()).toMatchObject({ childWait: "woken" })
      expect((yield* child.exited).code).toBe(0)
    }))

  it.scoped("a file-backed region (the DAX / CXL-node path) works the same", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("file")
      const path = `/tmp/${name}`
      expect(regionKind(path).kind).toBe("file")
      const a = yield* CxlMemoryLayers.make({ name: path, size: SIZE, mode: "create" })
      const b = yield* CxlMemoryLayers.make({ name: path, mode: "attach" })
      Atomics.store(a.i32, 2048, 77)
      expect(Atomics.load(b.i32, 2048)).toBe(77)
    }))

  it.effect("a missing addon is NativeUnavailable naming the path and the fix", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(loadAddon("/nonexistent/cxlog_native.node"))
      expect(error._tag).toBe("NativeUnavailable")
      expect(error.path).toBe("/nonexistent/cxlog_native.node")
      expect(error.message).toContain("npm rebuild")
    }))

  it.effect("a region's mapping is closed with its scope and views read as empty", () =>
    Effect.gen(function*() {
      const name = yield* Effect.scoped(uniqueRegion("close"))
      const region = yield* Effect.scoped(CxlMemoryLayers.make({ name, size: SIZE, mode: "create" }))
      expect(region.buffer.byteLength).toBe(0)
      expect(region.i32[10]).toBeUndefined()
    }))
})
