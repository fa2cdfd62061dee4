/**
 * The coordinator's barrier engine: the design's two-phase completion.
 *
 * 1. Arrive: each participant's drain targets (ring, writer occurrence, position in the
 *    writer's own sequence space) are recorded and its reply deferred.
 * 2. Drain: when the last live member of the group has arrived, one fiber per
 *    (target, reader) pair waits on that reader's progress line, read straight from the
 *    region, woken by the reader when it passes the target (or polling, without a way to be
 *    woken); the fibers are joined as one unit under the barrier's deadline.
 * 3. Release: only then is the release handed to the single broadcast writer; its
 *    watermark goes back to every participant.
 */
import { Deferred, Effect, Fiber, type Scope } from "effect"
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

interface Arrival {
  readonly arrive: BarrierArrive
  readonly reply: Deferred.Deferred<BarrierReleased, BarrierError>
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
  timer: Fiber.RuntimeFiber<void> | undefined
}

type DrainOutcome =
  | { readonly _tag: "drained"; readonly observed: number; readonly from: number }
  | { readonly _tag: "void" }
  | { readonly _tag: "dropped"; readonly reason: string }

const DRAIN_POLL = "500 micros"
/** How long a woken drain waits before it looks again anyway (a reader's pid dying rings no one). */
const DRAIN_SLICE_MS = 10

