/**
 * A topic's state stream (its named consumers' commits, docs/durability.md) whose writer stops on
 * the disk — here its directory removed while the head runs, so its next snapshot is synced into a
 * file no longer there — is started again by the head's tier after its backoff, as the data
 * writer is: the commits made since are persisted again, not left unpersisted while the data
 * writer runs on (a recovery would rewind the consumer to the last snapshot).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

/** Whether the topic's state stream on disk holds a snapshot with this commit. */
const persisted = (dir: string, consumer: string, committed: number) => {
  const needle = `{"name":"${consumer}","committed":${committed},`
  const stream = join(dir, "state-d")
  return existsSync(stream) &&
    readdirSync(stream).filter((f) => f.endsWith(".seg")).some((f) => readFileSync(join(stream, f)).includes(needle))
}

const awaitPersisted = (dir: string, consumer: string, committed: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500 && !persisted(dir, consumer, committed); i++) yield* Effect.sleep("20 millis")
    expect(persisted(dir, consumer, committed), `consumer ${consumer}'s commit of ${committed} on disk`).toBe(true)
  })

describe("a topic's state stream whose writer stopped on the disk", () => {
  it.scopedLive(
    "is started again by the tier: commits made after its directory was removed reach the disk",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-state-restart-")
        const env = { ...smallRegionEnv, CXLOG_REGION: yield* uniqueRegion("staterestart") }
        const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const published = yield* runCli(
          ["publish", "--brokers", `127.0.0.1:${port}`, "--topic", "d", "--count", "300", "--ack", "2"],
          env
        )
        expect(published.code, published.stderr).toBe(0)
        const consume = (limit: number) =>
          Effect.map(
            runCli(["subscribe", "--topic", "d", "--consumer", "c", "--limit", `${limit}`], env),
            (r) => expect(r.code, r.stderr).toBe(0)
          )
        yield* consume(100)
        yield* awaitPersisted(dir, "c", 100)

        rmSync(join(dir, "state-d"), { recursive: true, force: true })
        yield* consume(50)
        yield* awaitPersisted(dir, "c", 150)
      }),
    60_000
  )
})
