/**
 * A doorbell owner's waiters and its park, as one record (`ParkState`) shared by the callbacks
 * the event loop runs, and the steps those callbacks take.
 *
 * The waiting machinery runs in callbacks, not in a fiber: a wake's callback (the FIFO's data
 * event, a ring from this process) re-checks every waiter and resumes the satisfied ones' fibers
 * directly — the kernel wake reaches the waiting fiber with no hop through another fiber. A
 * park step (spin briefly if that pays, publish `parked`, re-check) runs from `setImmediate`, once
 * the fibers that the last wake resumed have run (they often commit what the next waiter wants).
 * One timer, kept across wakes, bounds every wait (its deadline, and `parkMillis`); it is ref'd
 * only while a fiber waits, so a process with nothing waiting can exit.
 */
import { Effect } from "effect"
import { doorbellParks } from "../../Metrics.js"
import { TIMER_EARLY_MS } from "./Cadence.js"
import type { SpinPolicy } from "./SpinPolicy.js"

interface Waiter {
  readonly condition: () => boolean
  deadline: number
  readonly resume: (satisfied: boolean) => void
  /** A standing watch (`watch`): stays registered when it fires, and its deadline moves on by this many ms each time. */
  readonly every?: () => number
  /** A standing watch's wish for a longer spin ceiling while it stands (ms). */
  readonly spinMs?: number
}

export interface ParkOptions {
  readonly i32: Int32Array
  /** Index in `i32` of the doorbell line's `parked` flag. */
  readonly parkedFlag: number
  /** The spin ceiling when no standing watch asks for more (ms). */
  readonly spinMs: number
  /** The spin policy under a ceiling that moves with the standing watches' wishes. */
  readonly spinPolicy: (ceilingMs: () => number) => SpinPolicy
  /** Whether the policy is the adaptive one: it never spins while `overloaded()`. */
  readonly adaptive: boolean
  readonly overloaded: () => boolean
  readonly parkMillis: number
}

/** What one doorbell's owner keeps between callbacks: its options, its waiters and its park. */
export interface ParkState extends ParkOptions {
  readonly policy: SpinPolicy
  readonly waiters: Set<Waiter>
  /** The standing watches' spin wishes (ms → how many), and the largest of them (0: none). */
  readonly spinWish: { readonly counts: Map<number, number>; ms: number }
  /** The spin ceiling now (ms): `spinMs`, or the largest standing wish. */
  readonly spinCeilingMs: () => number
  closed: boolean
  /** Waiters the last sweep resumed with a satisfied condition. */
  satisfied: number
  /** `parked` is published and every waiter was re-checked after it (or a wake is on its way). */
  parked: boolean
  parkedAt: number
  /** A park step is queued. */
  parkStep: NodeJS.Immediate | undefined
  /** The bound timer and when it fires. */
  timer: NodeJS.Timeout | undefined
  timerAt: number
  timerRefd: boolean
  /** A sweep after a ring of this process's own bell is queued. */
  localSweepScheduled: boolean
  /** Waits settled by a sweep that ran in a wake's own callback (a FIFO wake, a local ring, a poke). */
  byWake: number
  /** Waits settled by the bound timer (timed out, or found satisfied when it fired). */
  byTimer: number
  /** The callbacks handed to the event loop, made once per doorbell. */
  readonly onWake: () => void
  readonly onTimer: () => void
  readonly onParkStep: () => void
  readonly onLocalRing: () => void
}

export const makeParkState = (options: ParkOptions): ParkState => {
  const spinWish = { counts: new Map<number, number>(), ms: 0 }
  // A doorbell that never spins (one CPU, an in-memory region, CXLOG_SPIN_MICROS=0) takes no wish:
  // nothing but another core could satisfy a waiter while this thread spins.
  const spinCeilingMs = options.spinMs > 0 ? () => Math.max(options.spinMs, spinWish.ms) : () => 0
  // Every field written out (no spread), so the record has one fixed shape from the start.
  const state: ParkState = {
    i32: options.i32,
    parkedFlag: options.parkedFlag,
    spinMs: options.spinMs,
    spinPolicy: options.spinPolicy,
    policy: options.spinPolicy(spinCeilingMs),
    adaptive: options.adaptive,
    overloaded: options.overloaded,
    parkMillis: options.parkMillis,
    waiters: new Set(),
    spinWish,
    spinCeilingMs,
    closed: false,
    satisfied: 0,
    parked: false,
    parkedAt: 0,
    parkStep: undefined,
    timer: undefined,
    timerAt: Infinity,
    timerRefd: false,
    localSweepScheduled: false,
    byWake: 0,
    byTimer: 0,
    onWake: () => wake(state, false),
    onTimer: () => timerFired(state),
    onParkStep: () => parkNow(state),
    onLocalRing: () => localSweep(state)
  }
  return state
}

