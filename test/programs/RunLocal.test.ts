/**
 * `cxlog run --local`: the run's publisher is local (it appends into the region itself through
 * no broker, in a broker slot of its own), its subscriber audits the total order as for a TCP
 * publisher, and the brokers carry nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCli } from "../helpers/RunJson.js"

describe("cxlog run --local (bundled CLI)", () => {
  it.scopedLive("a local publisher's run: every message read back once, in order, audited; no batch through a broker", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* runCli(["run", "--local", "--bytes", "16MiB", "--broker-count", "2", "--json"])
      expect(code, stderr).toBe(0)
      const summary = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
        local: boolean
        messages: number
        auditPassed: boolean
        cpuSecondsPerGiB: { brokers: number; publisher: number }
      }
      expect(summary).toMatchObject({ local: true, messages: 16 * 1024, auditPassed: true })
      // The brokers only stand by: their CPU is their start-up's, not the load's.
      expect(summary.cpuSecondsPerGiB.brokers).toBeLessThan(summary.cpuSecondsPerGiB.publisher)
    }), 120_000)
})
