/**
 * `cxlog bench --type supervisor`, small: a supervised child serving by name, SIGKILLed twice,
 * each time answering again from its replacement; the times reported next to its first start.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCliWithin } from "../helpers/CliRoles.js"

interface SupervisorBenchJson {
  readonly bench: string
  readonly kills: number
  readonly backoffMs: number
  readonly restartServingP50Ms: number
  readonly restartServingP99Ms: number
  readonly respawnP50Ms: number
  readonly firstStartServingMs: number
}

describe("cxlog bench --type supervisor", () => {
  it.scopedLive(
    "measures a SIGKILLed child's replacement serving again, the supervisor's part and the first start in one run",
    () =>
      Effect.gen(function*() {
        const run = yield* runCliWithin(["bench", "--type", "supervisor", "--kills", "2", "--json"], {}, 150_000)
        expect(run.code, run.stderr).toBe(0)
        const result = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as SupervisorBenchJson
        expect(result).toMatchObject({ bench: "cxlog-supervisor", kills: 2, backoffMs: 10 })
        // A replacement serves only after it was spawned, and that only after the backoff.
        expect(result.respawnP50Ms).toBeGreaterThanOrEqual(result.backoffMs)
        expect(result.restartServingP50Ms).toBeGreaterThan(result.respawnP50Ms)
        expect(result.restartServingP99Ms).toBeGreaterThanOrEqual(result.restartServingP50Ms)
        expect(result.firstStartServingMs).toBeGreaterThan(0)
      }),
    180_000
  )
})
