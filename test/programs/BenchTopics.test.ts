/**
 * `cxlog bench --type topics`, small: the topics it creates at runtime are written, audited in
 * place, deleted with their memory back, and created again where they were; the region stays
 * within 1 GiB; the many-topics throughput is measured next to the one topic's in the same run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync } from "node:fs"
import { runCliWithin } from "../helpers/CliRoles.js"

interface TopicsBenchJson {
  readonly bench: string
  readonly client: "local" | "tcp"
  readonly regionBytes: number
  readonly regionWithinLimit: boolean
  readonly topicsCreated: number
  readonly createP50Us: number
  readonly deleteP50Us: number
  readonly bytesPerTopic: number
  readonly bytesPerTopicWritten: number
  readonly auditPassed: boolean
  readonly auditedMessages: number
  readonly memoryBackAfterDelete: boolean
  readonly recreatedAfterDelete: boolean
  readonly oneTopicMBps: number
  readonly manyTopicsMBps: number
  readonly manyTopicsRatio: number
  readonly cpuSecondsPerGiB: Record<"one" | "many", Record<"publisher" | "head" | "brokers", number>>
}

/** Runs the bench with `flags` after its own (small sizes), expecting it to succeed: its JSON. */
const benchTopics = (topics: number, ratioTopics: number, ...flags: Array<string>) =>
  Effect.map(
    runCliWithin(
      [
        "bench",
        "--type",
        "topics",
        "--topics",
        `${topics}`,
        "--ratio-topics",
        `${ratioTopics}`,
        "--bytes",
        "1MiB",
        ...flags,
        "--json"
      ],
      {},
      120_000
    ),
    (run) => {
      expect(run.code, run.stderr).toBe(0)
      return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as TopicsBenchJson
    }
  )

describe("cxlog bench --type topics", () => {
  it.scopedLive(
    "creates, writes, audits, deletes and recreates its topics; memory comes back; both throughputs are measured",
    () =>
      Effect.gen(function*() {
        const benchRegions = () => readdirSync("/dev/shm").filter((name) => /^cxlog-run-\d+-topics$/.test(name))
        const before = benchRegions()
        const result = yield* benchTopics(60, 12)
        expect(result).toMatchObject({
          bench: "topics",
          client: "tcp",
          regionWithinLimit: true,
          topicsCreated: 60,
          auditPassed: true,
          auditedMessages: 240,
          memoryBackAfterDelete: true,
          recreatedAfterDelete: true
        })
        expect(result.regionBytes).toBeLessThanOrEqual(1 << 30)
        // Lanes are taken when first written: a topic costs its records until then, its lane's 64 KiB after.
        expect(result.bytesPerTopic).toBeLessThan(result.bytesPerTopicWritten)
        expect(result.bytesPerTopicWritten).toBeGreaterThanOrEqual(64 << 10)
        expect(result.createP50Us).toBeGreaterThan(0)
        expect(result.deleteP50Us).toBeGreaterThan(0)
        expect(result.oneTopicMBps).toBeGreaterThan(0)
        expect(result.manyTopicsRatio).toBeCloseTo(result.manyTopicsMBps / result.oneTopicMBps, 6)
        // Each phase's CPU per role: the publisher's own (µs precise); the head's and broker's from /proc, in 10 ms
        // ticks, which a phase this small may not reach.
        for (const phase of ["one", "many"] as const) {
          const cpu = result.cpuSecondsPerGiB[phase]
          expect(cpu.publisher).toBeGreaterThan(0)
          for (const role of [cpu.head, cpu.brokers]) expect(Number.isFinite(role) && role >= 0).toBe(true)
        }
        // Its region is gone with it.
        expect(benchRegions()).toEqual(before)
      }),
    150_000
  )

  it.scopedLive(
    "--local: a local publisher in the bench's process writes the topics, every one audited, and both throughputs are measured",
    () =>
      Effect.gen(function*() {
        const result = yield* benchTopics(20, 8, "--local")
        expect(result).toMatchObject({
          bench: "topics",
          client: "local",
          topicsCreated: 20,
          auditPassed: true,
          auditedMessages: 80,
          memoryBackAfterDelete: true,
          recreatedAfterDelete: true
        })
        expect(result.oneTopicMBps).toBeGreaterThan(0)
        expect(result.manyTopicsMBps).toBeGreaterThan(0)
      }),
    150_000
  )
})
