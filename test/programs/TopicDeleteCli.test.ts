/**
 * Through the CLI, over TCP: `cxlog topics delete NAME` deletes a topic a publisher is writing
 * to through a broker. The publisher stops with the broker's typed refusal (topic-deleted, the
 * topic named), the name is gone from `cxlog topics`, and the heap's free memory comes back.
 * `cxlog topics delete NAME…` deletes several in turn, stopping at the first it cannot.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { forkCli, runCli, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

interface Listed {
  readonly topics: ReadonlyArray<{ readonly name: string; readonly end: number }>
  readonly heap: { readonly freeBytes: number }
}

/** `cxlog topics --json` until `done` holds (at most 20 s, looking every 100 ms). */
const topicsUntil = (env: Record<string, string>, done: (listed: Listed) => boolean) =>
  Effect.gen(function*() {
    for (let look = 0; look < 200; look++) {
      const run = yield* runCli(["topics", "--json"], env)
      expect(run.code, run.stderr).toBe(0)
      const listed = JSON.parse(run.stdout) as Listed
      if (done(listed)) return listed
      yield* Effect.sleep(100)
    }
    throw new Error("cxlog topics never showed what the test waited for")
  })

describe("cxlog topics delete", () => {
  it.scopedLive(
    "stops a TCP publisher with topic-deleted, drops the name, and gives its memory back",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("topicdelete")
        const env = { ...smallRegionEnvFor(2), CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "keep:5:1"], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const before = yield* topicsUntil(env, () => true)

        const created = yield* runCli(["create-topic", "--topic", "gone:2:1"], env)
        expect(created.code, created.stderr).toBe(0)
        const publisher = yield* Effect.fork(
          runCli([
            "publish",
            "--brokers",
            `127.0.0.1:${port}`,
            "--topic",
            "gone",
            "--count",
            "10000000",
            "--message-bytes",
            "100",
            "--rate-mbps",
            "1"
          ], env)
        )
        const writing = yield* topicsUntil(env, (l) => (l.topics.find((t) => t.name === "gone")?.end ?? 0) > 0)
        expect(writing.heap.freeBytes).toBeLessThan(before.heap.freeBytes)

        const deleted = yield* runCli(["topics", "delete", "gone"], env)
        expect(deleted.code, deleted.stderr).toBe(0)
        expect(deleted.stdout).toContain("deleted topic gone")

        const published = yield* Fiber.join(publisher)
        expect(published.code).toBe(1)
        expect(published.stderr).toContain("topic-deleted")
        expect(published.stderr).toContain(`topic "gone" was deleted`)

        // The name is free and the memory back once the broker, the head and the sequencer let the topic go.
        const after = yield* topicsUntil(env, (l) => l.heap.freeBytes === before.heap.freeBytes)
        expect(after.topics.map((t) => t.name)).toEqual(["keep"])
        const again = yield* runCli(["topics", "delete", "gone"], env)
        expect(again.code).toBe(1)
        expect(again.stderr).toContain(`unknown topic "gone"`)
        const remade = yield* runCli(["create-topic", "--topic", "gone:2:1"], env)
        expect(remade.code, remade.stderr).toBe(0)

        // Several in one command, in turn: an unknown name stops it there, those before it deleted.
        const more = yield* runCli(["create-topic", "--topic", "a.1", "--topic", "a.2", "--topic", "a.3"], env)
        expect(more.code, more.stderr).toBe(0)
        const some = yield* runCli(["topics", "delete", "a.1", "nope", "a.3"], env)
        expect(some.code).toBe(1)
        expect(some.stdout).toContain("deleted topic a.1")
        expect(some.stderr).toContain(`unknown topic "nope"`)
        const rest = yield* runCli(["topics", "delete", "a.2", "a.3", "gone"], env)
        expect(rest.code, rest.stderr).toBe(0)
        expect(rest.stdout.match(/deleted topic/g)).toHaveLength(3)
        const left = yield* topicsUntil(env, () => true)
        expect(left.topics.map((t) => t.name)).toEqual(["keep"])
      }),
    120_000
  )
})
