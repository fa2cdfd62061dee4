/**
 * Opening a region, shared by both CxlMemory layers: validate the options, map the bytes
 * (the one step each layer does its own way: the addon's mapping, or an in-process buffer),
 * write or check the superblock, and build the service over the bytes and their backend.
 */
import { Effect, type Scope } from "effect"
import { durationProblem, withMillis } from "../../Durations.js"
import { regionByteLimit } from "../../native/Native.js"
import {
  type CacheLineOp,
  type CxlMemoryShape,
  InvalidRegionOptions,
  InvalidRegionSize,
  type OpenMode,
  type RegionOpenError,
  type RegionOptions,
  RegionOutOfBounds,
  RegionTooLarge,
  type WaitOutcome
} from "../../services/region/CxlMemory.js"
import { LAYOUT_VERSION, MAX_PARAMS, readSuperblock, SUPERBLOCK_BYTES, writeSuperblock } from "./Superblock.js"

const PAGE = 4096
const ENOSPC = 28
const MAX_WAIT_MS = 2 ** 31 - 1

/** What backs a region's cache-line operations and doorbell waits. */
export interface Backend {
  readonly flush: (offset: number, length: number) => void
  readonly invalidate: (offset: number, length: number) => void
  readonly fence: () => void
  /** 0, or the errno reserving the pages failed with. */
  readonly reserve: (offset: number, length: number) => number
  /** 0, or the errno: the pages could not be given back (the caller zeroes them instead). */
  readonly discard: (offset: number, length: number) => number
  readonly wait: (offset: number, expected: number, timeoutMs: number) => Promise<WaitOutcome>
  readonly wake: (offset: number, count: number) => number
  readonly crc32c: CxlMemoryShape["crc32c"]
  readonly flushLog: CxlMemoryShape["flushLog"]
  /** Other processes can map the bytes: a doorbell's wake must cross processes. */
  readonly crossProcess: boolean
}

/** The mapped bytes (`created` when this open made the region) and what backs them. */
export interface Mapping {
  readonly buffer: ArrayBuffer
  readonly size: number
  readonly created: boolean
  readonly backend: Backend
}

type Meta = Pick<CxlMemoryShape, "name" | "size" | "created" | "coherence" | "layoutVersion" | "params">

