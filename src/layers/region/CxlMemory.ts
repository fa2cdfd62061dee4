/**
 * Layers for CxlMemory: `layer` maps a real region through the addon, `layerMemory` is the
 * same contract over a plain in-process buffer, `layerConfig` reads `CXLOG_REGION*`.
 */
import { Config, type ConfigError, Effect, Layer, Option, Schedule, type Scope } from "effect"
import {
  CACHE_INSTRUCTIONS,
  loadAddon,
  type NativeAddon,
  type NativeUnavailable,
  regionByteLimit,
  regionKind,
  toNativeError
} from "../../native/Native.js"
import {
  type CacheLineOp,
  type Coherence,
  CxlMemory,
  type CxlMemoryShape,
  InvalidRegionSize,
  type OpenMode,
  RegionExists,
  RegionMissing,
  type RegionOpenError,
  type RegionOptions,
  RegionOutOfBounds,
  RegionSystemError,
  RegionTooLarge,
  type WaitOutcome
} from "../../services/region/CxlMemory.js"
import { crc32cSoftware } from "../../native/Crc32cSoftware.js"
import { LAYOUT_VERSION, MAX_PARAMS, readSuperblock, SUPERBLOCK_BYTES, writeSuperblock } from "./Superblock.js"

const PAGE = 4096
const MAX_WAIT_MS = 2 ** 31 - 1

interface Backend {
  readonly flush: (offset: number, length: number) => void
  readonly invalidate: (offset: number, length: number) => void
  readonly fence: () => void
  readonly wait: (offset: number, expected: number, timeoutMs: number) => Promise<WaitOutcome>
  readonly wake: (offset: number, count: number) => number
  readonly crc32c: CxlMemoryShape["crc32c"]
  readonly flushLog: CxlMemoryShape["flushLog"]
}

const makeShape = (
  meta: { name: string; size: number; created: boolean; coherence: Coherence; layoutVersion: number; params: ReadonlyArray<number> },
  buffer: ArrayBuffer,
  backend: Backend
): CxlMemoryShape => {
  const size = buffer.byteLength
  const bytes = new Uint8Array(buffer)
  const inBounds = (offset: number, length: number) =>
    Number.isInteger(offset) && Number.isInteger(length) && offset >= 0 && length >= 0 && offset + length <= size
  const check = (offset: number, length: number) =>
    inBounds(offset, length) ? Effect.void : Effect.fail(new RegionOutOfBounds({ offset, length, size }))
  const coherent = meta.coherence === "coherent"
  return {
    ...meta,
    buffer,
    bytes,
    i32: new Int32Array(buffer),
    u32: new Uint32Array(buffer),
    f64: new Float64Array(buffer),
    publish: coherent ? () => {} : backend.flush,
    invalidate: coherent ? () => {} : backend.invalidate,
    fence: backend.fence,
    inBounds,
    check,
    slice: (offset, length) => Effect.as(check(offset, length), bytes.subarray(offset, offset + length)),
    wait: (offset, expected, timeoutMs) =>
      inBounds(offset, 4) && offset % 4 === 0
        ? Effect.promise(() => backend.wait(offset, expected >>> 0, Math.min(Math.max(timeoutMs, 0), MAX_WAIT_MS)))
        : Effect.fail(new RegionOutOfBounds({ offset, length: 4, size })),
    wake: (offset, count = 2 ** 31 - 1) => (inBounds(offset, 4) && offset % 4 === 0 ? backend.wake(offset, count) : 0),
    crc32c: backend.crc32c,
    flushLog: backend.flushLog
  }
}

const validateCreateSize = (name: string, size: number | undefined) =>
  Effect.gen(function*() {
    if (size === undefined) return yield* new InvalidRegionSize({ name, size: 0, reason: "creating a region needs a size" })
    if (!Number.isSafeInteger(size) || size < SUPERBLOCK_BYTES * 2 || size % PAGE !== 0) {
      return yield* new InvalidRegionSize({ name, size, reason: `must be a multiple of ${PAGE} and at least ${SUPERBLOCK_BYTES * 2}` })
    }
    const limit = regionByteLimit()
    if (size > limit) return yield* new RegionTooLarge({ name, size, limit })
    return size
  })

