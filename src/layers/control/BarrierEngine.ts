/**
 * The coordinator's barrier engine: the design's two-phase completion.
 *
 * 1. Arrive (`arrive` → `recordTargets`): each participant's drain targets (ring, writer
 *    occurrence, position in the writer's own sequence space) are recorded and its reply
 *    deferred; `releaseWhenAllArrived` starts the round's completion after the last one.
 * 2. Drain (`drainAndRelease` → `drainPairs` → `drainPair`): one fiber per (target, reader)
 *    pair waits on that reader's progress line, read straight from the region, woken by the
 *    reader when it passes the target (or polling, without a way to be woken); the fibers are
 *    joined as one unit under the barrier's deadline.
 * 3. Release (`release`): only then is the release handed to the single broadcast writer; its
 *    watermark goes back to every participant, who then waits for its own reader of the
 *    broadcast ring to reach it (the coordinator client's `awaitReleaseWatermark`).
 */
import { Deferred, Effect, Either, Metric, Runtime, type Scope } from "effect"
import { barrierDuration } from "../../Metrics.js"
import {
  type BarrierArrive,
  type BarrierError,
  BarrierModeMismatch,
  BarrierNameReserved,
  BarrierParticipantDied,
  type BarrierReleased,
  BarrierTimeout,
  type DrainTarget,
  type Member,
  NotAMember,
  RESERVED_PREFIX,
  UnknownGroup
} from "../../services/control/Coordinator.js"
import type { ReaderProgress } from "../../services/control/Rings.js"

/** One attached reader of a ring, as its progress line says: what a drain reads of it. */
export type ProbedReader = Pick<ReaderProgress, "slot" | "pid" | "occurrence" | "delivered" | "processed">

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
  readonly awaitProgress?: (ring: number, target: number, reached: () => boolean, timeoutMs: number) => Effect.Effect<boolean>
}

export interface EngineOptions {
  readonly probe: ProgressProbe
  /** Live members of a group, or undefined if there is no such group. */
  readonly groupMembers: (group: string) => ReadonlyArray<Member> | undefined
  readonly isPidAlive: (pid: number) => boolean
  /** Hands the release to the single broadcast writer; resolves to the release watermark. */
  readonly release: (barrier: string, round: number) => Effect.Effect<number>
  /** What a participant's death mid-barrier does to the others. */
  readonly onParticipantDeath: "drop" | "fail"
  readonly debug: boolean
  /** Allows internal barriers under the reserved prefix. */
  readonly allowReserved?: boolean
}

/** How an arrival is answered: the coordinator's deferred RPC reply, or a Deferred the caller awaits (`arrive`). */
export type Settle = (outcome: Either.Either<BarrierReleased, BarrierError>) => Effect.Effect<void>

interface Arrival {
  readonly arrive: BarrierArrive
  readonly settle: Settle
}

