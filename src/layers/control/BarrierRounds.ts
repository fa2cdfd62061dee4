/**
 * The barrier engine's state (`Engine`: its options, the open rounds, the round numbers) and
 * the bookkeeping of a round: opening it, recording arrivals and their drain targets, its
 * deadline, failing it.
 */
import { Effect, Either, type Scope } from "effect"
import {
  type BarrierArrive,
  type BarrierError,
  BarrierNameReserved,
  type BarrierReleased,
  BarrierTimeout,
  type Member,
  NotAMember,
  RESERVED_PREFIX,
  UnknownGroup
} from "../../services/control/Coordinator.js"
import type { ReaderProgress } from "../../services/control/Rings.js"

/** One attached reader of a ring, as its progress line says: what a drain reads of it. */
export type ProbedReader = Pick<ReaderProgress, "slot" | "pid" | "start" | "occurrence" | "delivered" | "processed">

/** Read-only view of ring state in the region. */
export interface ProgressProbe {
  readonly writerOccurrence: (ring: number) => number
  readonly readers: (ring: number) => ReadonlyArray<ProbedReader>
  /** One attached reader of `ring` (undefined if that slot is not attached): a drain's check reads only its own line. */
  readonly reader?: (ring: number, slot: number) => ProbedReader | undefined
  /** Request rings are read only by the coordinator: all their readers count, group or not. */
  readonly isRequestRing: (ring: number) => boolean
  /**
   * Resolves `true` once `reached()` holds, `false` after `timeoutMs`, re-checking it as soon
   * as a reader of `ring` passes `target`. Without it, drains poll every DRAIN_POLL.
   */
  readonly awaitProgress?: (
    ring: number,
    target: number,
    reached: () => boolean,
    timeoutMs: number
  ) => Effect.Effect<boolean>
}

export interface EngineOptions {
  readonly probe: ProgressProbe
  /** Live members of a group, or undefined if there is no such group. */
  readonly groupMembers: (group: string) => ReadonlyArray<Member> | undefined
  /** Whether the process `pid` started at `start` (its start tag; 0: unknown) runs: a later process under its pid is not it. */
  readonly isProcessAlive: (pid: number, start: number) => boolean
  /**
   * Hands the release to the single broadcast writer: the release watermark, or an effect
   * resolving to it when the release cannot be committed at once; that effect's failure (no
   * room came) fails the round for every participant.
   */
  readonly release: (barrier: string, round: number) => number | Effect.Effect<number, BarrierError>
  /** What a participant's death mid-barrier does to the others. */
  readonly onParticipantDeath: "drop" | "fail"
  readonly debug: boolean
  /** Allows internal barriers under the reserved prefix. */
  readonly allowReserved?: boolean
}

/** How an arrival is answered, at once: the coordinator's deferred RPC reply, or a Deferred the caller awaits (`arrive`). */
export type Settle = (outcome: Either.Either<BarrierReleased, BarrierError>) => void

/**
 * What a step that ran synchronously leaves to run as an effect (debug lines, a warning, a
 * round's drain fiber, a release waiting for room), or nothing: an idle round's arrivals and
 * release run as plain code, with no effect interpreted.
 */
export type Rest = Effect.Effect<void> | undefined

export const andThen = (first: Rest, second: Rest): Rest =>
  first === undefined ? second : second === undefined ? first : Effect.zipRight(first, second)

export interface Arrival {
  readonly arrive: BarrierArrive
  readonly settle: Settle
}

export interface Round {
  readonly barrier: string
  readonly mode: BarrierArrive["mode"]
  readonly group: string
  readonly number: number
  readonly startedAt: number
  readonly timeoutMs: number
  readonly arrivals: Map<number, Arrival>
  readonly dropped: Array<{ participant: number; reason: string }>
  /** Group members when the round opened, so a death reported after membership dropped it still counts. */
  readonly membersAtOpen: ReadonlySet<number>
  /** The round's deadline: a plain timer (no fiber per round), cleared when the round ends. */
  timer: ReturnType<typeof setTimeout> | undefined
}

/**
 * Barrier names whose last round number is kept. An app naming barriers per step (`step-${n}`)
 * would otherwise grow the map for good; older names fold into `Engine.roundFloor`.
 */
const ROUND_NAMES = 1024

export interface Engine {
  readonly options: EngineOptions
  readonly scope: Scope.Scope
  /** Rounds whose timer is armed (open or draining), failed with the engine. */
  readonly timed: Set<Round>
  /** The open round of each barrier name. */
  readonly open: Map<string, Round>
  /** The last round number of the ROUND_NAMES most recently used barrier names, least recent first. */
  readonly roundNumbers: Map<string, number>
  /**
   * The highest round number of a name dropped from `roundNumbers`: a name not there numbers its
   * next round above it, so a name's round numbers only go up, whoever still holds an old one.
   */
  roundFloor: number
}

