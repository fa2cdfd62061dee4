/**
 * End to end: `cxlog run` as a user runs it (the bundled CLI, `dist/cxlog.mjs`), a head, 4 broker processes,
 * a publisher and an auditing subscriber — once plain, once with a broker SIGKILLed mid-run;
 * a run measured after a warm-up, and `cxlog bench --type publish`, which runs no subscriber and so reports no audit.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { cli, runCli } from "../helpers/RunJson.js"

const summaryOf = (stdout: string) =>
  JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<
    string,
    number | boolean | string | null | Record<string, number>
  >

describe("cxlog run and bench (bundled CLI, real processes)", () => {
  it.live(
    "64 MiB of 1 KiB messages, mode 5, ACK 1, 4 brokers: the audit passes and the region is removed",
    () =>
      Effect.gen(function*() {
        expect(existsSync(cli)).toBe(true)
        const { code, stdout, stderr } = yield* runCli(["run", "--bytes", "64MiB", "--json"])
        expect(code, stderr).toBe(0)
        const summary = summaryOf(stdout)
        expect(summary).toMatchObject({
          messages: 65536,
          received: 65536,
          lost: 0,
          notDelivered: 0,
          duplicated: 0,
          outOfOrder: 0,
          crcMismatches: 0,
          auditPassed: true,
          brokers: 4
        })
        expect(summary["throughputMBps"]).toBeGreaterThan(0)
        // Both clocks: to the last ACK, and to the subscriber's reading of the last message.
        expect(summary["publishMBps"]).toBe(summary["throughputMBps"])
        expect(summary["e2eMBps"]).toBeGreaterThan(0)
        expect(summary["ackLatencyP99Us"]).toBeGreaterThanOrEqual(summary["ackLatencyP50Us"] as number)
        // Every role did work while the messages flowed, and the total is the roles' sum (rounding aside).
        const cpu = summary["cpuSecondsPerGiB"] as Record<string, number>
        for (const role of ["head", "brokers", "publisher", "subscriber"]) expect(cpu[role]).toBeGreaterThan(0)
        expect(Math.abs(cpu["total"]! - (cpu["head"]! + cpu["brokers"]! + cpu["publisher"]! + cpu["subscriber"]!)))
          .toBeLessThan(0.05)
        expect(existsSync(`/dev/shm/${summary["region"]}`)).toBe(false)
      }),
    240_000
  )

  it.live(
    "a broker SIGKILLed mid-run: the publisher resends what it had in flight there, everything is acked, the audit passes",
    () =>
      Effect.gen(function*() {
        // Long enough that the publisher's progress (every 250 ms), which decides the kill, comes
        // while batches are in flight: 64 MiB was acknowledged within the first report on a fast run.
        const { code, stdout, stderr } = yield* runCli(["run", "--bytes", "1GiB", "--json", "--kill-broker", "1"])
        expect(code, stderr).toBe(0)
        const summary = summaryOf(stdout)
        expect(summary).toMatchObject({
          messages: 1048576,
          received: 1048576,
          lost: 0,
          notDelivered: 0,
          duplicated: 0,
          outOfOrder: 0,
          crcMismatches: 0,
          auditPassed: true,
          killedBroker: 1
        })
        // The kill landed while batches were in flight to that broker, and they were sent again.
        expect(summary["resends"]).toBeGreaterThan(0)
        expect(existsSync(`/dev/shm/${summary["region"]}`)).toBe(false)
      }),
    240_000
  )

  it.live(
    "--warmup: the warm-up's messages are published and audited first, and only those after it are measured",
    () =>
      Effect.gen(function*() {
        const { code, stdout, stderr } = yield* runCli([
          "run",
          "--bytes",
          "16MiB",
          "--warmup",
          "16MiB",
          "--broker-count",
          "1",
          "--json"
        ])
        expect(code, stderr).toBe(0)
        const summary = summaryOf(stdout)
        expect(summary).toMatchObject({
          messages: 16384,
          warmupMessages: 16384,
          received: 32768,
          lost: 0,
          duplicated: 0,
          outOfOrder: 0,
          auditPassed: true
        })
        expect(summary["warmupMs"]).toBeGreaterThan(0)
        // The publisher's figures count the measured 16 MiB only: 64 KiB batches, about 256 of them (512 with the warm-up's).
        expect(summary["batches"]).toBeGreaterThanOrEqual(256)
        expect(summary["batches"]).toBeLessThan(384)
        expect(existsSync(`/dev/shm/${summary["region"]}`)).toBe(false)
      }),
    240_000
  )

  it.live(
    "bench --type publish runs no subscriber: the JSON has no audit fields, and says where the send window ended",
    () =>
      Effect.gen(function*() {
        const { code, stdout, stderr } = yield* runCli([
          "bench",
          "--type",
          "publish",
          "--bytes",
          "16MiB",
          "--broker-count",
          "1",
          "--json"
        ])
        expect(code, stderr).toBe(0)
        const result = summaryOf(stdout)
        expect(result).toMatchObject({
          bench: "cxlog",
          type: "publish",
          messages: 16384,
          window: 256,
          adaptiveWindow: true
        })
        for (const field of ["auditPassed", "received", "lost", "notDelivered", "duplicated"]) {
          expect(result).not.toHaveProperty(field)
        }
        // Adaptive, as the publisher reported it: from 48 it may double once or twice in 256 batches of 64 KiB, never reaching the cap.
        expect(result["windowAtEnd"]).toBeGreaterThanOrEqual(2)
        expect(result["windowAtEnd"]).toBeLessThan(256)
        // Fixed: the cap.
        const fixed = yield* runCli([
          "bench",
          "--type",
          "publish",
          "--bytes",
          "4MiB",
          "--broker-count",
          "1",
          "--window",
          "24",
          "--fixed-window",
          "--json"
        ])
        expect(fixed.code, fixed.stderr).toBe(0)
        expect(summaryOf(fixed.stdout)).toMatchObject({ window: 24, adaptiveWindow: false, windowAtEnd: 24 })
      }),
    240_000
  )
})
