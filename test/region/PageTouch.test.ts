/**
 * A process's first read of a region's pages against its second (layers/region/PageTouch.ts):
 * every page of the area is read, and what the figures say. No figure is held to a speed here:
 * what a host charges is what `cxlog selfcheck` reports.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  describePageTouch,
  pageTouchCost,
  TOUCH_UNIT_BYTES,
  touchUnits,
  writeTouchPattern
} from "../../src/layers/region/PageTouch.js"

const AREA = { offset: 64 * TOUCH_UNIT_BYTES, length: 256 * TOUCH_UNIT_BYTES }
const WARM = { offset: 0, length: AREA.offset }

/** The fold of each unit's first byte, read here on its own: what `touchUnits` must return for the area. */
const expectedTouchSum = (bytes: Uint8Array) => {
  let sum = 0
  for (let unit = 0; unit < AREA.length / TOUCH_UNIT_BYTES; unit++) {
    sum = (sum * 31 + bytes[AREA.offset + unit * TOUCH_UNIT_BYTES]!) >>> 0
  }
  return sum
}

const written = () => {
  const bytes = new Uint8Array(AREA.offset + AREA.length + TOUCH_UNIT_BYTES)
  writeTouchPattern(bytes, AREA.offset, AREA.length)
  return bytes
}

describe("PageTouch", () => {
  it("reads the first byte of every 4 KiB unit of the area, in order: the sum of what was written there", () => {
    const bytes = written()
    const expected = expectedTouchSum(bytes)
    // The pattern was written: its units read otherwise than zeroed ones.
    expect(expected).not.toBe(expectedTouchSum(new Uint8Array(bytes.length)))
    expect(touchUnits(bytes, AREA.offset, AREA.length).sum).toBe(expected)
    // A byte past each unit's start, one unit short, or one unit changed: another sum.
    expect(touchUnits(bytes, AREA.offset + 1, AREA.length).sum).not.toBe(expected)
    expect(touchUnits(bytes, AREA.offset, AREA.length - TOUCH_UNIT_BYTES).sum).not.toBe(
      expected
    )
    bytes[AREA.offset + 200 * TOUCH_UNIT_BYTES] ^= 0x40
    expect(touchUnits(bytes, AREA.offset, AREA.length).sum).not.toBe(expected)
  })

  it("the cost counts the area's units, reads it whole on its first pass, and never reads the area to warm up", () => {
    const bytes = written()
    const expected = expectedTouchSum(bytes)
    // Every index read, in order (through a proxy: the loop reads `bytes[at]`).
    const reads: Array<number> = []
    const watched = new Proxy(bytes, {
      get: (target, key) => {
        if (typeof key === "string" && /^\d+$/.test(key)) reads.push(Number(key))
        return Reflect.get(target, key)
      }
    })
    const cost = pageTouchCost(watched, AREA, WARM)
    const firstInArea = reads.findIndex((at) => at >= AREA.offset)
    expect(reads.slice(0, firstInArea).every((at) => at < WARM.length)).toBe(true)
    expect(firstInArea).toBeGreaterThan(0)
    expect(reads[firstInArea]).toBe(AREA.offset)
    expect(cost.units).toBe(256)
    expect(cost.sum).toBe(expected)
    expect(Number.isFinite(cost.firstNsPerUnit) && cost.firstNsPerUnit > 0).toBe(true)
    expect(Number.isFinite(cost.againNsPerUnit) && cost.againNsPerUnit > 0).toBe(true)
  })

  it("says what to do only when the first read is a hypervisor's trap and the pages are 4 KiB", () => {
    const cheap = { units: 2048, firstNsPerUnit: 310, againNsPerUnit: 24, sum: 0 }
    const trapping = { ...cheap, firstNsPerUnit: 8900 }
    expect(describePageTouch(cheap, false)).toBe(
      "first read 0.31 µs a 4 KiB page, again 0.024 µs (2048 pages, in a process that had just mapped the region)"
    )
    expect(describePageTouch(trapping, false)).toMatch(
      /^first read 8\.90 µs a 4 KiB page, .*: each process pays that once for each page of the log it reads; 2 MiB pages cut it \(docs\/operations\.md, "Huge pages for the region"\)$/
    )
    expect(describePageTouch(trapping, true)).toMatch(/each process pays that once for each page of the log it reads$/)
  })
})
