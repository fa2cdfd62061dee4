/**
 * The doorbell layer over CxlMemory (live or fake): one waiting loop per process, spinning
 * briefly (for as long as recent waits say spinning pays) and then parking with a single
 * native wait; see services/Doorbell.ts.
 */
import { Effect, Layer, Metric, type Scope } from "effect"
import { availableParallelism } from "node:os"
import { doorbellParks } from "../../Metrics.js"
import { CxlMemory, type RegionOutOfBounds } from "../../services/region/CxlMemory.js"
import { Doorbell, DOORBELL_BYTES, type DoorbellShape } from "../../services/region/Doorbell.js"

export interface DoorbellOptions {
  /** Region offset of this process's doorbell line (64-byte aligned). */
  readonly offset: number
  /**
   * Longest spin on the JS thread before parking; 0 parks at once. Default 50 µs, or 0 on a
   * single CPU, where a spin only delays the process it waits for.
   */
  readonly spinMicros?: number
  /** `adaptive` (default) spins only while recent waits say it pays; `fixed` always spins `spinMicros`. */
  readonly spinPolicy?: "adaptive" | "fixed"
  /** Upper bound of one native park, so timeouts and shutdown stay prompt even without a wake. */
  readonly parkMillis?: number
}

/** How long the next spin may last, learnt from how recent waits ended. */
export interface SpinPolicy {
  /** The next spin's budget in ms (0: park at once). */
  readonly budgetMs: () => number
  /** A spin ended: `satisfied` if a waiter's condition came true after `spentMs`. */
  readonly spun: (satisfied: boolean, spentMs: number) => void
  /** A park ended after `parkedMs`: `satisfied` if a waiter's condition had come true. */
  readonly parked: (satisfied: boolean, parkedMs: number) => void
}

/** Below this a spin is not worth starting. */
const MIN_SPIN_MS = 0.001

/**
 * Adaptive spinning: a spin that ends empty-handed halves the budget (down to none); a spin
 * or a park that ended satisfied within `maxMs` raises it to twice what that wait took, so a
 * peer that answers quickly gets spun for and a busy or descheduled one does not — on an
 * oversubscribed machine a spin steals the CPU from the very process we wait for.
 */
export const adaptiveSpin = (maxMs: number): SpinPolicy => {
  let budget = maxMs
  const learn = (satisfied: boolean, tookMs: number) => {
    if (satisfied && tookMs < maxMs) budget = Math.min(maxMs, Math.max(budget, 2 * tookMs, MIN_SPIN_MS))
  }
  return {
    budgetMs: () => budget,
    spun: (satisfied, spentMs) => {
      if (satisfied) learn(true, spentMs)
      else budget = budget / 2 < MIN_SPIN_MS ? 0 : budget / 2
    },
    parked: learn
  }
}

/** Always spins `maxMs`: the policy before adaptive spinning, kept for comparison in benches. */
export const fixedSpin = (maxMs: number): SpinPolicy => ({ budgetMs: () => maxMs, spun: () => {}, parked: () => {} })

const defaultSpinMicros = () => (availableParallelism() > 1 ? 50 : 0)

interface Waiter {
  readonly condition: () => boolean
  readonly deadline: number
  readonly resume: (satisfied: boolean) => void
}

