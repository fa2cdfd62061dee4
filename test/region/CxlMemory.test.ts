import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Exit, Fiber, type Scope } from "effect"
import { execFileSync } from "node:child_process"
import { closeSync, existsSync, openSync, writeFileSync } from "node:fs"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import { LAYOUT_VERSION, Offsets } from "../../src/layers/region/Superblock.js"
import { loadAddon, loadAddonSync, regionByteLimit, regionKind } from "../../src/native/Native.js"
import { type CxlMemoryShape, type RegionOptions } from "../../src/services/region/CxlMemory.js"
import { expectedCacheInstructions } from "../helpers/CacheInstructions.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"
import { smallTmpfs } from "../helpers/Tmpfs.js"

type Open = (options: RegionOptions) => Effect.Effect<CxlMemoryShape, unknown, Scope.Scope>

const SIZE = 1 << 20
const PAGE = 4096
const utf8 = (s: string) => new TextEncoder().encode(s)

/**
 * The largest region one ArrayBuffer can hold here (4 GiB on Node 20, 2^53 - 1 bytes from Node
 * 22), and the first whole-page size past it (2^53 there: whole, though not a safe integer).
 */
const LIMIT = regionByteLimit()
const OVER_LIMIT = Math.ceil((LIMIT + 1) / PAGE) * PAGE
/** A region past 4 GiB where this Node.js can map one, else the largest it can (exactly 4 GiB on Node 20). */
const BIG = Math.min(2 ** 32 + 64 * 1024, Math.floor(LIMIT / PAGE) * PAGE)

