import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Scope } from "effect"
import { type BarrierEngine, make } from "../../src/layers/control/BarrierEngine.js"
import type { ProbedReader, ProgressProbe } from "../../src/layers/control/BarrierRounds.js"
import type { BarrierArrive, BarrierError, BarrierReleased, Member } from "../../src/services/control/Coordinator.js"
import { parked } from "../helpers/Parked.js"
import { until } from "../helpers/ServeProcess.js"

/** A scripted region: ring 10 written by participant 1, read by reader 0 (pid 200); drains poll it. */
const setup = (onParticipantDeath: "drop" | "fail" = "drop") => scripted(onParticipantDeath, undefined)

/**
 * The same region, whose probe can also wake a drain: `publish` moves the reader and
 * re-checks every waiting drain, as a reader's ring does; `watched` lists what drains waited on.
 */
const setupWoken = Effect.gen(function*() {
  const waits = new Set<() => void>()
  const watched: Array<{ ring: number; target: number }> = []
  const awaitProgress = (ring: number, target: number, reached: () => boolean) =>
    Effect.async<boolean>((resume) => {
      watched.push({ ring, target })
      const check = () => {
        if (!reached()) return
        waits.delete(check)
        resume(Effect.succeed(true))
      }
      waits.add(check)
      return Effect.sync(() => waits.delete(check))
    })
  const setup = yield* scripted("drop", awaitProgress)
  const publish = (reader: ProbedReader) => {
    setup.state.reader = reader
    for (const check of [...waits]) check()
  }
  return { ...setup, publish, watched }
})

/** The start tag of the live processes of the scripted engine's members. */
const LIVE_START = 7

const scripted = (onParticipantDeath: "drop" | "fail", awaitProgress: ProgressProbe["awaitProgress"]) =>
  Effect.gen(function*() {
    const members: Array<Member> = [
      { slot: 1, pid: 100, occurrence: 1, role: "worker" },
      { slot: 2, pid: 200, occurrence: 1, role: "worker" }
    ]
    const state = {
      writerOccurrence: 1,
      reader: { slot: 0, pid: 200, start: LIVE_START, occurrence: 1, delivered: 0, processed: 0 } as ProbedReader,
      releases: 0
    }
    const engine: BarrierEngine = yield* make({
      probe: {
        writerOccurrence: () => state.writerOccurrence,
        readers: (ring) => (ring === 10 ? [state.reader] : []),
        isRequestRing: () => false,
        ...(awaitProgress === undefined ? {} : { awaitProgress })
      },
      groupMembers: (group) => (group === "all" ? members : undefined),
      // Both members' processes run, started at LIVE_START: a line naming either pid under another start is a later process's.
      isProcessAlive: (pid, start) =>
        (members.some((m) => m.pid === pid) || pid === 200) && (start === 0 || start === LIVE_START),
      release: () => ++state.releases * 1000,
      onParticipantDeath,
      debug: false
    })
    return { engine, state, members }
  })

const arrival = (participant: number, mode: BarrierArrive["mode"], sequence = 0, timeoutMs = 5_000): BarrierArrive => ({
  barrier: "b",
  mode,
  group: "all",
  participant,
  occurrence: 1,
  drainTargets: sequence > 0 ? [{ ring: 10, occurrence: 1, sequence }] : [],
  timeoutMs
})

