/**
 * `cxlog topics` describes a running cluster's topics from the region, read in place (four tests
 * over one cluster, each a dozen CLI runs at most: as one test, its 34 runs one after another
 * outlasted the 60 s bound on a slow, busy machine): each
 * topic's order mode, ACK level and replication factor as created, the message offsets it
 * holds once messages were published, and its sessions; a topic it does not have is one line.
 * Trims and purges from the command line; and the head keeps each topic's retention in the region
 * by itself (no trim asked for), as `describe` says it, `--discard` included.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { sharedLayer } from "../helpers/SharedLayer.js"

/** A head with three topics, a broker, and 25 messages of ev published through it: what the first tests read. */
class ListedCluster extends Context.Tag("test/ListedCluster")<ListedCluster, {
  readonly region: string
  readonly env: Record<string, string>
  readonly port: number
}>() {}

const listedCluster = Layer.scoped(
  ListedCluster,
  Effect.gen(function*() {
    const region = yield* uniqueRegion("topics")
    const env = { ...smallRegionEnv, CXLOG_REGION: region }
    const head = yield* forkCli(["head", "--topic", "ev:5:1", "--topic", "au:2:0:1", "--topic", "a2:5:2"], env)
    yield* head.event("ready")
    const broker = yield* forkCli(["broker", "--port", "0"], env)
    const port = (yield* broker.event("listening"))["port"] as number
    const published = yield* runCli([
      "publish",
      "--brokers",
      `127.0.0.1:${port}`,
      "--topic",
      "ev",
      "--count",
      "25",
      "--message-bytes",
      "64"
    ], env)
    expect(published.code, published.stderr).toBe(0)
    return { region, env, port }
  })
)