/** One contract, two implementations: the mapped region and the in-process fake (`native` false). */
const contract = (label: string, open: Open, native: boolean) =>
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
          found: LAYOUT_VERSION
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
        const corrupt = yield* Effect.flip(open({ name, mode: "attach" }))
        expect(corrupt).toMatchObject({ _tag: "RegionCorrupt" })
        // It names the way out: cxlog's own commands do not take a file they cannot read.
        expect(String((corrupt as Error).message)).toContain(`remove it: rm /dev/shm/${name.replace(/^\//, "")}`)
      }))

    it.scoped("rejects sizes that are not whole pages", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("size")
        expect(yield* Effect.flip(open({ name, size: 5000, mode: "create" }))).toMatchObject({
          _tag: "InvalidRegionSize"
        })
        expect(yield* Effect.flip(open({ name, mode: "create" }))).toMatchObject({ _tag: "InvalidRegionSize" })
      }))

    it.scoped("a ready timeout that names no wait is InvalidRegionOptions naming it, and no region is made", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("ready-timeout")
        const cases: ReadonlyArray<readonly [Partial<RegionOptions>, string]> = [
          [{ readyTimeout: "5 sekonds" as Duration.DurationInput }, "readyTimeout must be a duration"],
          [{ readyTimeoutMs: Number.NaN }, "readyTimeoutMs must be a number of milliseconds of at least 0, not NaN"]
        ]
        for (const [options, reason] of cases) {
          // Made inside the Effect: a JavaScript caller's bad value is a typed failure, never a throw.
          const failed = yield* Effect.flip(
            Effect.suspend(() => open({ name, size: SIZE, mode: "create", ...options }))
          )
          expect(failed).toMatchObject({ _tag: "InvalidRegionOptions" })
          expect((failed as Error).message).toContain(reason)
        }
        if (native) expect(existsSync(`/dev/shm/${name.replace(/^\//, "")}`)).toBe(false)
      }))

    it.scoped(
      "a region larger than one ArrayBuffer can be here is RegionTooLarge naming the limit, and nothing is left behind",
      () =>
        Effect.gen(function*() {
          const name = yield* uniqueRegion("too-large")
          for (const mode of ["create", "create-or-attach"] as const) {
            const error = yield* Effect.flip(open({ name, size: OVER_LIMIT, mode }))
            expect(error).toMatchObject({ _tag: "RegionTooLarge", name, size: OVER_LIMIT, limit: LIMIT })
            expect((error as Error).message).toContain("buffer.constants.MAX_LENGTH")
            expect(existsSync(`/dev/shm/${name}`)).toBe(false)
            expect(yield* Effect.flip(open({ name, mode: "attach" }))).toMatchObject({ _tag: "RegionMissing" })
          }
        })
    )

    it.scoped("out-of-range access is a typed error, in range is a zero-copy view", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("bounds")
        const r = yield* open({ name, size: SIZE, mode: "create" })
        expect(yield* Effect.flip(r.slice(SIZE - 8, 16))).toMatchObject({
          _tag: "RegionOutOfBounds",
          offset: SIZE - 8,
          length: 16
        })
        expect(yield* Effect.flip(r.check(-1, 4))).toMatchObject({ _tag: "RegionOutOfBounds" })
        expect(yield* Effect.flip(r.wait(SIZE, 0, 10))).toMatchObject({ _tag: "RegionOutOfBounds" })
        const view = yield* r.slice(8192, 4)
        view[0] = 9
        expect(r.bytes[8192]).toBe(9)
      }))

    it.scoped("reserve backs whole pages; discard zeroes them, seen by every mapping", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("reserve")
        const a = yield* open({ name, size: SIZE, mode: "create", reserveBytes: 2 * PAGE })
        const b = yield* open({ name, mode: "attach" })
        expect(a.reserve(4 * PAGE, 8 * PAGE)).toBeUndefined()
        a.bytes.fill(5, 4 * PAGE, 12 * PAGE)
        expect(b.bytes[12 * PAGE - 1]).toBe(5)
        a.discard(4 * PAGE, 4 * PAGE)
        expect(b.bytes.subarray(4 * PAGE, 8 * PAGE).every((x) => x === 0)).toBe(true)
        expect(b.bytes[8 * PAGE]).toBe(5)
        expect(() => a.reserve(PAGE + 1, PAGE)).toThrow(/not whole pages/)
        expect(() => a.discard(SIZE - PAGE, 2 * PAGE)).toThrow(/not whole pages/)
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

    it.scoped("non-coherent: publish writes back with the best instruction, invalidate evicts (never clwb)", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("evict")
        const r = yield* open({ name, size: SIZE, mode: "create", coherence: "non-coherent" })
        const expected = native ? expectedCacheInstructions() : { publish: "none", invalidate: "none" }
        r.flushLog.start({ invalidations: true })
        r.publish(8192, 128)
        r.invalidate(16384, 64)
        const ops = r.flushLog.takeOps()
        r.publish(8192, 64)
        r.invalidate(16384, 64)
        const publishes = Array.from(r.flushLog.take())
        r.flushLog.stop()
        expect(ops).toEqual([
          { path: "publish", instruction: expected.publish, offset: 8192, length: 128 },
          { path: "invalidate", instruction: expected.invalidate, offset: 16384, length: 64 }
        ])
        // CLWB (and dc cvac) may leave the line cached: a later load could still read a stale copy.
        expect(["clwb", "dc-cvac"]).not.toContain(ops[1]!.instruction)
        expect(publishes).toEqual([8192, 64])
      }))

    it.effect("the creator unlinks the region when its scope closes", () =>
      Effect.gen(function*() {
        const name = yield* Effect.scoped(uniqueRegion("unlink"))
        yield* Effect.scoped(open({ name, size: SIZE, mode: "create" }))
        const exit = yield* Effect.exit(Effect.scoped(open({ name, mode: "attach" })))
        expect(Exit.isFailure(exit)).toBe(true)
      }))
  })

contract("layer (native region)", CxlMemoryLayers.make, true)
contract("layerMemory (in-process fake)", CxlMemoryMemoryLayers.makeMemory, false)

