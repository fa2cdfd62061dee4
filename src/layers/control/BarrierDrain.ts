/**
 * A round's drain: the (target, reader) pairs it waits for, where each stands now
 * (`checkPair`), and the wait of one pair (`drainPair`) on its reader's progress line.
 */
import { Effect } from "effect"
import type { DrainTarget } from "../../services/control/Coordinator.js"
import { type Engine, type ProbedReader, type Rest, type Round, trace } from "./BarrierRounds.js"

export type DrainOutcome =
  | { readonly _tag: "drained"; readonly observed: number; readonly from: number }
  | { readonly _tag: "void" }
  | { readonly _tag: "dropped"; readonly reason: string }

const DRAIN_POLL = "500 micros"
/** How long a woken drain waits before it looks again anyway (a reader's pid dying rings no one). */
const DRAIN_SLICE_MS = 10

/** One reader that must pass one participant's target before the round is released. */
export interface DrainPair {
  readonly participant: number
  readonly target: DrainTarget
  readonly reader: ProbedReader
}

const progressOf = (
  round: Round,
  reader: ProbedReader
) => (round.mode === "processing-fence" ? reader.processed : reader.delivered)

const readerNow = (engine: Engine, ring: number, slot: number) => {
  const { probe } = engine.options
  return probe.reader !== undefined ? probe.reader(ring, slot) : probe.readers(ring).find((r) => r.slot === slot)
}

/** The readers a target must be drained by: every reader of a request ring (the coordinator's), else the group's. */
const readersFor = (engine: Engine, round: Round, target: DrainTarget) => {
  const readers = engine.options.probe.readers(target.ring)
  if (engine.options.probe.isRequestRing(target.ring)) return readers
  const pids = new Set((engine.options.groupMembers(round.group) ?? []).map((m) => m.pid))
  return readers.filter((r) => pids.has(r.pid))
}

/** Every (target, reader) pair the round waits for; none for a rendezvous. */
export const drainPairs = (engine: Engine, round: Round): ReadonlyArray<DrainPair> =>
  round.mode === "rendezvous"
    ? []
    : [...round.arrivals.values()].flatMap(({ arrive }) =>
      arrive.drainTargets.flatMap((target) =>
        readersFor(engine, round, target).map((reader) => ({ participant: arrive.participant, target, reader }))
      )
    )

/** A pair's outcome, and the line to log about it. */
export interface Checked {
  readonly outcome: DrainOutcome
  readonly log: Rest
}

/** Where the pair stands now: its outcome (and what to log), or undefined while its reader is short of the target. */
export const checkPair = (
  engine: Engine,
  round: Round,
  { participant, reader, target }: DrainPair
): Checked | undefined => {
  if (engine.options.probe.writerOccurrence(target.ring) !== target.occurrence) {
    return {
      outcome: { _tag: "void" },
      log: trace(
        engine,
        () =>
          `name=${round.barrier} participant=${participant} target=${target.ring}:${target.occurrence}:${target.sequence} void (writer occurrence changed)`
      )
    }
  }
  const now = readerNow(engine, target.ring, reader.slot)
  const same = now !== undefined && now.occurrence === reader.occurrence
  const observed = same ? progressOf(round, now) : -1
  // A reader past its target has the frames, dead or alive: its pid is checked (a system call) only while it is short.
  if (!same || (observed < target.sequence && !engine.options.isProcessAlive(now.pid, now.start))) {
    const reason = now === undefined
      ? "reader detached"
      : now.occurrence !== reader.occurrence
      ? "reader occurrence changed"
      : `reader pid ${now.pid} died`
    return {
      outcome: { _tag: "dropped", reason },
      log: Effect.logWarning(
        `[barrier] name=${round.barrier} ring=${target.ring} reader=${reader.slot} dropped: ${reason}`
      )
    }
  }
  if (observed < target.sequence) return undefined
  return {
    outcome: { _tag: "drained", observed, from: progressOf(round, reader) },
    log: trace(
      engine,
      () =>
        `name=${round.barrier} participant=${participant} target=${target.ring}:${target.sequence} reader=${reader.slot} observed=${observed}`
    )
  }
}

/** Waits until the pair's reader has passed its target, the target became void, or the reader died. */
export const drainPair = (engine: Engine, round: Round, pair: DrainPair) =>
  Effect.gen(function*() {
    const { probe } = engine.options
    const { reader, target } = pair
    /** Whether the loop below has something to decide: drained, void, or the reader changed. */
    const settled = () => {
      if (probe.writerOccurrence(target.ring) !== target.occurrence) return true
      const now = readerNow(engine, target.ring, reader.slot)
      return now === undefined || now.occurrence !== reader.occurrence || progressOf(round, now) >= target.sequence
    }
    for (;;) {
      const checked = checkPair(engine, round, pair)
      if (checked !== undefined) {
        if (checked.log !== undefined) yield* checked.log
        return checked.outcome
      }
      if (probe.awaitProgress === undefined) yield* Effect.sleep(DRAIN_POLL)
      else yield* probe.awaitProgress(target.ring, target.sequence, settled, DRAIN_SLICE_MS)
    }
  })

/** The pairs still short of their targets, for a `BarrierTimeout`. */
export const undrained = (engine: Engine, round: Round, pairs: ReadonlyArray<DrainPair>) =>
  pairs.flatMap(({ reader, target }) => {
    const now = readerNow(engine, target.ring, reader.slot)
    const observed = now === undefined ? -1 : progressOf(round, now)
    return observed >= target.sequence
      ? []
      : [{ ring: target.ring, reader: reader.slot, target: target.sequence, observed }]
  })
