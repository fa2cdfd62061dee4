import { afterEach, describe, expect, it, vi } from "vitest"
import { livenessCache } from "../../src/layers/log/Participants.js"

/** An occurrence carrying no start tag (its claimer knew none): the pid alone decides. */
const UNTAGGED = 1
/** Occurrences of two processes under one pid (start tags 1 and 2 in the bits above the claim count). */
const FIRST_OWNER = (1 << 15) | 1
const LATER_OWNER = (2 << 15) | 1

/** pids whose liveness was checked (`process.kill(pid, 0)`), each reported gone; the clock stands at `clock.now`. */
const scripted = () => {
  const clock = { now: 1_000 }
  const checked: Array<number> = []
  vi.spyOn(performance, "now").mockImplementation(() => clock.now)
  vi.spyOn(process, "kill").mockImplementation(
    ((pid: number) => {
      checked.push(pid)
      throw Object.assign(new Error("no such process"), { code: "ESRCH" })
    }) as typeof process.kill
  )
  return { clock, checked }
}

// Sequencers and appenders keep one cache for their lifetime while readers come and go, each
// with a new pid: the cache must not keep every pid it ever saw.
describe("livenessCache", () => {
  afterEach(() => void vi.restoreAllMocks())

  it("remembers a pid within its window, and forgets pids rather than growing past ~1024", () => {
    const { clock, checked } = scripted()
    const alive = livenessCache()
    const first = 4_000_000
    expect(alive(first, UNTAGGED)).toBe(false)
    expect(alive(first, UNTAGGED)).toBe(false)
    expect(checked).toEqual([first])
    // 2000 more pids, all within the same window.
    for (let i = 1; i <= 2_000; i++) alive(first + i, UNTAGGED)
    checked.length = 0
    expect(alive(first, UNTAGGED)).toBe(false)
    expect(checked).toEqual([first])

    // A fresh cache past its window: the stale pids make room, the one checked within it stays known.
    const later = livenessCache()
    for (let i = 0; i < 1_023; i++) later(5_000_000 + i, UNTAGGED)
    clock.now += 250
    later(6_000_000, UNTAGGED)
    clock.now += 50
    later(7_000_000, UNTAGGED)
    checked.length = 0
    later(6_000_000, UNTAGGED)
    later(7_000_000, UNTAGGED)
    later(5_000_000, UNTAGGED)
    expect(checked).toEqual([5_000_000])
  })

  it("takes two processes under one pid for two owners: each is checked on its own", () => {
    const { checked } = scripted()
    const alive = livenessCache()
    alive(4_000_000, FIRST_OWNER)
    alive(4_000_000, LATER_OWNER)
    alive(4_000_000, FIRST_OWNER)
    expect(checked).toEqual([4_000_000, 4_000_000])
  })
})
