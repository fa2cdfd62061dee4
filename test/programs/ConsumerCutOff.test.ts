/**
 * A named consumer's cut-off across processes: a broker started with CXLOG_CONSUMER_HOLD_MS cuts
 * off a consumer nobody reads once it has held the publisher that long, the publisher completes,
 * `cxlog consumers` shows the consumer cut off, and subscribing as it again is a typed
 * out-of-range error (its committed offset is gone), never a silent skip. A consumer group's hold
 * on its topic has the same bound, and its members are told the same way (`GroupBehindRetention`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** A head with `topic` (1 MiB of log) and a broker that cuts a hold off after 300 ms; the env and the broker's address. */
const holdingCluster = (label: string, topic: string) =>
  Effect.gen(function*() {
    const env = { ...smallRegionEnv, CXLOG_REGION: yield* uniqueRegion(label) }
    const head = yield* forkCli(["head", "--topic", `${topic}:5:1`], env)
    yield* head.event("ready")
    const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], {
      ...env,
      CXLOG_CONSUMER_HOLD_MS: "300"
    })
    return { env, brokers: `127.0.0.1:${(yield* broker.event("listening"))["port"] as number}` }
  })

describe("cxlog broker --consumer-hold-ms", () => {
  it.scopedLive("a consumer without a member holding the publisher past CXLOG_CONSUMER_HOLD_MS is cut off; the publisher completes; re-subscribing is LogOutOfRange", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* holdingCluster("cutoff", "t")
      const publish = (count: number) =>
        runCli(["publish", "--brokers", brokers, "--topic", "t", "--count", `${count}`, "--message-bytes", "1024"], env)
      /** One message read as consumer "stalled" (its commit on exit), printed as `flags` say. */
      const readOne = (...flags: Array<string>) =>
        runCli(
          ["subscribe", "--brokers", brokers, "--topic", "t", "--consumer", "stalled", "--limit", "1", ...flags],
          env
        )
      // The consumer reads one message, commits it and leaves: it holds retention from offset 1 with no member.
      expect((yield* publish(1)).code).toBe(0)
      const first = yield* readOne()
      expect(first.code, first.stderr).toBe(0)
      // 4 MiB through a 1 MiB log: it completes only once the consumer's hold is cut.
      const published = yield* publish(4096)
      expect(published.code, published.stderr).toBe(0)
      const listed = JSON.parse((yield* runCli(["consumers", "--topic", "t", "--json"], env)).stdout) as Array<
        Record<string, unknown>
      >
      expect(listed).toEqual([expect.objectContaining({ name: "stalled", committed: 1, member: 0, cutOff: true })])
      expect((yield* runCli(["consumers", "--topic", "t"], env)).stdout).toMatch(/stalled\s+1\s+\d+\s+none\s+cut off/)
      const again = yield* readOne()
      expect(again.code).not.toBe(0)
      expect(again.stderr).toMatch(/LogOutOfRange|outside the retained window/)
      expect(again.stderr).toContain(`cxlog consumers reset "stalled" --topic t --to earliest`)
      // The reset that error advises takes the hold back at once (no member yet), and a member reads from there.
      const reset = yield* runCli(["consumers", "reset", "stalled", "--topic", "t", "--to", "earliest"], env)
      expect(reset.code, reset.stderr).toBe(0)
      const { earliest } = JSON.parse((yield* runCli(["topics", "describe", "t", "--json"], env)).stdout) as {
        earliest: number
      }
      const holding = JSON.parse((yield* runCli(["consumers", "--topic", "t", "--json"], env)).stdout) as Array<
        Record<string, unknown>
      >
      expect(holding).toEqual([
        expect.objectContaining({ name: "stalled", committed: earliest, member: 0, cutOff: false })
      ])
      const resumed = yield* readOne("--format", "json")
      expect(resumed.code, resumed.stderr).toBe(0)
      expect((JSON.parse(resumed.stdout.trim()) as { offset: number }).offset).toBe(earliest)
    }))

  it.scopedLive("a consumer group nobody reads holds the publisher until CXLOG_CONSUMER_HOLD_MS cuts it off; its member then gets GroupBehindRetention", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* holdingCluster("groupcut", "jobs")
      const created = yield* runCli(["groups", "create", "idle", "--topic", "jobs"], env)
      expect(created.code, created.stderr).toBe(0)
      const describe = () =>
        Effect.map(runCli(["groups", "describe", "idle", "--json"], env), (r) => JSON.parse(r.stdout))
      expect(yield* describe()).toMatchObject({ heldFrom: 0, holdCutOff: false })
      // 4 MiB through a 1 MiB log: it completes only once the group's hold is cut.
      const published = yield* runCli(
        ["publish", "--brokers", brokers, "--topic", "jobs", "--count", "4096", "--message-bytes", "1024"],
        env
      )
      expect(published.code, published.stderr).toBe(0)
      expect(yield* describe()).toMatchObject({ holdCutOff: true, frontier: 0 })
      expect((yield* runCli(["groups", "describe", "idle"], env)).stdout).toMatch(/hold on the topic was cut off/)
      const consumed = yield* runCli(["consume", "--group", "idle", "--limit", "1"], env)
      expect(consumed.code).not.toBe(0)
      expect(consumed.stderr).toMatch(/GroupBehindRetention|no longer holds offset 0/)
    }))
})
