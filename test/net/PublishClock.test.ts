/**
 * The clock messages are stamped with at publish (PublishClock.ts): one reading of `Date.now()`
 * for up to STAMPS_PER_READ messages of one synchronous run, read afresh after any wait.
 */
import { afterEach, describe, expect, it, vi } from "@effect/vitest"
import { publishClock, STAMPS_PER_READ } from "../../src/layers/net/PublishClock.js"

/** `Date.now()` as 1, 2, 3, … from here on: each value is one read of the clock. */
const countedClock = () => {
  let reads = 0
  vi.spyOn(Date, "now").mockImplementation(() => ++reads)
  return () => reads
}

describe("the publish clock", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it("one reading for STAMPS_PER_READ stamps of a synchronous run, the next read afresh", async () => {
    // Whatever an earlier run left is forgotten by now.
    await Promise.resolve()
    const reads = countedClock()
    const stamps = Array.from({ length: 2 * STAMPS_PER_READ + 3 }, () => publishClock())
    expect(stamps).toEqual([
      ...Array<number>(STAMPS_PER_READ).fill(1),
      ...Array<number>(STAMPS_PER_READ).fill(2),
      3,
      3,
      3
    ])
    expect(reads()).toBe(3)
  })

  it("a stamp after any wait reads the clock afresh, however few stamps the reading before served", async () => {
    await Promise.resolve()
    const reads = countedClock()
    expect([publishClock(), publishClock()]).toEqual([1, 1])
    await Promise.resolve()
    expect(publishClock()).toBe(2)
    await new Promise((resolve) => setTimeout(resolve, 1))
    expect([publishClock(), publishClock()]).toEqual([3, 3])
    expect(reads()).toBe(3)
  })
})