// Each test's CLI runs one after another (some 10 processes a test), so no test runs near its bound on a slow machine.
sharedLayer(listedCluster, { timeout: 60_000 })("cxlog topics beside a running cluster", (it) => {
  it.effect("lists each topic's spec, the offsets it holds and its sessions", () =>
    Effect.gen(function*() {
      const { region } = yield* ListedCluster
      const listed = yield* runCli(["topics", "--json"], { CXLOG_REGION: region })
      expect(listed.code, listed.stderr).toBe(0)
      const report = JSON.parse(listed.stdout) as {
        region: string
        heap: { heapBytes: number; freeBytes: number; largestFreeBytes: number }
        topics: ReadonlyArray<Record<string, unknown>>
      }
      expect(report.region).toBe(region)
      // The heap holds each topic's records, and a lane for each writer that wrote it: the broker's lane of ev alone.
      const memory = Number(smallRegionEnv["CXLOG_TOPIC_MEMORY"])
      const used = report.topics.reduce((sum, t) => sum + (t["usedBytes"] as number), 0)
      expect(report.heap.freeBytes).toBe(report.heap.heapBytes - used)
      expect(report.topics).toHaveLength(3)
      expect((report.topics[0]!["usedBytes"] as number) - (report.topics[1]!["usedBytes"] as number)).toBe(memory)
      expect(report.topics[0]!["blogBytesPerLane"]).toBeGreaterThanOrEqual(1 << 20)
      expect(report.topics[0]).toMatchObject({
        name: "ev",
        order: 5,
        ackLevel: 1,
        replicationFactor: 1,
        memoryBytes: memory,
        lanes: 1,
        earliest: 0,
        end: 25,
        subscribers: []
      })
      expect(report.topics[0]!["orderedBatches"]).toBeGreaterThanOrEqual(1)
      // The publisher has closed: its session was released.
      expect(report.topics[0]!["sessions"]).toBe(0)
      expect(report.topics[1]).toMatchObject({
        name: "au",
        order: 2,
        ackLevel: 0,
        replicationFactor: 1,
        earliest: 0,
        end: 0,
        orderedBatches: 0,
        lanes: 0
      })

      const human = yield* runCli(["topics"], { CXLOG_REGION: region })
      expect(human.code).toBe(0)
      const mib = `${(memory / 2 ** 20).toFixed(memory % 2 ** 20 === 0 ? 0 : 1)} MiB`
      expect(human.stdout).toMatch(
        new RegExp(`^ev +5 \\(\\+FIFO session\\) +1 \\(ordered\\) +1 +${mib}, 1 lane +0\\.\\.24 `, "m")
      )
      expect(human.stdout).toMatch(new RegExp(`^au +2 \\(total\\) +0 \\(none\\) +1 +${mib}, 0 lanes +none `, "m"))
      // ACK 2 is "rf copies": at rf 1 the ordered one, which the table must not call replicated.
      expect(human.stdout).toMatch(
        new RegExp(`^a2 +5 \\(\\+FIFO session\\) +2 \\(as 1: rf 1, no copy on disk\\) +1 +${mib}, 0 lanes `, "m")
      )
      expect(human.stdout).toMatch(/\nmemory: [\d.]+ MiB of the region's 2048 MiB heap free/)
    }))

  it.effect("describes a topic, and trims and purges it from the command line, its offsets going on", () =>
    Effect.gen(function*() {
      const { env, region } = yield* ListedCluster
      // One topic, everything about it; a topic created here, its spec from the name and the flags.
      const described = yield* runCli(["topics", "describe", "ev"], { CXLOG_REGION: region })
      expect(described.code, described.stderr).toBe(0)
      expect(described.stdout).toMatch(
        /^topic ev \(id \d+, generation \d+\): order 5 \(\+FIFO session\), ack 1 \(ordered\), rf 1$/m
      )
      expect(described.stdout).toMatch(/^offsets held: 0\.\.24 \(25 messages\), \d+ batch(es)? ordered$/m)
      expect(described.stdout).toMatch(/^sessions: 0 of \d+$/m)
      // Trims from the command line, each saying what the topic holds after: all but the last N, before an
      // offset, before a time (an age: nothing of ev is a day old, so nothing goes), then a purge; offsets go on.
      for (
        const [args, says] of [
          [["trim", "ev", "--keep", "20"], "trimmed topic ev: it holds offsets 5..24; the next message is offset 25"],
          [["trim", "ev", "--before", "8"], "trimmed topic ev: it holds offsets 8..24; the next message is offset 25"],
          [
            ["trim", "ev", "--before-time", "1d"],
            "trimmed topic ev: it holds offsets 8..24; the next message is offset 25"
          ],
          [["purge", "ev"], "purged topic ev: it holds no message; the next message is offset 25"]
        ] as const
      ) {
        const trimmed = yield* runCli(["topics", ...args], env)
        expect(trimmed.code, trimmed.stderr).toBe(0)
        expect(trimmed.stdout.trim()).toBe(says)
      }
    }))

  it.effect("creates topics from a name and flags; a name taken is refused, or left with --if-not-exists", () =>
    Effect.gen(function*() {
      const { env } = yield* ListedCluster
      const created = yield* runCli(["topics", "create", "made:2", "--ack", "0", "--memory", "64KiB"], env)
      expect(created.code, created.stderr).toBe(0)
      // Under a MiB, memory is said in KiB (not 0.1 MiB).
      expect((yield* runCli(["topics", "describe", "made"], env)).stdout).toMatch(/^memory: 64 KiB for /m)
      const made = JSON.parse((yield* runCli(["topics", "describe", "made", "--json"], env)).stdout) as Record<
        string,
        unknown
      >
      expect(made).toMatchObject({ name: "made", order: 2, ackLevel: 0, replicationFactor: 1, end: 0 })
      // A name taken is TopicExists (exit 1), and stops a create of several there; with --if-not-exists it
      // is left as it is (not compared with the spec) and the rest are made.
      const again = yield* runCli(["topics", "create", "made"], env)
      expect(again.code).toBe(1)
      expect(again.stderr).toContain(`topic "made" already exists`)
      const several = ["create-topic", "--topic", "before.made", "--topic", "made", "--topic", "after.made"]
      expect((yield* runCli(several, env)).code).toBe(1)
      expect((yield* runCli(["topics", "describe", "after.made"], env)).code).toBe(1)
      const idempotent = yield* runCli([...several, "--if-not-exists"], env)
      expect(idempotent.code, idempotent.stderr).toBe(0)
      expect(idempotent.stdout).toMatch(
        /^topic before\.made exists already: left as it is \(--if-not-exists\)\ntopic made exists already: left as it is \(--if-not-exists\)\ncreated topic after\.made /
      )
      expect((yield* runCli(["topics", "create", "made", "--if-not-exists"], env)).code).toBe(0)
      expect(JSON.parse((yield* runCli(["topics", "describe", "made", "--json"], env)).stdout)).toMatchObject({
        order: 2,
        ackLevel: 0
      })
    }))

  it.effect("refuses what a topic cannot be: a message over its limit, a copy on disk without a data directory, memory and writers out of range", () =>
    Effect.gen(function*() {
      const { env, port, region } = yield* ListedCluster
      // --max-message-bytes is a size as every byte flag is; a larger message is refused naming the limit.
      const capped = yield* runCli(
        ["topics", "create", "capped", "--max-message-bytes", "4KiB", "--memory", "2MiB"],
        env
      )
      expect(capped.code, capped.stderr).toBe(0)
      expect(JSON.parse((yield* runCli(["topics", "describe", "capped", "--json"], env)).stdout)).toMatchObject({
        maxMessageBytes: 4096,
        memoryBytes: 2 * 2 ** 20
      })
      const over = yield* runCli(
        ["publish", "--brokers", `127.0.0.1:${port}`, "--topic", "capped", "--count", "1", "--message-bytes", "5000"],
        env
      )
      expect(over.code).not.toBe(0)
      expect(over.stderr).toContain("over topic capped's largest message of 4096 bytes")
      // This head has no data directory: a topic with a copy on disk is refused at its create, not
      // made to wait for an ACK 2 that nothing writes (and left with a copy no delete could remove).
      const copied = yield* runCli(["topics", "create", "copied:5:2:2"], env)
      expect(copied.code).toBe(1)
      expect(copied.stderr).toContain(
        `topic "copied": replication factor 2 keeps a copy on disk, and the head runs without a data directory: start the head with --data-dir DIR`
      )
      expect((yield* runCli(["topics", "describe", "copied"], env)).stderr).toContain(`unknown topic "copied"`)
      // Memory the heap could never give is refused at the create, with advice the head then takes.
      const huge = yield* runCli(["topics", "create", "huge", "--memory", "4GiB"], env)
      expect(huge.code).toBe(2)
      expect(huge.stderr).toContain("more than the region's heap (2GiB, CXLOG_HEAP_BYTES) can ever give one object")
      const advised = /give it at most (\S+?)(,|$)/m.exec(huge.stderr)?.[1]
      expect(advised).toBeDefined()
      expect((yield* runCli(["topics", "create", "huge", "--memory", advised!], env)).code).toBe(0)
      // A writers' count a topic cannot take is the command line's mistake (exit 2), either way.
      for (
        const [writers, says] of [["0", "0 is not a whole number of 1 or more"], [
          "65",
          "65 is more writers than a topic takes (64)"
        ]]
      ) {
        const refused = yield* runCli(["topics", "create", "sized", "--writers", writers], env)
        expect(refused.code).toBe(2)
        expect(refused.stderr).toContain(says)
      }
      const contradicted = yield* runCli(["topics", "create", "other:2", "--order", "5"], env)
      expect(contradicted.code).toBe(2)
      expect(contradicted.stderr).toContain("other:2 gives order 2, --order 5")
      // A name no topic can have, to a change that names a topic: the command line's mistake (exit 2) as in
      // create, on this host and through a broker, not a refusal of the head's coordinator; nothing is deleted.
      const badName = `the name "bad name!" is not 1 to 100 of A-Z a-z 0-9 . _ -`
      for (const where of [[], ["--brokers", `127.0.0.1:${port}`]]) {
        for (
          const [verb, ...words] of [["delete", "ev", "bad name!"], ["purge", "bad name!"], [
            "trim",
            "bad name!",
            "--keep",
            "1"
          ]]
        ) {
          const malformed = yield* runCli(["topics", ...where, verb!, ...words], env)
          expect(malformed.code, malformed.stderr).toBe(2)
          expect(malformed.stderr).toBe(`cxlog topics ${verb}: ${badName}\n`)
        }
      }
      expect((yield* runCli(["topics", "describe", "ev"], env)).code).toBe(0)
      // A disk retention flag for topics without a copy on disk (rf 1) is refused as the spec's field is,
      // on this host and through a broker, and nothing is made; its variable is a default for rf 2 topics only.
      const noCopy =
        "a disk retention needs replication factor 2 (a copy on disk), which topic plain does not have: give it rf 2, or leave the disk retention out"
      const retained: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [
          ["topics", "create", "plain", "--disk-retention-bytes", "1GiB"],
          `cxlog topics create: --disk-retention-bytes: ${noCopy}`
        ],
        [
          ["topics", "--brokers", `127.0.0.1:${port}`, "create", "plain", "--disk-retention-age", "7d"],
          `cxlog topics create: --disk-retention-age: ${noCopy}`
        ],
        [
          ["create-topic", "--topic", "plain", "--disk-retention-bytes", "1GiB", "--disk-retention-age", "7d"],
          `cxlog create-topic: --disk-retention-bytes and --disk-retention-age: ${noCopy}`
        ]
      ]
      for (const [args, line] of retained) {
        const unused = yield* runCli(args, env)
        expect(unused.code, unused.stderr).toBe(2)
        expect(unused.stderr).toBe(`${line}\n`)
      }
      expect((yield* runCli(["topics", "describe", "plain"], env)).code).toBe(1)
      const byVariable = yield* runCli(["topics", "create", "plain"], { ...env, CXLOG_DISK_RETENTION_BYTES: "1GiB" })
      expect(byVariable.code, byVariable.stderr).toBe(0)

      const missing = yield* runCli(["topics", "--topic", "nope"], { CXLOG_REGION: region })
      expect(missing.code).toBe(1)
      expect(missing.stderr).toBe(`cxlog topics: unknown topic "nope"\n`)
    }))
})

