/**
 * `cxlog bench --type channel`, small: every transport's one-way latency and throughput measured
 * in one run, with the ratios over the references of that run, and the method said in the output.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCliWithin } from "../helpers/CliRoles.js"

interface ChannelBenchJson {
  readonly bench: string
  readonly method: string
  readonly samples: number
  readonly values: number
  readonly [figure: string]: unknown
}

describe("cxlog bench --type channel", () => {
  it.scopedLive(
    "measures the channel one way and in throughput next to process.send and a Unix socket, in one run",
    () =>
      Effect.gen(function*() {
        const run = yield* runCliWithin(
          ["bench", "--type", "channel", "--samples", "200", "--channel-values", "3200", "--json"],
          {},
          180_000
        )
        expect(run.code, run.stderr).toBe(0)
        const result = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as ChannelBenchJson
        expect(result).toMatchObject({ bench: "cxlog-channel", samples: 200, values: 3200 })
        expect(result.method).toContain("CLOCK_MONOTONIC")
        // The raw throughput figure names the calls it measured: the batch read, not a call per frame.
        expect(result.throughputApi).toBe(
          "RawPublisher.tryWriteAll (32 frames a call; writeAll of those that found no room) -> RawSubscription.consumeFrames"
        )
        const figure = (name: string) => result[name] as number
        for (
          const name of [
            "oneWayP50Us",
            "oneWayP99Us",
            "takeOneWayP50Us",
            "takeOneWayP99Us",
            "rawOneWayP50Us",
            "processSendP50Us",
            "unixSocketP50Us",
            "rawValuesPerSec",
            "rawBulkValuesPerSec",
            "typedValuesPerSec",
            "processSendBatchedBytesPerSec",
            "processSendBatchedValuesPerSec"
          ]
        ) expect(figure(name), name).toBeGreaterThan(0)
        expect(figure("oneWayP99Us")).toBeGreaterThanOrEqual(figure("oneWayP50Us"))
        expect(figure("ratio")).toBeCloseTo(figure("processSendP50Us") / figure("oneWayP50Us"), 2)
        expect(figure("takeRatio")).toBeCloseTo(figure("processSendP50Us") / figure("takeOneWayP50Us"), 2)
        expect(figure("throughputRatio")).toBeCloseTo(
          figure("rawValuesPerSec") / figure("processSendBatchedBytesPerSec"),
          2
        )
        expect(figure("rawBulkValuesPerSec")).toBeGreaterThan(0)
      }),
    200_000
  )
})
