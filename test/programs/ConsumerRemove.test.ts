/**
 * `cxlog consumers --remove NAME`, as processes: a consumer the topic has is deleted (exit 0);
 * a name it does not have (a mistyped one) is a failure a script can see, exit 1, one line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

describe("cxlog consumers --remove", () => {
  it.scopedLive(
    "deletes a consumer the topic has; a name it does not have fails, exit 1",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("consumer-remove")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "events:5:1"], env)
        yield* head.event("ready")
        const cli = (args: ReadonlyArray<string>) => runCli(["consumers", "--topic", "events", ...args], env)
        // A consumer made at the start of the topic, with no member: what a reset to an offset creates.
        const created = yield* cli(["reset", "billing", "--to", "earliest"])
        expect(created.code, created.stderr).toBe(0)

        const mistyped = yield* cli(["--remove", "biling"])
        expect(mistyped.code).toBe(1)
        expect(mistyped.stdout).toBe("")
        expect(mistyped.stderr.trimEnd().split("\n")).toEqual([
          "cxlog consumers: topic events has no consumer biling (cxlog consumers --topic events lists its consumers)"
        ])
        const removed = yield* cli(["--remove", "billing"])
        expect(removed.code, removed.stderr).toBe(0)
        expect(removed.stdout).toBe("deleted consumer billing of topic events\n")
        expect(JSON.parse((yield* cli(["--json"])).stdout)).toEqual([])
        expect((yield* cli(["--remove", "billing"])).code).toBe(1)
      }),
    60_000
  )
})
