/**
 * The publisher checks a message's size with one comparison against a bound per lane, made from
 * its limits by `largestFirstMessage`; a bound one byte too large would take a message the topic
 * refuses. It is `firstRecordBytes`'s exact inverse.
 */
import { describe, expect, it } from "@effect/vitest"
import { firstRecordBytes, largestFirstMessage } from "../../src/layers/net/BatchPayload.js"

describe("the largest message whose first record fits a batch", () => {
  it("fits, and one byte more does not, for every batch size up to 70 000 bytes and some far larger", () => {
    const sizes = [...Array.from({ length: 70_000 - 24 }, (_, i) => 24 + i), 1 << 20, 64 << 20, 2 ** 31 - 8]
    const wrong = sizes.filter((batchBytes) => {
      const bytes = largestFirstMessage(batchBytes)
      return !(firstRecordBytes(bytes) <= batchBytes && firstRecordBytes(bytes + 1) > batchBytes)
    })
    expect(wrong).toEqual([])
  })

  it("no limit: no bound", () => {
    expect(largestFirstMessage(Infinity)).toBe(Infinity)
  })
})
