/**
 * One at a time, in arrival order, waking only the next in line.
 *
 * Effect's `Semaphore` resumes every waiter at each release (each then finds the permit taken
 * and waits again): with N fibers queued that is N² wake-ups, each allocating. A local publisher
 * that opens thousands of topics at once asks the head for each topic's lane through one request
 * word, and its queue of asks grew the process's heap by gigabytes until it died (`cxlog bench
 * --type topics --topics 3000 --local`). Here a release hands the lock to the first waiter alone.
 */
import { Effect } from "effect"

export type FifoLock = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

export const unsafeMakeFifoLock = (): FifoLock => {
  let held = false
  const waiting: Array<() => void> = []

  /** The lock goes to the first waiter, or is free when none waits. */
  const passOn = () => {
    const next = waiting.shift()
    if (next === undefined) held = false
    else next()
  }

  const acquire = Effect.async<void>((resume) => {
    if (!held) {
      held = true
      return resume(Effect.void)
    }
    let handed = false
    const wake = () => {
      handed = true
      resume(Effect.void)
    }
    waiting.push(wake)
    return Effect.sync(() => {
      // Interrupted as the lock was handed over: it goes on to the next, or it would be held by no one for good.
      if (handed) return passOn()
      const at = waiting.indexOf(wake)
      if (at >= 0) waiting.splice(at, 1)
    })
  })

  const release = Effect.sync(passOn)

  return (self) =>
    Effect.uninterruptibleMask((restore) => Effect.zipRight(restore(acquire), Effect.ensuring(restore(self), release)))
}
