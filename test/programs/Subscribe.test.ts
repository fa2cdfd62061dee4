/**
 * `cxlog subscribe` over TCP and `cxlog consumers`, as processes: remote subscribers through
 * different brokers print the one total order the region holds; a named consumer's member
 * SIGKILLed mid-stream is taken over at its committed offset, redelivering only what it had
 * not committed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber } from "effect"
import { BatchBuilder, BufferPool } from "../../src/layers/net/BatchBuilder.js"
import { BatchView } from "../../src/layers/net/SubscriberBatch.js"
import { parseTime } from "../../src/programs/commands/SharedFlags.js"
import { formatLine } from "../../src/programs/roles/PrintTopics.js"
import { encodedParts } from "../fixtures/encoded-parts.js"
import { forkCli, runCli, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { until } from "../helpers/ServeProcess.js"

interface Line {
  readonly offset: number
  readonly timestamp: number
  readonly key?: string
  readonly headers?: ReadonlyArray<{ readonly name: string; readonly value?: string; readonly valueBase64?: string }>
  readonly payloadBase64?: string
  readonly payload?: string
}

const lines = (stdout: string): Array<Line> =>
  stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Line)

/** A head and two brokers on a fresh region: the env and the brokers' addresses. */
const cluster = Effect.gen(function*() {
  const region = yield* uniqueRegion("subscribe")
  const env = { ...smallRegionEnvFor(2), CXLOG_REGION: region }
  const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
  yield* head.event("ready")
  const ports: Array<number> = []
  for (const id of [0, 1]) {
    const broker = yield* forkCli(["broker", "--broker-id", `${id}`, "--port", "0"], env)
    ports.push((yield* broker.event("listening"))["port"] as number)
  }
  return { env, brokers: ports.map((p) => `127.0.0.1:${p}`) }
})

describe("cxlog subscribe --format", () => {
  it("json: offset and timestamp, then the key and headers a message has, each as text or, when not UTF-8, base64", () => {
    const builder = new BatchBuilder(new BufferPool(1024, 0))
    const bytes = (s: string) => new TextEncoder().encode(s)
    builder.add(
      bytes("v"),
      1_700_000_000_000,
      encodedParts({ key: "k", headers: [["a", "x,y=z"], ["bin", Uint8Array.of(0xff)]] })
    )
    builder.add(Uint8Array.of(0xfe), 1_700_000_000_005, encodedParts({ key: Uint8Array.of(0xff) }))
    builder.add(bytes("plain"), 1_700_000_000_009)
    const { payload, messageCount } = builder.seal()
    const view = new BatchView("t")
    expect(view.aim(payload, messageCount, 40, 40, 1, 1)).toBeUndefined()
    const out: Array<unknown> = []
    view.forEach((m) => out.push(JSON.parse(formatLine("json", m))))
    expect(out).toEqual([
      {
        offset: 40,
        timestamp: 1_700_000_000_000,
        key: "k",
        headers: [{ name: "a", value: "x,y=z" }, { name: "bin", valueBase64: "/w==" }],
        payload: "v"
      },
      { offset: 41, timestamp: 1_700_000_000_005, keyBase64: "/w==", payloadBase64: "/g==" },
      { offset: 42, timestamp: 1_700_000_000_009, payload: "plain" }
    ])
    const text: Array<string> = []
    view.forEach((m) => text.push(formatLine("text", m)))
    expect(text).toEqual(["40\tv\n", "41\t/g==\n", "42\tplain\n"])
  })
})

