/**
 * `cxlog head` refuses a session gap bound below the idle bound at start, as a configuration
 * mistake (exit 2) naming both values, before any region is made (a standby: before it waits).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

describe("cxlog head's session bounds", () => {
  it.scopedLive(
    "--session-gap-idle-ms below --session-idle-ms (flag or CXLOG_ variable, --standby too) is SessionGapIdleTooShort at start, exit 2, no region made",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("gapidle")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const flags = ["--session-idle-ms", "5000", "--session-gap-idle-ms", "1000"]
        for (
          const [args, extra] of [
            [["--topic", "t", ...flags], {}],
            [["--topic", "t"], { CXLOG_SESSION_IDLE_MS: "5000", CXLOG_SESSION_GAP_IDLE_MS: "1000" }],
            // A standby too, at start: its sequencer would meet the bound only at a takeover (it waits for the region first).
            [["--standby", ...flags], {}]
          ] as const
        ) {
          const { code, stdout, stderr } = yield* runCli(["head", ...args], { ...env, ...extra }).pipe(
            Effect.timeoutFail({
              duration: 20_000,
              onTimeout: () => new Error(`cxlog head ${args.join(" ")} did not end within 20 s`)
            })
          )
          expect(code, stdout + stderr).toBe(2)
          expect(stderr).toContain(
            "(--session-gap-idle-ms / CXLOG_SESSION_GAP_IDLE_MS) 1000 ms is below the session idle bound"
          )
          expect(stderr).toContain("(--session-idle-ms / CXLOG_SESSION_IDLE_MS) 5000 ms")
          expect(existsSync(`/dev/shm/${region}`)).toBe(false)
        }
      }),
    60_000
  )
})