export const make = (options: DoorbellOptions): Effect.Effect<DoorbellShape, RegionOutOfBounds, CxlMemory | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const { offset } = options
    yield* region.check(offset, DOORBELL_BYTES)
    const spinMs = (options.spinMicros ?? defaultSpinMicros()) / 1000
    const policy = options.spinPolicy === "fixed" ? fixedSpin(spinMs) : adaptiveSpin(spinMs)
    const parkMillis = options.parkMillis ?? 100
    const word = offset / 4
    const parkedFlag = word + 1
    const i32 = region.i32
    const waiters = new Set<Waiter>()
    /** Resumes the loop while it idles without waiters. */
    let resumeIdle: (() => void) | undefined
    let closed = false
    /** Waiters the last sweep resumed with a satisfied condition. */
    let satisfied = 0

    /** Settles every waiter whose condition holds or whose deadline passed; returns how many. */
    const sweep = (now: number) => {
      let settled = 0
      satisfied = 0
      for (const waiter of waiters) {
        if (waiter.condition()) {
          waiters.delete(waiter)
          waiter.resume(true)
          settled++
          satisfied++
        } else if (now >= waiter.deadline) {
          waiters.delete(waiter)
          waiter.resume(false)
          settled++
        }
      }
      return settled
    }

    const nearestDeadline = () => {
      let nearest = Infinity
      for (const waiter of waiters) nearest = Math.min(nearest, waiter.deadline)
      return nearest
    }

    /** Spins up to the policy's budget; true if it settled a waiter. */
    const spin = () => {
      const budget = policy.budgetMs()
      if (budget <= 0) return false
      const started = performance.now()
      let now = started
      let settled = 0
      do {
        now = performance.now()
        settled = sweep(now)
      } while (settled === 0 && now - started < budget)
      policy.spun(satisfied > 0, now - started)
      return settled > 0
    }

    /** Waits until there is a waiter. */
    const idle = Effect.async<void>((resume) => {
      if (waiters.size > 0) return resume(Effect.void)
      resumeIdle = () => {
        resumeIdle = undefined
        resume(Effect.void)
      }
      return Effect.sync(() => {
        resumeIdle = undefined
      })
    })

    // Whenever a sweep resumed someone, the loop yields before it sweeps, spins or parks
    // again: the resumed fibers run (and often commit what the next waiter wants) instead of
    // waiting behind a spin for the waiters that remain.
    const serveWaiters = Effect.gen(function*() {
      while (waiters.size > 0 && !closed) {
        if (sweep(performance.now()) > 0 || spin()) {
          if (waiters.size > 0) yield* Effect.yieldNow()
          continue
        }
        // Dekker handshake with writers: publish `parked`, then re-check, then sleep on the
        // bell value read before the re-check. A writer that commits after our re-check sees
        // `parked` and bumps the word, so the futex wait returns at once.
        const bell = Atomics.load(i32, word)
        Atomics.store(i32, parkedFlag, 1)
        if (sweep(performance.now()) === 0 && waiters.size > 0) {
          const parkFor = Math.max(0, Math.min(parkMillis, nearestDeadline() - performance.now()))
          yield* Metric.increment(doorbellParks)
          const parkedAt = performance.now()
          yield* region.wait(offset, bell, parkFor).pipe(Effect.orDie)
          Atomics.store(i32, parkedFlag, 0)
          const now = performance.now()
          const settled = sweep(now)
          policy.parked(satisfied > 0, now - parkedAt)
          if (settled > 0 && waiters.size > 0) yield* Effect.yieldNow()
        }
        Atomics.store(i32, parkedFlag, 0)
      }
    })

    // A ring of our own bell (a local commit) needs no futex round trip through the thread
    // pool: one sweep after the committing code has run settles whoever it satisfied.
    let localSweepScheduled = false
    const localSweep = () => {
      localSweepScheduled = false
      if (!closed && waiters.size > 0) sweep(performance.now())
    }

    const ring = (bell: number) => {
      if (bell === offset) {
        if (!localSweepScheduled) {
          localSweepScheduled = true
          queueMicrotask(localSweep)
        }
        return
      }
      // Only the ringer that clears `parked` pays for the futex wake: the owner re-checks
      // every condition after waking and before it parks again, so later rings are covered.
      if (Atomics.load(i32, bell / 4 + 1) !== 0 && Atomics.compareExchange(i32, bell / 4 + 1, 1, 0) === 1) {
        Atomics.add(i32, bell / 4, 1)
        region.wake(bell)
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const waiter of waiters) waiter.resume(false)
        waiters.clear()
        Atomics.store(i32, parkedFlag, 0)
        Atomics.add(i32, word, 1)
        region.wake(offset)
      })
    )
    // The process's one waiting loop, owned by this scope: it idles while no fiber waits, and
    // is interrupted (before the finalizer above ends any native wait) when the scope closes.
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(idle, serveWaiters)))

    return {
      offset,
      await: (condition, timeoutMs) =>
        Effect.suspend(() => {
          if (condition()) return Effect.succeed(true)
          if (closed) return Effect.succeed(false)
          return Effect.async<boolean>((resume) => {
            const waiter: Waiter = { condition, deadline: performance.now() + timeoutMs, resume: (ok) => resume(Effect.succeed(ok)) }
            waiters.add(waiter)
            resumeIdle?.()
            return Effect.sync(() => {
              waiters.delete(waiter)
            })
          })
        }),
      ring,
      poke: () => ring(offset)
    }
  })

export const layer = (options: DoorbellOptions): Layer.Layer<Doorbell, RegionOutOfBounds, CxlMemory> =>
  Layer.scoped(Doorbell, make(options))
