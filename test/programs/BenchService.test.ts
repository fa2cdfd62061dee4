/**
 * `cxlog bench --type service`, small: a service call by name between two processes, an
 * @effect/rpc call over the rings, and a `process.send` round trip, measured in the same run, the
 * ratios between them as reported.
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
  readonly effectRpcP50Us: number
  readonly effectRpcP99Us: number
  readonly effectRpcRatio: number
}

describe("cxlog bench --type service", () => {
  it.scopedLive(
    "measures the call by name, the @effect/rpc call and the process.send reference in one run",
    () =>
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
        expect(result.effectRpcP50Us).toBeGreaterThan(0)
        expect(result.effectRpcP99Us).toBeGreaterThanOrEqual(result.effectRpcP50Us)
        expect(result.effectRpcRatio).toBeCloseTo(result.processSendP50Us / result.effectRpcP50Us, 2)
      }),
    150_000
  )
})
