/**
 * How long a doorbell spins on the JS thread before it parks: learnt from how recent waits
 * ended, and never while the machine is oversubscribed (see Doorbell.ts).
 */
import { readFileSync } from "node:fs"
import { availableParallelism, loadavg } from "node:os"

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
 * or a park that ended satisfied within the ceiling raises it to twice what that wait took, so a
 * peer that answers quickly gets spun for and a busy or descheduled one does not — on an
 * oversubscribed machine a spin steals the CPU from the very process we wait for. The ceiling
 * may move (a waiter that wants a longer spin raises it while it stands).
 */
export const adaptiveSpin = (maxMs: () => number): SpinPolicy => {
  let budget = maxMs()
  const learn = (satisfied: boolean, tookMs: number) => {
    const ceiling = maxMs()
    if (satisfied && tookMs < ceiling) budget = Math.min(ceiling, Math.max(budget, 2 * tookMs, MIN_SPIN_MS))
  }
  return {
    budgetMs: () => Math.min(budget, maxMs()),
    spun: (satisfied, spentMs) => {
      if (satisfied) learn(true, spentMs)
      else budget = budget / 2 < MIN_SPIN_MS ? 0 : budget / 2
    },
    parked: learn
  }
}

/** Always spins up to the ceiling: the policy before adaptive spinning, kept for comparison in benches. */
export const fixedSpin = (maxMs: () => number): SpinPolicy => ({ budgetMs: maxMs, spun: () => {}, parked: () => {} })

/** The longest spin by default: 50 µs, or none on a single CPU, where a spin only delays the process it waits for. */
export const defaultSpinMicros = (): number => (availableParallelism() > 1 ? 50 : 0)

/** Runnable tasks on the machine now: the 4th field of Linux's /proc/loadavg, else the 1-minute load average. */
const runnableTasks = (): number => {
  try {
    const runnable = Number(readFileSync("/proc/loadavg", "latin1").split(" ")[3]?.split("/")[0])
    if (Number.isFinite(runnable)) return runnable
  } catch {
    // Not Linux: fall through to the load average.
  }
  return loadavg()[0] ?? 0
}

/**
 * Whether the machine is oversubscribed (more runnable tasks than cores), sampled at most
 * once per `refreshMs` and only when a spin is about to start, so an idle process reads
 * nothing. Runnable tasks count every busy process, cxlog's included: a spin then would
 * steal the core the awaited process needs.
 */
export const oversubscribed = (cores: number, sample: () => number = runnableTasks, refreshMs = 100): () => boolean => {
  let sampledAt = -Infinity
  let over = false
  return () => {
    const now = performance.now()
    if (now - sampledAt >= refreshMs) {
      sampledAt = now
      over = sample() > cores
    }
    return over
  }
}
