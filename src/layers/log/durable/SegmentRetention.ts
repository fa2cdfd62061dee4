/**
 * Retention: whole old segments are deleted once the stream holds more than `maxBytes`, or once
 * their last write is older than `maxAgeMs`. It runs at every segment roll (in the writer) and
 * when asked (`retain`, the durable tier's periodic pass).
 *
 * Retention is housekeeping: a segment it cannot delete (EACCES, EBUSY, EIO, a directory in its
 * place) is counted and logged — the first failure, then at most one line per
 * RETENTION_WARNING_MS with how many failed since — and tried again at the next pass. That never
 * stops the writer; a failed fsync of the directory after deletions does (`syncDeletions`).
 */
import { Clock, Effect, Metric } from "effect"
import { join } from "node:path"
import type { SegmentIoError } from "../../../services/log/Segments.js"
import { ioRead } from "./SegmentIo.js"
import { indexFileName } from "./SegmentNames.js"
import { type StreamState, wakeWriter } from "./SegmentStream.js"

/** How often a retention failure that keeps coming back is logged again. */
const RETENTION_WARNING_MS = 60_000

const retentionFailed = (s: StreamState, e: SegmentIoError) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    s.retentionFailures++
    const counted = Metric.increment(s.retentionFailuresMetric)
    if (now - s.retentionWarnedAt < RETENTION_WARNING_MS) return counted
    const since = s.retentionWarnedAt === -Infinity
      ? ""
      : ` (${s.retentionFailures} failed passes in the last ${Math.round((now - s.retentionWarnedAt) / 1000)} s)`
    s.retentionWarnedAt = now
    s.retentionFailures = 0
    return Effect.zipRight(
      counted,
      Effect.logWarning(
        `segments: stream ${s.stream}: retention failed: ${e.message}${since}; the writer goes on, retention tries again at its next pass`
      )
    )
  })

/**
 * Makes the pass's deletions durable. A failed directory fsync is a storage error, not
 * housekeeping (after one report, a later fsync may not report the lost writeback again):
 * it stops the writer, as any failed fsync of the stream does.
 */
const syncDeletions = (s: StreamState) =>
  ioRead(s.dir, "fsync", () => s.files.syncDirectory(s.dir)).pipe(
    Effect.tapError((e) =>
      Effect.sync(() => {
        s.failure ??= e
        wakeWriter(s)
      })
    )
  )

/**
 * One retention pass; resolves to the segments deleted. One pass at a time (a roll's, in the
 * writer, and the durable tier's periodic one): two would both take the oldest segment before
 * either drops it, and the second unlink would fail.
 */
export const retain = (s: StreamState): Effect.Effect<number, SegmentIoError> =>
  s.retaining.withPermits(1)(
    Effect.gen(function*() {
      const { maxBytes, maxAgeMs } = s.retention ?? {}
      if (maxBytes === undefined && maxAgeMs === undefined) return 0
      const { files, segments } = s
      let total = 0
      for (const segment of segments) total += segment.bytes
      const now = files.now()
      let deleted = 0
      // Just after a roll the open segment holds no durable record: a crash would leave it empty,
      // and the closed one before it is what shows where the stream ends. Kept until the open one's first sync.
      const keep = s.durable > segments[segments.length - 1]!.base ? 1 : 2
      while (segments.length > keep) {
        const oldest = segments[0]!
        const tooBig = maxBytes !== undefined && total > maxBytes
        const tooOld = maxAgeMs !== undefined && now - oldest.modifiedAt > maxAgeMs
        if (!tooBig && !tooOld) break
        // Already gone (removed by hand): it is deleted all the same.
        const unlinked = yield* ioRead(oldest.path, "unlink", () => files.unlink(oldest.path)).pipe(
          Effect.catchIf((e) => e.code === "ENOENT", () => Effect.void),
          Effect.either
        )
        // It stays the oldest (the stream's first record does not move past it); the deletions before it are still synced.
        if (unlinked._tag === "Left") {
          if (deleted > 0) yield* syncDeletions(s)
          return yield* Effect.fail(unlinked.left)
        }
        yield* Effect.promise(() => files.unlink(join(s.dir, indexFileName(oldest.base))).catch(() => undefined))
        segments.shift()
        total -= oldest.bytes
        deleted++
      }
      if (deleted > 0) yield* syncDeletions(s)
      return deleted
    }).pipe(Effect.tapError((e) => (e.operation === "unlink" ? retentionFailed(s, e) : Effect.void)))
  )
