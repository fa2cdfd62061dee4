/**
 * Through the CLI: a remote subscriber asking a broker given the head's data directory for
 * offset 0 of a replication factor 2 topic whose region recycled it gets every message once, in
 * order (from the copy on disk, then the region), and so does a local reader given the
 * directory by CXLOG_DATA_DIR; a broker without the directory refuses with
 * out-of-range as before. A topic's disk retention, given in its --topic spec or by the
 * --disk-retention flags, is kept in the region (`cxlog topics --json`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, runCli, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

const MESSAGES = 20_000

describe("reading recycled offsets from disk through a broker", () => {
  it.scopedLive(
    "a remote subscriber from offset 0 after the region recycled it gets every message once, in order",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-diskreads-")
        const region = yield* uniqueRegion("diskreads")
        const env = { ...smallRegionEnvFor(2), CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0", "--data-dir", dir], env)
        const port = (yield* broker.event("listening"))["port"] as number
        // 20 000 × 128 bytes: the broker's 1 MiB Blog wraps, so the region keeps only the tail.
        const published = yield* runCli(
          [
            "publish",
            "--brokers",
            `127.0.0.1:${port}`,
            "--topic",
            "d",
            "--count",
            `${MESSAGES}`,
            "--message-bytes",
            "128",
            "--ack",
            "2"
          ],
          env
        )
        expect(published.code, published.stderr).toBe(0)
        const listed = yield* runCli(["topics", "--json", "--topic", "d"], env)
        expect(listed.code, listed.stderr).toBe(0)
        const held = (JSON.parse(listed.stdout) as { topics: ReadonlyArray<{ earliest: number; end: number }> })
          .topics[0]!
        expect(held.end).toBe(MESSAGES)
        expect(held.earliest).toBeGreaterThan(0)

        const read = yield* runCli(
          [
            "subscribe",
            "--brokers",
            `127.0.0.1:${port}`,
            "--topic",
            "d",
            "--from",
            "0",
            "--limit",
            `${MESSAGES}`,
            "--format",
            "json",
            "--idle-timeout-ms",
            "20000"
          ],
          env
        )
        expect(read.code, read.stderr).toBe(0)
        const lines = read.stdout.trim().split("\n").map((l) => JSON.parse(l) as { offset: number })
        expect(lines.length).toBe(MESSAGES)
        expect(lines.findIndex((l, i) => l.offset !== i)).toBe(-1)

        // A local reader (it maps the region) given the directory by CXLOG_DATA_DIR reads the same.
        const local = yield* runCli([
          "subscribe",
          "--topic",
          "d",
          "--from",
          "0",
          "--limit",
          `${MESSAGES}`,
          "--format",
          "json"
        ], { ...env, CXLOG_DATA_DIR: dir })
        expect(local.code, local.stderr).toBe(0)
        expect(local.stdout).toBe(read.stdout)

        // A broker that does not know the data directory serves only what the region holds.
        const plain = yield* forkCli(["broker", "--broker-id", "1", "--port", "0"], env)
        const plainPort = (yield* plain.event("listening"))["port"] as number
        const refused = yield* runCli([
          "subscribe",
          "--brokers",
          `127.0.0.1:${plainPort}`,
          "--topic",
          "d",
          "--from",
          "0",
          "--limit",
          "1"
        ], env)
        expect(refused.code).toBe(1)
        expect(refused.stderr).toContain(`offset 0 is outside the retained window [${held.earliest}, ${MESSAGES})`)

        // Disk retention per topic: in the spec, or from the flags for specs without one; refused for a topic without a disk copy.
        expect((yield* runCli(["create-topic", "--topic", "r:5:2:2:1GiB:7d"], env)).code).toBe(0)
        expect((yield* runCli(["create-topic", "--topic", "s:5:2:2", "--disk-retention-bytes", "2MiB"], env)).code)
          .toBe(0)
        const memoryOnly = yield* runCli(["create-topic", "--topic", "m:5:1:1:1MiB"], env)
        expect(memoryOnly.code).toBe(2)
        expect(memoryOnly.stderr).toContain("a disk retention needs replication factor 2")
        const specs = yield* runCli(["topics", "--json"], env)
        const retention = new Map(
          (JSON.parse(specs.stdout) as { topics: ReadonlyArray<{ name: string; diskRetention?: unknown }> }).topics.map(
            (t) => [t.name, t.diskRetention]
          )
        )
        expect(retention.get("r")).toEqual({ maxBytes: 1 << 30, maxAgeMs: 7 * 86_400_000 })
        expect(retention.get("s")).toEqual({ maxBytes: 2 << 20 })
        expect(retention.get("d")).toBeUndefined()
      }),
    120_000
  )
})
