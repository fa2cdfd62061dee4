/**
 * A mirror's status file (MirrorStatusFile.ts) as `cxlog topics` reads it, without a mirror or
 * NATS: a file that says its mirror runs reads as running while its process runs, and as gone once
 * the process it names has ended, even when a later process took its pid over.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { readMirrorStatuses, writeMirrorStatus } from "../../src/layers/mirror/MirrorStatusFile.js"
import { MirrorStatus } from "../../src/services/mirror/Mirror.js"
import { tempDir } from "../helpers/Processes.js"
import { laterStartTag, startTagOf } from "../helpers/StartTags.js"

/** The status files go to a directory of the test's own while it runs (the variable put back after). */
const privateStatusDir = Effect.flatMap(tempDir("cxlog-mirror-status-file-"), (dir) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const before = process.env["CXLOG_MIRROR_STATUS_DIR"]
      process.env["CXLOG_MIRROR_STATUS_DIR"] = dir
      return { dir, before }
    }),
    ({ before }) =>
      Effect.sync(() => {
        if (before === undefined) delete process.env["CXLOG_MIRROR_STATUS_DIR"]
        else process.env["CXLOG_MIRROR_STATUS_DIR"] = before
      })
  ))

describe("a mirror's status file", () => {
  it.scoped("names its process by pid and start time: a later process under the pid does not keep it running", () =>
    Effect.gen(function*() {
      const { dir } = yield* privateStatusDir
      // A live process other than this one: the test runner that started this fork.
      const pid = process.ppid
      const status = new MirrorStatus({
        topic: "events",
        regionId: "1764000000000",
        stream: "cxlog-events",
        subject: "cxlog.events",
        servers: ["nats://127.0.0.1:4222"],
        consumer: "mirror-cxlog-events",
        pid,
        state: "mirroring",
        mirrored: 10,
        end: 10,
        lagOffsets: 0,
        lagSeconds: 0,
        streamSequence: 10,
        retries: 0,
        updatedAtMs: Date.now()
      })
      writeMirrorStatus(status)
      const file = join(dir, "1764000000000.events.cxlog-events.json")
      const written = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>
      expect(written["startTag"]).toBe(startTagOf(pid))
      expect(readMirrorStatuses("1764000000000")).toMatchObject([{ state: "mirroring", pid }])

      // The mirror's process ended and a later one has its pid: another start time.
      writeFileSync(file, JSON.stringify({ ...written, startTag: laterStartTag(startTagOf(pid)) }))
      expect(readMirrorStatuses("1764000000000")).toMatchObject([{
        state: "gone",
        pid,
        detail: `process ${pid} ended without stopping the mirror (killed, or crashed) while mirroring`
      }])

      // An older build's file names no start time: its pid alone decides.
      const { startTag: _, ...olderBuild } = written
      writeFileSync(file, JSON.stringify(olderBuild))
      expect(readMirrorStatuses("1764000000000")).toMatchObject([{ state: "mirroring", pid }])
    }))
})
