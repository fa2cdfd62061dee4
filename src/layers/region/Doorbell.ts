/**
 * The doorbell layer over CxlMemory (live or fake): one set of waiters per process, served
 * from callbacks — it spins briefly (while recent waits say spinning pays and the machine is
 * not oversubscribed), then parks on the event loop until a wake; see
 * services/region/Doorbell.ts.
 *
 * Over a live region a parked process is woken through its wake FIFO, which libuv watches on
 * the process's own loop: one kernel wake of the JS thread per wake, no pool thread, and the
 * FIFO's data callback resumes the satisfied waiters itself; a ringer keeps the write ends it
 * opened, so a wake costs it one write(2). Over the in-process fake (and for a target in this
 * same process) a ring calls that callback directly.
 */
import { type ConfigError, Effect, Layer, type Scope } from "effect"
import { availableParallelism } from "node:os"
import { CxlMemory, type CxlMemoryShape, type RegionOutOfBounds } from "../../services/region/CxlMemory.js"
import { Doorbell, DOORBELL_BYTES, type DoorbellShape, WakeFifoUnavailable } from "../../services/region/Doorbell.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { settingConfig } from "../../Settings.js"
import { liveOwner, ownerWord } from "./DoorbellOwner.js"
import { awaitCondition, closePark, makeParkState, type ParkState, sweepSoon, watchCondition } from "./DoorbellPark.js"
import { adaptiveSpin, defaultSpinMicros, fixedSpin, oversubscribed } from "./SpinPolicy.js"
import { fifoIdentity, type WakeFds, wakeFds, wakeFifo } from "./WakeFifo.js"
import { wakeFifoPath } from "./WakeFifoPaths.js"

export { adaptiveSpin, defaultSpinMicros, fixedSpin, oversubscribed, type SpinPolicy } from "./SpinPolicy.js"
export { WAKE_FD_CACHE } from "./WakeFifo.js"
export { removeOrphanedWakeFifos, removeWakeFifos, wakeDirectory, wakeFifoPath } from "./WakeFifoPaths.js"

export interface DoorbellOptions {
  /** Region offset of this process's doorbell line (64-byte aligned). */
  readonly offset: number
  /**
   * Longest spin on the JS thread before parking; 0 parks at once. Default `CXLOG_SPIN_MICROS`,
   * else 50 µs, or 0 on a single CPU, where a spin only delays the process it waits for.
   */
  readonly spinMicros?: number
  /** `adaptive` (default) spins only while recent waits say it pays; `fixed` always spins `spinMicros`. */
  readonly spinPolicy?: "adaptive" | "fixed"
  /**
   * Upper bound of one park (default 1 s): every waiter's condition is re-checked at least this
   * often even without a wake. Waits end at their own deadlines regardless; this is only the
   * safety net for a condition that changes without a ring, so idle processes wake rarely.
   */
  readonly parkMillis?: number
}

/** Wakes of doorbells owned by this process, by region bytes and offset: a ring of one needs no system call. */
const localWakes = new WeakMap<ArrayBuffer, Map<number, () => void>>()

/** Introspection for tests: how this doorbell's waits were settled. */
export interface DoorbellInternals {
  /** Waits settled by a sweep that ran in a wake's own callback (a FIFO wake, a local ring, a poke). */
  readonly settledByWake: () => number
  /** Waits settled by the bound timer (timed out, or found satisfied when it fired). */
  readonly settledByTimer: () => number
  /** Parked: its flag published and every waiter re-checked after it, so only a ring or the timer settles one now. */
  readonly parked: () => boolean
  /** The longest spin it may make, in µs: its options', else `CXLOG_SPIN_MICROS`, else the default for this machine. */
  readonly maxSpinMicros: number
  /** The spin ceiling now, in µs: `maxSpinMicros`, or a standing watch's larger wish. */
  readonly spinCeilingMicros: () => number
}

const internals = new WeakMap<DoorbellShape, DoorbellInternals>()

/** The introspection counters of a doorbell made by `make` (tests). */
export const internalsOf = (doorbell: DoorbellShape): DoorbellInternals | undefined => internals.get(doorbell)

/** What a ringer needs: its own bell's park (a ring of it is local), and the ways to wake other owners. */
interface Ringer {
  readonly park: ParkState
  readonly offset: number
  readonly i32: Int32Array
  readonly regionName: string
  readonly crossProcess: boolean
  /** This process's doorbells in the region, by offset: woken by a direct call. */
  readonly owned: Map<number, () => void>
  readonly fds: WakeFds
  /** Wake FIFO paths by doorbell offset, derived once each. */
  readonly fifoPaths: Map<number, string>
}

