/**
 * Periodic work that costs nothing measurable when idle: periods are aligned to the wall
 * clock's grid (a multiple of the period since the epoch), so a process's heartbeat, liveness
 * checks and waits' safety slices expire together — one timer wake per tick instead of one per
 * timer at scattered moments.
 */
import { Effect } from "effect"

/** Heartbeats and low-rate liveness checks tick on multiples of this (ms). */
export const CADENCE_MS = 500

/**
 * How early a timer may fire against the clock it was aimed by: Node starts a timer from the
 * event loop's cached time, which lags the clock by the work done since the loop last looked.
 */
export const TIMER_EARLY_MS = 2

/**
 * Ms from `nowMs` to the next multiple of `periodMs`, never within `TIMER_EARLY_MS` of now: a
 * timer aimed at a tick that fired a little early is at that tick, and aiming again at the tick
 * it stands on would run its work twice, one wake apart (a full period on at an exact tick).
 */
export const alignedDelayMs = (periodMs: number, nowMs = Date.now()): number => {
  const delay = periodMs - (nowMs % periodMs)
  return delay <= TIMER_EARLY_MS && periodMs > TIMER_EARLY_MS ? delay + periodMs : delay
}

/** The first tick of `periodMs` after `nowMs` (never within `TIMER_EARLY_MS` of it, as `alignedDelayMs`). */
export const nextTickAfter = (periodMs: number, nowMs: number): number => nowMs + alignedDelayMs(periodMs, nowMs)

/**
 * A deadline that may come early, moved back onto the grid: the tick of `periodMs` at or before
 * `atMs`, when that tick is still more than `TIMER_EARLY_MS` after `nowMs`; else `atMs` itself.
 * Work due every so often (a lease renewed well within its term) then shares its wake with the
 * process's other periodic work instead of keeping a phase of its own.
 */
export const tickAtOrBefore = (periodMs: number, atMs: number, nowMs: number): number => {
  if (!Number.isFinite(atMs)) return atMs
  const tick = atMs - (atMs % periodMs)
  return tick - nowMs > TIMER_EARLY_MS ? tick : atMs
}

/** Runs `effect` at every tick of `periodMs` (aligned, see above) until interrupted or it fails. */
export const everyTick = <E, R>(
  periodMs: () => number,
  effect: Effect.Effect<void, E, R>
): Effect.Effect<never, E, R> =>
  Effect.forever(Effect.zipRight(Effect.suspend(() => Effect.sleep(alignedDelayMs(periodMs()))), effect))
