/**
 * `cxlog bench --type group`, small: members of a consumer group — local, or through a broker —
 * share stamped messages, each acked once, the audit and the group's own count reported beside the rate.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { goalsOf } from "../../src/programs/bench/groups/GroupBench.js"
import { runCliWithin } from "../helpers/CliRoles.js"

interface GroupBenchJson {
  readonly bench: string
  readonly local: boolean
  readonly messages: number
  readonly members: number
  readonly throughputMsgsPerSec: number
  readonly auditPassed: boolean
  readonly lost: number
  readonly duplicates: number
  readonly runsMsgsPerSec: ReadonlyArray<number>
  readonly systemSays: ReadonlyArray<string>
}

const lastJson = <A>(stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!) as A

describe("cxlog bench --type group", () => {
  it("reports the goals of its kind of run: local members against Redis and JetStream, members through a broker against Redis", () => {
    expect(goalsOf(false, ["redis", "nats"])).toEqual({ redis: 10, nats: 20 })
    expect(goalsOf(true, ["redis", "nats"])).toEqual({ redis: 2 })
    expect(goalsOf(true, [])).toEqual({})
  })

  it.scopedLive(
    "local members ack every message once: the audit passes and the group says nothing is pending",
    () =>
      Effect.gen(function*() {
        const run = yield* runCliWithin(
          ["bench", "--type", "group", "--members", "2", "--local", "--messages", "2000", "--peers", "none", "--json"],
          {},
          150_000
        )
        expect(run.code, run.stderr).toBe(0)
        const result = lastJson<GroupBenchJson>(run.stdout)
        expect(result).toMatchObject({ bench: "cxlog-group", local: true, messages: 2000, members: 2 })
        expect(result.auditPassed).toBe(true)
        expect(result.lost).toBe(0)
        expect(result.duplicates).toBe(0)
        expect(result.throughputMsgsPerSec).toBeGreaterThan(0)
        for (const said of result.systemSays) expect(said).toContain("frontier 2000 of 2000, pending 0, acked 2000")
      }),
    180_000
  )

  it.scopedLive(
    "members through a broker ack every message once: what each member acked is what it was given",
    () =>
      Effect.gen(function*() {
        const run = yield* runCliWithin(
          ["bench", "--type", "group", "--members", "2", "--messages", "2000", "--peers", "none", "--json"],
          {},
          150_000
        )
        expect(run.code, run.stderr).toBe(0)
        const result = lastJson<GroupBenchJson>(run.stdout)
        expect(result).toMatchObject({ bench: "cxlog-group", local: false, messages: 2000, members: 2 })
        expect(result.lost).toBe(0)
        expect(result.duplicates).toBe(0)
        expect(result.auditPassed).toBe(true)
        for (const said of result.systemSays) expect(said).toContain("frontier 2000 of 2000, pending 0, acked 2000")
      }),
    180_000
  )
})
