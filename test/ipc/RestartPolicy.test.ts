/**
 * The supervisor's restart rules alone (RestartPolicy.ts), as docs/ipc.md gives them: which exits a
 * policy restarts; the wait doubling with each restart in a row from backoffMs up to maxBackoffMs,
 * a run longer than that starting the doubling over; more than restartLimit restarts within
 * restartWindowMs giving the child up, and restarts older than the window no longer counted. The
 * process tests restart with one short backoff, where none of this shows.
 */
import { describe, expect, it } from "@effect/vitest"
import { RestartHistory, wantsRestart } from "../../src/layers/ipc/RestartPolicy.js"

const backoff = { backoffMs: 100, maxBackoffMs: 1_000, restartLimit: 5, restartWindowMs: 60_000 }

/** The delays of restarts at `nowMs` after runs of `ranMs`, or "GiveUp" where one was refused. */
const delays = (history: RestartHistory, runs: ReadonlyArray<readonly [nowMs: number, ranMs: number]>) =>
  runs.map(([nowMs, ranMs]) => {
    const decision = history.next(nowMs, ranMs)
    return decision._tag === "Restart" ? decision.delayMs : decision._tag
  })

describe("Restart policy", () => {
  it("never restarts nothing; on-failure a signal or a code other than 0, not a clean exit; always every exit", () => {
    const clean = { code: 0, signal: null }
    const failed = { code: 1, signal: null }
    const killed = { code: null, signal: "SIGKILL" }
    expect([clean, failed, killed].map((exit) => wantsRestart("never", exit))).toEqual([false, false, false])
    expect([clean, failed, killed].map((exit) => wantsRestart("on-failure", exit))).toEqual([false, true, true])
    expect([clean, failed, killed].map((exit) => wantsRestart("always", exit))).toEqual([true, true, true])
  })

  it("the wait doubles with each restart in a row, up to maxBackoffMs, and a run longer than that starts it over", () => {
    const history = new RestartHistory({ ...backoff, restartLimit: 100 })
    // Short runs, each a restart in a row: 100, 200, 400, 800, then the ceiling.
    expect(delays(history, [[1, 10], [2, 10], [3, 10], [4, 10], [5, 10], [6, 10]])).toEqual(
      [100, 200, 400, 800, 1_000, 1_000]
    )
    // A run of exactly maxBackoffMs is still in a row; one longer starts the doubling over.
    expect(delays(history, [[7, 1_000], [8, 1_001], [9, 10]])).toEqual([1_000, 100, 200])
  })

  it("more than restartLimit restarts within restartWindowMs give the child up; restarts older than the window are not counted", () => {
    const history = new RestartHistory({ ...backoff, restartLimit: 2, restartWindowMs: 10_000 })
    expect(delays(history, [[0, 10], [1_000, 10], [2_000, 10]])).toEqual([100, 200, "GiveUp"])
    expect(history.next(3_000, 10)).toEqual({ _tag: "GiveUp", restarts: 2 })
    // The window is 10 s: at 10 000 the restart at 0 still counts, past it that one no longer does.
    expect(history.next(10_000, 10)._tag).toBe("GiveUp")
    expect(history.next(10_001, 10)).toEqual({ _tag: "Restart", delayMs: 400 })
    // The one at 1 000 and the one just made fill the limit again.
    expect(history.next(10_002, 10)._tag).toBe("GiveUp")
  })

  it("a backoffMs of 0 restarts at once every time (0 doubled stays 0), up to restartLimit", () => {
    const history = new RestartHistory({ ...backoff, backoffMs: 0, restartLimit: 3 })
    expect(delays(history, [[1, 10], [2, 10], [3, 10], [4, 10]])).toEqual([0, 0, 0, "GiveUp"])
  })

  it("a restartLimit of 0 gives up at the first exit the policy would restart", () => {
    expect(new RestartHistory({ ...backoff, restartLimit: 0 }).next(0, 10)).toEqual({ _tag: "GiveUp", restarts: 0 })
  })
})