describe("native region across processes", () => {
  it.scoped("creating a region in a directory that does not exist names the directory, not a missing region", () =>
    Effect.gen(function*() {
      const name = "/nonexistent-cxlog-dir/orders"
      const error = yield* Effect.flip(CxlMemoryLayers.make({ name, size: SIZE, mode: "create" }))
      expect(error).toMatchObject({ _tag: "RegionSystemError", code: "ENOENT" })
      expect(String((error as Error).message)).toBe(
        "region /nonexistent-cxlog-dir/orders: open: the directory /nonexistent-cxlog-dir does not exist"
      )
      // Attaching, the same errno means the region is missing.
      expect(yield* Effect.flip(CxlMemoryLayers.make({ name, mode: "attach" }))).toMatchObject({
        _tag: "RegionMissing"
      })
    }))

  it.scoped("a file shorter than a superblock is RegionCorrupt naming its size, not a read past its end", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("short")
      writeFileSync(`/dev/shm/${name.replace(/^\//, "")}`, "garbage\n")
      const corrupt = yield* Effect.flip(CxlMemoryLayers.make({ name, mode: "attach" }))
      expect(corrupt).toMatchObject({ _tag: "RegionCorrupt" })
      expect(String((corrupt as Error).message)).toContain(
        "it holds 8 bytes, fewer than a region's 4096-byte superblock"
      )
    }))

  it.scopedLive("a child attaches, writes with Atomics and wakes the parent; the parent wakes the child", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("xproc")
      const region = yield* CxlMemoryLayers.make({ name, size: SIZE, mode: "create", params: [42] })
      const [valueOffset, parentBell, childBell, parentAck, childAck] = [8192, 8256, 8320, 8384, 8448]
      const child = yield* spawnFixture("region-peer", [
        name,
        ...[valueOffset, 987654, parentBell, childBell, parentAck, childAck].map(String)
      ])
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

  it.scoped("a region bigger than the filesystem holding it is a typed no-space error at creation, not a SIGBUS at first touch; nothing is left behind", () =>
    Effect.gen(function*() {
      const dir = yield* smallTmpfs("2m")
      const path = `${dir}/region`
      const error = yield* Effect.flip(CxlMemoryLayers.make({ name: path, size: 8 * SIZE, mode: "create" }))
      expect(error).toMatchObject({ _tag: "RegionSystemError", code: "ENOSPC" })
      expect((error as Error).message).toContain("posix_fallocate failed")
      expect(existsSync(path)).toBe(false)
      // One that fits is created whole: every page of it can be written.
      const fits = yield* CxlMemoryLayers.make({ name: path, size: SIZE, mode: "create" })
      for (let at = 0; at < SIZE; at += PAGE) fits.bytes[at] = 1
      expect(fits.bytes[SIZE - PAGE]).toBe(1)
    }))

  it.effect("the addon reports which instruction each path runs: the best write-back for flush, an evicting one for invalidate", () =>
    Effect.gen(function*() {
      const features = (yield* loadAddon()).features()
      const expected = expectedCacheInstructions()
      expect({ publish: features.flush, invalidate: features.invalidate }).toEqual(expected)
      expect(["clwb", "dc-cvac"]).not.toContain(features.invalidate)
    }))

  it.scoped("attaching to a region file larger than one ArrayBuffer can be here is RegionTooLarge, not a crash", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("attach-large")
      closeSync(openSync(`/dev/shm/${name}`, "wx", 0o600))
      // Sparse: tmpfs allocates no pages. truncate(1), since Node's ftruncate takes no length past 2^53 - 1.
      execFileSync("truncate", ["-s", `${OVER_LIMIT}`, `/dev/shm/${name}`])
      expect(yield* Effect.flip(CxlMemoryLayers.make({ name, mode: "attach" }))).toMatchObject({
        _tag: "RegionTooLarge",
        size: OVER_LIMIT,
        limit: LIMIT
      })
      // Only a creator removes a region: the attacher leaves the file to its owner.
      expect(existsSync(`/dev/shm/${name}`)).toBe(true)
    }))

  // Node 20 only: from Node 22 the runtime wraps any mapping the addon can make (up to 2^53 - 1 bytes).
  it.scoped.skipIf(2 ** 32 + 64 * 1024 <= LIMIT)(
    "the addon, given no limit, refuses a mapping the runtime cannot wrap and unlinks what it created",
    () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("no-limit")
        const addon = loadAddonSync()
        let thrown: unknown
        try {
          addon.open("shm", `/${name}`, "create", 2 ** 32 + 64 * 1024)
        } catch (error) {
          thrown = error
        }
        expect(thrown).toBeInstanceOf(RangeError)
        expect(thrown).toMatchObject({ code: "ERR_REGION_TOO_LARGE", size: 2 ** 32 + 64 * 1024 })
        expect(existsSync(`/dev/shm/${name}`)).toBe(false)
      })
  )

  it.scopedLive(`a ${BIG}-byte region: bytes, atomics, f64, flush, crc and doorbells across 2^31 (and 2^32 where it fits), from two processes`, () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("big")
      const region = yield* CxlMemoryLayers.make({
        name,
        size: BIG,
        mode: "create",
        coherence: "non-coherent",
        params: [BIG]
      })
      expect(region.size).toBe(BIG)
      expect(region.f64[Offsets.regionBytes / 8]).toBe(BIG)
      // Offsets that a 32-bit (signed or unsigned) truncation would move, and the last bytes.
      const far = [2 ** 31 + 8192, ...(BIG > 2 ** 32 + 16384 ? [2 ** 32 + 12288] : []), BIG - 4096]
      for (const at of far) {
        region.bytes[at] = 0xa5
        Atomics.store(region.i32, (at + 8) / 4, at % 1_000_003)
        region.f64[(at + 16) / 8] = at
      }
      for (const at of far) {
        expect([region.bytes[at], Atomics.load(region.i32, (at + 8) / 4), region.f64[(at + 16) / 8]]).toEqual([
          0xa5,
          at % 1_000_003,
          at
        ])
        // Where a write whose offset lost its high bits would have landed: untouched.
        for (const alias of [at - 2 ** 31, at - 2 ** 32].filter((a) => a >= 0)) {
          expect(Array.from(region.bytes.subarray(alias, alias + 24))).toEqual(new Array(24).fill(0))
        }
      }
      region.bytes[BIG - 1] = 7
      expect(region.bytes[BIG - 1]).toBe(7)
      expect(yield* Effect.flip(region.slice(BIG - 8, 16))).toMatchObject({
        _tag: "RegionOutOfBounds",
        offset: BIG - 8
      })
      expect((yield* region.slice(BIG - 16, 16)).byteLength).toBe(16)

      region.bytes.set(utf8("123456789"), BIG - 2048)
      expect(region.crc32c(region.bytes, BIG - 2048, 9)).toBe(0xe3069283)
      region.flushLog.start({ invalidations: true })
      region.publish(BIG - 128, 128)
      region.invalidate(BIG - 64, 64)
      expect(region.flushLog.takeOps().map((op) => [op.path, op.offset, op.length])).toEqual([
        ["publish", BIG - 128, 128],
        ["invalidate", BIG - 64, 64]
      ])
      region.flushLog.stop()

      // A second process maps the same bytes and the two ring futex doorbells near the end.
      const [valueOffset, parentBell, childBell, parentAck, childAck] = [
        BIG - 1024,
        BIG - 960,
        BIG - 896,
        BIG - 832,
        BIG - 768
      ]
      const child = yield* spawnFixture("region-peer", [
        name,
        ...[valueOffset, 987654, parentBell, childBell, parentAck, childAck].map(String)
      ])
      expect(yield* child.next()).toMatchObject({ attached: true, size: BIG, params: [BIG] })
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
