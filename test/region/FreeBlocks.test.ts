import { describe, expect, it } from "@effect/vitest"
import { FreeBlocks } from "../../src/layers/region/FreeBlocks.js"

describe("FreeBlocks", () => {
  it("gives the lowest free page through adds and deletes in any order, as a plain set would", () => {
    const blocks = new FreeBlocks()
    const reference = new Set<number>()
    let seed = 42
    const random = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return Math.floor((seed / 2 ** 32) * n)
    }
    for (let step = 0; step < 50_000; step++) {
      const page = random(2_000)
      // Mostly adds early on, mostly deletes later: the heap fills with stale entries and is rebuilt.
      if (random(100) < (step < 25_000 ? 60 : 30)) {
        blocks.add(page)
        reference.add(page)
      } else {
        blocks.delete(page)
        reference.delete(page)
      }
      if (step % 7 === 0) {
        const lowest = reference.size === 0 ? undefined : Math.min(...reference)
        expect(blocks.lowest()).toBe(lowest)
        // Taking the lowest, as an allocation does.
        if (lowest !== undefined && random(2) === 0) {
          blocks.delete(lowest)
          reference.delete(lowest)
        }
      }
      expect(blocks.size).toBe(reference.size)
      expect(blocks.has(page)).toBe(reference.has(page))
    }
    expect(new Set(blocks.values())).toEqual(reference)
  })
})