const validateParams = (name: string, params: ReadonlyArray<number>) =>
  params.length > MAX_PARAMS || params.some((p) => !Number.isFinite(p))
    ? Effect.fail(new InvalidRegionSize({ name, size: params.length, reason: `at most ${MAX_PARAMS} finite layout parameters` }))
    : Effect.void

/** The addon's flush records: quadruples (path, instruction code, offset, length). */
const decodeOps = (records: Float64Array): Array<CacheLineOp> => {
  const ops: Array<CacheLineOp> = []
  for (let i = 0; i + 3 < records.length; i += 4) {
    ops.push({
      path: records[i] === 0 ? "publish" : "invalidate",
      instruction: CACHE_INSTRUCTIONS[records[i + 1]!]!,
      offset: records[i + 2]!,
      length: records[i + 3]!
    })
  }
  return ops
}

const publishPairs = (ops: ReadonlyArray<CacheLineOp>): Float64Array =>
  Float64Array.from(ops.filter((op) => op.path === "publish").flatMap((op) => [op.offset, op.length]))

const nativeBackend = (addon: NativeAddon, buffer: ArrayBuffer): Backend => ({
  flush: (offset, length) => addon.flush(buffer, offset, length),
  invalidate: (offset, length) => addon.invalidate(buffer, offset, length),
  fence: () => addon.fence(),
  wait: (offset, expected, timeoutMs) => addon.wait(buffer, offset, expected, timeoutMs),
  wake: (offset, count) => addon.wake(buffer, offset, count),
  crc32c: (bytes, offset, length, seed = 0) => addon.crc32c(bytes, offset, length, seed),
  flushLog: {
    start: (options) => addon.setFlushRecording(true, options?.invalidations === true),
    take: () => publishPairs(decodeOps(addon.takeFlushRecords())),
    takeOps: () => decodeOps(addon.takeFlushRecords()),
    stop: () => addon.setFlushRecording(false)
  }
})

const openNative = (addon: NativeAddon, name: string, mode: OpenMode, size: number, readyTimeoutMs: number) => {
  const { kind, path } = regionKind(name)
  const limit = regionByteLimit()
  const attempt = Effect.try({
    try: () => addon.open(kind, path, mode, size, limit),
    catch: (error): RegionOpenError => {
      const tooLarge = error as { code?: unknown; size?: unknown }
      if (tooLarge?.code === "ERR_REGION_TOO_LARGE") {
        return new RegionTooLarge({ name, size: typeof tooLarge.size === "number" ? tooLarge.size : size, limit })
      }
      const e = toNativeError("open", error)
      if (e.code === "EEXIST") return new RegionExists({ name })
      if (e.code === "ENOENT") return new RegionMissing({ name })
      return new RegionSystemError({ name, op: e.op, errno: e.errno, code: e.code, reason: e.reason })
    }
  })
  // An attacher can race a creator between its create and its sizing: retry while the file is empty.
  return attempt.pipe(
    Effect.retry({
      while: (e) => e._tag === "RegionSystemError" && e.reason.includes("is empty"),
      schedule: Schedule.spaced("2 millis"),
      times: Math.ceil(readyTimeoutMs / 2)
    })
  )
}

