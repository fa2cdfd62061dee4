/**
 * `cxlog bench --type latency --discard old|new`: what a reader that never reads does to the
 * publishers' ACK latency. The same latency run twice, the second with a named consumer made at
 * the topic's start before the publisher starts and never read (a stalled subscriber): under
 * discard old it holds nothing and the publisher's ACK latency stays where it was; under discard
 * new (backpressure) the publishers wait for it once the topic's memory is full, until the consumer
 * hold cuts it off (CXLOG_CONSUMER_HOLD_MS). `ratio` = ACK p99 without the stalled reader ÷ with
 * it (1: untouched; the goal under discard old is ≥ 0.67, within 1.5×).
 */
import { Console, Effect } from "effect"
import { table } from "../report/Table.js"
import { run } from "../run/Run.js"
import type { RunSummary } from "../run/RunSummary.js"

const latencyFigures = (summary: RunSummary) => ({
  throughputMBps: summary.throughputMBps,
  ackLatencyP50Us: summary.ackLatencyP50Us,
  ackLatencyP99Us: summary.ackLatencyP99Us
})

/** What the bench says of its runs besides their shape. */
export interface StalledReaderOptions {
  readonly discard?: "old" | "new"
  readonly rateMBps: number
  readonly messageBytes: number
  readonly brokers: number
  readonly json: boolean
}

export const benchStalledReader = (options: StalledReaderOptions, shape: Parameters<typeof run>[0]) =>
  Effect.gen(function*() {
    const calm = yield* run(shape)
    const stalled = yield* run({ ...shape, stalledReader: true })
    const ratio = Math.round((calm.ackLatencyP99Us / Math.max(1, stalled.ackLatencyP99Us)) * 1000) / 1000
    const result = {
      bench: "cxlog",
      type: "latency",
      discard: options.discard ?? "new",
      offeredMBps: options.rateMBps,
      messages: stalled.messages,
      messageBytes: options.messageBytes,
      brokers: options.brokers,
      ...latencyFigures(stalled),
      withoutStalledReader: latencyFigures(calm),
      stalledP99Ratio: Math.round((stalled.ackLatencyP99Us / Math.max(1, calm.ackLatencyP99Us)) * 100) / 100,
      ratio
    }
    if (!options.json) {
      yield* Console.log(
        table(["cxlog bench latency, discard " + result.discard, "MB/s", "ACK p50 µs", "ACK p99 µs"], [
          [
            `with a stalled reader (a named consumer never read), ${options.rateMBps} MB/s offered`,
            stalled.throughputMBps,
            stalled.ackLatencyP50Us,
            stalled.ackLatencyP99Us
          ],
          ["the same run without it (reference)", calm.throughputMBps, calm.ackLatencyP50Us, calm.ackLatencyP99Us]
        ])
      )
    }
    yield* Console.log(JSON.stringify(result))
    return result
  })
