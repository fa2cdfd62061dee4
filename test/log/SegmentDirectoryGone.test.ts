/**
 * A data directory removed (`rm -r`) or moved away while a stream is open: its open file takes
 * writes and fdatasyncs as before, but they reach no file the directory holds, so no restart or
 * recovery finds them. The durable frontier must not move over them (an ACK 2 for a record on
 * no disk): the writer stops with a typed error, and a stream opened again starts in a new
 * directory. Run on the local disk (where an open descriptor outlives its name) and on the
 * in-process disk (which keeps an open file's bytes the same way).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { renameSync, rmSync } from "node:fs"
import { join } from "node:path"
import * as SegmentsLayers from "../../src/layers/log/durable/Segments.js"
import { makeMemoryDisk } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import type { SegmentsShape } from "../../src/services/log/Segments.js"
import { tempDir } from "../helpers/Processes.js"

interface Backend {
  readonly segments: SegmentsShape
  /** Removes the data directory and everything in it, as `rm -r` does. */
  readonly removeAll: () => void
  /** Moves the stream's directory out of the data directory, as `mv` does. */
  readonly moveAway: (stream: string) => void
}

const backends: ReadonlyArray<{ readonly label: string; readonly make: Effect.Effect<Backend, never, Scope.Scope> }> = [
  {
    label: "local disk",
    make: Effect.flatMap(tempDir("cxlog-segments-gone-"), (root) => {
      const directory = join(root, "data")
      return Effect.map(SegmentsLayers.make({ directory }), (segments) => ({
        segments,
        removeAll: () => rmSync(directory, { recursive: true, force: true }),
        moveAway: (stream) => renameSync(join(directory, stream), join(root, `${stream}.moved`))
      }))
    })
  },
  {
    label: "in-process disk",
    make: Effect.suspend(() => {
      const disk = makeMemoryDisk()
      return Effect.map(SegmentsMemoryLayers.makeMemory(disk, "/data"), (segments) => ({
        segments,
        removeAll: () => {
          for (const path of [...disk.files.keys()]) if (path.startsWith("/data/")) disk.files.delete(path)
          for (const dir of [...disk.dirs]) if (dir.startsWith("/data")) disk.dirs.delete(dir)
        },
        moveAway: (stream) => {
          for (const path of [...disk.files.keys()].filter((p) => p.startsWith(`/data/${stream}/`))) {
            disk.files.set(`/moved${path.slice("/data".length)}`, disk.files.get(path)!)
            disk.files.delete(path)
          }
          disk.dirs.delete(`/data/${stream}`)
        }
      }))
    })
  }
]

const record = (i: number) => Uint8Array.from({ length: 64 }, (_, k) => (i * 7 + k) & 255)

for (const backend of backends) {
  describe(`a data directory gone while a stream is open: ${backend.label}`, () => {
    for (const how of ["removed", "moved away"] as const) {
      it.scopedLive(`${how}: records appended after it never count as durable; the writer stops with SegmentIoError, and the stream opened again starts anew`, () =>
        Effect.gen(function*() {
          const b = yield* backend.make
          yield* Effect.scoped(Effect.gen(function*() {
            const log = yield* b.segments.open("topic-t")
            for (let i = 0; i < 5; i++) log.tryAppend(record(i))
            expect(yield* log.awaitDurable(5, 5_000)).toBe(5)
            if (how === "removed") b.removeAll()
            else b.moveAway("topic-t")
            for (let i = 5; i < 10; i++) log.tryAppend(record(i))
            const waited = yield* Effect.either(log.awaitDurable(10, 5_000))
            expect(waited._tag === "Left" && waited.left._tag).toBe("SegmentIoError")
            expect(log.durable()).toBe(5)
            expect(log.failure()?.message).toContain("no longer in the data directory")
          }))
          // Nothing of it is left where it was: opened again, the stream is empty, and takes records.
          yield* Effect.scoped(Effect.gen(function*() {
            const log = yield* b.segments.open("topic-t")
            expect(log.recovery.records).toBe(0)
            log.tryAppend(record(0))
            expect(yield* log.awaitDurable(1, 5_000)).toBe(1)
          }))
        }))
    }
  })
}
