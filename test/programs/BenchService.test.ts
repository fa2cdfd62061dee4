/**
 * `cxlog bench --type service`, small: a service call by name between two processes and a
 * `process.send` round trip, measured in the same run, the ratio between them as reported.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCliWithin } from "../helpers/CliRoles.js"

interface ServiceBenchJson {
  readonly bench: string
  readonly messageBytes: number
  readonly samples: number
  readonly rpcP50Us: number
  readonly rpcP99Us: number
  readonly processSendP50Us: number
  readonly processSendP99Us: number
  readonly rpcRatio: number
}

describe("cxlog bench --type service", () => {
  it.scopedLive("measures the call by name and the process.send reference in one run", () =>
    Effect.gen(function*() {
      const run = yield* runCliWithin(
        ["bench", "--type", "service", "--samples", "300", "--message-bytes", "64", "--json"],
        {},
        120_000
      )
      expect(run.code, run.stderr).toBe(0)
      const result = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as ServiceBenchJson
      expect(result).toMatchObject({ bench: "cxlog-service", messageBytes: 64, samples: 300 })
      expect(result.rpcP50Us).toBeGreaterThan(0)
      expect(result.rpcP99Us).toBeGreaterThanOrEqual(result.rpcP50Us)
      expect(result.processSendP50Us).toBeGreaterThan(0)
      expect(result.rpcRatio).toBeCloseTo(result.processSendP50Us / result.rpcP50Us, 2)
    }), 150_000)
})
