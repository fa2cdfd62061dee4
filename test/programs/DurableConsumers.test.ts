/**
 * Named consumers across a crash, through the bundled CLI (real processes): a consumer reads
 * and commits part of an ACK 2 topic; head and broker are SIGKILLed and the region unlinked;
 * `cxlog head --recover DIR` with no `--topic` finds the topic in the directory, and the
 * consumer resumes at its committed offset — the same messages, none skipped. Then the
 * recovered head is SIGKILLed and its region unlinked too, and `cxlog head --attach --data-dir
 * DIR` recovers it again, the consumer resuming at its second commit.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { forkCli, loseRegion, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

/** Waits (bounded) until the topic's state stream on disk holds a snapshot with this commit. */
const awaitPersisted = (dir: string, consumer: string, committed: number) =>
  Effect.gen(function*() {
    const needle = `{"name":"${consumer}","committed":${committed},`
    const stream = join(dir, "state-d")
    const holds = () =>
      existsSync(stream) &&
      readdirSync(stream).filter((f) => f.endsWith(".seg")).some((f) => readFileSync(join(stream, f)).includes(needle))
    for (let i = 0; i < 500 && !holds(); i++) yield* Effect.sleep("20 millis")
    if (!holds()) {
      return yield* Effect.fail(
        new Error(`the head did not persist consumer ${consumer}'s commit of ${committed} within 10 s`)
      )
    }
  })

describe("named consumers across a crash", () => {
  it.scopedLive(
    "--recover without --topic, then --attach with the region gone: the consumer resumes at its committed offset each time, nothing skipped",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-consumers-")
        const first = yield* uniqueRegion("consumers1")
        const env = { ...smallRegionEnv, CXLOG_REGION: first }
        const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const published = yield* runCli([
          "publish",
          "--brokers",
          `127.0.0.1:${port}`,
          "--topic",
          "d",
          "--count",
          "3000",
          "--message-bytes",
          "64",
          "--ack",
          "2"
        ], env)
        expect(published.code, published.stderr).toBe(0)
        const read = (region: string, args: ReadonlyArray<string>) =>
          Effect.map(
            runCli(["subscribe", "--topic", "d", "--format", "json", ...args], { ...env, CXLOG_REGION: region }),
            (r) => {
              expect(r.code, r.stderr).toBe(0)
              return r.stdout.trim().split("\n")
            }
          )
        const all = yield* read(first, ["--limit", "3000"])
        expect(all).toHaveLength(3000)
        const offsetOf = (line: string) => (JSON.parse(line) as { offset: number }).offset
        // The consumer prints 1000 messages and commits them.
        expect(yield* read(first, ["--consumer", "c", "--limit", "1000"])).toEqual(all.slice(0, 1000))
        yield* awaitPersisted(dir, "c", 1000)
        yield* loseRegion(first, head, broker)

        // No --topic: the directory names the topic and its spec.
        const second = yield* uniqueRegion("consumers2")
        const recovered = yield* forkCli(["head", "--recover", dir], { ...env, CXLOG_REGION: second })
        yield* recovered.event("ready")
        expect(recovered.output()).toContain("3000 messages")
        expect(recovered.output()).toContain("c at 1000")
        const resumed = yield* read(second, ["--consumer", "c", "--limit", "1000"])
        expect(offsetOf(resumed[0]!)).toBe(1000)
        expect(resumed).toEqual(all.slice(1000, 2000))
        yield* awaitPersisted(dir, "c", 2000)
        yield* loseRegion(second, recovered)

        // --attach finds no region: it recovers from the data directory instead of failing.
        const attached = yield* forkCli(["head", "--attach", "--data-dir", dir], { ...env, CXLOG_REGION: second })
        yield* attached.event("ready")
        expect(attached.output()).toContain(`region ${second} does not exist; recovering it from the data directory`)
        expect(yield* read(second, ["--consumer", "c", "--limit", "1000"])).toEqual(all.slice(2000, 3000))
      }),
    180_000
  )
})