describe("cxlog subscribe --from-time", () => {
  it("takes an ISO time or an age; anything else is refused naming both forms", () => {
    expect(parseTime("2026-11-25T06:00:00Z")).toEqual(Either.right(Date.parse("2026-11-25T06:00:00Z")))
    const before = Date.now()
    const age = Either.getOrThrow(parseTime("15m"))
    expect(age).toBeGreaterThanOrEqual(before - 15 * 60_000 - 1000)
    expect(age).toBeLessThanOrEqual(Date.now() - 15 * 60_000)
    // As the error's hint writes it: "15m ago" is the same age, with or without the word.
    const agoSaid = Either.getOrThrow(parseTime("15m ago"))
    expect(agoSaid).toBeGreaterThanOrEqual(age)
    expect(agoSaid).toBeLessThanOrEqual(Date.now() - 15 * 60_000)
    expect(Either.isLeft(parseTime("ago"))).toBe(true)
    expect(Either.isLeft(parseTime("yesterday"))).toBe(true)
    expect(Either.isLeft(parseTime("1700000000000"))).toBe(true)
  })

  it.scopedLive("over TCP and in place: starts at the first message published at or after the time", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      const publish = (count: number) =>
        Effect.map(
          runCli(["publish", "--brokers", brokers.join(","), "--topic", "t", "--count", `${count}`], env),
          (r) => expect(r.code, r.stderr).toBe(0)
        )
      yield* publish(5)
      const read = (args: ReadonlyArray<string>) =>
        Effect.map(runCli(["subscribe", "--topic", "t", "--format", "json", ...args], env), (r) => {
          expect(r.code, r.stderr).toBe(0)
          return lines(r.stdout)
        })
      const first = yield* read(["--limit", "5"])
      // Every message after the first five is stamped after the last of them: published once the clock has passed its stamp.
      const since = new Date(first[4]!.timestamp + 1).toISOString()
      yield* until(() => Date.now() > first[4]!.timestamp, 5_000, () => `the clock to pass ${first[4]!.timestamp}`)
      yield* publish(3)
      for (const where of [[], ["--brokers", brokers[1]!]]) {
        const later = yield* read([...where, "--from-time", since, "--limit", "3"])
        expect(later.map((l) => l.offset)).toEqual([5, 6, 7])
      }
      expect((yield* read(["--from-time", "1d", "--limit", "1"]))[0]!.offset).toBe(0)
      const bad = yield* runCli(["subscribe", "--topic", "t", "--from-time", "soon"], env)
      expect(bad.code).toBe(2)
      expect(bad.stderr).toContain("soon is not a time")
      const both = yield* runCli(["subscribe", "--topic", "t", "--from", "2", "--from-time", "1d"], env)
      expect(both.code).toBe(2)
      expect(both.stderr.trim()).toBe("cxlog subscribe: --from and --from-time both say where to start: give one")
    }))
})