/** Maps a region through the native addon; unmaps when the scope closes and, as its creator, unlinks it unless `keep`. */
export const make = (options: RegionOptions): Effect.Effect<CxlMemoryShape, RegionOpenError | NativeUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const { name } = options
    const mode = options.mode ?? "create-or-attach"
    const coherence = options.coherence ?? "coherent"
    const version = options.layoutVersion ?? LAYOUT_VERSION
    const params = options.params ?? []
    const readyTimeoutMs = options.readyTimeoutMs ?? 5_000
    const size = mode === "attach" ? options.size ?? 0 : yield* validateCreateSize(name, options.size)
    yield* validateParams(name, params)
    const addon = yield* loadAddon()
    const { kind, path } = regionKind(name)
    const mapping = yield* Effect.acquireRelease(openNative(addon, name, mode, size, readyTimeoutMs), (m) =>
      Effect.sync(() => {
        addon.close(m.buffer)
        if (m.created && options.keep !== true) {
          try {
            addon.unlink(kind, path)
          } catch {
            // already unlinked by someone else: nothing to release
          }
        }
      }))
    const views = { u32: new Uint32Array(mapping.buffer), i32: new Int32Array(mapping.buffer), f64: new Float64Array(mapping.buffer) }
    const stored = mapping.created
      ? (writeSuperblock(views, mapping.size, version, params), { params, version })
      : yield* readSuperblock(name, views, mapping.size, { version, size: options.size, readyTimeoutMs })
    return makeShape(
      { name, size: mapping.size, created: mapping.created, coherence, layoutVersion: stored.version, params: stored.params },
      mapping.buffer,
      nativeBackend(addon, mapping.buffer)
    )
  })

export const layer = (options: RegionOptions): Layer.Layer<CxlMemory, RegionOpenError | NativeUnavailable> =>
  Layer.scoped(CxlMemory, make(options))

/** Regions of the in-memory fake, by name, shared by every `layerMemory` in this process. */
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

/** The same contract over an in-process buffer: no addon, no processes. Regions are shared by name within the process. */
export const makeMemory = (options: RegionOptions): Effect.Effect<CxlMemoryShape, RegionOpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const { name } = options
    const mode = options.mode ?? "create-or-attach"
    const version = options.layoutVersion ?? LAYOUT_VERSION
    const params = options.params ?? []
    const existing = memoryRegions.get(name)
    if (existing !== undefined && mode === "create") return yield* new RegionExists({ name })
    if (existing === undefined && mode === "attach") return yield* new RegionMissing({ name })
    const created = existing === undefined
    const size = created ? yield* validateCreateSize(name, options.size) : existing.byteLength
    yield* validateParams(name, params)
    const buffer = existing ?? new ArrayBuffer(size)
    if (created) memoryRegions.set(name, buffer)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (created && options.keep !== true && memoryRegions.get(name) === buffer) memoryRegions.delete(name)
      })
    )
    const views = { u32: new Uint32Array(buffer), i32: new Int32Array(buffer), f64: new Float64Array(buffer) }
    const stored = created
      ? (writeSuperblock(views, size, version, params), { params, version })
      : yield* readSuperblock(name, views, size, { version, size: options.size, readyTimeoutMs: options.readyTimeoutMs ?? 5_000 })
    return makeShape(
      { name, size, created, coherence: options.coherence ?? "coherent", layoutVersion: stored.version, params: stored.params },
      buffer,
      memoryBackend(buffer)
    )
  })

export const layerMemory = (options: RegionOptions): Layer.Layer<CxlMemory, RegionOpenError> =>
  Layer.scoped(CxlMemory, makeMemory(options))

/** Region options from the environment: `CXLOG_REGION`, `CXLOG_REGION_BYTES`, `CXLOG_REGION_MODE`, `CXLOG_COHERENCE`, `CXLOG_REGION_KEEP`. */
export const regionOptionsConfig: Config.Config<RegionOptions> = Config.all({
  name: Config.string("CXLOG_REGION").pipe(Config.withDefault("cxlog")),
  size: Config.option(Config.integer("CXLOG_REGION_BYTES")),
  mode: Config.literal("create", "attach", "create-or-attach")("CXLOG_REGION_MODE").pipe(Config.withDefault("create-or-attach" as const)),
  coherence: Config.literal("coherent", "non-coherent")("CXLOG_COHERENCE").pipe(Config.withDefault("coherent" as const)),
  keep: Config.boolean("CXLOG_REGION_KEEP").pipe(Config.withDefault(false))
}).pipe(
  Config.map(({ size, ...rest }): RegionOptions => Option.match(size, { onNone: () => rest, onSome: (bytes) => ({ ...rest, size: bytes }) }))
)

export const layerConfig: Layer.Layer<CxlMemory, RegionOpenError | NativeUnavailable | ConfigError.ConfigError> =
  Layer.unwrapScoped(Effect.map(regionOptionsConfig, layer))