/** Settles every waiter whose condition holds or whose deadline passed; returns how many. */
const sweep = (state: ParkState, now: number): number => {
  let settled = 0
  state.satisfied = 0
  for (const waiter of state.waiters) {
    if (waiter.every !== undefined) {
      const ready = waiter.condition()
      // A watch's deadline is a periodic look, not a bound a caller counts on: the timer aimed
      // at it that fires a little early is its look, not a miss followed by a wake a ms later.
      if (ready || now >= waiter.deadline - TIMER_EARLY_MS) {
        waiter.deadline = now + waiter.every()
        waiter.resume(ready)
        settled++
        if (ready) state.satisfied++
      }
      continue
    }
    if (waiter.condition()) {
      state.waiters.delete(waiter)
      waiter.resume(true)
      settled++
      state.satisfied++
    } else if (now >= waiter.deadline) {
      state.waiters.delete(waiter)
      waiter.resume(false)
      settled++
    }
  }
  if (state.waiters.size === 0) idle(state)
  return settled
}

/** Nobody waits: ringers need not pay to wake us, and the timer must not keep the process alive. */
const idle = (state: ParkState): void => {
  if (state.parked) {
    state.parked = false
    Atomics.store(state.i32, state.parkedFlag, 0)
  }
  if (state.timer !== undefined && state.timerRefd) {
    state.timer.unref()
    state.timerRefd = false
  }
}

const nearestDeadline = (state: ParkState): number => {
  let nearest = Infinity
  for (const waiter of state.waiters) nearest = Math.min(nearest, waiter.deadline)
  return nearest
}

/** Makes the timer fire by `due` (kept when it already does: firing early only costs a re-check). */
const armTimer = (state: ParkState, due: number): void => {
  if (state.timer !== undefined && state.timerAt <= due) {
    if (!state.timerRefd) {
      state.timer.ref()
      state.timerRefd = true
    }
    return
  }
  if (state.timer !== undefined) clearTimeout(state.timer)
  state.timerAt = due
  state.timerRefd = true
  state.timer = setTimeout(state.onTimer, Math.max(0, due - performance.now()))
}

/** A wake (or the timer): `parked` was cleared by the ringer; re-check everyone, resume the satisfied, park again later. */
const wake = (state: ParkState, byTimer: boolean): void => {
  if (state.closed) return
  const wasParked = state.parked
  if (state.parked) {
    state.parked = false
    Atomics.store(state.i32, state.parkedFlag, 0)
  }
  const now = performance.now()
  const settled = sweep(state, now)
  if (byTimer) state.byTimer += settled
  else state.byWake += settled
  if (wasParked) state.policy.parked(state.satisfied > 0, now - state.parkedAt)
  schedulePark(state)
}

const timerFired = (state: ParkState): void => {
  state.timer = undefined
  state.timerAt = Infinity
  state.timerRefd = false
  wake(state, true)
}

const schedulePark = (state: ParkState): void => {
  if (state.parkStep === undefined && !state.parked && state.waiters.size > 0 && !state.closed) {
    state.parkStep = setImmediate(state.onParkStep)
  }
}

/** Spins up to the policy's budget, never on an oversubscribed machine; true if it settled a waiter. */
const spin = (state: ParkState): boolean => {
  const budget = state.policy.budgetMs()
  if (budget <= 0 || (state.adaptive && state.overloaded())) return false
  const started = performance.now()
  let now = started
  let settled = 0
  do {
    now = performance.now()
    settled = sweep(state, now)
  } while (settled === 0 && state.waiters.size > 0 && now - started < budget)
  state.policy.spun(state.satisfied > 0, now - started)
  return settled > 0
}

// Dekker handshake with ringers: publish `parked` (sequentially consistent), then re-check
// every condition, then return to the loop. A ringer commits before it reads `parked`, so
// either the re-check sees its commit or it sees `parked` and wakes us: no wake can be lost.
// A waiter added while parked is checked as it registers, after `parked` was published.
const parkNow = (state: ParkState): void => {
  state.parkStep = undefined
  if (state.closed || state.parked || state.waiters.size === 0) return
  // A spin that settled someone lets the resumed fibers run before we spin or park again.
  if (spin(state)) return schedulePark(state)
  Atomics.store(state.i32, state.parkedFlag, 1)
  state.parked = true
  const now = performance.now()
  state.parkedAt = now
  sweep(state, now)
  if (!state.parked) return
  doorbellParks.unsafeUpdate(1, [])
  armTimer(state, Math.min(nearestDeadline(state), now + state.parkMillis))
}