const fifoOf = (ringer: Ringer, bell: number): string => {
  let path = ringer.fifoPaths.get(bell)
  if (path === undefined) ringer.fifoPaths.set(bell, path = wakeFifoPath(ringer.regionName, bell))
  return path
}

/** `DoorbellShape.ring`. */
const ring = (ringer: Ringer, bell: number): void => {
  if (bell === ringer.offset) return sweepSoon(ringer.park)
  const i32 = ringer.i32
  // Only the ringer that clears `parked` pays for the wake: the owner re-checks every
  // condition after waking and before it parks again, so later rings are covered. The
  // wake count records each paid wake (diagnostics and tests).
  if (Atomics.load(i32, bell / 4 + 1) !== 0 && Atomics.compareExchange(i32, bell / 4 + 1, 1, 0) === 1) {
    Atomics.add(i32, bell / 4, 1)
    const local = ringer.owned.get(bell)
    if (local !== undefined) local()
    else if (ringer.crossProcess) ringer.fds.signal(fifoOf(ringer, bell), Atomics.load(i32, bell / 4 + 2))
  }
}

/**
 * This process's doorbell at `options.offset`: its park (DoorbellPark.ts) served from the
 * event loop's callbacks, its wake FIFO over a live region, and its entry among this process's
 * bells, each released with the scope.
 */
export const make = (
  options: DoorbellOptions
): Effect.Effect<
  DoorbellShape,
  RegionOutOfBounds | WakeFifoUnavailable | ConfigError.ConfigError,
  CxlMemory | Scope.Scope
> =>
  Effect.gen(function*() {
    const region: CxlMemoryShape = yield* CxlMemory
    const { offset } = options
    yield* region.check(offset, DOORBELL_BYTES)
    const maxSpinMicros = options.spinMicros ?? (yield* settingConfig(REGION_SETTINGS.settings.spinMicros)) ??
      defaultSpinMicros()
    const spinMs = maxSpinMicros / 1000
    const adaptive = options.spinPolicy !== "fixed"
    const park = makeParkState({
      i32: region.i32,
      parkedFlag: offset / 4 + 1,
      spinMs,
      spinPolicy: adaptive ? adaptiveSpin : fixedSpin,
      adaptive,
      overloaded: oversubscribed(availableParallelism()),
      parkMillis: options.parkMillis ?? 1_000
    })
    const path = wakeFifoPath(region.name, offset)
    const holder = region.crossProcess ? liveOwner(region.i32, offset, path) : undefined
    if (holder !== undefined) {
      return yield* new WakeFifoUnavailable({
        path,
        reason: `process ${holder} waits on the doorbell line at ${offset}: give each process a line of its own`
      })
    }
    const fifo = region.crossProcess ? yield* wakeFifo(path, park.onWake) : undefined
    if (fifo !== undefined) {
      // Published before this process ever parks, so a ringer that saw `parked` sees this FIFO's identity.
      Atomics.store(region.i32, offset / 4 + 2, fifoIdentity(fifo.inode))
      Atomics.store(region.i32, ownerWord(offset), process.pid)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => void Atomics.compareExchange(region.i32, ownerWord(offset), process.pid, 0))
      )
    }
    const fds = wakeFds()
    yield* Effect.addFinalizer(() => Effect.sync(fds.close))
    const owned = localWakes.get(region.buffer) ?? new Map<number, () => void>()
    localWakes.set(region.buffer, owned)
    owned.set(offset, park.onWake)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => void (owned.get(offset) === park.onWake && owned.delete(offset)))
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => closePark(park)))
    const ringer: Ringer = {
      park,
      offset,
      i32: region.i32,
      regionName: region.name,
      crossProcess: region.crossProcess,
      owned,
      fds,
      fifoPaths: new Map()
    }
    const doorbell: DoorbellShape = {
      offset,
      await: (condition, timeoutMs) => awaitCondition(park, condition, timeoutMs),
      watch: (condition, onReady, everyMs, spinMicros) => watchCondition(park, condition, onReady, everyMs, spinMicros),
      ring: (bell) => ring(ringer, bell),
      poke: () => ring(ringer, offset)
    }
    internals.set(doorbell, {
      settledByWake: () => park.byWake,
      settledByTimer: () => park.byTimer,
      parked: () => park.parked,
      maxSpinMicros,
      spinCeilingMicros: () => park.spinCeilingMs() * 1000
    })
    return doorbell
  })

export const layer = (
  options: DoorbellOptions
): Layer.Layer<Doorbell, RegionOutOfBounds | WakeFifoUnavailable | ConfigError.ConfigError, CxlMemory> =>
  Layer.scoped(Doorbell, make(options))
