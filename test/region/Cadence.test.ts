/**
 * The cadence's grid (Cadence.ts): a delay to the next tick of a period on the wall clock, where
 * the tick a timer was aimed at and reached a little early is not aimed at again.
 */
import { describe, expect, it } from "@effect/vitest"
import { alignedDelayMs, nextTickAfter, tickAtOrBefore, TIMER_EARLY_MS } from "../../src/layers/region/Cadence.js"

describe("alignedDelayMs", () => {
  it("is the time to the next multiple of the period; a full period at an exact tick", () => {
    expect(alignedDelayMs(1_000, 5_250)).toBe(750)
    expect(alignedDelayMs(250, 5_100)).toBe(150)
    expect(alignedDelayMs(1_000, 5_000)).toBe(1_000)
  })

  it("from within TIMER_EARLY_MS of a tick (a timer aimed at it that fired early), the tick after it", () => {
    expect(alignedDelayMs(1_000, 6_000 - TIMER_EARLY_MS)).toBe(1_000 + TIMER_EARLY_MS)
    expect(alignedDelayMs(1_000, 5_999.5)).toBe(1_000.5)
    expect(alignedDelayMs(1_000, 6_000 - TIMER_EARLY_MS - 1)).toBe(TIMER_EARLY_MS + 1)
  })

  it("a period no longer than TIMER_EARLY_MS keeps its own next tick", () => {
    expect(alignedDelayMs(1, 5_000.5)).toBe(0.5)
    expect(alignedDelayMs(TIMER_EARLY_MS, 5_001)).toBe(1)
  })
})

describe("nextTickAfter", () => {
  it("is the next tick's time, the tick after it from within TIMER_EARLY_MS of one", () => {
    expect(nextTickAfter(1_000, 5_250)).toBe(6_000)
    expect(nextTickAfter(1_000, 5_000)).toBe(6_000)
    expect(nextTickAfter(1_000, 6_000 - TIMER_EARLY_MS)).toBe(7_000)
  })
})

describe("tickAtOrBefore", () => {
  it("moves a deadline back to the tick at or before it, while that tick is more than TIMER_EARLY_MS away", () => {
    expect(tickAtOrBefore(500, 6_650, 5_000)).toBe(6_500)
    expect(tickAtOrBefore(500, 6_500, 5_000)).toBe(6_500)
    expect(tickAtOrBefore(500, 5_000 + TIMER_EARLY_MS + 1, 5_000)).toBe(5_000 + TIMER_EARLY_MS + 1)
  })

  it("keeps a deadline whose tick is now, past, or within TIMER_EARLY_MS: it is not brought forward to now", () => {
    expect(tickAtOrBefore(500, 5_400, 5_100)).toBe(5_400)
    expect(tickAtOrBefore(500, 5_600, 5_499)).toBe(5_600)
    expect(tickAtOrBefore(500, Infinity, 5_000)).toBe(Infinity)
  })
})