interface Round {
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

type DrainOutcome =
  | { readonly _tag: "drained"; readonly observed: number; readonly from: number }
  | { readonly _tag: "void" }
  | { readonly _tag: "dropped"; readonly reason: string }

const DRAIN_POLL = "500 micros"
/** How long a woken drain waits before it looks again anyway (a reader's pid dying rings no one). */
const DRAIN_SLICE_MS = 10

interface Engine {
  readonly options: EngineOptions
  readonly scope: Scope.Scope
  /** Runs a round's timeout from its timer's callback. */
  readonly runtime: Runtime.Runtime<never>
  /** Rounds whose timer is armed (open or draining), cleared with the engine. */
  readonly timed: Set<Round>
  /** The open round of each barrier name. */
  readonly open: Map<string, Round>
  /** The last round number of each barrier name. */
  readonly roundNumbers: Map<string, number>
}

/** One reader that must pass one participant's target before the round is released. */
interface DrainPair {
  readonly participant: number
  readonly target: DrainTarget
  readonly reader: ProbedReader
}

/** The duration histogram of each mode, tagged once. */
const durationOf = {
  "rendezvous": Metric.tagged(barrierDuration, "mode", "rendezvous"),
  "delivery-fence": Metric.tagged(barrierDuration, "mode", "delivery-fence"),
  "processing-fence": Metric.tagged(barrierDuration, "mode", "processing-fence")
} as const

/** A debug line, built only with debug on (every drain pair of every round passes here). */
const trace = (engine: Engine, message: () => string) => (engine.options.debug ? Effect.logInfo(`[barrier] ${message()}`) : Effect.void)

const progressOf = (round: Round, reader: ProbedReader) => (round.mode === "processing-fence" ? reader.processed : reader.delivered)

const readerNow = (engine: Engine, ring: number, slot: number) => {
  const { probe } = engine.options
  return probe.reader !== undefined ? probe.reader(ring, slot) : probe.readers(ring).find((r) => r.slot === slot)
}

/** Ends the round with `error` for every participant that arrived. */
const failRound = (engine: Engine, round: Round, error: BarrierError) =>
  Effect.gen(function*() {
    if (engine.open.get(round.barrier) === round) engine.open.delete(round.barrier)
    clearTimer(engine, round)
    for (const arrival of round.arrivals.values()) yield* arrival.settle(Either.left(error))
  })

/** Checks an arrival against the group: reserved names, unknown groups and non-members are refused. */
const checkArrival = (engine: Engine, a: BarrierArrive): BarrierError | undefined => {
  if (a.barrier.startsWith(RESERVED_PREFIX) && engine.options.allowReserved !== true) return new BarrierNameReserved({ barrier: a.barrier })
  const members = engine.options.groupMembers(a.group)
  if (members === undefined) return new UnknownGroup({ group: a.group })
  if (!members.some((m) => m.slot === a.participant)) return new NotAMember({ slot: a.participant, group: a.group })
  return undefined
}

const openRound = (engine: Engine, arrive: BarrierArrive): Round => {
  const number = (engine.roundNumbers.get(arrive.barrier) ?? 0) + 1
  engine.roundNumbers.set(arrive.barrier, number)
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

/** Records an arrival and the drain targets it brought (traced with debug on). */
const recordTargets = (engine: Engine, round: Round, a: BarrierArrive, settle: Settle) =>
  Effect.suspend(() => {
    round.arrivals.set(a.participant, { arrive: a, settle })
    return engine.options.debug
      ? Effect.forEach(a.drainTargets, (target) =>
        trace(engine, () => `name=${a.barrier} participant=${a.participant} target=${target.ring}:${target.occurrence}:${target.sequence}`), { discard: true })
      : Effect.void
  })

const clearTimer = (engine: Engine, round: Round) => {
  if (round.timer !== undefined) clearTimeout(round.timer)
  round.timer = undefined
  engine.timed.delete(round)
}

const notArrived = (engine: Engine, round: Round) => {
  const members = engine.options.groupMembers(round.group) ?? []
  return members.filter((m) => !round.arrivals.has(m.slot)).map((m) => m.slot)
}

/** From the first arrival on, the round fails with `BarrierTimeout` (naming who has not arrived) once its timeout passes. */
const armTimeout = (engine: Engine, round: Round) =>
  Effect.sync(() => {
    if (round.timer !== undefined) return
    engine.timed.add(round)
    round.timer = setTimeout(() => {
      clearTimer(engine, round)
      if (engine.open.get(round.barrier) !== round) return
      const timedOut = failRound(
        engine,
        round,
        new BarrierTimeout({ barrier: round.barrier, timeoutMs: round.timeoutMs, notArrived: notArrived(engine, round), undrained: [] })
      )
      Runtime.runFork(engine.runtime)(Effect.forkIn(timedOut, engine.scope))
    }, Math.min(round.timeoutMs, 2 ** 31 - 1))
  })

/**
 * Once every live member of the group has arrived, drains and releases the round: at once, in
 * the caller's fiber, when every pair is settled already (an idle fence, a rendezvous: no fiber
 * forked), else in a fiber of the engine's scope.
 */
const releaseWhenAllArrived = (engine: Engine, round: Round) =>
  Effect.suspend(() => {
    if (engine.open.get(round.barrier) !== round || round.arrivals.size === 0 || notArrived(engine, round).length > 0) return Effect.void
    engine.open.delete(round.barrier)
    const pairs = drainPairs(engine, round)
    const now = pairs.map((pair) => checkPair(engine, round, pair))
    return now.every((outcome) => outcome !== undefined)
      ? Effect.flatMap(Effect.all(now), (outcomes) => release(engine, round, pairs, outcomes))
      : Effect.forkIn(drainAndRelease(engine, round, pairs, now), engine.scope).pipe(Effect.asVoid)
  })

/**
 * Records an arrival, answered through `settle` when its round is released or fails (at once
 * for an arrival refused); returns once recorded. The last arrival of an idle round releases it
 * before returning.
 */
const enter = (engine: Engine, a: BarrierArrive, settle: Settle): Effect.Effect<void> =>
  Effect.suspend(() => {
    const refused = checkArrival(engine, a)
    if (refused !== undefined) return settle(Either.left(refused))
    const round = engine.open.get(a.barrier) ?? openRound(engine, a)
    if (round.mode !== a.mode || round.group !== a.group) {
      round.arrivals.set(a.participant, { arrive: a, settle })
      return failRound(engine, round, new BarrierModeMismatch({ barrier: a.barrier, modes: [...new Set([round.mode, a.mode])] }))
    }
    return recordTargets(engine, round, a, settle).pipe(
      Effect.zipRight(armTimeout(engine, round)),
      Effect.zipRight(releaseWhenAllArrived(engine, round))
    )
  })

/** Records an arrival; resolves when its round is released, or fails with the round. */
const arrive = (engine: Engine, a: BarrierArrive): Effect.Effect<BarrierReleased, BarrierError> =>
  Effect.flatMap(Deferred.make<BarrierReleased, BarrierError>(), (reply) =>
    Effect.zipRight(enter(engine, a, (outcome) => Effect.asVoid(Deferred.complete(reply, outcome))), Deferred.await(reply)))

/** The readers a target must be drained by: every reader of a request ring (the coordinator's), else the group's. */
const readersFor = (engine: Engine, round: Round, target: DrainTarget) => {
  const readers = engine.options.probe.readers(target.ring)
  if (engine.options.probe.isRequestRing(target.ring)) return readers
  const pids = new Set((engine.options.groupMembers(round.group) ?? []).map((m) => m.pid))
  return readers.filter((r) => pids.has(r.pid))
}

/** Every (target, reader) pair the round waits for; none for a rendezvous. */
const drainPairs = (engine: Engine, round: Round): ReadonlyArray<DrainPair> =>
  round.mode === "rendezvous"
    ? []
    : [...round.arrivals.values()].flatMap(({ arrive }) =>
      arrive.drainTargets.flatMap((target) => readersFor(engine, round, target).map((reader) => ({ participant: arrive.participant, target, reader })))
    )

/** Where the pair stands now: its outcome (logged), or undefined while its reader is short of the target. */
const checkPair = (engine: Engine, round: Round, { participant, reader, target }: DrainPair): Effect.Effect<DrainOutcome> | undefined => {
  if (engine.options.probe.writerOccurrence(target.ring) !== target.occurrence) {
    return Effect.as(
      trace(engine, () => `name=${round.barrier} participant=${participant} target=${target.ring}:${target.occurrence}:${target.sequence} void (writer occurrence changed)`),
      { _tag: "void" }
    )
  }
  const now = readerNow(engine, target.ring, reader.slot)
  const same = now !== undefined && now.occurrence === reader.occurrence
  const observed = same ? progressOf(round, now) : -1
  // A reader past its target has the frames, dead or alive: its pid is checked (a system call) only while it is short.
  if (!same || (observed < target.sequence && !engine.options.isPidAlive(now.pid))) {
    const reason = now === undefined ? "reader detached" : now.occurrence !== reader.occurrence ? "reader occurrence changed" : `reader pid ${now.pid} died`
    return Effect.as(Effect.logWarning(`[barrier] name=${round.barrier} ring=${target.ring} reader=${reader.slot} dropped: ${reason}`), { _tag: "dropped", reason })
  }
  if (observed < target.sequence) return undefined
  return Effect.as(
    trace(engine, () => `name=${round.barrier} participant=${participant} target=${target.ring}:${target.sequence} reader=${reader.slot} observed=${observed}`),
    { _tag: "drained", observed, from: progressOf(round, reader) }
  )
}

/** Waits until the pair's reader has passed its target, the target became void, or the reader died. */
const drainPair = (engine: Engine, round: Round, pair: DrainPair) =>
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
      const outcome = checkPair(engine, round, pair)
      if (outcome !== undefined) return yield* outcome
      if (probe.awaitProgress === undefined) yield* Effect.sleep(DRAIN_POLL)
      else yield* probe.awaitProgress(target.ring, target.sequence, settled, DRAIN_SLICE_MS)
    }
  })

