/**
 * Through the CLI: deleting a replication factor 2 topic deletes its copy on disk with it — its
 * streams leave the head's data directory before the delete returns, and their files go soon
 * after — while the other topics' copies stay. Created again under its name, the topic starts
 * afresh and is persisted again; a recovery from the directory after the region is lost brings
 * back what the directory holds now (the new topic, the one kept), never the deleted topic's messages.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync } from "node:fs"
import { forkCli, loseRegion, runCli, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

interface Listed {
  readonly topics: ReadonlyArray<{ readonly name: string; readonly earliest: number; readonly end: number }>
}

describe("deleting a topic with a copy on disk", () => {
  it.scopedLive(
    "its streams leave the data directory with it; created again it starts afresh, and a recovery does not bring it back",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-durable-delete-")
        const first = yield* uniqueRegion("durabledelete1")
        const env = { ...smallRegionEnvFor(2), CXLOG_REGION: first }
        const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--topic", "keep:5:2:2", "--data-dir", dir], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const publish = (topic: string, count: number) =>
          Effect.map(
            runCli([
              "publish",
              "--brokers",
              `127.0.0.1:${port}`,
              "--topic",
              topic,
              "--count",
              `${count}`,
              "--message-bytes",
              "64",
              "--ack",
              "2"
            ], env),
            (r) => expect(r.code, r.stderr).toBe(0)
          )
        const topics = (region: string) =>
          Effect.map(runCli(["topics", "--json"], { ...env, CXLOG_REGION: region }), (r) => {
            expect(r.code, r.stderr).toBe(0)
            return Object.fromEntries((JSON.parse(r.stdout) as Listed).topics.map((t) => [t.name, t]))
          })
        yield* publish("d", 2000)
        yield* publish("keep", 100)
        expect(readdirSync(dir).sort()).toEqual(["state-d", "state-keep", "topic-d", "topic-keep"])

        const deleted = yield* runCli(["topics", "delete", "d"], env)
        expect(deleted.code, deleted.stderr).toBe(0)
        // Out of the streams' names before the delete returned; the files go after it.
        expect(readdirSync(dir).filter((n) => n.endsWith("-d"))).toEqual([])
        for (let n = 0; n < 1_500 && readdirSync(dir).length > 2; n++) yield* Effect.sleep(20)
        expect(readdirSync(dir).sort()).toEqual(["state-keep", "topic-keep"])
        expect(Object.keys(yield* topics(first)).sort()).toEqual(["keep"])

        // Created again under its name: another topic, persisted afresh (its ACK 2s come from its own new stream).
        const created = yield* runCli(["topics", "create", "d:5:2:2"], env)
        expect(created.code, created.stderr).toBe(0)
        yield* publish("d", 500)
        expect((yield* topics(first))["d"]).toMatchObject({ earliest: 0, end: 500 })
        expect(readdirSync(dir).sort()).toEqual(["state-d", "state-keep", "topic-d", "topic-keep"])

        yield* loseRegion(first, head, broker)

        // The region lost: what the directory holds comes back, the deleted topic's 2000 messages do not.
        const second = yield* uniqueRegion("durabledelete2")
        const recovered = yield* forkCli(["head", "--recover", dir], { ...env, CXLOG_REGION: second })
        yield* recovered.event("ready")
        const after = yield* topics(second)
        expect(Object.keys(after).sort()).toEqual(["d", "keep"])
        expect(after["d"]).toMatchObject({ end: 500 })
        expect(after["keep"]).toMatchObject({ end: 100 })
      }),
    180_000
  )
})
