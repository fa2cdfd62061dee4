/**
 * `cxlog run --remote-subscribers 3` (the bundled CLI, real processes): three subscribers read
 * the topic over TCP from the brokers, as the local user, and each audits the whole total
 * order — every message once, in order, intact — next to the local subscriber; `cxlog bench`
 * with remote subscribers also runs without them and reports what they cost the publishers.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { cli, runCli } from "../helpers/RunJson.js"

describe("cxlog run --remote-subscribers", () => {
  it.live(
    "16 MiB, 2 brokers, 3 remote subscribers: each one's audit passes with every message, once, in order",
    () =>
      Effect.gen(function*() {
        expect(existsSync(cli)).toBe(true)
        const { code, stdout, stderr } = yield* runCli([
          "run",
          "--bytes",
          "16MiB",
          "--broker-count",
          "2",
          "--remote-subscribers",
          "3",
          "--json"
        ])
        const summary = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
          messages: number
          region: string
          auditPassed: boolean
          remoteSubscriberMBps: number
          remoteSubscribers: Array<Record<string, number | boolean>>
        }
        expect(summary.messages).toBe(16384)
        expect(summary.remoteSubscribers).toHaveLength(3)
        for (const remote of summary.remoteSubscribers) {
          expect(remote).toMatchObject({
            expected: 16384,
            received: 16384,
            lost: 0,
            notDelivered: 0,
            duplicated: 0,
            outOfOrder: 0,
            crcMismatches: 0,
            malformed: 0,
            passed: true
          })
        }
        expect(summary.auditPassed).toBe(true)
        expect(summary.remoteSubscriberMBps).toBe(
          Math.min(...summary.remoteSubscribers.map((r) => r["mBps"] as number))
        )
        expect(code, stderr).toBe(0)
        expect(existsSync(`/dev/shm/${summary.region}`)).toBe(false)
      }),
    240_000
  )

  it.live(
    "bench: the same run without remote subscribers comes first, and the ratio of the two publish rates is reported",
    () =>
      Effect.gen(function*() {
        const { code, stdout, stderr } = yield* runCli([
          "bench",
          "--type",
          "e2e",
          "--bytes",
          "8MiB",
          "--broker-count",
          "2",
          "--remote-subscribers",
          "1",
          "--json"
        ])
        expect(code, stderr).toBe(0)
        const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as Record<string, number | boolean>
        expect(result).toMatchObject({ remoteSubscribers: 1, auditPassed: true })
        const without = result["publishMBpsWithoutRemote"] as number
        expect(without).toBeGreaterThan(0)
        expect(result["remotePublishRatio"]).toBe(
          Math.round(((result["throughputMBps"] as number) / without) * 100) / 100
        )
        // The remote subscribers' own CPU is measured with the roles'; the run without them reports none, and the brokers' CPU for comparison.
        const cpu = result["cpuSecondsPerGiB"] as unknown as Record<string, number>
        const cpuWithout = result["cpuSecondsPerGiBWithoutRemote"] as unknown as Record<string, number>
        expect(cpu["remoteSubscribers"]).toBeGreaterThan(0)
        expect(cpuWithout["remoteSubscribers"]).toBe(0)
        expect(cpuWithout["brokers"]).toBeGreaterThan(0)
      }),
    240_000
  )
})
