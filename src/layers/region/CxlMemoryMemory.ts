/**
 * The in-process fake of CxlMemory: the same opening steps and contract as the live layer
 * (CxlMemory.ts) over a plain ArrayBuffer — no addon, no processes. Regions are shared by
 * name within the process; doorbell waits are promises woken by `wake`.
 */
import { Effect, Layer, type Scope } from "effect"
import { crc32cSoftware } from "../../native/Crc32cSoftware.js"
import {
  type CacheLineOp,
  CxlMemory,
  type CxlMemoryShape,
  RegionExists,
  RegionMissing,
  type RegionOpenError,
  type RegionOptions,
  type WaitOutcome
} from "../../services/region/CxlMemory.js"
import { type Backend, makeShape, type MapRegion, openRegion, publishPairs } from "./RegionOpen.js"
import { LAYOUT_VERSION, writeSuperblock } from "./Superblock.js"

/** Regions of the fake, by name, shared by every `layerMemory` in this process. */
const memoryRegions = new Map<string, ArrayBuffer>()

/** Doorbell waiters of the fake, keyed by buffer and word offset. */
const memoryWaiters = new WeakMap<ArrayBuffer, Map<number, Set<(outcome: WaitOutcome) => void>>>()

const memoryBackend = (buffer: ArrayBuffer): Backend => {
  const words = new Int32Array(buffer)
  const takeAll = () => {
    const taken = log ?? []
    if (log !== undefined) log = []
    return taken
  }
  const waiters = memoryWaiters.get(buffer) ?? new Map<number, Set<(outcome: WaitOutcome) => void>>()
  memoryWaiters.set(buffer, waiters)
  let log: Array<CacheLineOp> | undefined
  let withInvalidations = false
  return {
    flush: (offset, length) => {
      log?.push({ path: "publish", instruction: "none", offset, length })
    },
    invalidate: (offset, length) => {
      if (withInvalidations) log?.push({ path: "invalidate", instruction: "none", offset, length })
    },
    fence: () => {},
    // In-process memory exists once allocated; a discard is zeroed by the service (RegionOpen.ts).
    reserve: () => 0,
    discard: () => -1,
    wait: (offset, expected, timeoutMs) =>
      new Promise<WaitOutcome>((resolve) => {
        if ((Atomics.load(words, offset / 4) >>> 0) !== expected) return resolve("not-equal")
        const parked = waiters.get(offset) ?? new Set()
        waiters.set(offset, parked)
        const timer = setTimeout(() => settle("timed-out"), timeoutMs)
        const settle = (outcome: WaitOutcome) => {
          clearTimeout(timer)
          parked.delete(settle)
          resolve(outcome)
        }
        parked.add(settle)
      }),
    wake: (offset, count) => {
      const parked = waiters.get(offset)
      if (parked === undefined) return 0
      let woken = 0
      for (const settle of [...parked]) {
        if (woken >= count) break
        settle("woken")
        woken++
      }
      return woken
    },
    crc32c: crc32cSoftware,
    crossProcess: false,
    flushLog: {
      start: (options) => {
        log = []
        withInvalidations = options?.invalidations === true
      },
      take: () => publishPairs(takeAll()),
      takeOps: () => takeAll(),
      stop: () => {
        log = undefined
      }
    }
  }
}

/** Finds or makes the named buffer; its creator forgets it when the scope closes, unless `keep`. */
const mapMemory = (options: RegionOptions): MapRegion<never> => (mode, size) =>
  Effect.gen(function*() {
    const { name } = options
    const existing = memoryRegions.get(name)
    if (existing !== undefined && mode === "create") return yield* new RegionExists({ name })
    if (existing === undefined && mode === "attach") return yield* new RegionMissing({ name })
    if (existing !== undefined) {
      return { buffer: existing, size: existing.byteLength, created: false, backend: memoryBackend(existing) }
    }
    const buffer = new ArrayBuffer(size)
    memoryRegions.set(name, buffer)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (options.keep !== true && memoryRegions.get(name) === buffer) {
          memoryRegions.delete(name)
        }
      })
    )
    return { buffer, size, created: true, backend: memoryBackend(buffer) }
  })

/** The same contract over an in-process buffer: no addon, no processes. Regions are shared by name within the process. */
export const makeMemory = (options: RegionOptions): Effect.Effect<CxlMemoryShape, RegionOpenError, Scope.Scope> =>
  openRegion(options, mapMemory(options))

export const layerMemory = (options: RegionOptions): Layer.Layer<CxlMemory, RegionOpenError> =>
  Layer.scoped(CxlMemory, makeMemory(options))

/**
 * A region of the fake that no one can attach to by name, for a fake service that runs its
 * live engine over region bytes (the in-memory Rings). `size`: a multiple of 4096, at least 8192.
 */
export const privateRegion = (size: number): CxlMemoryShape => {
  const buffer = new ArrayBuffer(size)
  writeSuperblock(
    { u32: new Uint32Array(buffer), i32: new Int32Array(buffer), f64: new Float64Array(buffer) },
    size,
    LAYOUT_VERSION,
    []
  )
  return makeShape(
    { name: "(private)", size, created: true, coherence: "coherent", layoutVersion: LAYOUT_VERSION, params: [] },
    buffer,
    memoryBackend(buffer)
  )
}