/** The pairs still short of their targets, for a `BarrierTimeout`. */
const undrained = (engine: Engine, round: Round, pairs: ReadonlyArray<DrainPair>) =>
  pairs.flatMap(({ reader, target }) => {
    const now = readerNow(engine, target.ring, reader.slot)
    const observed = now === undefined ? -1 : progressOf(round, now)
    return observed >= target.sequence ? [] : [{ ring: target.ring, reader: reader.slot, target: target.sequence, observed }]
  })

/** Hands the release to the broadcast writer and answers every participant with its watermark. */
const release = (engine: Engine, round: Round, pairs: ReadonlyArray<DrainPair>, outcomes: ReadonlyArray<DrainOutcome>) =>
  Effect.gen(function*() {
    const drainedBytes = outcomes.reduce((sum, o) => sum + (o._tag === "drained" ? Math.max(0, o.observed - o.from) : 0), 0)
    const releaseWatermark = yield* engine.options.release(round.barrier, round.number)
    yield* Metric.update(durationOf[round.mode], (Date.now() - round.startedAt) * 1000)
    yield* trace(engine, () => `name=${round.barrier} round=${round.number} released at ${releaseWatermark}; drained ${drainedBytes} bytes over ${pairs.length} (target, reader) pairs`)
    const released: BarrierReleased = {
      barrier: round.barrier,
      round: round.number,
      releaseWatermark,
      participants: [...round.arrivals.keys()],
      dropped: round.dropped,
      drainedBytes
    }
    clearTimer(engine, round)
    for (const arrival of round.arrivals.values()) yield* arrival.settle(Either.right(released))
  })

