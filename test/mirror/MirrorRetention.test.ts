/**
 * A mirrored stream read back with docs/mirror.md's reader (nothing but the NATS client) prints
 * the region's order; a mirror stopped reads as stopped in `cxlog topics`, one killed as gone; a
 * mirror that fell behind the region's retention stops with a typed error naming the offsets, and
 * `cxlog topics` says so.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import {
  mirrorArgs,
  mirroredOnce,
  publish,
  skip,
  stopMirror,
  STREAM,
  streamCount,
  suiteTitle,
  TOPIC,
  topicsMirror
} from "../helpers/MirrorCluster.js"
import { until } from "../helpers/ServeProcess.js"

describe.skipIf(skip !== undefined)(suiteTitle("read back, and behind retention"), () => {
  it.scopedLive(
    "docs/mirror.md's reader prints the region's order; a mirror stopped reads as stopped, one killed as gone; a mirror behind retention stops with a typed error naming the offsets, and cxlog topics says so",
    () =>
      Effect.gen(function*() {
        const { cluster, log } = yield* mirroredOnce("mirrorbehind", 100, smallRegionEnv)
        // docs/mirror.md's reader, with nothing but the NATS client: the region's order and values.
        const script = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "scripts", "read-mirror.mjs")
        const read = execFileSync(process.execPath, [script, cluster.urls.join(","), STREAM], {
          encoding: "utf8",
          timeout: 60_000
        })
        const region = yield* runCli(["subscribe", "--topic", TOPIC, "--from", "0", "--limit", "100"], log.env)
        expect(region.code, region.stderr).toBe(0)
        expect(read.split("\n")).toHaveLength(101)
        expect(read).toBe(region.stdout)
        // A mirror killed (SIGKILL) said nothing: it reads as gone, its process named. One stopped (SIGTERM)
        // says so itself: it reads as stopped, not as gone.
        const runningMirror = Effect.gen(function*() {
          const mirror = yield* forkCli(mirrorArgs(cluster), log.env)
          yield* until(
            () => mirror.output().includes("mirroring from offset 100") || mirror.child.exitCode !== null,
            30_000,
            () => `the mirror to run: ${mirror.output()}`
          )
          expect(mirror.child.exitCode, mirror.output()).toBeNull()
          return mirror
        })
        const killed = yield* runningMirror
        killed.child.kill("SIGKILL")
        yield* killed.exited
        expect(yield* topicsMirror(log)).toMatchObject({
          state: "gone",
          mirrored: 100,
          detail: `process ${killed.pid} ended without stopping the mirror (killed, or crashed) while mirroring`
        })
        const stopped = yield* runningMirror
        yield* stopMirror(stopped)
        expect(yield* topicsMirror(log)).toMatchObject({
          state: "stopped",
          mirrored: 100,
          detail: "interrupted: its process was stopped (SIGTERM, SIGINT, SIGHUP) or its caller ended the run"
        })
        expect((yield* runCli(["topics", "describe", TOPIC], log.env)).stdout).toMatch(
          new RegExp(
            `mirror m → stream cxlog-m .*: stopped, mirrored up to offset 100, .*pid ${stopped.pid}: interrupted`
          )
        )
        // Without its consumer the region holds nothing for the mirror: 3 MiB through a 1 MiB Blog.
        const removed = yield* runCli(["consumers", "--topic", TOPIC, "--remove", `mirror-${STREAM}`], log.env)
        expect(removed.code, removed.stderr).toBe(0)
        yield* publish(log, 3_000, 1024)
        const behind = yield* runCli(mirrorArgs(cluster), log.env)
        expect(behind.code).toBe(1)
        expect(behind.stderr).toMatch(
          /the mirror to stream cxlog-m is behind retention: it needs offset 100, the region holds offsets from \d+ on/
        )
        const status = yield* topicsMirror(log)
        expect(status?.state).toBe("behind-retention")
        expect(status?.mirrored).toBe(100)
        const text = yield* runCli(["topics"], log.env)
        expect(text.stdout).toMatch(/mirror m → stream cxlog-m .*: behind-retention, mirrored up to offset 100/)
        expect(yield* streamCount(cluster)).toBe(100)
      }),
    180_000
  )
})