describe("BarrierEngine", () => {
  it.scopedLive("delivery fence: releases only after the reader delivered the writer's target", () =>
    Effect.gen(function*() {
      const { engine, state } = yield* setup()
      const a = yield* Effect.fork(engine.arrive(arrival(1, "delivery-fence", 512)))
      const b = yield* Effect.fork(engine.arrive(arrival(2, "delivery-fence")))
      // Windows, not waits: the drain polls the reader, and no release may come while it is short of 512.
      yield* Effect.sleep("30 millis")
      expect(state.releases).toBe(0)
      state.reader = { ...state.reader, delivered: 256 }
      yield* Effect.sleep("10 millis")
      expect(state.releases).toBe(0)
      state.reader = { ...state.reader, delivered: 512 }
      const [ra, rb] = [yield* Fiber.join(a), yield* Fiber.join(b)]
      expect(ra).toEqual(rb)
      expect(ra).toMatchObject({ barrier: "b", round: 1, releaseWatermark: 1000, participants: [1, 2] })
      expect(ra.drainedBytes).toBe(512)
    }))

  // `it.scoped` runs on the TestClock, which never moves here: a drain that polled on a timer
  // would never look again, so only the reader's progress can release these rounds.
  it.scoped("a drain is woken by the reader's progress, without a poll tick", () =>
    Effect.gen(function*() {
      const { engine, state, publish, watched } = yield* setupWoken
      const a = yield* Effect.fork(engine.arrive(arrival(1, "processing-fence", 512)))
      const b = yield* Effect.fork(engine.arrive(arrival(2, "processing-fence")))
      while (watched.length === 0) yield* Effect.yieldNow()
      expect(watched[0]).toEqual({ ring: 10, target: 512 })
      publish({ ...state.reader, delivered: 512, processed: 256 })
      yield* Effect.yieldNow()
      expect(state.releases).toBe(0)
      publish({ ...state.reader, delivered: 512, processed: 512 })
      const [ra, rb] = [yield* Fiber.join(a), yield* Fiber.join(b)]
      expect(ra).toEqual(rb)
      expect(ra).toMatchObject({ round: 1, participants: [1, 2], drainedBytes: 512 })
    }))

  it.scoped("a woken drain still sees its target go void when the writer reopens", () =>
    Effect.gen(function*() {
      const { engine, state, publish, watched } = yield* setupWoken
      const a = yield* Effect.fork(engine.arrive(arrival(1, "delivery-fence", 4096)))
      yield* Effect.fork(engine.arrive(arrival(2, "delivery-fence")))
      while (watched.length === 0) yield* Effect.yieldNow()
      state.writerOccurrence = 2
      publish(state.reader)
      expect(yield* Fiber.join(a)).toMatchObject({ round: 1, drainedBytes: 0 })
    }))

  it.scopedLive("a reader short of its target whose line names its pid under another start tag (its process died, the pid went to a later one) is dropped, and the round released", () =>
    Effect.gen(function*() {
      const { engine, state } = yield* setup()
      state.reader = { ...state.reader, start: LIVE_START + 1 }
      const a = yield* Effect.fork(engine.arrive(arrival(1, "delivery-fence", 512, 2_000)))
      const b = yield* Effect.fork(engine.arrive(arrival(2, "delivery-fence", 0, 2_000)))
      // Released with nothing drained, not failed at the 2 s bound waiting for a reader that is gone.
      const [ra, rb] = [yield* Fiber.join(a), yield* Fiber.join(b)]
      expect(ra).toEqual(rb)
      expect(ra).toMatchObject({ round: 1, participants: [1, 2], drainedBytes: 0 })
      expect(state.releases).toBe(1)
    }))

  it.scopedLive("processing fence waits on processed, not delivered", () =>
    Effect.gen(function*() {
      const { engine, state } = yield* setup()
      state.reader = { ...state.reader, delivered: 512 }
      const a = yield* Effect.fork(engine.arrive(arrival(1, "processing-fence", 512)))
      yield* Effect.fork(engine.arrive(arrival(2, "processing-fence")))
      // A window, not a wait: delivered reached the target, processed did not; no release may come in it.
      yield* Effect.sleep("30 millis")
      expect(state.releases).toBe(0)
      state.reader = { ...state.reader, processed: 512 }
      expect((yield* Fiber.join(a)).round).toBe(1)
    }))

  it.scopedLive("a target whose writer occurrence changed is void; rounds reuse the name", () =>
    Effect.gen(function*() {
      const { engine, state } = yield* setup()
      const a = yield* Effect.fork(engine.arrive(arrival(1, "delivery-fence", 4096)))
      const b = yield* Effect.fork(engine.arrive(arrival(2, "delivery-fence")))
      // Both arrived (each waits for the release): the round drains, short of the target, when the writer changes.
      yield* parked([a, b])
      state.writerOccurrence = 2
      expect((yield* Fiber.join(a)).round).toBe(1)
      const [r1, r2] = yield* Effect.all([
        engine.arrive(arrival(1, "rendezvous")),
        engine.arrive(arrival(2, "rendezvous"))
      ], {
        concurrency: 2
      })
      expect(r1.round).toBe(2)
      expect(r2.releaseWatermark).toBe(2000)
    }))

  it.scopedLive("mixed modes fail every arrival with BarrierModeMismatch", () =>
    Effect.gen(function*() {
      const { engine } = yield* setup()
      const a = yield* Effect.fork(Effect.flip(engine.arrive(arrival(1, "delivery-fence"))))
      yield* until(() => engine.openRounds() === 1, 10_000, () => "the first arrival to open the round", 1)
      const b = yield* Effect.flip(engine.arrive(arrival(2, "rendezvous")))
      expect(b).toMatchObject({ _tag: "BarrierModeMismatch", barrier: "b" })
      expect(yield* Fiber.join(a)).toMatchObject({ _tag: "BarrierModeMismatch" })
    }))

  it.scopedLive("a timeout names who had not arrived, or which targets were not drained", () =>
    Effect.gen(function*() {
      const { engine } = yield* setup()
      expect(yield* Effect.flip(engine.arrive(arrival(1, "rendezvous", 0, 50)))).toMatchObject({
        _tag: "BarrierTimeout",
        notArrived: [2]
      })
      const a = yield* Effect.fork(Effect.flip(engine.arrive(arrival(1, "delivery-fence", 999, 80))))
      yield* engine.arrive(arrival(2, "delivery-fence", 0, 80)).pipe(Effect.flip)
      expect(yield* Fiber.join(a)).toMatchObject({
        _tag: "BarrierTimeout",
        notArrived: [],
        undrained: [{ ring: 10, reader: 0, target: 999, observed: 0 }]
      })
    }))

  it.scopedLive("a participant that dies is dropped and the others are released (or failed, if configured)", () =>
    Effect.gen(function*() {
      const { engine, members } = yield* setup()
      const a = yield* Effect.fork(engine.arrive(arrival(1, "rendezvous")))
      // The round is open (participant 2 a member at its opening) before 2 dies.
      yield* until(() => engine.openRounds() === 1, 10_000, () => "the first arrival to open the round", 1)
      members.splice(1, 1)
      yield* engine.memberGone(2, "pid 200 died")
      expect(yield* Fiber.join(a)).toMatchObject({
        participants: [1],
        dropped: [{ participant: 2, reason: "pid 200 died" }]
      })

      const failing = yield* setup("fail")
      const b = yield* Effect.fork(Effect.flip(failing.engine.arrive(arrival(1, "rendezvous"))))
      yield* until(() => failing.engine.openRounds() === 1, 10_000, () => "the first arrival to open the round", 1)
      failing.members.splice(1, 1)
      yield* failing.engine.memberGone(2, "pid 200 died")
      expect(yield* Fiber.join(b)).toMatchObject({ _tag: "BarrierParticipantDied", participant: 2 })
    }))

  // The coordinator answers arrivals through `enter`'s settle, with no fiber per arrival: the
  // last arrival of a round whose drains are all settled releases it before `enter` returns.
  it.scopedLive("enter: the last arrival of an idle round releases everyone before it returns, with no fiber forked", () =>
    Effect.gen(function*() {
      const { engine, state } = yield* setup()
      const settled: Array<[number, Either.Either<BarrierReleased, BarrierError>]> = []
      const settle = (participant: number) => (outcome: Either.Either<BarrierReleased, BarrierError>) =>
        void settled.push([participant, outcome])
      state.reader = { ...state.reader, delivered: 512 }
      // Plain code: nothing left to run as an effect.
      expect(engine.enter(arrival(1, "delivery-fence", 512), settle(1))).toBeUndefined()
      expect(settled).toEqual([])
      expect(engine.enter(arrival(2, "delivery-fence"), settle(2))).toBeUndefined()
      expect(settled.map(([p, o]) => [p, Either.isRight(o) && o.right.round])).toEqual([[1, 1], [2, 1]])
      expect(state.releases).toBe(1)
      // A refused arrival is settled at once, with its typed error.
      expect(engine.enter(arrival(7, "rendezvous"), settle(7))).toBeUndefined()
      expect(settled[2]).toMatchObject([7, { _tag: "Left", left: { _tag: "NotAMember" } }])
    }))

  // A participant whose arrival call timed out may arrive again in the same round: both replies
  // are answered when the round ends (the earlier one must not be left waiting for good).
  it.scopedLive("a participant arriving twice in one round has both its replies answered, released or failed", () =>
    Effect.gen(function*() {
      const { engine } = yield* setup()
      const settled: Array<[string, Either.Either<BarrierReleased, BarrierError>]> = []
      const settle = (who: string) => (outcome: Either.Either<BarrierReleased, BarrierError>) =>
        void settled.push([who, outcome])
      engine.enter(arrival(1, "rendezvous"), settle("first"))
      engine.enter(arrival(1, "rendezvous"), settle("retry"))
      expect(settled).toEqual([])
      engine.enter(arrival(2, "rendezvous"), settle("other"))
      expect(settled.map(([who, o]) => [who, Either.isRight(o) && o.right.participants])).toEqual([["first", [1, 2]], [
        "retry",
        [1, 2]
      ], ["other", [1, 2]]])
      settled.length = 0
      engine.enter(arrival(1, "rendezvous"), settle("first"))
      engine.enter(arrival(1, "rendezvous"), settle("retry"))
      engine.enter(arrival(2, "processing-fence"), settle("other"))
      expect(settled.map(([who, o]) => [who, Either.isLeft(o) && o.left._tag])).toEqual([
        ["first", "BarrierModeMismatch"],
        ["retry", "BarrierModeMismatch"],
        ["other", "BarrierModeMismatch"]
      ])
    }))

  // Nothing else bounds an in-process `arrive`: an engine that closes must end its open rounds.
  it.scopedLive("rounds open or draining when the engine closes fail with CoordinatorUnavailable", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { engine, state } = yield* Scope.extend(setup(), scope)
      const open = yield* Effect.fork(engine.arrive({ ...arrival(1, "rendezvous"), timeoutMs: 600_000 }))
      // A second barrier whose round is draining (its reader is short of the target).
      const settled: Array<Either.Either<BarrierReleased, BarrierError>> = []
      yield* engine.enter(
        { ...arrival(1, "delivery-fence", 512), barrier: "d", timeoutMs: 600_000 },
        (o) => void settled.push(o)
      ) ?? Effect.void
      yield* engine.enter(
        { ...arrival(2, "delivery-fence"), barrier: "d", timeoutMs: 600_000 },
        (o) => void settled.push(o)
      ) ?? Effect.void
      // A window, not a wait: the reader stays short of the target, so neither arrival may settle in it.
      yield* Effect.sleep("20 millis")
      expect(settled).toEqual([])
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(Fiber.join(open))).toMatchObject({ _tag: "CoordinatorUnavailable" })
      expect(settled.map((o) => Either.isLeft(o) && o.left._tag)).toEqual([
        "CoordinatorUnavailable",
        "CoordinatorUnavailable"
      ])
      expect(state.releases).toBe(0)
    }))

  // An app naming its barriers per step must not grow the engine for good, and a name's round
  // numbers must still only go up (a participant may hold an old round's number).
  it.scoped("barrier names per step: the engine keeps at most 1024 names, and each name's rounds only go up", () =>
    Effect.gen(function*() {
      const { engine } = yield* setup()
      const rounds = (name: string) => {
        const seen: Array<number> = []
        for (const participant of [1, 2]) {
          engine.enter(
            { ...arrival(participant, "rendezvous"), barrier: name },
            (o) => void seen.push(Either.isRight(o) ? o.right.round : -1)
          )
        }
        expect(seen[0]).toBe(seen[1])
        return seen[0]!
      }
      const first = rounds("step-0")
      expect(first).toBe(1)
      const steady: Array<number> = []
      for (let step = 1; step < 10_000; step++) {
        rounds(`step-${step}`)
        // A name in steady use keeps numbering its rounds 1, 2, 3…
        if (step % 100 === 0) steady.push(rounds("steady"))
      }
      expect(steady).toEqual(Array.from({ length: steady.length }, (_, i) => i + 1))
      expect(engine.roundNames()).toBeLessThanOrEqual(1024)
      expect(engine.openRounds()).toBe(0)
      // Forgotten long ago: its next round still numbers above the one it had.
      expect(rounds("step-0")).toBeGreaterThan(first)
    }))

  it.scopedLive("reserved names, unknown groups and non-members are typed errors", () =>
    Effect.gen(function*() {
      const { engine } = yield* setup()
      expect(yield* Effect.flip(engine.arrive({ ...arrival(1, "rendezvous"), barrier: "cxlog.x" }))).toMatchObject({
        _tag: "BarrierNameReserved"
      })
      expect(yield* Effect.flip(engine.arrive({ ...arrival(1, "rendezvous"), group: "nope" }))).toMatchObject({
        _tag: "UnknownGroup"
      })
      expect(yield* Effect.flip(engine.arrive(arrival(7, "rendezvous")))).toMatchObject({ _tag: "NotAMember", slot: 7 })
    }))
})
