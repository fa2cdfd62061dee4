/**
 * When a supervised child is started again, and after how long: plain arithmetic, so its rules
 * are tested alone. The wait doubles with each restart in a row, from `backoffMs` to at most
 * `maxBackoffMs`; a run that outlasted the longest wait starts the doubling over. More than
 * `restartLimit` restarts within `restartWindowMs` give the child up.
 */
import type { ProcessExit } from "../../services/ipc/Discovery.js"
import type { RestartPolicy } from "../../services/ipc/Supervisor.js"

export interface Backoff {
  readonly backoffMs: number
  readonly maxBackoffMs: number
  readonly restartLimit: number
  readonly restartWindowMs: number
}

/** An exit by a signal or with a code other than 0. */
export const isFailure = (exit: ProcessExit): boolean => exit.signal !== null || exit.code !== 0

export const wantsRestart = (policy: RestartPolicy, exit: ProcessExit): boolean =>
  policy === "always" || (policy === "on-failure" && isFailure(exit))

export type RestartDecision =
  | { readonly _tag: "Restart"; readonly delayMs: number }
  | { readonly _tag: "GiveUp"; readonly restarts: number }

/** One child's restarts: the times they happened, and how many came in a row. */
export class RestartHistory {
  private readonly times: Array<number> = []
  private inRow = 0
  constructor(private readonly backoff: Backoff) {}

  /** Whether to restart a child that ran `ranMs` and ended at `nowMs`, and after how long. */
  next(nowMs: number, ranMs: number): RestartDecision {
    const { backoffMs, maxBackoffMs, restartLimit, restartWindowMs } = this.backoff
    while (this.times.length > 0 && nowMs - this.times[0]! > restartWindowMs) this.times.shift()
    if (this.times.length >= restartLimit) return { _tag: "GiveUp", restarts: this.times.length }
    if (ranMs > maxBackoffMs) this.inRow = 0
    const delayMs = Math.min(maxBackoffMs, backoffMs * 2 ** this.inRow)
    this.inRow++
    this.times.push(nowMs)
    return { _tag: "Restart", delayMs }
  }
}
