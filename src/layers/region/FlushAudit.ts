/**
 * Test-only check of the non-coherent publication rule: before a PBR or GOI commit word is
 * written, every byte of its record must have been written back. The region's flush log
 * records each `publish` range; at each commit the audit takes the ranges flushed since the
 * previous commit and verifies they cover the record. Give one audit to the Appender and
 * Sequencer layers of a process (their `flushAudit` option). It also tallies which cache-line
 * instruction every publish and invalidate ran, so a test can see that invalidation evicts.
 */
import { Effect, type Scope } from "effect"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"

export interface FlushAudit {
  /**
   * Called right before a commit word: every range of the record (`ranges` holds offset,
   * length pairs) must have been flushed since the previous commit.
   */
  readonly beforeCommit: (what: string, ranges: ReadonlyArray<number>) => void
  /** Commits checked so far. */
  readonly checked: () => number
  /** Commits whose record was not (fully) flushed first. */
  readonly violations: () => ReadonlyArray<string>
  /** How many publish and invalidate calls ran each instruction so far. */
  readonly instructions: () => {
    readonly publish: Readonly<Record<string, number>>
    readonly invalidate: Readonly<Record<string, number>>
  }
}

const covered = (ranges: Array<number>, offset: number, length: number): boolean => {
  const spans: Array<[number, number]> = []
  for (let i = 0; i + 1 < ranges.length; i += 2) spans.push([ranges[i]!, ranges[i]! + ranges[i + 1]!])
  spans.sort((a, b) => a[0] - b[0])
  let reached = offset
  for (const [start, end] of spans) {
    if (start > reached) break
    reached = Math.max(reached, end)
    if (reached >= offset + length) return true
  }
  return reached >= offset + length
}

/** Starts recording the region's flushes until the scope closes. Only meaningful with `coherence: "non-coherent"`. */
export const makeFlushAudit = (region: CxlMemoryShape): Effect.Effect<FlushAudit, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      region.flushLog.start({ invalidations: true })
      let checked = 0
      const violations: Array<string> = []
      const used = { publish: {} as Record<string, number>, invalidate: {} as Record<string, number> }
      /** Publish ranges since the previous commit, as (offset, length) pairs. */
      let flushed: Array<number> = []
      const drain = () => {
        for (const op of region.flushLog.takeOps()) {
          used[op.path][op.instruction] = (used[op.path][op.instruction] ?? 0) + 1
          if (op.path === "publish") flushed.push(op.offset, op.length)
        }
      }
      return {
        beforeCommit: (what: string, ranges: ReadonlyArray<number>) => {
          checked++
          drain()
          const since = flushed
          flushed = []
          for (let i = 0; i + 1 < ranges.length; i += 2) {
            if (covered(since, ranges[i]!, ranges[i + 1]!)) continue
            violations.push(`${what} [${ranges[i]}, +${ranges[i + 1]}) committed before it was flushed`)
            return
          }
        },
        checked: () => checked,
        violations: () => violations,
        instructions: () => {
          drain()
          return used
        }
      }
    }),
    () => Effect.sync(() => region.flushLog.stop())
  )
