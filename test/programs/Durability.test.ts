/**
 * The durable tier through the bundled CLI (real processes): `cxlog run --ack 2` creates its
 * topic with replication factor 2 and gives the head a fresh data directory; every message is
 * acknowledged at level 2 (after the head's fdatasyncs, which covered every payload byte) and
 * the audit passes. A head given an RF 2 topic without a data directory refuses to start.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { cli, runCli } from "../helpers/RunJson.js"
import { uniqueRegion } from "../helpers/Processes.js"

describe("cxlog run --ack 2", () => {
  it.live("16 MiB, 2 brokers: acknowledged at level 2 after fdatasyncs that covered every byte; the audit passes", () =>
    Effect.gen(function*() {
      expect(existsSync(cli)).toBe(true)
      const { code, stdout, stderr } = yield* runCli(["run", "--ack", "2", "--bytes", "16MiB", "--broker-count", "2", "--json"])
      expect(code, stderr).toBe(0)
      const summary = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
        messages: number
        bytes: number
        ackLevel: number
        auditPassed: boolean
        region: string
        durable: { fsyncs: number; bytesPerFsync: number } | null
      }
      expect(summary).toMatchObject({ messages: 16384, ackLevel: 2, auditPassed: true })
      expect(summary.durable).not.toBeNull()
      expect(summary.durable!.fsyncs).toBeGreaterThan(0)
      // Each batch's record is its payload (8 bytes of framing per message) plus a 64-byte header: all of it was synced.
      expect(summary.durable!.fsyncs * summary.durable!.bytesPerFsync).toBeGreaterThanOrEqual(summary.bytes)
      expect(existsSync(`/dev/shm/${summary.region}`)).toBe(false)
    }), 240_000)

  it.scopedLive("a head given a topic with replication factor 2 and no data directory refuses to start, naming the flag", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("nodatadir")
      const { code, stderr } = yield* runCli(["head", "--region", region, "--topic", "d:5:2:2"])
      expect(code).not.toBe(0)
      expect(stderr).toContain("replication factor 2")
      expect(stderr).toContain("--data-dir")
    }), 60_000)
})
