/**
 * The live CxlMemory layer: `make`/`layer` map a real region (a POSIX shm name, a file or a
 * DAX device) through the addon; `layerConfig` reads `CXLOG_REGION*`. The in-process fake,
 * over the same opening steps, is CxlMemoryMemory.ts.
 */
import { Config, type ConfigError, Effect, Layer, Schedule, type Scope } from "effect"
import { dirname } from "node:path"
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
  CxlMemory,
  type CxlMemoryShape,
  type OpenMode,
  RegionExists,
  RegionMissing,
  type RegionOpenError,
  type RegionOptions,
  RegionSystemError,
  RegionTooLarge
} from "../../services/region/CxlMemory.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { settingsConfig } from "../../Settings.js"
import { type Backend, type MapRegion, openRegion, publishPairs, regionOptionsWithMillis } from "./RegionOpen.js"

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

const nativeBackend = (addon: NativeAddon, buffer: ArrayBuffer): Backend => ({
  flush: (offset, length) => addon.flush(buffer, offset, length),
  invalidate: (offset, length) => addon.invalidate(buffer, offset, length),
  fence: () => addon.fence(),
  reserve: (offset, length) => addon.reserve(buffer, offset, length),
  discard: (offset, length) => addon.discard(buffer, offset, length),
  wait: (offset, expected, timeoutMs) => addon.wait(buffer, offset, expected, timeoutMs),
  wake: (offset, count) => addon.wake(buffer, offset, count),
  crc32c: (bytes, offset, length, seed = 0) => addon.crc32c(bytes, offset, length, seed),
  crossProcess: true,
  flushLog: {
    start: (options) => addon.setFlushRecording(true, options?.invalidations === true),
    take: () => publishPairs(decodeOps(addon.takeFlushRecords())),
    takeOps: () => decodeOps(addon.takeFlushRecords()),
    stop: () => addon.setFlushRecording(false)
  }
})

const openNative = (
  addon: NativeAddon,
  name: string,
  mode: OpenMode,
  size: number,
  readyTimeoutMs: number,
  reserveBytes: number | undefined
) => {
  const { kind, path } = regionKind(name)
  const limit = regionByteLimit()
  const attempt = Effect.try({
    try: () => addon.open(kind, path, mode, size, limit, reserveBytes),
    catch: (error): RegionOpenError => {
      const tooLarge = error as { code?: unknown; size?: unknown }
      if (tooLarge?.code === "ERR_REGION_TOO_LARGE") {
        return new RegionTooLarge({ name, size: typeof tooLarge.size === "number" ? tooLarge.size : size, limit })
      }
      const e = toNativeError("open", error)
      if (e.code === "EEXIST") return new RegionExists({ name })
      if (e.code === "ENOENT" && mode === "attach") return new RegionMissing({ name })
      if (e.code === "ENOENT") {
        // Creating, the file itself need not exist: what is missing is the directory to hold it.
        const directory = kind === "shm" ? "/dev/shm" : dirname(path)
        const reason = `the directory ${directory} does not exist`
        return new RegionSystemError({ name, op: e.op, errno: e.errno, code: e.code, reason })
      }
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

/** Maps the region with the addon, releasing it with the scope: unmapped, and unlinked by its creator unless `keep`. */
const mapNative = (options: RegionOptions): MapRegion<NativeUnavailable> => (mode, size) =>
  Effect.gen(function*() {
    const { name } = options
    const addon = yield* loadAddon()
    const { kind, path } = regionKind(name)
    const mapping = yield* Effect.acquireRelease(
      openNative(addon, name, mode, size, options.readyTimeoutMs ?? 5_000, options.reserveBytes),
      (m) =>
        Effect.sync(() => {
          addon.close(m.buffer)
          if (m.created && options.keep !== true) {
            try {
              addon.unlink(kind, path)
            } catch {
              // already unlinked by someone else: nothing to release
            }
          }
        })
    )
    return { ...mapping, backend: nativeBackend(addon, mapping.buffer) }
  })

/** Maps a region through the native addon; unmaps when the scope closes and, as its creator, unlinks it unless `keep`. */
export const make = (
  options: RegionOptions
): Effect.Effect<CxlMemoryShape, RegionOpenError | NativeUnavailable, Scope.Scope> =>
  Effect.flatMap(regionOptionsWithMillis(options), (checked) => openRegion(checked, mapNative(checked)))

export const layer = (options: RegionOptions): Layer.Layer<CxlMemory, RegionOpenError | NativeUnavailable> =>
  Layer.scoped(CxlMemory, make(options))

/** Region options from the environment: the variables of services/region/RegionSettings.ts. */
export const regionOptionsConfig: Config.Config<RegionOptions> = settingsConfig(REGION_SETTINGS.settings).pipe(
  Config.map(({ size, ...rest }): RegionOptions => (size === undefined ? rest : { ...rest, size }))
)

export const layerConfig: Layer.Layer<CxlMemory, RegionOpenError | NativeUnavailable | ConfigError.ConfigError> = Layer
  .unwrapScoped(Effect.map(regionOptionsConfig, layer))
