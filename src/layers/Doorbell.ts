/**
 * The doorbell layer over CxlMemory (live or fake): one waiting loop per process, spinning
 * briefly and then parking with a single native wait; see services/Doorbell.ts.
 */
import { Effect, Layer, Metric, Runtime, type Scope } from "effect"
import { doorbellParks } from "../Metrics.js"
import { CxlMemory, type RegionOutOfBounds } from "../services/CxlMemory.js"
import { Doorbell, DOORBELL_BYTES, type DoorbellShape } from "../services/Doorbell.js"

export interface DoorbellOptions {
  /** Region offset of this process's doorbell line (64-byte aligned). */
  readonly offset: number
  /** How long to spin on the JS thread before parking; 0 parks at once. */
  readonly spinMicros?: number
  /** Upper bound of one native park, so timeouts and shutdown stay prompt even without a wake. */
  readonly parkMillis?: number
}

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
    const spinMs = (options.spinMicros ?? 50) / 1000
    const parkMillis = options.parkMillis ?? 100
    const word = offset / 4
    const parkedFlag = word + 1
    const i32 = region.i32
    const waiters = new Set<Waiter>()
    let looping = false
    let closed = false

    /** Settles every waiter whose condition holds or whose deadline passed. */
    const sweep = (now: number) => {
      for (const waiter of waiters) {
        if (waiter.condition()) {
          waiters.delete(waiter)
          waiter.resume(true)
        } else if (now >= waiter.deadline) {
          waiters.delete(waiter)
          waiter.resume(false)
        }
      }
    }

    const nearestDeadline = () => {
      let nearest = Infinity
      for (const waiter of waiters) nearest = Math.min(nearest, waiter.deadline)
      return nearest
    }

    const loop = Effect.gen(function*() {
      while (waiters.size > 0 && !closed) {
        const spinUntil = performance.now() + spinMs
        do sweep(performance.now())
        while (waiters.size > 0 && performance.now() < spinUntil)
        if (waiters.size === 0) break
        // Dekker handshake with writers: publish `parked`, then re-check, then sleep on the
        // bell value read before the re-check. A writer that commits after our re-check sees
        // `parked` and bumps the word, so the futex wait returns at once.
        const bell = Atomics.load(i32, word)
        Atomics.store(i32, parkedFlag, 1)
        sweep(performance.now())
        if (waiters.size > 0) {
          const parkFor = Math.max(0, Math.min(parkMillis, nearestDeadline() - performance.now()))
          yield* Metric.increment(doorbellParks)
          yield* region.wait(offset, bell, parkFor).pipe(Effect.orDie)
        }
        Atomics.store(i32, parkedFlag, 0)
      }
      looping = false
    })

    const runtime = yield* Effect.runtime<never>()
    const startLoop = () => {
      if (looping) return
      looping = true
      Runtime.runFork(runtime)(loop)
    }

    const ring = (bell: number) => {
      if (Atomics.load(i32, bell / 4 + 1) !== 0) {
        Atomics.add(i32, bell / 4, 1)
        region.wake(bell)
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const waiter of waiters) waiter.resume(false)
        waiters.clear()
        Atomics.add(i32, word, 1)
        region.wake(offset)
      })
    )

    return {
      offset,
      await: (condition, timeoutMs) =>
        Effect.suspend(() => {
          if (condition()) return Effect.succeed(true)
          if (closed) return Effect.succeed(false)
          return Effect.async<boolean>((resume) => {
            const waiter: Waiter = { condition, deadline: performance.now() + timeoutMs, resume: (ok) => resume(Effect.succeed(ok)) }
            waiters.add(waiter)
            startLoop()
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