describe("cxlog subscribe over TCP", () => {
  it.scoped("three remote subscribers, through either broker, print the one total order the region holds: none lost, duplicated or reordered", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      const published = yield* runCli([
        "publish",
        "--brokers",
        brokers.join(","),
        "--topic",
        "t",
        "--count",
        "300",
        "--message-bytes",
        "48"
      ], env)
      expect(published.code, published.stderr).toBe(0)
      const read = (args: ReadonlyArray<string>) =>
        Effect.map(runCli(["subscribe", "--topic", "t", "--limit", "300", "--format", "json", ...args], env), (r) => {
          expect(r.code, r.stderr).toBe(0)
          return lines(r.stdout)
        })
      const [local, ...remote] = yield* Effect.all(
        [
          read([]),
          read(["--brokers", brokers[0]!]),
          read(["--brokers", brokers[1]!]),
          read(["--brokers", `127.0.0.1:1,${brokers[0]}`])
        ],
        { concurrency: "unbounded" }
      )
      expect(local!.map((l) => l.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i))
      for (const r of remote) expect(r).toEqual(local)
      // Exactly --limit, from an offset, as text.
      const some = yield* runCli([
        "subscribe",
        "--brokers",
        brokers[1]!,
        "--topic",
        "t",
        "--from",
        "290",
        "--limit",
        "3"
      ], env)
      expect(some.stdout.split("\n").filter((l) => l !== "").map((l) => Number(l.split("\t")[0]))).toEqual([
        290,
        291,
        292
      ])
    }))

  it.scoped("a key and headers given to cxlog publish come out of cxlog subscribe --format json with each message's timestamp, locally and over TCP", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      const before = Date.now()
      const published = yield* runCli(
        [
          "publish",
          "--brokers",
          brokers[0]!,
          "--topic",
          "t",
          "--count",
          "5",
          "--message-bytes",
          "16",
          "--key",
          "order-17",
          "--header",
          "source=web",
          "--header",
          "note=a,b=c"
        ],
        env
      )
      expect(published.code, published.stderr).toBe(0)
      const after = Date.now()
      for (const args of [[], ["--brokers", brokers[1]!]]) {
        const read = yield* runCli(["subscribe", "--topic", "t", "--limit", "5", "--format", "json", ...args], env)
        expect(read.code, read.stderr).toBe(0)
        const got = lines(read.stdout)
        expect(got.map((l) => [l.offset, l.key, l.headers])).toEqual(
          Array.from(
            { length: 5 },
            (_, i) => [i, "order-17", [{ name: "source", value: "web" }, { name: "note", value: "a,b=c" }]]
          )
        )
        for (const l of got) {
          expect(l.timestamp).toBeGreaterThanOrEqual(before)
          expect(l.timestamp).toBeLessThanOrEqual(after)
          expect(Buffer.from(l.payloadBase64!, "base64").length).toBe(16)
        }
      }
      // A plain message's line has no key or headers, only its offset, timestamp and value.
      const plain = yield* runCli([
        "publish",
        "--brokers",
        brokers[0]!,
        "--topic",
        "t",
        "--count",
        "1",
        "--message-bytes",
        "16"
      ], env)
      expect(plain.code, plain.stderr).toBe(0)
      const last = lines(
        (yield* runCli(["subscribe", "--topic", "t", "--from", "5", "--limit", "1", "--format", "json"], env)).stdout
      )
      expect(Object.keys(last[0]!).sort()).toEqual(["offset", "payloadBase64", "timestamp"])
    }))

  it.scopedLive("a named consumer tailing a publisher through a log 20 times smaller than the stream: its commits release retention as it reads, and it reads everything in order", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      const reader = yield* Effect.fork(
        runCli([
          "subscribe",
          "--brokers",
          brokers[1]!,
          "--topic",
          "t",
          "--consumer",
          "tail",
          "--format",
          "json",
          "--limit",
          "20000"
        ], env)
      )
      // The consumer exists (holding retention from offset 0) before anything is published.
      for (
        let i = 0;
        i < 100 && (yield* runCli(["consumers", "--topic", "t", "--json"], env)).stdout.trim() === "[]";
        i++
      ) yield* Effect.sleep("100 millis")
      const published = yield* runCli([
        "publish",
        "--brokers",
        brokers[0]!,
        "--topic",
        "t",
        "--count",
        "20000",
        "--message-bytes",
        "1024",
        "--flush-timeout-ms",
        "20000"
      ], env)
      expect(published.code, published.stderr).toBe(0)
      const read = yield* Fiber.join(reader).pipe(
        Effect.timeoutFail({ duration: 30_000, onTimeout: () => new Error("the tail did not finish") })
      )
      expect(read.code, read.stderr).toBe(0)
      const offsets = lines(read.stdout).map((l) => l.offset)
      expect(offsets).toEqual(Array.from({ length: 20000 }, (_, i) => i))
    }))

  it.scopedLive("stdout closed by its reader after the first line (| head -1): the consumer exits 0 and stops at the failed write, committing none of the batches after it", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      // Far more output than a pipe holds, so the subscriber is still writing when its reader goes.
      const published = yield* runCli([
        "publish",
        "--brokers",
        brokers[0]!,
        "--topic",
        "t",
        "--count",
        "20000",
        "--message-bytes",
        "16"
      ], env)
      expect(published.code, published.stderr).toBe(0)
      // As a user runs it (no IPC channel, which would keep a finished role waiting for its orchestrator).
      const read = yield* runCli(
        [
          "subscribe",
          "--brokers",
          brokers[1]!,
          "--topic",
          "t",
          "--consumer",
          "head",
          "--format",
          "json",
          "--limit",
          "20000"
        ],
        env,
        (child) => child.stdout!.once("data", () => child.stdout!.destroy())
      ).pipe(
        Effect.timeoutFail({
          duration: "60 seconds",
          onTimeout: () => new Error("cxlog subscribe did not end within 60 s of its stdout closing")
        })
      )
      expect(read.code, read.stderr).toBe(0)
      expect(read.stderr).toBe("")
      // Stopped at the write that failed: the batches after it were never pulled, so never committed.
      const [consumer] = JSON.parse((yield* runCli(["consumers", "--topic", "t", "--json"], env)).stdout) as Array<
        { committed: number }
      >
      expect(consumer!.committed).toBeLessThan(20000)
    }))

  it.scopedLive("stdout closed by its reader with nothing more to print (at the tail, | head -1): it stops all the same, over TCP and in place, exit 0", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      const published = yield* runCli(["publish", "--brokers", brokers[0]!, "--topic", "t", "--count", "1"], env)
      expect(published.code, published.stderr).toBe(0)
      for (const where of [["--brokers", brokers[1]!], []]) {
        // The one message printed and read, the reader goes: the subscriber waits for the next, which never comes.
        const read = yield* runCli(
          ["subscribe", ...where, "--topic", "t"],
          env,
          (child) => child.stdout!.once("data", () => child.stdout!.destroy())
        ).pipe(
          Effect.timeoutFail({
            duration: "30 seconds",
            onTimeout: () => new Error(`cxlog subscribe ${where.join(" ")} ran on 30 s after its stdout closed`)
          })
        )
        expect(read.code, read.stderr).toBe(0)
      }
    }))

  it.scopedLive("a named consumer's member SIGKILLed mid-stream: the next one starts at the committed offset; only the uncommitted window comes again", () =>
    Effect.gen(function*() {
      const { env, brokers } = yield* cluster
      // 20 MiB through a 1 MiB log: the consumer paces the publisher, and is killed mid-stream.
      const first = yield* forkCli([
        "subscribe",
        "--brokers",
        brokers[1]!,
        "--topic",
        "t",
        "--consumer",
        "billing",
        "--format",
        "json"
      ], env)
      // The consumer exists (holding retention from offset 0) before anything is published.
      const consumers = Effect.map(
        runCli(["consumers", "--topic", "t", "--json"], env),
        (r) => JSON.parse(r.stdout) as Array<{ name: string; committed: number; member: number; lag: number }>
      )
      for (let i = 0; i < 100 && (yield* consumers).length === 0; i++) yield* Effect.sleep("100 millis")
      const publisher = yield* Effect.fork(
        runCli(
          ["publish", "--brokers", brokers[0]!, "--topic", "t", "--count", "20000", "--message-bytes", "1024"],
          env
        )
      )
      // Whole lines only: a SIGKILL may cut the last one.
      const printed = () => {
        const out = first.output()
        return lines(out.slice(0, out.lastIndexOf("\n") + 1).replace(/^[^{].*$/gm, ""))
      }
      for (let i = 0; i < 600 && printed().length < 5000; i++) yield* Effect.sleep("50 millis")
      first.child.kill("SIGKILL")
      yield* first.exited
      const before = printed()
      const lastPrinted = before.at(-1)!.offset
      expect(lastPrinted).toBeGreaterThanOrEqual(4999)
      expect(before.map((l) => l.offset)).toEqual(Array.from({ length: before.length }, (_, i) => i))

      const [consumer] = yield* consumers
      expect(consumer).toMatchObject({ name: "billing", member: 0 })
      expect(consumer!.committed).toBeGreaterThan(0)
      expect(consumer!.committed).toBeLessThanOrEqual(lastPrinted + 1)

      // The next member resumes at the committed offset: nothing missing, redelivery only of [committed, lastPrinted].
      const second = yield* runCli([
        "subscribe",
        "--brokers",
        brokers[0]!,
        "--topic",
        "t",
        "--consumer",
        "billing",
        "--format",
        "json",
        "--limit",
        `${20000 - consumer!.committed}`
      ], env)
      expect(second.code, second.stderr).toBe(0)
      const resumed = lines(second.stdout).map((l) => l.offset)
      expect(resumed).toEqual(Array.from({ length: 20000 - consumer!.committed }, (_, i) => consumer!.committed + i))
      expect(resumed.filter((o) => o <= lastPrinted).length).toBe(lastPrinted + 1 - consumer!.committed)
      const after = JSON.parse((yield* runCli(["consumers", "--topic", "t", "--json"], env)).stdout) as Array<
        { committed: number; lag: number }
      >
      expect(after[0]).toMatchObject({ committed: 20000, lag: 0 })
      const published = yield* Fiber.join(publisher)
      expect(published.code, published.stderr).toBe(0)
      // A consumer nobody reads any more is deleted: its retention goes with it.
      expect((yield* runCli(["consumers", "--topic", "t", "--remove", "billing"], env)).stdout).toContain(
        "deleted consumer billing"
      )
      expect((yield* runCli(["consumers", "--topic", "t"], env)).stdout).toContain("no named consumers")
    }))
})
