/**
 * crc32c in the addon: every implementation this CPU can run (features().crc32cPaths, each
 * called through the test-only crc32cVia) against the published vectors and against the
 * TypeScript table, over lengths that cross each path's block and group boundaries, at
 * unaligned offsets inside a larger buffer, from random seeds, and chained in pieces.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import { readFileSync } from "node:fs"
import { crc32c } from "../../src/native/Crc32c.js"
import { crc32cSoftware } from "../../src/native/Crc32cSoftware.js"
import { CRC32C_PATHS, type Crc32cPath, loadAddonSync } from "../../src/native/Native.js"

const addon = loadAddonSync()
const { crc32c: chosen, crc32cPaths: paths } = addon.features()

/** RFC 3720 (iSCSI) appendix B.4, and the usual check value. */
const vectors: ReadonlyArray<readonly [string, Uint8Array, number]> = [
  ["32 zero bytes", new Uint8Array(32), 0x8a9136aa],
  ["32 0xff bytes", new Uint8Array(32).fill(0xff), 0x62a8ab43],
  ["0..31 ascending", Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e],
  ["31..0 descending", Uint8Array.from({ length: 32 }, (_, i) => 31 - i), 0x113fdb5c],
  ["\"123456789\"", new TextEncoder().encode("123456789"), 0xe3069283]
]

/** A deterministic generator, so the big buffer is the same on every run. */
const xorshift = (seed: number) => () => {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return seed >>> 0
}

const MAX_LENGTH = 200 * 1024
const next = xorshift(0x9e3779b9)
const big = Uint8Array.from({ length: MAX_LENGTH + 64 }, () => next() & 0xff)

/**
 * Lengths on both sides of every boundary in cxlog_native.cc's crc32c: the 8- and 16-byte
 * words, the 256-byte fold step and its 64-byte accumulators, the three-stream tiers (3 x 64,
 * 3 x 256, 3 x 4096 bytes), and one and several hybrid groups (6496 bytes).
 */
const boundaries = [
  8,
  16,
  64,
  192,
  256,
  512,
  768,
  1024,
  12288,
  24576,
  6496,
  12992,
  6496 * 10 + 576,
  65536,
  MAX_LENGTH - 20
]
const boundaryLengths = [
  ...new Set(boundaries.flatMap((b) => [-17, -16, -9, -8, -1, 0, 1, 7, 8, 15, 16, 17].map((d) => b + d)))
]
  .filter((n) => n >= 0 && n <= MAX_LENGTH)

/**
 * The implementations this CPU should run, fastest last, from /proc/cpuinfo rather than from the
 * addon's own cpuid checks (the kernel lists avx512f only where it saves the registers).
 */
const expectedPaths = (): ReadonlyArray<Crc32cPath> => {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8")
  const flags = new Set((cpuinfo.match(/^(?:flags|Features)\s*:(.*)$/m)?.[1] ?? "").trim().split(/\s+/))
  if (process.arch === "arm64") return flags.has("crc32") ? ["software", "armv8-crc"] : ["software"]
  if (process.arch !== "x64") return ["software"]
  const sse42 = flags.has("sse4_2")
  const pclmul = sse42 && flags.has("pclmulqdq")
  const avx512 = pclmul && flags.has("avx512f") && flags.has("vpclmulqdq")
  return [
    "software",
    ...(sse42 ? ["sse4.2" as const] : []),
    ...(pclmul ? ["sse4.2-3way" as const] : []),
    ...(avx512 ? ["avx512-vpclmulqdq" as const] : [])
  ]
}

const via = (path: Crc32cPath, bytes: Uint8Array, offset: number, length: number, seed = 0) =>
  addon.crc32cVia(path, bytes, offset, length, seed)

