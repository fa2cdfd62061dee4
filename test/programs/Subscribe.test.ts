/**
 * `cxlog subscribe` over TCP and `cxlog consumers`, as processes: remote subscribers through
 * different brokers print the one total order the region holds; a named consumer's member
 * SIGKILLed mid-stream is taken over at its committed offset, redelivering only what it had
 * not committed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

interface Line {
  readonly offset: number
  readonly payloadBase64?: string
  readonly payload?: string
}

const lines = (stdout: string): Array<Line> => stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Line)

/** A head and two brokers on a fresh region: the env and the brokers' addresses. */
const cluster = Effect.gen(function*() {
  const region = yield* uniqueRegion("subscribe")
  const env = { ...smallRegionEnv, CXLOG_LOG_MAX_BROKERS: "2", CXLOG_REGION: region }
  const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
  yield* head.event("ready")
  const ports: Array<number> = []
  for (const id of [0, 1]) {
    const broker = yield* forkCli(["broker", "--broker-id", `${id}`, "--port", "0"], env)
    ports.push((yield* broker.event("listening"))["port"] as number)
  }
  return { env, brokers: ports.map((p) => `127.0.0.1:${p}`) }
})

describe("cxlog subscribe over TCP", () => {
  it.scoped("three remote subscribers, through either broker, print the one total order the region holds: none lost, duplicated or reordered", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      const published = yield* runCli(["publish", "--brokers", brokers.join(","), "--topic", "t", "--count", "300", "--message-bytes", "48"], env)
      expect(published.code, published.stderr).toBe(0)
      const read = (args: ReadonlyArray<string>) =>
        Effect.map(runCli(["subscribe", "--topic", "t", "--limit", "300", "--format", "json", ...args], env), (r) => {
          expect(r.code, r.stderr).toBe(0)
          return lines(r.stdout)
        })
      const [local, ...remote] = yield* Effect.all(
        [read([]), read(["--brokers", brokers[0]!]), read(["--brokers", brokers[1]!]), read(["--brokers", `127.0.0.1:1,${brokers[0]}`])],
        { concurrency: "unbounded" }
      )
      expect(local!.map((l) => l.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i))
      for (const r of remote) expect(r).toEqual(local)
      // Exactly --limit, from an offset, as text.
      const some = yield* runCli(["subscribe", "--brokers", brokers[1]!, "--topic", "t", "--from", "290", "--limit", "3"], env)
      expect(some.stdout.split("\n").filter((l) => l !== "").map((l) => Number(l.split("\t")[0]))).toEqual([290, 291, 292])
    }))

  it.scopedLive("a named consumer's member SIGKILLed mid-stream: the next one starts at the committed offset; only the uncommitted window comes again", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      const publish = (count: number) =>
        Effect.flatMap(runCli(["publish", "--brokers", brokers[0]!, "--topic", "t", "--count", `${count}`, "--message-bytes", "48"], env), (r) =>
          Effect.sync(() => expect(r.code, r.stderr).toBe(0)))
      yield* publish(100)
      const first = yield* forkCli(["subscribe", "--brokers", brokers[1]!, "--topic", "t", "--consumer", "billing", "--format", "json"], env)
      const printed = (n: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < 200 && lines(first.output().replace(/^[^{].*$/gm, "")).length < n; i++) yield* Effect.sleep("50 millis")
          return lines(first.output().replace(/^[^{].*$/gm, ""))
        })
      expect((yield* printed(100)).length, first.output()).toBe(100)
      // Past the auto-commit interval, the next pull commits all 100 printed.
      yield* Effect.sleep("1200 millis")
      yield* publish(100)
      const before = yield* printed(200)
      first.child.kill("SIGKILL")
      yield* first.exited
      const lastPrinted = before.at(-1)!.offset
      expect(before.map((l) => l.offset)).toEqual(Array.from({ length: before.length }, (_, i) => i))

      const listed = yield* runCli(["consumers", "--topic", "t", "--json"], env)
      const [consumer] = JSON.parse(listed.stdout) as Array<{ name: string; committed: number; member: number; lag: number }>
      expect(consumer).toMatchObject({ name: "billing", member: 0 })
      expect(consumer!.committed).toBeGreaterThanOrEqual(100)
      expect(consumer!.committed).toBeLessThanOrEqual(lastPrinted + 1)

      // The next member resumes at the committed offset: nothing missing, redelivery only of [committed, lastPrinted].
      const second = yield* runCli(["subscribe", "--brokers", brokers[0]!, "--topic", "t", "--consumer", "billing", "--format", "json", "--limit", `${200 - consumer!.committed}`], env)
      expect(second.code, second.stderr).toBe(0)
      const resumed = lines(second.stdout).map((l) => l.offset)
      expect(resumed).toEqual(Array.from({ length: 200 - consumer!.committed }, (_, i) => consumer!.committed + i))
      expect(resumed.filter((o) => o <= lastPrinted).length).toBe(lastPrinted + 1 - consumer!.committed)
      const after = JSON.parse((yield* runCli(["consumers", "--topic", "t", "--json"], env)).stdout) as Array<{ committed: number; lag: number }>
      expect(after[0]).toMatchObject({ committed: 200, lag: 0 })
      // A consumer nobody reads any more is deleted: its retention goes with it.
      expect((yield* runCli(["consumers", "--topic", "t", "--remove", "billing"], env)).stdout).toContain("deleted consumer billing")
      expect((yield* runCli(["consumers", "--topic", "t"], env)).stdout).toContain("no named consumers")
    }))
})