/** The service over mapped bytes: typed views, bounds checks, and the backend's flushes and waits. */
export const makeShape = (meta: Meta, buffer: ArrayBuffer, backend: Backend): CxlMemoryShape => {
  const size = buffer.byteLength
  const bytes = new Uint8Array(buffer)
  const inBounds = (offset: number, length: number) =>
    Number.isInteger(offset) && Number.isInteger(length) && offset >= 0 && length >= 0 && offset + length <= size
  const check = (offset: number, length: number) =>
    inBounds(offset, length) ? Effect.void : Effect.fail(new RegionOutOfBounds({ offset, length, size }))
  const coherent = meta.coherence === "coherent"
  /** Pages are what the host backs: a range that is not whole pages of the region is the caller's bug. */
  const wholePages = (offset: number, length: number) => {
    if (!inBounds(offset, length) || offset % PAGE !== 0 || length % PAGE !== 0) {
      throw new RangeError(`region ${meta.name}: [${offset}, +${length}) is not whole pages of its ${size} bytes`)
    }
  }
  return {
    ...meta,
    crossProcess: backend.crossProcess,
    buffer,
    bytes,
    i32: new Int32Array(buffer),
    u32: new Uint32Array(buffer),
    f64: new Float64Array(buffer),
    publish: coherent ? () => {} : backend.flush,
    invalidate: coherent ? () => {} : backend.invalidate,
    fence: backend.fence,
    reserve: (offset, length) => {
      wholePages(offset, length)
      const err = backend.reserve(offset, length)
      return err === 0 ?
        undefined :
        `the host could not back ${length} bytes of region ${meta.name} (${
          err === ENOSPC ? "the filesystem holding it is full" : `errno ${err}`
        })`
    },
    discard: (offset, length) => {
      wholePages(offset, length)
      // A hole reads as zeros on every mapping; memory that cannot be given back is zeroed and published.
      if (backend.discard(offset, length) === 0) return
      bytes.fill(0, offset, offset + length)
      if (!coherent) backend.flush(offset, length)
    },
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

export const validateCreateSize = (name: string, size: number | undefined) =>
  Effect.gen(function*() {
    if (size === undefined) {
      return yield* new InvalidRegionSize({ name, size: 0, reason: "creating a region needs a size" })
    }
    // Too large first: past 2^53 (beyond Node 22's limit) a size is a whole number too, if not a safe one.
    const limit = regionByteLimit()
    if (Number.isInteger(size) && size > limit) {
      return yield* new RegionTooLarge({ name, size, limit })
    }
    if (!Number.isSafeInteger(size) || size < SUPERBLOCK_BYTES * 2 || size % PAGE !== 0) {
      return yield* new InvalidRegionSize({
        name,
        size,
        reason: `must be a multiple of ${PAGE} and at least ${SUPERBLOCK_BYTES * 2}`
      })
    }
    return size
  })

const validateParams = (name: string, params: ReadonlyArray<number>) =>
  params.length > MAX_PARAMS || params.some((p) => !Number.isFinite(p))
    ? Effect.fail(
      new InvalidRegionSize({ name, size: params.length, reason: `at most ${MAX_PARAMS} finite layout parameters` })
    )
    : Effect.void

/** The publish ranges among recorded operations, as (offset, length) pairs. */
export const publishPairs = (ops: ReadonlyArray<CacheLineOp>): Float64Array =>
  Float64Array.from(ops.filter((op) => op.path === "publish").flatMap((op) => [op.offset, op.length]))

/** How a layer maps a region's bytes, given the mode and (unless attaching) the validated size; it releases them with the scope. */
export type MapRegion<E> = (mode: OpenMode, size: number) => Effect.Effect<Mapping, E | RegionOpenError, Scope.Scope>

/**
 * The region's options with `readyTimeout` written into `readyTimeoutMs`, or `InvalidRegionOptions`
 * when it names no wait: `withMillis` would throw on one that is no duration, and a NaN would never
 * end an attacher's wait for the creator (`Date.now() - started > NaN` is never true).
 */
export const regionOptionsWithMillis = (options: RegionOptions): Effect.Effect<RegionOptions, InvalidRegionOptions> => {
  const notDuration = durationProblem("readyTimeout", options.readyTimeout)
  if (notDuration !== undefined) {
    return Effect.fail(new InvalidRegionOptions({ name: options.name, reason: notDuration }))
  }
  const resolved = withMillis(options, ["readyTimeout"])
  const ms: unknown = resolved.readyTimeoutMs
  return ms === undefined || (typeof ms === "number" && ms >= 0)
    ? Effect.succeed(resolved)
    : Effect.fail(
      new InvalidRegionOptions({
        name: options.name,
        reason: `readyTimeoutMs must be a number of milliseconds of at least 0, not ${String(ms)}`
      })
    )
}

/** Opens a region: validates `options`, maps it with `map`, then writes the superblock as its creator or checks it as an attacher. */
export const openRegion = <E>(
  given: RegionOptions,
  map: MapRegion<E>
): Effect.Effect<CxlMemoryShape, E | RegionOpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const options = yield* regionOptionsWithMillis(given)
    const { name } = options
    const mode = options.mode ?? "create-or-attach"
    const version = options.layoutVersion ?? LAYOUT_VERSION
    const params = options.params ?? []
    const readyTimeoutMs = options.readyTimeoutMs ?? 5_000
    const size = mode === "attach" ? options.size ?? 0 : yield* validateCreateSize(name, options.size)
    yield* validateParams(name, params)
    const mapping = yield* map(mode, size)
    const views = {
      u32: new Uint32Array(mapping.buffer),
      i32: new Int32Array(mapping.buffer),
      f64: new Float64Array(mapping.buffer)
    }
    const stored = mapping.created
      ? (writeSuperblock(views, mapping.size, version, params), { params, version })
      : yield* readSuperblock(name, views, mapping.size, { version, size: options.size, readyTimeoutMs })
    return makeShape(
      {
        name,
        size: mapping.size,
        created: mapping.created,
        coherence: options.coherence ?? "coherent",
        layoutVersion: stored.version,
        params: stored.params
      },
      mapping.buffer,
      mapping.backend
    )
  })
