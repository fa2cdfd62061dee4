/**
 * The region's first 4 KiB: identity, layout, and the lease lines. Offsets in bytes; every
 * group written by a different role sits on its own 64-byte line.
 */
import { Effect } from "effect"
import { RegionCorrupt, RegionLayoutMismatch, RegionNotReady, RegionSizeMismatch } from "../../services/region/CxlMemory.js"

export const LAYOUT_VERSION = 8
export const SUPERBLOCK_BYTES = 4096
export const MAX_PARAMS = 64

/** "CXLOGRG1" as two little-endian 32-bit words. */
export const MAGIC = [0x4f4c5843, 0x31475247] as const // "CXLO", "GRG1"

export const Offsets = {
  magic: 0, // u32 × 2
  layoutVersion: 8, // u32
  state: 12, // i32: 0 initialising, 1 ready
  regionBytes: 16, // f64
  createdAtMs: 24, // f64
  paramCount: 32, // u32
  params: 64, // f64 × 64, lines 1–8
  /** Sequencer lease line: holder occurrence (claim word), holder pid, cluster epoch, doorbell offset (i32 each), expiry ms (f64 at +16); see LogRecords.LeaseLine. */
  sequencerLease: 640,
  /** Coordinator lease line: same shape. */
  coordinatorLease: 704
} as const

export const STATE_READY = 1

interface Views {
  readonly u32: Uint32Array
  readonly i32: Int32Array
  readonly f64: Float64Array
}

/** The creator writes identity and parameters, then flips `state` to ready last. */
export const writeSuperblock = (v: Views, size: number, version: number, params: ReadonlyArray<number>): void => {
  v.u32[Offsets.magic / 4] = MAGIC[0]
  v.u32[Offsets.magic / 4 + 1] = MAGIC[1]
  v.u32[Offsets.layoutVersion / 4] = version
  v.f64[Offsets.regionBytes / 8] = size
  v.f64[Offsets.createdAtMs / 8] = Date.now()
  v.u32[Offsets.paramCount / 4] = params.length
  params.forEach((p, i) => {
    v.f64[Offsets.params / 8 + i] = p
  })
  Atomics.store(v.i32, Offsets.state / 4, STATE_READY)
}

const readParams = (v: Views): ReadonlyArray<number> => {
  const count = Math.min(v.u32[Offsets.paramCount / 4]!, MAX_PARAMS)
  return Array.from(v.f64.subarray(Offsets.params / 8, Offsets.params / 8 + count))
}

/**
 * Validates an attached region's superblock, waiting up to `readyTimeoutMs` for a creator
 * still initialising. Returns the stored parameters and version.
 */
export const readSuperblock = (
  name: string,
  v: Views,
  mappedBytes: number,
  expected: { readonly version: number; readonly size: number | undefined; readonly readyTimeoutMs: number }
): Effect.Effect<{ params: ReadonlyArray<number>; version: number }, RegionCorrupt | RegionLayoutMismatch | RegionSizeMismatch | RegionNotReady> =>
  Effect.gen(function*() {
    const started = Date.now()
    while (Atomics.load(v.i32, Offsets.state / 4) !== STATE_READY) {
      const magicWritten = v.u32[Offsets.magic / 4] !== 0 || v.u32[Offsets.magic / 4 + 1] !== 0
      const state = Atomics.load(v.i32, Offsets.state / 4)
      if (state !== 0 || (magicWritten && !isMagic(v))) {
        return yield* new RegionCorrupt({ name, reason: `bad superblock (state ${state}, magic ${hex(v)})` })
      }
      if (Date.now() - started > expected.readyTimeoutMs) {
        return yield* new RegionNotReady({ name, waitedMs: expected.readyTimeoutMs })
      }
      yield* Effect.sleep("2 millis")
    }
    if (!isMagic(v)) return yield* new RegionCorrupt({ name, reason: `bad magic ${hex(v)}` })
    const version = v.u32[Offsets.layoutVersion / 4]!
    if (version !== expected.version) {
      return yield* new RegionLayoutMismatch({ name, expected: expected.version, found: version })
    }
    const recorded = v.f64[Offsets.regionBytes / 8]!
    if (recorded !== mappedBytes) {
      return yield* new RegionCorrupt({ name, reason: `superblock says ${recorded} bytes but ${mappedBytes} are mapped` })
    }
    if (expected.size !== undefined && expected.size !== mappedBytes) {
      return yield* new RegionSizeMismatch({ name, expected: expected.size, found: mappedBytes })
    }
    return { params: readParams(v), version }
  })

const isMagic = (v: Views) => v.u32[Offsets.magic / 4] === MAGIC[0] && v.u32[Offsets.magic / 4 + 1] === MAGIC[1]
const hex = (v: Views) =>
  `${v.u32[Offsets.magic / 4]!.toString(16).padStart(8, "0")}${v.u32[Offsets.magic / 4 + 1]!.toString(16).padStart(8, "0")}`
