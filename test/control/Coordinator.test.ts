import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const stress = process.env["CXLOG_STRESS"] !== undefined

interface VerifierResult {
  readonly iterations: number
  readonly missingIterations: number
  readonly missingDetail: ReadonlyArray<{ iteration: number; seen: number }>
  readonly total: number
  readonly outOfOrder: number
}

const nextResult = <A>(child: { next: <B>(timeoutMs?: number) => Effect.Effect<B, Error> }, timeoutMs = 120_000) =>
  Effect.gen(function*() {
    for (;;) {
      const message = yield* child.next<Record<string, unknown>>(timeoutMs)
      if ("error" in message) return yield* Effect.fail(new Error(String(message["error"])))
      if (message["result"] === true) return message as A
    }
  })

/** The backlog scenario: two workers burst markers, a slow verifier reads them, all three enter a barrier per iteration. */
const backlog = (
  mode: "delivery-fence" | "processing-fence" | "rendezvous",
  iterations: number,
  verifierInHead: boolean
) =>
  Effect.gen(function*() {
    const region = yield* uniqueRegion("backlog")
    const head = yield* spawnFixture(
      "coord-node",
      verifierInHead ? ["head", region, "verifier", `${iterations}`, mode] : ["head", region]
    )
    expect(yield* head.next()).toEqual({ ready: true })
    const verifier = verifierInHead
      ? head
      : yield* spawnFixture("coord-node", ["verifier", region, `${iterations}`, mode])
    const workers = yield* Effect.forEach([0, 1], (ring) =>
      spawnFixture("coord-node", ["worker", region, `${ring}`, `${iterations}`, mode]))
    const result = yield* nextResult<VerifierResult>(verifier)
    for (const worker of workers) {
      expect(yield* worker.next()).toEqual({ done: true, sent: iterations * 8 })
    }
    return result
  })

describe("Coordinator barriers across processes", () => {
  const full = 64
  it.scopedLive(
    `delivery fence, verifier as its own process: every marker delivered at every release (${full} iterations)`,
    () =>
      Effect.gen(function*() {
        const result = yield* backlog("delivery-fence", full, false)
        expect(result).toMatchObject({ iterations: full, missingIterations: 0, total: full * 16, outOfOrder: 0 })
      }),
    180_000
  )

  it.scopedLive("delivery fence, verifier inside the head process", () =>
    Effect.gen(function*() {
      const iterations = stress ? full : 16
      const result = yield* backlog("delivery-fence", iterations, true)
      expect(result).toMatchObject({ iterations, missingIterations: 0, total: iterations * 16, outOfOrder: 0 })
    }), 180_000)

  it.scopedLive("processing fence: every handler run completed at every release", () =>
    Effect.gen(function*() {
      const iterations = stress ? full : 16
      const result = yield* backlog("processing-fence", iterations, false)
      expect(result).toMatchObject({ iterations, missingIterations: 0, total: iterations * 16, outOfOrder: 0 })
    }), 180_000)

  it.scopedLive(
    "negative control: rendezvous finds markers missing (the scenario can catch the bug)",
    () =>
      Effect.gen(function*() {
        const iterations = stress ? full : 16
        const result = yield* backlog("rendezvous", iterations, false)
        expect(result.missingIterations).toBeGreaterThan(0)
        expect(result).toMatchObject({ total: iterations * 16, outOfOrder: 0 })
      }),
    180_000
  )

  it.scopedLive(
    "a participant SIGKILLed mid-barrier is dropped and the others are released",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("kill")
        // Debug barriers: the head logs each arrival's drain target, so the test sees the barrier in flight.
        const head = yield* spawnFixture("coord-node", ["head", region], { CXLOG_DEBUG_BARRIERS: "true" })
        expect(yield* head.next()).toEqual({ ready: true })
        const sleeper = yield* spawnFixture("coord-node", ["sleeper", region, "3"])
        const survivors = yield* Effect.forEach([0, 1], () => spawnFixture("coord-node", ["survivor", region, "3"]))
        const joined = yield* sleeper.next<{ joined: boolean; slot: number }>()
        expect(joined.joined).toBe(true)
        // Mid-barrier: both survivors have arrived, and wait for the sleeper.
        for (let arrived = 0; arrived < 2;) {
          const line = yield* head.next<{ text?: unknown }>(30_000)
          if (typeof line.text === "string" && /\[barrier\] name=stuck participant=/.test(line.text)) arrived++
        }
        sleeper.process.kill("SIGKILL")
        for (const survivor of survivors) {
          const result = yield* nextResult<
            { outcome: { released?: { dropped: Array<{ participant: number; reason: string }> } } }
          >(survivor, 30_000)
          expect(result.outcome.released?.dropped.map((d) => d.participant)).toEqual([joined.slot])
        }
      }),
    60_000
  )

  it.scopedLive("1,000 consecutive rounds of one barrier name with 4 participants", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("rounds")
      const head = yield* spawnFixture("coord-node", ["head", region])
      expect(yield* head.next()).toEqual({ ready: true })
      const participants = yield* Effect.forEach([0, 1, 2, 3], () =>
        spawnFixture("coord-node", ["rounds", region, "1000", "4"]))
      for (const p of participants) {
        expect(yield* nextResult(p)).toMatchObject({ rounds: 1000, lastRound: 1000 })
      }
    }), 120_000)

  it.scopedLive(
    "a schema-invalid BarrierArrive gets a typed error reply and the coordinator keeps serving",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("invalid")
        const head = yield* spawnFixture("coord-node", ["head", region])
        expect(yield* head.next()).toEqual({ ready: true })
        const raw = yield* spawnFixture("coord-node", ["raw", region])
        // The head itself is the one member; the bad request did not stop it from answering.
        expect(yield* nextResult(raw)).toMatchObject({ badTag: "RpcInvalidPayload", members: 1 })
      }),
    60_000
  )
})
