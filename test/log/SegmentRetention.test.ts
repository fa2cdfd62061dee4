/**
 * Segment retention is housekeeping: a segment it cannot delete never stops the stream's
 * writer. A directory in a segment's place makes its unlink fail (EISDIR, for root too): the
 * writer keeps making appends durable (ACK 2 goes on), the failure is counted and logged once
 * rather than at every pass, and once the obstacle is gone the next pass catches up.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, Metric } from "effect"
import { mkdirSync, readdirSync, rmdirSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import * as SegmentsLayers from "../../src/layers/log/Segments.js"
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
      const logger = Logger.make(({ message }) => warnings.push(Array.isArray(message) ? message.join(" ") : String(message)))
      const maxBytes = 3000
      yield* Effect.scoped(Effect.gen(function*() {
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
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
    }))
})
