/**
 * A topic with a copy on disk created while the head runs (docs/durability.md): the create
 * returns once the head's disk writer holds the topic's retention, so a burst published at once
 * — four times the topic's memory, at ACK 2 — is all on disk, none recycled before it got there.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeRemoteTopics } from "../../src/layers/net/TopicsRemote.js"
import { forkCli, runCliWithin, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

describe("a topic with a copy on disk, created at runtime", () => {
  it.scopedLive(
    "its create returns with the disk writer holding it: a burst of four times its memory at ACK 2 is all acknowledged",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-runtime-rf2-")
        const region = yield* uniqueRegion("rf2create")
        const env = { ...smallRegionEnvFor(1), CXLOG_REGION: region }
        // A topic with a copy given at the start too: the head waits for its writer itself, the create does not.
        const head = yield* forkCli(["head", "--data-dir", dir, "--topic", "early:5:2:2"], env)
        yield* head.event("ready")
        expect(head.output()).not.toContain("did not start within")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const { topics } = yield* makeRemoteTopics({ brokers: [{ host: "127.0.0.1", port }], region })

        const memory = 1 << 20
        yield* topics.create({ name: "burst", order: 5, ackLevel: 2, replicationFactor: 2, memory, writers: 1 })
        // Right as the create returns, the writer's durable cursor is there (the head's tier looks only once a second).
        const described = yield* topics.describe("burst")
        expect(described.subscribers.filter((s) => s.durable)).toHaveLength(1)

        const published = yield* runCliWithin(
          [
            "publish",
            "--brokers",
            `127.0.0.1:${port}`,
            "--topic",
            "burst",
            "--count",
            "4096",
            "--message-bytes",
            "1024",
            "--ack",
            "2"
          ],
          env,
          60_000
        )
        expect(published.code, published.stderr).toBe(0)
        expect(head.output()).not.toContain("recycled before they reached the disk")
      }),
    120_000
  )
})