/**
 * Drains the pairs of a round closed to arrivals as one unit under the round's deadline, then
 * releases it. Pairs already settled (`now`) are decided: only those still short of their
 * targets get a waiting fiber.
 */
const drainAndRelease = (engine: Engine, round: Round, pairs: ReadonlyArray<DrainPair>, now: ReadonlyArray<Effect.Effect<DrainOutcome> | undefined>) =>
  Effect.gen(function*() {
    const remaining = Math.max(0, round.startedAt + round.timeoutMs - Date.now())
    const outcomes = yield* Effect.forEach(pairs, (pair, i) => now[i] ?? drainPair(engine, round, pair), { concurrency: "unbounded" }).pipe(
      Effect.timeout(remaining),
      Effect.option
    )
    clearTimer(engine, round)
    if (outcomes._tag === "None") {
      return yield* failRound(
        engine,
        round,
        new BarrierTimeout({ barrier: round.barrier, timeoutMs: round.timeoutMs, notArrived: [], undrained: undrained(engine, round, pairs) })
      )
    }
    yield* release(engine, round, pairs, outcomes.value)
  })

/** A member died or left: drop it from open rounds (or fail them, per configuration), then release rounds it no longer holds up. */
const memberGone = (engine: Engine, slot: number, reason: string) =>
  Effect.gen(function*() {
    for (const round of [...engine.open.values()]) {
      const arrived = round.arrivals.get(slot)
      if (arrived === undefined && !round.membersAtOpen.has(slot)) {
        yield* releaseWhenAllArrived(engine, round)
        continue
      }
      if (engine.options.onParticipantDeath === "fail") {
        yield* failRound(engine, round, new BarrierParticipantDied({ barrier: round.barrier, participant: slot, reason }))
        continue
      }
      yield* Effect.logWarning(`[barrier] name=${round.barrier} participant=${slot} dropped: ${reason}`)
      if (arrived !== undefined) {
        round.arrivals.delete(slot)
        yield* arrived.settle(Either.left(new BarrierParticipantDied({ barrier: round.barrier, participant: slot, reason })))
      }
      round.dropped.push({ participant: slot, reason })
      yield* releaseWhenAllArrived(engine, round)
    }
  })

export const make = (options: EngineOptions): Effect.Effect<BarrierEngine, never, Scope.Scope> =>
  Effect.gen(function*() {
    const engine: Engine = {
      options,
      scope: yield* Effect.scope,
      runtime: yield* Effect.runtime<never>(),
      timed: new Set(),
      open: new Map(),
      roundNumbers: new Map()
    }
    // A round left when the engine goes away must not keep its timer (or the process) alive.
    yield* Effect.addFinalizer(() => Effect.sync(() => engine.timed.forEach((round) => clearTimer(engine, round))))
    return {
      arrive: (a) => arrive(engine, a),
      enter: (a, settle) => enter(engine, a, settle),
      memberGone: (slot, reason) => memberGone(engine, slot, reason),
      openRounds: () => engine.open.size
    }
  })

export interface BarrierEngine {
  /** Records an arrival; resolves when its round is released (the deferred reply). */
  readonly arrive: (arrive: BarrierArrive) => Effect.Effect<BarrierReleased, BarrierError>
  /**
   * Records an arrival and returns; `settle` answers it when the round is released or fails (at
   * once if it is refused). No fiber per arrival: the coordinator answers its deferred RPC reply
   * from `settle`, and the last arrival of a round whose drains are all settled releases it in
   * its own fiber.
   */
  readonly enter: (arrive: BarrierArrive, settle: Settle) => Effect.Effect<void>
  /** A member died or left: drop it from open rounds (or fail them, per configuration). Call after membership no longer lists it. */
  readonly memberGone: (slot: number, reason: string) => Effect.Effect<void>
  readonly openRounds: () => number
}