export const make = (options: EngineOptions): Effect.Effect<BarrierEngine, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const open = new Map<string, Round>()
    const roundNumbers = new Map<string, number>()
    const { probe } = options

    const trace = (message: string) => (options.debug ? Effect.logInfo(`[barrier] ${message}`) : Effect.void)

    const failRound = (round: Round, error: BarrierError) =>
      Effect.gen(function*() {
        if (open.get(round.barrier) === round) open.delete(round.barrier)
        if (round.timer !== undefined) yield* Fiber.interruptFork(round.timer)
        for (const arrival of round.arrivals.values()) yield* Deferred.fail(arrival.reply, error)
      })

    const progressOf = (round: Round, reader: ProbedReader) =>
      round.mode === "processing-fence" ? reader.processed : reader.delivered

    /** Waits until `reader` has passed `target`, the target became void, or the reader died. */
    const drainOne = (round: Round, participant: number, target: DrainTarget, reader: ProbedReader) =>
      Effect.gen(function*() {
        const from = progressOf(round, reader)
        /** Whether the loop below has something to decide: drained, void, or the reader changed. */
        const settled = () => {
          if (probe.writerOccurrence(target.ring) !== target.occurrence) return true
          const now = probe.readers(target.ring).find((r) => r.slot === reader.slot)
          return now === undefined || now.occurrence !== reader.occurrence || progressOf(round, now) >= target.sequence
        }
        for (;;) {
          if (probe.writerOccurrence(target.ring) !== target.occurrence) {
            yield* trace(`name=${round.barrier} participant=${participant} target=${target.ring}:${target.occurrence}:${target.sequence} void (writer occurrence changed)`)
            return { _tag: "void" } as DrainOutcome
          }
          const now = probe.readers(target.ring).find((r) => r.slot === reader.slot)
          if (now === undefined || now.occurrence !== reader.occurrence || !options.isPidAlive(now.pid)) {
            const reason = now === undefined ? "reader detached" : now.occurrence !== reader.occurrence ? "reader occurrence changed" : `reader pid ${now.pid} died`
            yield* Effect.logWarning(`[barrier] name=${round.barrier} ring=${target.ring} reader=${reader.slot} dropped: ${reason}`)
            return { _tag: "dropped", reason } as DrainOutcome
          }
          const observed = progressOf(round, now)
          if (observed >= target.sequence) {
            yield* trace(`name=${round.barrier} participant=${participant} target=${target.ring}:${target.sequence} reader=${reader.slot} observed=${observed}`)
            return { _tag: "drained", observed, from } as DrainOutcome
          }
          if (probe.awaitProgress === undefined) yield* Effect.sleep(DRAIN_POLL)
          else yield* probe.awaitProgress(target.ring, target.sequence, settled, DRAIN_SLICE_MS)
        }
      })

    const readersFor = (round: Round, target: DrainTarget) => {
      const readers = probe.readers(target.ring)
      if (probe.isRequestRing(target.ring)) return readers
      const pids = new Set((options.groupMembers(round.group) ?? []).map((m) => m.pid))
      return readers.filter((r) => pids.has(r.pid))
    }

    const complete = (round: Round) =>
      Effect.gen(function*() {
        open.delete(round.barrier)
        const pairs = round.mode === "rendezvous"
          ? []
          : [...round.arrivals.values()].flatMap(({ arrive }) =>
            arrive.drainTargets.flatMap((target) =>
              readersFor(round, target).map((reader) => ({ participant: arrive.participant, target, reader }))
            )
          )
        const remaining = Math.max(0, round.startedAt + round.timeoutMs - Date.now())
        const outcomes = yield* Effect.forEach(pairs, (p) => drainOne(round, p.participant, p.target, p.reader), {
          concurrency: "unbounded"
        }).pipe(Effect.timeout(remaining), Effect.option)
        if (round.timer !== undefined) yield* Fiber.interrupt(round.timer)
        if (outcomes._tag === "None") {
          const undrained = pairs.flatMap(({ target, reader }) => {
            const now = probe.readers(target.ring).find((r) => r.slot === reader.slot)
            const observed = now === undefined ? -1 : progressOf(round, now)
            return observed >= target.sequence ? [] : [{ ring: target.ring, reader: reader.slot, target: target.sequence, observed }]
          })
          return yield* failRound(round, new BarrierTimeout({ barrier: round.barrier, timeoutMs: round.timeoutMs, notArrived: [], undrained }))
        }
        const drainedBytes = outcomes.value.reduce((sum, o) => sum + (o._tag === "drained" ? Math.max(0, o.observed - o.from) : 0), 0)
        const releaseWatermark = yield* options.release(round.barrier, round.number)
        yield* trace(`name=${round.barrier} round=${round.number} released at ${releaseWatermark}; drained ${drainedBytes} bytes over ${pairs.length} (target, reader) pairs`)
        const released: BarrierReleased = {
          barrier: round.barrier,
          round: round.number,
          releaseWatermark,
          participants: [...round.arrivals.keys()],
          dropped: round.dropped,
          drainedBytes
        }
        for (const arrival of round.arrivals.values()) yield* Deferred.succeed(arrival.reply, released)
      })

    const notArrived = (round: Round) => {
      const members = options.groupMembers(round.group) ?? []
      return members.filter((m) => !round.arrivals.has(m.slot)).map((m) => m.slot)
    }

    const checkComplete = (round: Round) =>
      open.get(round.barrier) === round && round.arrivals.size > 0 && notArrived(round).length === 0
        ? Effect.forkIn(complete(round), scope).pipe(Effect.asVoid)
        : Effect.void

    const openRound = (arrive: BarrierArrive): Round => {
      const number = (roundNumbers.get(arrive.barrier) ?? 0) + 1
      roundNumbers.set(arrive.barrier, number)
      const round: Round = {
        barrier: arrive.barrier,
        mode: arrive.mode,
        group: arrive.group,
        number,
        startedAt: Date.now(),
        timeoutMs: arrive.timeoutMs,
        arrivals: new Map(),
        dropped: [],
        membersAtOpen: new Set((options.groupMembers(arrive.group) ?? []).map((m) => m.slot)),
        timer: undefined
      }
      open.set(arrive.barrier, round)
      return round
    }

    const arrive = (a: BarrierArrive): Effect.Effect<BarrierReleased, BarrierError> =>
      Effect.gen(function*() {
        if (a.barrier.startsWith(RESERVED_PREFIX) && options.allowReserved !== true) {
          return yield* new BarrierNameReserved({ barrier: a.barrier })
        }
        const members = options.groupMembers(a.group)
        if (members === undefined) return yield* new UnknownGroup({ group: a.group })
        if (!members.some((m) => m.slot === a.participant)) return yield* new NotAMember({ slot: a.participant, group: a.group })
        const reply = yield* Deferred.make<BarrierReleased, BarrierError>()
        const round = open.get(a.barrier) ?? openRound(a)
        if (round.mode !== a.mode || round.group !== a.group) {
          round.arrivals.set(a.participant, { arrive: a, reply })
          yield* failRound(round, new BarrierModeMismatch({ barrier: a.barrier, modes: [...new Set([round.mode, a.mode])] }))
          return yield* Deferred.await(reply)
        }
        for (const target of a.drainTargets) {
          yield* trace(`name=${a.barrier} participant=${a.participant} target=${target.ring}:${target.occurrence}:${target.sequence}`)
        }
        round.arrivals.set(a.participant, { arrive: a, reply })
        if (round.timer === undefined) {
          round.timer = yield* Effect.sleep(round.timeoutMs).pipe(
            Effect.zipRight(
              Effect.suspend(() =>
                open.get(round.barrier) === round
                  ? failRound(round, new BarrierTimeout({ barrier: round.barrier, timeoutMs: round.timeoutMs, notArrived: notArrived(round), undrained: [] }))
                  : Effect.void
              )
            ),
            Effect.forkIn(scope)
          )
        }
        yield* checkComplete(round)
        return yield* Deferred.await(reply)
      })

    const memberGone = (slot: number, reason: string) =>
      Effect.gen(function*() {
        for (const round of [...open.values()]) {
          const arrived = round.arrivals.get(slot)
          if (arrived === undefined && !round.membersAtOpen.has(slot)) {
            yield* checkComplete(round)
            continue
          }
          if (options.onParticipantDeath === "fail") {
            yield* failRound(round, new BarrierParticipantDied({ barrier: round.barrier, participant: slot, reason }))
            continue
          }
          yield* Effect.logWarning(`[barrier] name=${round.barrier} participant=${slot} dropped: ${reason}`)
          if (arrived !== undefined) {
            round.arrivals.delete(slot)
            yield* Deferred.fail(arrived.reply, new BarrierParticipantDied({ barrier: round.barrier, participant: slot, reason }))
          }
          round.dropped.push({ participant: slot, reason })
          yield* checkComplete(round)
        }
      })

    return { arrive, memberGone, openRounds: () => open.size }
  })

export interface BarrierEngine {
  /** Records an arrival; resolves when its round is released (the deferred reply). */
  readonly arrive: (arrive: BarrierArrive) => Effect.Effect<BarrierReleased, BarrierError>
  /** A member died or left: drop it from open rounds (or fail them, per configuration). Call after membership no longer lists it. */
  readonly memberGone: (slot: number, reason: string) => Effect.Effect<void>
  readonly openRounds: () => number
}