describe("cxlog topics", () => {
  it.scopedLive(
    "the head keeps a topic's retention by itself: --max-messages keeps the last N, --max-age what is younger; describe says it, --discard too",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("topicsretain")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head"], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const retained = {
          last:
            "at most its last 5 messages; a full memory makes publishers wait for the named consumers that hold it (discard new)",
          young: "at most messages younger than 1 s; a full memory drops the oldest whatever reads them (discard old)"
        }
        const made = [["last", "--max-messages", "5"], ["young", "--max-age", "1s", "--discard", "old"]] as const
        for (const [name, ...flags] of made) {
          const created = yield* runCli(["topics", "create", name, ...flags], env)
          expect(created.code, created.stderr).toBe(0)
          // Its retention as the head keeps it, read back from the region.
          expect((yield* runCli(["topics", "describe", name], env)).stdout).toContain(`retention: ${retained[name]}\n`)
          const published = yield* runCli(
            ["publish", "--brokers", `127.0.0.1:${port}`, "--topic", name, "--count", "20", "--message-bytes", "64"],
            env
          )
          expect(published.code, published.stderr).toBe(0)
        }
        // No trim was asked for: the head's pass (every second) cuts each to its retention.
        const bounds = (name: string) =>
          Effect.map(runCli(["topics", "describe", name, "--json"], env), (run) => {
            expect(run.code, run.stderr).toBe(0)
            const { earliest, end } = JSON.parse(run.stdout) as { earliest: number; end: number }
            return { earliest, end }
          })
        const until = (name: string, wanted: { earliest: number; end: number }) =>
          Effect.gen(function*() {
            for (let look = 0; look < 100; look++) {
              const now = yield* bounds(name)
              if (now.earliest === wanted.earliest && now.end === wanted.end) return now
              yield* Effect.sleep("200 millis")
            }
            return yield* bounds(name)
          })
        expect(yield* until("last", { earliest: 15, end: 20 })).toEqual({ earliest: 15, end: 20 })
        // Stamped when published, all older than a second soon after: nothing is left, the offsets go on.
        expect(yield* until("young", { earliest: 20, end: 20 })).toEqual({ earliest: 20, end: 20 })
      }),
    120_000
  )
})