/** A debug line, built only with debug on (every drain pair of every round passes here). */
export const trace = (
  engine: Engine,
  message: () => string
): Rest => (engine.options.debug ? Effect.logInfo(`[barrier] ${message()}`) : undefined)

/** Ends the round with `error` for every participant that arrived. */
export const failRound = (engine: Engine, round: Round, error: BarrierError): void => {
  if (engine.open.get(round.barrier) === round) engine.open.delete(round.barrier)
  clearTimer(engine, round)
  const outcome = Either.left(error)
  for (const arrival of round.arrivals.values()) arrival.settle(outcome)
}

/** Checks an arrival against the group: reserved names, unknown groups and non-members are refused. */
export const checkArrival = (engine: Engine, a: BarrierArrive): BarrierError | undefined => {
  if (a.barrier.startsWith(RESERVED_PREFIX) && engine.options.allowReserved !== true) {
    return new BarrierNameReserved({ barrier: a.barrier })
  }
  const members = engine.options.groupMembers(a.group)
  if (members === undefined) return new UnknownGroup({ group: a.group })
  if (!members.some((m) => m.slot === a.participant)) return new NotAMember({ slot: a.participant, group: a.group })
  return undefined
}

export const openRound = (engine: Engine, arrive: BarrierArrive): Round => {
  const { roundNumbers } = engine
  const last = roundNumbers.get(arrive.barrier)
  const number = (last ?? engine.roundFloor) + 1
  // Re-inserted, so the map's order is least recently used first.
  if (last !== undefined) roundNumbers.delete(arrive.barrier)
  roundNumbers.set(arrive.barrier, number)
  if (roundNumbers.size > ROUND_NAMES) {
    const [oldest, oldestNumber] = roundNumbers.entries().next().value!
    roundNumbers.delete(oldest)
    engine.roundFloor = Math.max(engine.roundFloor, oldestNumber)
  }
  const round: Round = {
    barrier: arrive.barrier,
    mode: arrive.mode,
    group: arrive.group,
    number,
    startedAt: Date.now(),
    timeoutMs: arrive.timeoutMs,
    arrivals: new Map(),
    dropped: [],
    membersAtOpen: new Set((engine.options.groupMembers(arrive.group) ?? []).map((m) => m.slot)),
    timer: undefined
  }
  engine.open.set(arrive.barrier, round)
  return round
}

/**
 * Records `a` in `round`. A participant that arrives again in the same round (a retry after its
 * call gave up) brings the targets that count from now on, and its earlier reply is answered
 * with the round's outcome as well, not left unanswered for good.
 */
export const addArrival = (round: Round, a: BarrierArrive, settle: Settle): void => {
  const earlier = round.arrivals.get(a.participant)?.settle
  round.arrivals.set(a.participant, {
    arrive: a,
    settle: earlier === undefined ? settle : (outcome) => {
      earlier(outcome)
      settle(outcome)
    }
  })
}

/** Records an arrival and the drain targets it brought (traced with debug on). */
export const recordTargets = (engine: Engine, round: Round, a: BarrierArrive, settle: Settle): Rest => {
  addArrival(round, a, settle)
  return engine.options.debug
    ? Effect.forEach(
      a.drainTargets,
      (target) =>
        trace(
          engine,
          () =>
            `name=${a.barrier} participant=${a.participant} target=${target.ring}:${target.occurrence}:${target.sequence}`
        ) ??
          Effect.void,
      { discard: true }
    )
    : undefined
}

export const clearTimer = (engine: Engine, round: Round) => {
  if (round.timer !== undefined) clearTimeout(round.timer)
  round.timer = undefined
  engine.timed.delete(round)
}

export const notArrived = (engine: Engine, round: Round) => {
  const members = engine.options.groupMembers(round.group) ?? []
  return members.filter((m) => !round.arrivals.has(m.slot)).map((m) => m.slot)
}

/** From the first arrival on, the round fails with `BarrierTimeout` (naming who has not arrived) once its timeout passes. */
export const armTimeout = (engine: Engine, round: Round): void => {
  if (round.timer !== undefined) return
  engine.timed.add(round)
  round.timer = setTimeout(() => {
    clearTimer(engine, round)
    if (engine.open.get(round.barrier) !== round) return
    failRound(
      engine,
      round,
      new BarrierTimeout({
        barrier: round.barrier,
        timeoutMs: round.timeoutMs,
        notArrived: notArrived(engine, round),
        undrained: []
      })
    )
  }, Math.min(round.timeoutMs, 2 ** 31 - 1))
}
