/**
 * The per-message ACK latency `cxlog publish --count` reports (and `cxlog bench` compares with
 * the peers'): from the call that handed each measured message over to the ACK of its batch.
 */
import { describe, expect, it } from "@effect/vitest"
import { makeMessageClock } from "../../src/programs/run/MessageClock.js"

describe("MessageClock", () => {
  it("times each measured message from its publish call to its batch's ACK, and none of the warm-up", () => {
    const clock = makeMessageClock()
    clock.measure(10, 4)
    const now = performance.now()
    // Message 9 is the warm-up's: not timed. 10 and 11 were handed over 5 ms before 12 and 13.
    clock.published(9, now - 20)
    clock.published(10, now - 10)
    clock.published(11, now - 10)
    clock.published(12, now - 5)
    clock.published(13, now - 5)
    // A batch of 8-11 acknowledged at `now`, then one of 12-13 a millisecond later.
    const latencies = () => Array.from(clock.latenciesUs(), Math.round)
    clock.acknowledged({ from: 8, count: 4 }, now)
    expect(latencies()).toEqual([10_000, 10_000])
    clock.acknowledged({ from: 12, count: 2 }, now + 1)
    // In message order: the later-published two waited less than the first two.
    expect(latencies()).toEqual([10_000, 10_000, 6_000, 6_000])
  })
})
