/**
 * Recovery from a data directory two heads wrote, through the bundled CLI (real processes): a
 * head persists an ACK 2 topic with a standby given the same directory; the head is SIGKILLed
 * mid-stream and the standby takes over and carries the stream on; more is published at ACK 2;
 * then the standby and the broker are SIGKILLed and the region unlinked. `cxlog head --recover
 * DIR` rebuilds the whole log — both heads' parts, every message at its offset, as the region
 * served it before the crash — and a new publisher session is appended after it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, loseRegion, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

describe("recovery after a head takeover", () => {
  it.scopedLive(
    "the standby's part of the stream is recovered with the first head's: every message at its offset, in order",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-takeover-")
        const first = yield* uniqueRegion("takeover1")
        const env = { ...smallRegionEnv, CXLOG_REGION: first }
        const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
        yield* head.event("ready")
        const standby = yield* forkCli(["head", "--standby", "--data-dir", dir], env)
        yield* standby.event("standby")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const publish = (count: number, at = port, region = first) =>
          Effect.tap(
            runCli([
              "publish",
              "--brokers",
              `127.0.0.1:${at}`,
              "--topic",
              "d",
              "--count",
              `${count}`,
              "--message-bytes",
              "200",
              "--ack",
              "2"
            ], { ...env, CXLOG_REGION: region }),
            (r) => expect(r.code, `${r.stderr}\nbroker: ${broker.output()}`).toBe(0)
          )
        yield* publish(3000)
        head.child.kill("SIGKILL")
        yield* head.exited
        expect(yield* standby.event("ready", 30_000)).toMatchObject({ epoch: 2, pid: standby.pid })
        // The standby's tier carries the stream on: all of this is acknowledged at level 2 from its fdatasyncs.
        yield* publish(3000)
        // The log as the region serves it (its recycled part from disk, as a local reader given the directory reads it).
        const read = (region: string, limit = 6000) =>
          Effect.map(
            runCli(["subscribe", "--topic", "d", "--format", "json", "--from", "0", "--limit", `${limit}`], {
              ...env,
              CXLOG_REGION: region,
              CXLOG_DATA_DIR: dir
            }),
            (r) => {
              expect(r.code, r.stderr).toBe(0)
              return r.stdout.trim().split("\n")
            }
          )
        const before = yield* read(first)
        expect(before).toHaveLength(6000)
        expect(before.map((l) => (JSON.parse(l) as { offset: number }).offset)).toEqual(
          Array.from({ length: 6000 }, (_, i) => i)
        )
        yield* loseRegion(first, standby, broker)

        const second = yield* uniqueRegion("takeover2")
        const recovered = yield* forkCli(["head", "--recover", dir], { ...env, CXLOG_REGION: second })
        yield* recovered.event("ready")
        expect(recovered.output()).toContain("6000 messages")
        expect(yield* read(second)).toEqual(before)
        // The log goes on after it: a new session (its epoch past both heads' sessions') is appended at the end, persisted.
        const broker2 = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], { ...env, CXLOG_REGION: second })
        yield* publish(1000, (yield* broker2.event("listening"))["port"] as number, second)
        const after = yield* read(second, 7000)
        expect(after.slice(0, 6000)).toEqual(before)
        expect(after.map((l) => (JSON.parse(l) as { offset: number }).offset)).toEqual(
          Array.from({ length: 7000 }, (_, i) => i)
        )
      }),
    180_000
  )
})
