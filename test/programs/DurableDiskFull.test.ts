/**
 * A head whose data directory filled up and then had room again (docs/durability.md): its ACK 2
 * publishers are refused while the disk is full, and once space is freed the head's tier starts
 * the topic's writer again by itself — a new ACK 2 publish is acknowledged, without a restart.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { publishWithoutTimeout } from "../helpers/Ack2Publish.js"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { smallTmpfs } from "../helpers/Tmpfs.js"

/** `count` messages of 1 KiB at ACK 2 through the broker at `port`. */
const publishAck2 = (port: number, env: Record<string, string>, count: number) =>
  publishWithoutTimeout(port, env, ["--count", `${count}`, "--message-bytes", "1024"], 60_000)

describe("a data directory that fills up, then has room again", () => {
  it.scopedLive(
    "ACK 2 is refused while it is full, and acknowledged again once space is freed: the writer starts again by itself",
    () =>
      Effect.gen(function*() {
        const dir = yield* smallTmpfs("6m")
        // What takes the room: freed later, as an operator would.
        const filler = join(dir, "filler")
        writeFileSync(filler, new Uint8Array(4 << 20))
        const region = yield* uniqueRegion("diskroom")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", join(dir, "data")], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number

        const full = yield* publishAck2(port, env, 4096)
        expect(full.code).not.toBe(0)
        expect(full.stderr).toContain("durability-unavailable")
        expect(full.stderr).toContain("data directory is full")

        rmSync(filler)
        // The tier starts the writer again within its backoff (1 s, then 2 s, …): a new ACK 2 session is acknowledged.
        let again = yield* publishAck2(port, env, 100)
        for (let tries = 0; again.code !== 0 && tries < 20; tries++) {
          yield* Effect.sleep(1_000)
          again = yield* publishAck2(port, env, 100)
        }
        expect(again.code, again.stderr).toBe(0)
        expect(head.output()).toContain("its writer is started again with a backoff")
        const listed = yield* runCli(["topics", "--topic", "d", "--json"], env)
        expect(JSON.parse(listed.stdout).topics[0].diskCopyStopped).toBeUndefined()
      }),
    120_000
  )
})