/**
 * A ring of the owner's own bell (a local commit) needs no wake at all: one sweep after the
 * committing code has run settles whoever it satisfied.
 */
export const sweepSoon = (state: ParkState): void => {
  if (!state.localSweepScheduled) {
    state.localSweepScheduled = true
    queueMicrotask(state.onLocalRing)
  }
}

const localSweep = (state: ParkState): void => {
  state.localSweepScheduled = false
  if (!state.closed && state.waiters.size > 0) state.byWake += sweep(state, performance.now())
}

/** A waiter joined: while parked, the timer must cover its deadline; else a park step follows. */
const registered = (state: ParkState, waiter: Waiter): void => {
  state.waiters.add(waiter)
  if (state.parked) armTimer(state, waiter.deadline)
  else schedulePark(state)
}

const unregister = (state: ParkState, waiter: Waiter): void => {
  if (!state.waiters.delete(waiter)) return
  if (waiter.spinMs !== undefined) withdrawWish(state, waiter.spinMs)
  if (state.waiters.size === 0) idle(state)
}

const addWish = (state: ParkState, spinMs: number): void => {
  const wish = state.spinWish
  wish.counts.set(spinMs, (wish.counts.get(spinMs) ?? 0) + 1)
  wish.ms = Math.max(wish.ms, spinMs)
}

const withdrawWish = (state: ParkState, spinMs: number): void => {
  const wish = state.spinWish
  const left = (wish.counts.get(spinMs) ?? 1) - 1
  if (left > 0) return void wish.counts.set(spinMs, left)
  wish.counts.delete(spinMs)
  wish.ms = Math.max(0, ...wish.counts.keys())
}

const succeedTrue = Effect.succeed(true)
const succeedFalse = Effect.succeed(false)

/** `DoorbellShape.await`. */
export const awaitCondition = (state: ParkState, condition: () => boolean, timeoutMs: number): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    if (condition()) return succeedTrue
    if (state.closed) return succeedFalse
    return Effect.async<boolean>((resume) => {
      // A condition that throws ends its own wait as a defect; the others must keep being
      // served (and timed out).
      let thrown: { readonly cause: unknown } | undefined
      const guarded = () => {
        try {
          return condition()
        } catch (cause) {
          thrown = { cause }
          return true
        }
      }
      const waiter: Waiter = {
        condition: guarded,
        deadline: performance.now() + timeoutMs,
        resume: (ok) => resume(thrown === undefined ? (ok ? succeedTrue : succeedFalse) : Effect.die(thrown.cause))
      }
      // Checked again as it registers: while parked, this check is the re-check after `parked`.
      if (state.closed || guarded()) return waiter.resume(!state.closed)
      registered(state, waiter)
      return Effect.sync(() => unregister(state, waiter))
    })
  })

/** `DoorbellShape.watch`. */
export const watchCondition = (
  state: ParkState,
  condition: () => boolean,
  onReady: (satisfied: boolean) => void,
  everyMs: () => number,
  spinMicros = 0
): () => void => {
  if (state.closed) return () => {}
  const waiter: Waiter = spinMicros > 0
    ? { condition, deadline: performance.now() + everyMs(), resume: onReady, every: everyMs, spinMs: spinMicros / 1000 }
    : { condition, deadline: performance.now() + everyMs(), resume: onReady, every: everyMs }
  if (waiter.spinMs !== undefined) addWish(state, waiter.spinMs)
  // Not checked here (the caller checks once it holds the stop function): while parked,
  // that check is the re-check after `parked`.
  registered(state, waiter)
  return () => unregister(state, waiter)
}

/** The doorbell's scope closed: no more parks or timers, awaiting fibers resume with false, watches end. */
export const closePark = (state: ParkState): void => {
  state.closed = true
  if (state.parkStep !== undefined) clearImmediate(state.parkStep)
  if (state.timer !== undefined) clearTimeout(state.timer)
  for (const waiter of state.waiters) if (waiter.every === undefined) waiter.resume(false)
  state.waiters.clear()
  state.spinWish.counts.clear()
  state.spinWish.ms = 0
  state.parked = false
  Atomics.store(state.i32, state.parkedFlag, 0)
}
