/**
 * A member stopped but alive (SIGSTOP) keeps its reader slot on the coordinator's reply ring
 * attached. The others' calls and barriers must go on past the point where that ring would have
 * filled; the stopped member is dropped, and once continued it attaches again and re-joins; it
 * exits later without attaching again on its way out.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Queue } from "effect"
import { type Child, spawnFixture, uniqueRegion } from "../helpers/Processes.js"

/** The child's result line; bounded, so a stall fails the test instead of hanging it. */
const nextResult = <A>(child: Child, timeoutMs: number) =>
  Effect.gen(function*() {
    for (;;) {
      const message = yield* child.next<Record<string, unknown>>(timeoutMs)
      if ("error" in message) return yield* Effect.fail(new Error(String(message["error"])))
      if (message["result"] === true) return message as A
    }
  })

/** The child's next message carrying `key` (log lines between are skipped); bounded. */
const nextWith = <A>(child: Child, key: string, timeoutMs: number) =>
  Effect.gen(function*() {
    const skipped: Array<unknown> = []
    for (;;) {
      const message = yield* child.next<Record<string, unknown>>(timeoutMs).pipe(
        Effect.mapError((e) => new Error(`${e.message}; before that: ${JSON.stringify(skipped)}`))
      )
      if ("error" in message) return yield* Effect.fail(new Error(String(message["error"])))
      if (key in message) return message as A
      skipped.push(message)
    }
  })

describe("a stopped member and the reply ring", () => {
  it.scopedLive(
    "a SIGSTOPped member is dropped, its reply slot freed: the others' calls and barriers go on; continued, it re-joins",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("stall")
        const head = yield* spawnFixture("coord-stall", ["head", region])
        expect(yield* head.next(60_000)).toEqual({ ready: true })
        const stopper = yield* spawnFixture("coord-stall", ["stopper", region, "3"])
        // Runs before the fixture's own finalizer kills it: nothing is left stopped.
        yield* Effect.addFinalizer(() => Effect.sync(() => stopper.process.kill("SIGCONT")))
        // 20 × 50 member lists of ~250 bytes each: some 30 times the 8 KiB reply ring.
        const callers = yield* Effect.forEach([0, 1], () =>
          spawnFixture("coord-stall", ["caller", region, "3", "20", "50"]))
        const joined = yield* nextWith<{ joined: boolean; slot: number }>(stopper, "joined", 60_000)
        stopper.process.kill("SIGSTOP")
        for (const caller of callers) {
          const result = yield* nextResult<{ rounds: number; dropped: Array<number>; members: Array<number> }>(
            caller,
            60_000
          )
          expect(result.rounds).toBe(20)
          // Dropped while the first barrier waited for it, or before it opened.
          expect(result.members).not.toContain(joined.slot)
          expect(result.dropped.every((slot) =>
            slot === joined.slot
          )).toBe(true)
        }
        stopper.process.kill("SIGCONT")
        expect(yield* nextWith(stopper, "resumed", 60_000)).toMatchObject({ resumed: true })
        const resumed = yield* nextResult<{ rejoined: boolean; failures: Array<string> }>(stopper, 30_000)
        expect(resumed.rejoined).toBe(true)
        // Any call that failed meanwhile failed typed (its reply went to the freed slot).
        for (const tag of resumed.failures) expect(tag).toBe("CoordinatorUnavailable")
      }),
    240_000
  )

  it.scopedLive(
    "a member continued after its slot was freed keeps the reader it attaches again, its process-table heartbeat still stale",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("stall-frozen")
        const head = yield* spawnFixture("coord-stall", ["head", region])
        expect(yield* head.next(60_000)).toEqual({ ready: true })
        const frozen = yield* spawnFixture("coord-stall", ["frozen", region])
        yield* Effect.addFinalizer(() => Effect.sync(() => frozen.process.kill("SIGCONT")))
        const joined = yield* nextWith<{ slot: number; occurrence: number }>(frozen, "joined", 60_000)
        frozen.process.kill("SIGSTOP")
        // Freed once its reader's own line is stale too (1.5 s into the stop).
        const freed = `freed reply-ring reader slot ${joined.slot} `
        for (;;) {
          const line = yield* head.next<{ text?: string }>(60_000)
          if (line.text?.includes(freed) === true) break
        }
        frozen.process.kill("SIGCONT")
        const result = yield* nextResult<
          { before: number; reattached: number; after: number; failures: Array<string> }
        >(frozen, 60_000)
        expect(result.before).toBe(joined.occurrence)
        expect(result.reattached).not.toBe(result.before)
        // 3 s of calls, twice the stale bound: the new reader is never freed, and every call is answered.
        expect(result.after).toBe(result.reattached)
        expect(result.failures).toEqual([])
        // It exits: its scope closes with the reader it attached again still its until its reading
        // has stopped, so nothing is attached again on the way out (and its leave's reply is read).
        expect(yield* Deferred.await(frozen.exited).pipe(Effect.timeout("10 seconds"))).toEqual({
          code: 0,
          signal: null
        })
        const lines = Chunk.toReadonlyArray(yield* Queue.takeAll(frozen.messages)) as ReadonlyArray<{ text?: string }>
        const reattaches = [...lines.map((l) => l.text ?? ""), ...frozen.stderr().split("\n")]
          .filter((line) => line.includes("was reaped")).length
        expect(reattaches, `its reader attached again ${reattaches} times on its way out`).toBe(0)
      }),
    120_000
  )

  it.scopedLive(
    "a member dropped for a stale heartbeat while its reply reader stays attached learns it and joins again",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("stall-lapsed")
        const head = yield* spawnFixture("coord-stall", ["head", region])
        expect(yield* head.next(60_000)).toEqual({ ready: true })
        const lapsed = yield* spawnFixture("coord-stall", ["lapsed", region])
        const joined = yield* nextWith<{ slot: number }>(lapsed, "joined", 60_000)
        // Dropped for its stale heartbeat (1.5 s after it stopped), as the head logs it.
        const drop = `coordinator: slot ${joined.slot} left the membership: heartbeat stale`
        for (;;) {
          const line = yield* head.next<{ text?: string }>(60_000)
          if (line.text?.includes(drop) === true) break
        }
        lapsed.process.kill("SIGUSR2")
        yield* nextWith(lapsed, "dropped", 60_000)
        // Its reader was never freed (it kept reading), so no re-attach tells it: the coordinator's notice does.
        const result = yield* nextResult<{ rejoined: boolean; barrier: string }>(lapsed, 60_000)
        expect(result).toMatchObject({ rejoined: true, barrier: "released" })
      }),
    120_000
  )
})
