/**
 * Segment retention is housekeeping: a segment it cannot delete never stops the stream's
 * writer. A directory in a segment's place makes its unlink fail (EISDIR, for root too): the
 * writer keeps making appends durable (ACK 2 goes on), the failure is counted and logged once
 * rather than at every pass, and once the obstacle is gone the next pass catches up. A failed
 * fsync of the directory after deletions is a storage error: it stops the writer, typed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, Metric } from "effect"
import { mkdirSync, readdirSync, rmdirSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import { nodeSegmentFiles, type SegmentFiles } from "../../src/layers/log/durable/SegmentFiles.js"
import { segmentsOver } from "../../src/layers/log/durable/SegmentLog.js"
import * as SegmentsLayers from "../../src/layers/log/durable/Segments.js"
import { segmentRetentionFailures } from "../../src/Metrics.js"
import type { SegmentLog } from "../../src/services/log/Segments.js"
import { tempDir } from "../helpers/Processes.js"

const record = (i: number) => Uint8Array.from({ length: 40 + (i % 13) * 8 }, (_, k) => (i * 7 + k) & 255)

const appendAll = (log: SegmentLog, from: number, to: number) =>
  Effect.gen(function*() {
    for (let i = from; i < to; i++) expect(yield* log.append(record(i), 5_000)).toBe(i)
    return yield* log.awaitDurable(to, 5_000)
  })

const segmentFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith(".seg")).sort().map((n) => join(dir, n))

describe("Segment retention failures", () => {
  it.scopedLive("a segment retention cannot delete leaves the writer running; retention is counted, logged once, and catches up after", () =>
    Effect.gen(function*() {
      const directory = yield* tempDir("cxlog-retention-")
      const segments = yield* SegmentsLayers.make({ directory })
      const stream = `blocked-${process.pid}`
      const dir = join(directory, stream)
      const failures = Metric.tagged(segmentRetentionFailures, "stream", stream)
      const warnings: Array<string> = []
      const logger = Logger.make(({ message }) =>
        warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
      )
      const maxBytes = 3000
      yield* Effect.scoped(
        Effect.gen(function*() {
          const log = yield* segments.open(stream, { segmentBytes: 1024, retention: { maxBytes } })
          yield* appendAll(log, 0, 60)
          // The oldest segment becomes a directory: its unlink fails at every pass from now on.
          const obstacle = segmentFiles(dir)[0]!
          const first = log.first()
          expect(Number(obstacle.slice(-24, -4))).toBe(first)
          rmSync(obstacle)
          mkdirSync(obstacle)

          // Many rolls, each with a failed retention pass: every append still becomes durable.
          expect(yield* appendAll(log, 60, 300)).toBe(300)
          expect(log.failure()).toBeUndefined()
          expect(log.first()).toBe(first)
          const failed = (yield* Metric.value(failures)).count
          expect(failed).toBeGreaterThan(1)
          const said = warnings.filter((w) => w.includes("retention failed"))
          expect(said).toHaveLength(1)
          expect(said[0]).toMatch(new RegExp(`stream ${stream}: retention failed: unlink ${obstacle} failed: EISDIR`))

          // The obstacle removed: the next pass deletes down to the bound, and the stream reads from its new first record.
          rmdirSync(obstacle)
          expect(yield* log.retain()).toBeGreaterThan(0)
          expect(log.first()).toBeGreaterThan(first)
          let held = 0
          for (const f of segmentFiles(dir)) held += statSync(f).size
          expect(held).toBeLessThanOrEqual(maxBytes + 1024)
          let next = log.first()
          yield* log.read(log.first(), (i, bytes) => {
            expect(i).toBe(next++)
            expect(bytes).toEqual(record(i))
          })
          expect(next).toBe(300)
          expect((yield* Metric.value(failures)).count).toBe(failed)
        }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      )
    }))

  it.scopedLive("a directory fsync that fails after a pass deleted a segment (and could not delete the next) stops the writer, typed", () =>
    Effect.gen(function*() {
      const directory = yield* tempDir("cxlog-retention-")
      const stream = `fsync-${process.pid}`
      // "refuse": every segment's unlink fails; "one": the first succeeds, the rest fail, and so
      // does every directory fsync after it.
      let mode: "normal" | "refuse" | "one" = "normal"
      let deleted = 0
      const injected = (operation: string) =>
        Object.assign(new Error(`EIO: injected ${operation} failure`), { code: "EIO" })
      const files: SegmentFiles = {
        ...nodeSegmentFiles,
        unlink: (path) => {
          if (path.endsWith(".seg") && (mode === "refuse" || (mode === "one" && deleted > 0))) {
            return Promise.reject(injected("unlink"))
          }
          if (mode === "one" && path.endsWith(".seg")) deleted++
          return nodeSegmentFiles.unlink(path)
        },
        syncDirectory: (
          dir
        ) => (mode === "one" && deleted > 0 ? Promise.reject(injected("fsync")) : nodeSegmentFiles.syncDirectory(dir))
      }
      const log = yield* segmentsOver(files, directory).open(stream, {
        segmentBytes: 1024,
        retention: { maxBytes: 3000 }
      })
      // Segments pile up while retention cannot delete them (the writer goes on).
      mode = "refuse"
      yield* appendAll(log, 0, 100)
      expect(log.failure()).toBeUndefined()
      expect(segmentFiles(join(directory, stream)).length).toBeGreaterThan(4)

      mode = "one"
      const pass = yield* Effect.either(log.retain())
      expect(deleted).toBe(1)
      expect(pass).toMatchObject({ _tag: "Left", left: { _tag: "SegmentIoError", operation: "fsync", code: "EIO" } })
      // The writer stopped on it: the stream's failure names it, and appends are refused.
      expect(log.failure()).toMatchObject({ _tag: "SegmentIoError", operation: "fsync", code: "EIO" })
      const appended = yield* Effect.either(log.append(record(100), 1_000))
      expect(appended._tag).toBe("Left")
    }))

  it.scopedLive("a roll's retention pass whose directory fsync fails (once: a later fsync reports nothing) stops the writer, typed", () =>
    Effect.gen(function*() {
      const directory = yield* tempDir("cxlog-retention-")
      let armed = false
      let reported = false
      let deleted = 0
      const files: SegmentFiles = {
        ...nodeSegmentFiles,
        unlink: (path) => {
          if (armed && path.endsWith(".seg")) deleted++
          return nodeSegmentFiles.unlink(path)
        },
        // Like a kernel that reports a lost writeback to one fsync only.
        syncDirectory: (dir) => {
          if (!armed || deleted === 0 || reported) return nodeSegmentFiles.syncDirectory(dir)
          reported = true
          return Promise.reject(Object.assign(new Error("EIO: injected fsync failure"), { code: "EIO" }))
        }
      }
      const log = yield* segmentsOver(files, directory).open(`roll-fsync-${process.pid}`, {
        segmentBytes: 1024,
        retention: { maxBytes: 3000 }
      })
      yield* appendAll(log, 0, 60)
      armed = true
      // Appends until the stream stops (a roll's pass deletes a segment and its fsync fails), at most 300 more.
      for (let i = 60; i < 360 && log.failure() === undefined; i++) {
        if ((yield* Effect.either(log.append(record(i), 1_000)))._tag === "Left") break
        yield* Effect.either(log.awaitDurable(i + 1, 1_000))
      }
      expect(reported).toBe(true)
      expect(log.failure()).toMatchObject({ _tag: "SegmentIoError", operation: "fsync", code: "EIO" })
    }))
})
