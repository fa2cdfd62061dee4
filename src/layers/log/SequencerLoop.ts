/**
 * The loop that runs the sequencer's rounds (SequencerRound.ts) as work comes, shared by the
 * live layer and the fake.
 *
 * Self-clocking: a round takes every batch committed since the last one. After a round that
 * moved something, the loop yields to the event loop (a macrotask, after pending I/O and
 * timers, so the process's other work runs) and goes on at once if more is committed;
 * otherwise it waits on the doorbell (appenders ring it while it waits), so an idle sequencer
 * wakes only for its lease, a deadline or a sweep. The rounds run from callbacks (the wake's,
 * the yield's), with no fiber step per round; the loop returns to Effects only for what needs
 * them: renewing the lease and discovering topics.
 */
import { Effect } from "effect"
import type { SequencerLeaseLost, SequencerRound } from "../../services/log/Sequencer.js"
import { CADENCE_MS, tickAtOrBefore, TIMER_EARLY_MS } from "../region/Cadence.js"
import type { RoundTally } from "./RoundTally.js"
import {
  BUSY_RETRY_MAX_MS,
  DEAD_HOLDER,
  fencedRound,
  forgetTopics,
  hasWork,
  type LogStorage,
  makeSequencerState,
  nextDeadline,
  roundStep,
  type SequencerState
} from "./SequencerRound.js"
import type { OrderSettings } from "./TopicOrder.js"

/** How `runRounds` paces itself. */
export interface RunSettings {
  /** The longest idle wait (the live layer renews its lease within it); session sweeps and hold deadlines bound it too. */
  readonly maxIdleMs: number
  /**
   * Runs before a round once `renewEveryMs` passed since it last ran (the lease), or at the
   * cadence's tick before that (an idle head then wakes once a tick for all its periodic work).
   */
  readonly renew: Effect.Effect<void, SequencerLeaseLost>
  readonly renewEveryMs: number
  /** Called once, with the time, after the first round that wrote a GOI entry (a takeover's end). */
  readonly onFirstOrdered?: (atMs: number) => void
  /** Called once every topic there is has been taken on (the first step), before rounds run as work comes. */
  readonly ready?: () => void
}

/** The sequencer over a storage: one round as a step, and the loop that runs rounds. */
export interface SequencerCore {
  readonly step: Effect.Effect<SequencerRound, SequencerLeaseLost>
  readonly run: (settings: RunSettings) => Effect.Effect<never, SequencerLeaseLost>
}

/** The loop's own state: its settings and clock, when the lease is to be renewed, and the first-ordered callback still due. */
interface Pacing {
  readonly run: RunSettings
  readonly now: () => number
  /** `hasWork` over the sequencer's state, made once (it is the standing wait's condition). */
  readonly hasWork: () => boolean
  renewAt: number
  first: ((atMs: number) => void) | undefined
}

// A timer may fire a little early (Cadence.ts): the renewal it was aimed at is due then.
const renewDue = (p: Pacing): boolean => p.now() >= p.renewAt - TIMER_EARLY_MS

const renewed = (p: Pacing): void => {
  const nowMs = p.now()
  p.renewAt = tickAtOrBefore(CADENCE_MS, nowMs + p.run.renewEveryMs, nowMs)
}

const noteFirst = (p: Pacing, round: RoundTally): void => {
  if (p.first !== undefined && round.ordered > 0) {
    p.first(p.now())
    p.first = undefined
  }
}

/** Rounds from callbacks until the lease is due for renewal or topics appeared (then it resumes) or the lease is lost (then it fails). */
const callbackRounds = (state: SequencerState, p: Pacing): Effect.Effect<void, SequencerLeaseLost> =>
  Effect.async<void, SequencerLeaseLost>((resume) => {
    const { log } = state
    let over = false
    let stopWatch: (() => void) | undefined
    let turn: ReturnType<typeof setImmediate> | undefined
    let busyTimer: ReturnType<typeof setTimeout> | undefined
    const stop = () => {
      over = true
      stopWatch?.()
      stopWatch = undefined
      if (turn !== undefined) clearImmediate(turn)
      turn = undefined
      if (busyTimer !== undefined) clearTimeout(busyTimer)
      busyTimer = undefined
    }
    const finish = (outcome: Effect.Effect<void, SequencerLeaseLost>) => {
      if (over) return
      stop()
      resume(outcome)
    }
    const guarded = (f: () => void) => () => {
      try {
        f()
      } catch (defect) {
        finish(Effect.die(defect))
      }
    }
    // While another process is inside a round: look again at once, then after 1, 2, … ms.
    let busyMs = 0
    const round = () => {
      if (over) return
      if (renewDue(p) || log.hasNewTopics()) return finish(Effect.void)
      const entry = log.beginRound()
      if (entry === "lost") return finish(Effect.fail(log.leaseLost()))
      if (entry === "busy") {
        if (busyMs === 0) turn = setImmediate(afterTurn)
        else busyTimer = setTimeout(afterBusy, busyMs)
        busyMs = Math.min(BUSY_RETRY_MAX_MS, Math.max(1, busyMs * 2))
        return
      }
      busyMs = 0
      if (entry === "recover") {
        // The marker is ours: the step that follows (discovery) takes every topic on again inside it.
        forgetTopics(state)
        return finish(Effect.logWarning(DEAD_HOLDER))
      }
      const tally = fencedRound(state, p.now())
      noteFirst(p, tally)
      if (tally.moved()) turn = setImmediate(afterTurn)
      else wait()
    }
    const afterTurn = guarded(() => {
      turn = undefined
      // Committed meanwhile (a busy stream): the next round at once, without the wait's bookkeeping in between.
      if (p.hasWork()) round()
      else wait()
    })
    const afterBusy = guarded(() => {
      busyTimer = undefined
      round()
    })
    const woken = guarded(() => {
      stopWatch?.()
      stopWatch = undefined
      round()
    })
    const wait = () => {
      const nowMs = p.now()
      const boundMs = Math.max(
        1,
        Math.min(p.run.maxIdleMs, p.renewAt - nowMs, nextDeadline(state) - nowMs)
      )
      stopWatch = log.watchWork(p.hasWork, woken, () => boundMs)
      if (!p.hasWork()) return
      // Work that came before the watch: the next turn, not a nested call (a round that moved
      // nothing while work stays would otherwise recurse here without yielding).
      stopWatch()
      stopWatch = undefined
      turn = setImmediate(afterTurn)
    }
    guarded(round)()
    return Effect.sync(stop)
  })

/** Runs rounds for as long as the lease holds: renewing it when due, discovering topics (`step`), rounds from callbacks in between. */
export const runRounds = (
  state: SequencerState,
  step: Effect.Effect<RoundTally, SequencerLeaseLost>,
  run: RunSettings
): Effect.Effect<never, SequencerLeaseLost> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const p: Pacing = {
      run,
      now: () => clock.unsafeCurrentTimeMillis(),
      hasWork: () => hasWork(state),
      renewAt: Number.NEGATIVE_INFINITY,
      first: run.onFirstOrdered
    }
    let ready = run.ready
    for (;;) {
      if (renewDue(p)) {
        yield* run.renew
        renewed(p)
      }
      if (state.log.hasNewTopics()) noteFirst(p, yield* step)
      ready?.()
      ready = undefined
      yield* callbackRounds(state, p)
    }
  })

export const makeSequencerCore = (log: LogStorage, settings: OrderSettings): SequencerCore => {
  const state = makeSequencerState(log, settings)
  const step = roundStep(state)
  return { step: Effect.map(step, (t) => t.toRound()), run: (run) => runRounds(state, step, run) }
}
