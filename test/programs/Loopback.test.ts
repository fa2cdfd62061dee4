/**
 * The loopback reference of `cxlog bench` (src/programs/bench/Loopback.ts) waits on a child sender:
 * one that fails to start fails the measurement with a typed error naming what it waited for,
 * instead of hanging the bench.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { measureLoopback } from "../../src/programs/bench/Loopback.js"

/** Far above a measurement of a few MiB (or the failure of a child that cannot start); a hung one fails here. */
const BOUND_MS = 20_000

const bounded = <A, E>(measuring: Effect.Effect<A, E>) =>
  measuring.pipe(
    Effect.timeoutFail({
      duration: BOUND_MS,
      onTimeout: () => new Error(`the measurement did not end within ${BOUND_MS} ms`)
    })
  )

describe("the loopback measurement", () => {
  it.live("streams the bytes from its child sender", () =>
    Effect.gen(function*() {
      const figures = yield* bounded(measureLoopback(4 << 20, 64 << 10))
      expect(figures.mBps).toBeGreaterThan(0)
    }))

  it.scopedLive("a sender that cannot start fails it with BenchPeerFailed, naming the sender's connection", () =>
    Effect.gen(function*() {
      // The child inherits this environment: Node refuses to start it (a preload that does not exist).
      const before = process.env["NODE_OPTIONS"]
      yield* Effect.acquireRelease(
        Effect.sync(() => void (process.env["NODE_OPTIONS"] = "--require /nonexistent/cxlog-test-preload.js")),
        () =>
          Effect.sync(() =>
            void (before === undefined ? delete process.env["NODE_OPTIONS"] : (process.env["NODE_OPTIONS"] = before))
          )
      )
      const failure = yield* Effect.flip(bounded(measureLoopback(4 << 20, 64 << 10)))
      expect(failure).toMatchObject({ _tag: "BenchPeerFailed", waitedFor: "the loopback sender's connection" })
      expect(failure.message).toMatch(/exited \(1\) before connecting/)
    }))
})
