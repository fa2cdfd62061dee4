/**
 * The coordinator's barrier engine: the design's two-phase completion, over the engine's state
 * and its rounds' bookkeeping (BarrierRounds.ts) and the drains (BarrierDrain.ts).
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
  BarrierParticipantDied,
  type BarrierReleased,
  BarrierTimeout,
  CoordinatorUnavailable
} from "../../services/control/Coordinator.js"
import { sharedReply } from "../../services/control/Rpc.js"
import {
  type Checked,
  checkPair,
  type DrainOutcome,
  type DrainPair,
  drainPair,
  drainPairs,
  undrained
} from "./BarrierDrain.js"
import {
  addArrival,
  andThen,
  armTimeout,
  checkArrival,
  clearTimer,
  type Engine,
  type EngineOptions,
  failRound,
  notArrived,
  openRound,
  recordTargets,
  type Rest,
  type Round,
  type Settle,
  trace
} from "./BarrierRounds.js"

/** The duration histogram of each mode, tagged once. */
const durationOf = {
  "rendezvous": Metric.tagged(barrierDuration, "mode", "rendezvous"),
  "delivery-fence": Metric.tagged(barrierDuration, "mode", "delivery-fence"),
  "processing-fence": Metric.tagged(barrierDuration, "mode", "processing-fence")
} as const

/**
 * Once every live member of the group has arrived, drains and releases the round: at once, in
 * the caller's fiber, when every pair is settled already (an idle fence, a rendezvous: no fiber
 * forked), else in a fiber of the engine's scope.
 */
const releaseWhenAllArrived = (engine: Engine, round: Round): Rest => {
  if (engine.open.get(round.barrier) !== round || round.arrivals.size === 0 || notArrived(engine, round).length > 0) {
    return undefined
  }
  engine.open.delete(round.barrier)
  const pairs = drainPairs(engine, round)
  const now = pairs.map((pair) => checkPair(engine, round, pair))
  if (!now.every((checked) => checked !== undefined)) {
    return Effect.asVoid(Effect.forkIn(drainAndRelease(engine, round, pairs, now), engine.scope))
  }
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
    const settle: Settle = (outcome) =>
      void Deferred.unsafeDone(reply, Either.isRight(outcome) ? Exit.succeed(outcome.right) : Exit.fail(outcome.left))
    return Effect.zipRight(Effect.suspend(() => enterNow(engine, a, settle) ?? Effect.void), Deferred.await(reply))
  })

/**
 * Hands the release to the broadcast writer and answers every participant with its watermark
 * (at once when the writer commits it at once); a release the writer could not send fails the
 * round for them all.
 */
const release = (
  engine: Engine,
  round: Round,
  pairs: ReadonlyArray<DrainPair>,
  outcomes: ReadonlyArray<DrainOutcome>
): Rest => {
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

const releaseAt = (
  engine: Engine,
  round: Round,
  pairs: ReadonlyArray<DrainPair>,
  outcomes: ReadonlyArray<DrainOutcome>,
  releaseWatermark: number
): Rest => {
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
  return trace(
    engine,
    () =>
      `name=${round.barrier} round=${round.number} released at ${releaseWatermark}; drained ${drainedBytes} bytes over ${pairs.length} (target, reader) pairs`
  )
}

/**
 * Drains the pairs of a round closed to arrivals as one unit under the round's deadline, then
 * releases it. Pairs already settled (`now`) are decided: only those still short of their
 * targets get a waiting fiber.
 */
const drainAndRelease = (
  engine: Engine,
  round: Round,
  pairs: ReadonlyArray<DrainPair>,
  now: ReadonlyArray<Checked | undefined>
) =>
  Effect.gen(function*() {
    const remaining = Math.max(0, round.startedAt + round.timeoutMs - Date.now())
    const outcomes = yield* Effect.forEach(pairs, (pair, i) => {
      const checked = now[i]
      return checked === undefined
        ? drainPair(engine, round, pair)
        : Effect.as(checked.log ?? Effect.void, checked.outcome)
    }, { concurrency: "unbounded" }).pipe(
      Effect.timeout(remaining),
      Effect.option
    )
    clearTimer(engine, round)
    if (outcomes._tag === "None") {
      return failRound(
        engine,
        round,
        new BarrierTimeout({
          barrier: round.barrier,
          timeoutMs: round.timeoutMs,
          notArrived: [],
          undrained: undrained(engine, round, pairs)
        })
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
