/**
 * What one system call costs (layers/region/SystemCallCost.ts): every call is made and timed,
 * a wake that reached a waiter is counted, and what the figure says. No figure is held to a
 * speed here: what a host charges is what `cxlog selfcheck` reports.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { describeSystemCalls, systemCallCost } from "../../src/layers/region/SystemCallCost.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"

/** A stand-in for a wake that takes at least `ns` of the clock. */
const busyFor = (ns: number) => () => {
  const until = process.hrtime.bigint() + BigInt(ns)
  while (process.hrtime.bigint() < until) {
    // Spinning: the call's cost is its time.
  }
  return 0
}

describe("SystemCallCost", () => {
  it("makes every call of an untimed pass and of each timed pass, and counts what they woke", () => {
    let made = 0
    const cost = systemCallCost(
      () => {
        made++
        return 0
      },
      1000,
      3
    )
    expect(made).toBe(4 * 1000)
    expect(cost).toMatchObject({ calls: 1000, passes: 3, woken: 0 })
    expect(Number.isFinite(cost.nsPerCall) && cost.nsPerCall > 0).toBe(true)
    // A word somebody waited on: every wake that reached a waiter counts, so the figure is refused.
    let left = 2
    expect(systemCallCost(() => (left-- > 0 ? 1 : 0), 10, 1).woken).toBe(2)
  })

  it("times the calls themselves: calls of at least 20 µs each come to at least 20 µs a call", () => {
    const cost = systemCallCost(busyFor(20_000), 20, 2)
    expect(cost.nsPerCall).toBeGreaterThanOrEqual(20_000)
  })

  it.scoped("times a futex wake of a region word nobody waits on, through the addon", () =>
    Effect.gen(function*() {
      const region = yield* CxlMemory
      const cost = systemCallCost(() => region.wake(1 << 19), 200, 2)
      expect(cost.woken).toBe(0)
      expect(Number.isFinite(cost.nsPerCall) && cost.nsPerCall > 0).toBe(true)
    }).pipe(Effect.provide(CxlMemoryLayers.layer({ name: `cxlog-test-syscalls-${process.pid}`, size: 1 << 20 }))))

  it("says what pays a dear call, and nothing more of a cheap one", () => {
    const cheap = { calls: 20_000, passes: 3, nsPerCall: 180, woken: 0 }
    expect(describeSystemCalls(cheap)).toBe(
      "0.18 µs each (a futex wake nobody waits for, the quickest of 3 passes of 20000)"
    )
    expect(describeSystemCalls({ ...cheap, nsPerCall: 1560 })).toBe(
      "1.56 µs each (a futex wake nobody waits for, the quickest of 3 passes of 20000): every wake of a parked " +
        "process, socket read and write pays at least one (docs/operations.md, \"What a system call costs\")"
    )
  })
})
