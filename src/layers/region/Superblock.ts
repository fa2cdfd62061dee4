/**
 * The region's first 4 KiB: identity, layout, and the lease lines. Offsets in bytes; every
 * group written by a different role sits on its own 64-byte line.
 */
import { Effect } from "effect"
import {
  RegionCorrupt,
  RegionLayoutMismatch,
  RegionNotReady,
  RegionSizeMismatch
} from "../../services/region/CxlMemory.js"
import { type RecordWords, WordView } from "./WordView.js"

export const LAYOUT_VERSION = 15
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
  /** Sequencer lease line: holder occurrence (claim word), holder pid, cluster epoch, doorbell offset (i32 each), expiry ms (f64 at +16); see log/Records.LeaseLine and its view, RecordViews.LeaseLineView. */
  sequencerLease: 640,
  /** Coordinator lease line: same shape. */
  coordinatorLease: 704
} as const

export const STATE_READY = 1

/**
 * The region's identity: its creation time in ms, as written once by its creator (`cxlog regions`
 * shows it). A region made again under the same name is another region, with another id.
 */
export const regionId = (v: { readonly f64: Float64Array }): string => String(v.f64[Offsets.createdAtMs / 8])

/** The superblock's identity and layout fields, typed; `state` is the word its creator stores last. */
export class SuperblockView extends WordView {
  /** Whether either magic word is written (a creator has begun). */
  magicWritten(): boolean {
    return this.u32[Offsets.magic / 4] !== 0 || this.u32[Offsets.magic / 4 + 1] !== 0
  }
  isMagic(): boolean {
    return this.u32[Offsets.magic / 4] === MAGIC[0] && this.u32[Offsets.magic / 4 + 1] === MAGIC[1]
  }
  /** The magic words as 16 hex digits, for errors. */
  magicHex(): string {
    return `${this.u32[Offsets.magic / 4]!.toString(16).padStart(8, "0")}${
      this.u32[Offsets.magic / 4 + 1]!.toString(16).padStart(8, "0")
    }`
  }
  writeMagic(): void {
    this.u32[Offsets.magic / 4] = MAGIC[0]
    this.u32[Offsets.magic / 4 + 1] = MAGIC[1]
  }
  layoutVersion(): number {
    return this.u32[Offsets.layoutVersion / 4]!
  }
  setLayoutVersion(v: number): void {
    this.u32[Offsets.layoutVersion / 4] = v
  }
  state(): number {
    return Atomics.load(this.i32, Offsets.state / 4)
  }
  storeState(v: number): void {
    Atomics.store(this.i32, Offsets.state / 4, v)
  }
  regionBytes(): number {
    return this.f64[Offsets.regionBytes / 8]!
  }
  setRegionBytes(v: number): void {
    this.f64[Offsets.regionBytes / 8] = v
  }
  createdAtMs(): number {
    return this.f64[Offsets.createdAtMs / 8]!
  }
  setCreatedAtMs(v: number): void {
    this.f64[Offsets.createdAtMs / 8] = v
  }
  /** The layout parameters (at most MAX_PARAMS, whatever the count word says). */
  params(): ReadonlyArray<number> {
    const count = Math.min(this.u32[Offsets.paramCount / 4]!, MAX_PARAMS)
    return Array.from(this.f64.subarray(Offsets.params / 8, Offsets.params / 8 + count))
  }
  setParams(params: ReadonlyArray<number>): void {
    this.u32[Offsets.paramCount / 4] = params.length
    params.forEach((p, i) => {
      this.f64[Offsets.params / 8 + i] = p
    })
  }
}

/** The creator writes identity and parameters, then flips `state` to ready last. */
export const writeSuperblock = (v: RecordWords, size: number, version: number, params: ReadonlyArray<number>): void => {
  const superblock = new SuperblockView(v)
  superblock.writeMagic()
  superblock.setLayoutVersion(version)
  superblock.setRegionBytes(size)
  superblock.setCreatedAtMs(Date.now())
  superblock.setParams(params)
  superblock.storeState(STATE_READY)
}

/**
 * Validates an attached region's superblock, waiting up to `readyTimeoutMs` for a creator
 * still initialising. Returns the stored parameters and version.
 */
export const readSuperblock = (
  name: string,
  v: RecordWords,
  mappedBytes: number,
  expected: { readonly version: number; readonly size: number | undefined; readonly readyTimeoutMs: number }
): Effect.Effect<
  { params: ReadonlyArray<number>; version: number },
  RegionCorrupt | RegionLayoutMismatch | RegionSizeMismatch | RegionNotReady
> =>
  Effect.gen(function*() {
    // A file shorter than the superblock is none of ours (or one its creator never sized): nothing in it to read.
    if (mappedBytes < SUPERBLOCK_BYTES) {
      return yield* new RegionCorrupt({
        name,
        reason: `it holds ${mappedBytes} bytes, fewer than a region's ${SUPERBLOCK_BYTES}-byte superblock`
      })
    }
    const superblock = new SuperblockView(v)
    const started = Date.now()
    while (superblock.state() !== STATE_READY) {
      const magicWritten = superblock.magicWritten()
      const state = superblock.state()
      if (state !== 0 || (magicWritten && !superblock.isMagic())) {
        return yield* new RegionCorrupt({
          name,
          reason: `bad superblock (state ${state}, magic ${superblock.magicHex()})`
        })
      }
      if (Date.now() - started > expected.readyTimeoutMs) {
        return yield* new RegionNotReady({ name, waitedMs: expected.readyTimeoutMs })
      }
      yield* Effect.sleep("2 millis")
    }
    if (!superblock.isMagic()) return yield* new RegionCorrupt({ name, reason: `bad magic ${superblock.magicHex()}` })
    const version = superblock.layoutVersion()
    if (version !== expected.version) {
      return yield* new RegionLayoutMismatch({ name, expected: expected.version, found: version })
    }
    const recorded = superblock.regionBytes()
    if (recorded !== mappedBytes) {
      return yield* new RegionCorrupt({
        name,
        reason: `superblock says ${recorded} bytes but ${mappedBytes} are mapped`
      })
    }
    if (expected.size !== undefined && expected.size !== mappedBytes) {
      return yield* new RegionSizeMismatch({ name, expected: expected.size, found: mappedBytes })
    }
    return { params: superblock.params(), version }
  })
