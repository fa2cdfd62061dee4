/**
 * Periodic work that costs nothing measurable when idle: periods are aligned to the wall
 * clock's grid (a multiple of the period since the epoch), so a process's heartbeat, liveness
 * checks and waits' safety slices expire together — one timer wake per tick instead of one per
 * timer at scattered moments.
 */
import { Effect } from "effect"

/** Heartbeats and low-rate liveness checks tick on multiples of this (ms). */
export const CADENCE_MS = 500

/** Ms from `nowMs` to the next multiple of `periodMs` (never 0: a full period at an exact tick). */
export const alignedDelayMs = (periodMs: number, nowMs = Date.now()): number => periodMs - (nowMs % periodMs)

/** Runs `effect` at every tick of `periodMs` (aligned, see above) until interrupted or it fails. */
export const everyTick = <E, R>(
  periodMs: () => number,
  effect: Effect.Effect<void, E, R>
): Effect.Effect<never, E, R> =>
  Effect.forever(Effect.zipRight(Effect.suspend(() => Effect.sleep(alignedDelayMs(periodMs()))), effect))