describe("crc32c (addon)", () => {
  it("runs the implementations /proc/cpuinfo says this CPU has, and uses the fastest", () => {
    const expected = expectedPaths()
    expect(paths).toEqual(expected)
    expect(chosen).toBe(expected.at(-1))
    for (const path of paths) expect(CRC32C_PATHS).toContain(path)
    for (const path of CRC32C_PATHS.filter((p) => !paths.includes(p))) {
      expect(() => via(path, big, 0, 16)).toThrow(RangeError)
    }
  })

  it("matches the published vectors on every implementation, and through the default entry points", () => {
    for (const [name, bytes, expected] of vectors) {
      for (const path of paths) expect([name, path, via(path, bytes, 0, bytes.length)]).toEqual([name, path, expected])
      expect([name, addon.crc32c(bytes, 0, bytes.length)]).toEqual([name, expected])
      expect([name, crc32c(bytes, 0, bytes.length)]).toEqual([name, expected])
      expect([name, crc32cSoftware(bytes, 0, bytes.length)]).toEqual([name, expected])
    }
  })

  it("matches the software version at every boundary length, offsets 0..15 into a larger buffer", () => {
    for (const length of boundaryLengths) {
      for (const offset of [0, 1, 3, 7, 8, 13, 15]) {
        const seed = next()
        const expected = crc32cSoftware(big, offset, length, seed)
        for (const path of paths) {
          expect([path, length, offset, via(path, big, offset, length, seed)]).toEqual([path, length, offset, expected])
        }
      }
    }
  })

  it("matches the software version at random lengths (0..200 KiB), offsets and seeds, on a view into the buffer", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: MAX_LENGTH }),
        fc.nat({ max: 15 }),
        fc.nat({ max: 48 }),
        fc.nat(),
        (length, offset, viewStart, seed) => {
          // A Uint8Array view that does not start at its ArrayBuffer's first byte, as batches in the region are.
          const view = big.subarray(viewStart, viewStart + offset + length)
          const expected = crc32cSoftware(view, offset, length, seed >>> 0)
          for (const path of paths) {
            expect([path, via(path, view, offset, length, seed >>> 0)]).toEqual([
              path,
              expected
            ])
          }
          expect(crc32c(view, offset, length, seed >>> 0)).toBe(expected)
        }
      ),
      { numRuns: 300 }
    )
  })

  it("chained over pieces cut at random points equals one call over the whole", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: MAX_LENGTH }),
        fc.array(fc.nat({ max: MAX_LENGTH }), { maxLength: 6 }),
        (length, cuts) => {
          const points = [0, ...cuts.map((c) => c % (length + 1)).sort((a, b) => a - b), length]
          for (const path of paths) {
            let crc = 0
            for (let i = 1; i < points.length; i++) {
              crc = via(
                path,
                big,
                points[i - 1]!,
                points[i]! - points[i - 1]!,
                crc
              )
            }
            expect([path, crc]).toEqual([path, via(path, big, 0, length)])
          }
        }
      ),
      { numRuns: 100 }
    )
  })

  it("reads the same bytes through an ArrayBuffer, a DataView and wider typed arrays (offsets in bytes)", () => {
    const at = 4096 + 24
    const expected = crc32cSoftware(big, at + 5, 3000)
    expect(addon.crc32c(big.buffer, at + 5, 3000)).toBe(expected)
    expect(addon.crc32c(new DataView(big.buffer, at, 4000), 5, 3000)).toBe(expected)
    expect(addon.crc32c(new Uint32Array(big.buffer, at, 1000), 5, 3000)).toBe(expected)
    expect(addon.crc32c(new Float64Array(big.buffer, at, 500), 5, 3000)).toBe(expected)
    expect(addon.crc32c(new Uint16Array(big.buffer, at, 2000), 5)).toBe(crc32cSoftware(big, at + 5, 3995))
  })

  it("refuses a range outside the bytes with a RangeError", () => {
    expect(() => addon.crc32c(big, big.length - 4, 5)).toThrow(RangeError)
    expect(() => addon.crc32c(big.subarray(8, 16), 0, 9)).toThrow(RangeError)
  })
})
