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
import { Deferred, Effect, Either, Exit, Metric, type Scope } from "effect"
import { barrierDuration } from "../../Metrics.js"
import {
  type BarrierArrive,
  type BarrierError,
  BarrierModeMismatch,
  BarrierNameReserved,
  BarrierParticipantDied,
  type BarrierReleased,
  BarrierTimeout,
  CoordinatorUnavailable,
  type DrainTarget,
  type Member,
  NotAMember,
  RESERVED_PREFIX,
  UnknownGroup
} from "../../services/control/Coordinator.js"
import type { ReaderProgress } from "../../services/control/Rings.js"
import { sharedReply } from "../../services/control/Rpc.js"

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
type Rest = Effect.Effect<void> | undefined

const andThen = (first: Rest, second: Rest): Rest =>
  first === undefined ? second : second === undefined ? first : Effect.zipRight(first, second)

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
/**
 * Barrier names whose last round number is kept. An app naming barriers per step (`step-${n}`)
 * would otherwise grow the map for good; older names fold into `Engine.roundFloor`.
 */
const ROUND_NAMES = 1024
/** How long a woken drain waits before it looks again anyway (a reader's pid dying rings no one). */
const DRAIN_SLICE_MS = 10

interface Engine {
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
const trace = (engine: Engine, message: () => string): Rest => (engine.options.debug ? Effect.logInfo(`[barrier] ${message()}`) : undefined)

const progressOf = (round: Round, reader: ProbedReader) => (round.mode === "processing-fence" ? reader.processed : reader.delivered)

const readerNow = (engine: Engine, ring: number, slot: number) => {
  const { probe } = engine.options
  return probe.reader !== undefined ? probe.reader(ring, slot) : probe.readers(ring).find((r) => r.slot === slot)
}

/** Ends the round with `error` for every participant that arrived. */
const failRound = (engine: Engine, round: Round, error: BarrierError): void => {
  if (engine.open.get(round.barrier) === round) engine.open.delete(round.barrier)
  clearTimer(engine, round)
  const outcome = Either.left(error)
  for (const arrival of round.arrivals.values()) arrival.settle(outcome)
}

/** Checks an arrival against the group: reserved names, unknown groups and non-members are refused. */
const checkArrival = (engine: Engine, a: BarrierArrive): BarrierError | undefined => {
  if (a.barrier.startsWith(RESERVED_PREFIX) && engine.options.allowReserved !== true) return new BarrierNameReserved({ barrier: a.barrier })
  const members = engine.options.groupMembers(a.group)
  if (members === undefined) return new UnknownGroup({ group: a.group })
  if (!members.some((m) => m.slot === a.participant)) return new NotAMember({ slot: a.participant, group: a.group })
  return undefined
}

const openRound = (engine: Engine, arrive: BarrierArrive): Round => {
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
const addArrival = (round: Round, a: BarrierArrive, settle: Settle): void => {
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
const recordTargets = (engine: Engine, round: Round, a: BarrierArrive, settle: Settle): Rest => {
  addArrival(round, a, settle)
  return engine.options.debug
    ? Effect.forEach(a.drainTargets, (target) =>
      trace(engine, () => `name=${a.barrier} participant=${a.participant} target=${target.ring}:${target.occurrence}:${target.sequence}`) ?? Effect.void, { discard: true })
    : undefined
}

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
const armTimeout = (engine: Engine, round: Round): void => {
  if (round.timer !== undefined) return
  engine.timed.add(round)
  round.timer = setTimeout(() => {
    clearTimer(engine, round)
    if (engine.open.get(round.barrier) !== round) return
    failRound(engine, round, new BarrierTimeout({ barrier: round.barrier, timeoutMs: round.timeoutMs, notArrived: notArrived(engine, round), undrained: [] }))
  }, Math.min(round.timeoutMs, 2 ** 31 - 1))
}

/**
 * Once every live member of the group has arrived, drains and releases the round: at once, in
 * the caller's fiber, when every pair is settled already (an idle fence, a rendezvous: no fiber
 * forked), else in a fiber of the engine's scope.
 */
const releaseWhenAllArrived = (engine: Engine, round: Round): Rest => {
  if (engine.open.get(round.barrier) !== round || round.arrivals.size === 0 || notArrived(engine, round).length > 0) return undefined
  engine.open.delete(round.barrier)
  const pairs = drainPairs(engine, round)
  const now = pairs.map((pair) => checkPair(engine, round, pair))
  if (!now.every((checked) => checked !== undefined)) return Effect.asVoid(Effect.forkIn(drainAndRelease(engine, round, pairs, now), engine.scope))
  let logs: Rest = undefined
  for (const checked of now) logs = andThen(logs, checked!.log)
  return andThen(logs, release(engine, round, pairs, now.map((checked) => checked!.outcome)))
}

/**
 * Records an arrival, answered through `settle` when its round is released or fails (at once
 * for an arrival refused); returns once recorded. The last arrival of an idle round releases it
 * before returning.
 */
const enterNow = (engine: Engine, a: BarrierArrive, settle: Settle): Rest => {
  const refused = checkArrival(engine, a)
  if (refused !== undefined) {
    settle(Either.left(refused))
    return undefined
  }
  const round = engine.open.get(a.barrier) ?? openRound(engine, a)
  if (round.mode !== a.mode || round.group !== a.group) {
    addArrival(round, a, settle)
    failRound(engine, round, new BarrierModeMismatch({ barrier: a.barrier, modes: [...new Set([round.mode, a.mode])] }))
    return undefined
  }
  const traced = recordTargets(engine, round, a, settle)
  armTimeout(engine, round)
  return andThen(traced, releaseWhenAllArrived(engine, round))
}

/** Records an arrival; resolves when its round is released, or fails with the round. */
const arrive = (engine: Engine, a: BarrierArrive): Effect.Effect<BarrierReleased, BarrierError> =>
  Effect.flatMap(Deferred.make<BarrierReleased, BarrierError>(), (reply) => {
    const settle: Settle = (outcome) => void Deferred.unsafeDone(reply, Either.isRight(outcome) ? Exit.succeed(outcome.right) : Exit.fail(outcome.left))
    return Effect.zipRight(Effect.suspend(() => enterNow(engine, a, settle) ?? Effect.void), Deferred.await(reply))
  })

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

/** A pair's outcome, and the line to log about it. */
interface Checked {
  readonly outcome: DrainOutcome
  readonly log: Rest
}

/** Where the pair stands now: its outcome (and what to log), or undefined while its reader is short of the target. */
const checkPair = (engine: Engine, round: Round, { participant, reader, target }: DrainPair): Checked | undefined => {
  if (engine.options.probe.writerOccurrence(target.ring) !== target.occurrence) {
    return {
      outcome: { _tag: "void" },
      log: trace(engine, () => `name=${round.barrier} participant=${participant} target=${target.ring}:${target.occurrence}:${target.sequence} void (writer occurrence changed)`)
    }
  }
  const now = readerNow(engine, target.ring, reader.slot)
  const same = now !== undefined && now.occurrence === reader.occurrence
  const observed = same ? progressOf(round, now) : -1
  // A reader past its target has the frames, dead or alive: its pid is checked (a system call) only while it is short.
  if (!same || (observed < target.sequence && !engine.options.isPidAlive(now.pid))) {
    const reason = now === undefined ? "reader detached" : now.occurrence !== reader.occurrence ? "reader occurrence changed" : `reader pid ${now.pid} died`
    return { outcome: { _tag: "dropped", reason }, log: Effect.logWarning(`[barrier] name=${round.barrier} ring=${target.ring} reader=${reader.slot} dropped: ${reason}`) }
  }
  if (observed < target.sequence) return undefined
  return {
    outcome: { _tag: "drained", observed, from: progressOf(round, reader) },
    log: trace(engine, () => `name=${round.barrier} participant=${participant} target=${target.ring}:${target.sequence} reader=${reader.slot} observed=${observed}`)
  }
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
const undrained = (engine: Engine, round: Round, pairs: ReadonlyArray<DrainPair>) =>
  pairs.flatMap(({ reader, target }) => {
    const now = readerNow(engine, target.ring, reader.slot)
    const observed = now === undefined ? -1 : progressOf(round, now)
    return observed >= target.sequence ? [] : [{ ring: target.ring, reader: reader.slot, target: target.sequence, observed }]
  })

/**
 * Hands the release to the broadcast writer and answers every participant with its watermark
 * (at once when the writer commits it at once); a release the writer could not send fails the
 * round for them all.
 */
const release = (engine: Engine, round: Round, pairs: ReadonlyArray<DrainPair>, outcomes: ReadonlyArray<DrainOutcome>): Rest => {
  const watermark = engine.options.release(round.barrier, round.number)
  return typeof watermark === "number"
    ? releaseAt(engine, round, pairs, outcomes, watermark)
    : Effect.matchEffect(watermark, {
      onSuccess: (at) => releaseAt(engine, round, pairs, outcomes, at) ?? Effect.void,
      onFailure: (error) =>
        Effect.zipRight(
          Effect.logWarning(`[barrier] name=${round.barrier} round=${round.number} failed: ${error.message}`),
          Effect.sync(() => failRound(engine, round, error))
        )
    })
}

const releaseAt = (engine: Engine, round: Round, pairs: ReadonlyArray<DrainPair>, outcomes: ReadonlyArray<DrainOutcome>, releaseWatermark: number): Rest => {
  let drainedBytes = 0
  for (const o of outcomes) if (o._tag === "drained") drainedBytes += Math.max(0, o.observed - o.from)
  durationOf[round.mode].unsafeUpdate((Date.now() - round.startedAt) * 1000, [])
  // One object for every participant, encoded once for all their replies.
  const released: BarrierReleased = sharedReply({
    barrier: round.barrier,
    round: round.number,
    releaseWatermark,
    participants: [...round.arrivals.keys()],
    dropped: [...round.dropped],
    drainedBytes
  })
  clearTimer(engine, round)
  const outcome = Either.right(released)
  for (const arrival of round.arrivals.values()) arrival.settle(outcome)
  return trace(engine, () => `name=${round.barrier} round=${round.number} released at ${releaseWatermark}; drained ${drainedBytes} bytes over ${pairs.length} (target, reader) pairs`)
}

/**
 * Drains the pairs of a round closed to arrivals as one unit under the round's deadline, then
 * releases it. Pairs already settled (`now`) are decided: only those still short of their
 * targets get a waiting fiber.
 */
const drainAndRelease = (engine: Engine, round: Round, pairs: ReadonlyArray<DrainPair>, now: ReadonlyArray<Checked | undefined>) =>
  Effect.gen(function*() {
    const remaining = Math.max(0, round.startedAt + round.timeoutMs - Date.now())
    const outcomes = yield* Effect.forEach(pairs, (pair, i) => {
      const checked = now[i]
      return checked === undefined ? drainPair(engine, round, pair) : Effect.as(checked.log ?? Effect.void, checked.outcome)
    }, { concurrency: "unbounded" }).pipe(
      Effect.timeout(remaining),
      Effect.option
    )
    clearTimer(engine, round)
    if (outcomes._tag === "None") {
      return failRound(
        engine,
        round,
        new BarrierTimeout({ barrier: round.barrier, timeoutMs: round.timeoutMs, notArrived: [], undrained: undrained(engine, round, pairs) })
      )
    }
    const rest = release(engine, round, pairs, outcomes.value)
    if (rest !== undefined) yield* rest
  })

/** A member died or left: drop it from open rounds (or fail them, per configuration), then release rounds it no longer holds up. */
const memberGone = (engine: Engine, slot: number, reason: string) =>
  Effect.gen(function*() {
    for (const round of [...engine.open.values()]) {
      const arrived = round.arrivals.get(slot)
      if (arrived === undefined && !round.membersAtOpen.has(slot)) {
        yield* releaseWhenAllArrived(engine, round) ?? Effect.void
        continue
      }
      if (engine.options.onParticipantDeath === "fail") {
        failRound(engine, round, new BarrierParticipantDied({ barrier: round.barrier, participant: slot, reason }))
        continue
      }
      yield* Effect.logWarning(`[barrier] name=${round.barrier} participant=${slot} dropped: ${reason}`)
      if (arrived !== undefined) {
        round.arrivals.delete(slot)
        arrived.settle(Either.left(new BarrierParticipantDied({ barrier: round.barrier, participant: slot, reason })))
      }
      round.dropped.push({ participant: slot, reason })
      yield* releaseWhenAllArrived(engine, round) ?? Effect.void
    }
  })

export const make = (options: EngineOptions): Effect.Effect<BarrierEngine, never, Scope.Scope> =>
  Effect.gen(function*() {
    const engine: Engine = {
      options,
      scope: yield* Effect.scope,
      timed: new Set(),
      open: new Map(),
      roundNumbers: new Map(),
      roundFloor: 0
    }
    // Rounds left when the engine goes away fail, so no arrival waits on for good (an in-process
    // `arrive` has no other bound; an RPC arrival's deferred reply would be dropped), and no
    // round's timer keeps the process alive.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        const closed = new CoordinatorUnavailable({ reason: "the coordinator closed with the barrier round open" })
        for (const round of new Set([...engine.open.values(), ...engine.timed])) failRound(engine, round, closed)
      })
    )
    return {
      arrive: (a) => arrive(engine, a),
      enter: (a, settle) => enterNow(engine, a, settle),
      memberGone: (slot, reason) => memberGone(engine, slot, reason),
      openRounds: () => engine.open.size,
      roundNames: () => engine.roundNumbers.size
    }
  })

export interface BarrierEngine {
  /** Records an arrival; resolves when its round is released (the deferred reply). */
  readonly arrive: (arrive: BarrierArrive) => Effect.Effect<BarrierReleased, BarrierError>
  /**
   * Records an arrival, as plain code; `settle` answers it when the round is released or fails
   * (at once if it is refused). No fiber per arrival: the coordinator answers its deferred RPC
   * reply from `settle`, and the last arrival of a round whose drains are all settled releases
   * it right here. Returns what is left to run (debug lines, a drain fiber to fork, a release
   * waiting for room), if anything.
   */
  readonly enter: (arrive: BarrierArrive, settle: Settle) => Effect.Effect<void> | undefined
  /** A member died or left: drop it from open rounds (or fail them, per configuration). Call after membership no longer lists it. */
  readonly memberGone: (slot: number, reason: string) => Effect.Effect<void>
  readonly openRounds: () => number
  /** Barrier names whose last round number the engine keeps (at most 1024: older names only keep their numbers going up). */
  readonly roundNames: () => number
}
