/**
 * The loopback reference of `cxlog bench` (src/programs/bench/Loopback.ts) streams between two
 * children, neither of them the bench's process, and waits on them: a sender that fails to start
 * fails the measurement with a typed error naming what it waited for, instead of hanging the bench.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { readFileSync } from "node:fs"
import { measureLoopback } from "../../src/programs/bench/Loopback.js"
import { childrenOf } from "../helpers/CliRoles.js"
import { until } from "../helpers/ServeProcess.js"

/** Far above a measurement of a few MiB (or the failure of a child that cannot start); a hung one fails here. */
const BOUND_MS = 20_000

/** Whether process `pid` has exited (gone, or a zombie its parent has not reaped yet), read without the event loop. */
const exited = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")
  } catch {
    return true
  }
}

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

  it.live("is received by a child of its own: the stream ends while this process's thread is held", () =>
    Effect.gen(function*() {
      const measuring = yield* Effect.fork(bounded(measureLoopback(64 << 20, 64 << 10)))
      // The sender starts once the receiver listens: then both are running.
      yield* until(
        () => childrenOf(process.pid, "-e").length === 1 && childrenOf(process.pid, "loopback-send").length === 1,
        BOUND_MS,
        () => "the receiver and the sender to start"
      )
      const [receiver] = childrenOf(process.pid, "-e")
      // Held here, this process reads no socket: a receiver in it would wait for the thread, and so would the stream.
      const heldUntil = Date.now() + BOUND_MS
      while (!exited(receiver!) && Date.now() < heldUntil) { /* hold the thread */ }
      expect(exited(receiver!)).toBe(true)
      const figures = yield* Fiber.join(measuring)
      expect(figures.mBps).toBeGreaterThan(0)
    }))

  it.scopedLive("a sender that cannot start fails it with BenchPeerFailed, naming the sender's connection", () =>
    Effect.gen(function*() {
      // The sender inherits this environment: Node refuses to start it (a preload that does not exist). The
      // receiver, plain Node, gets none of it: the failure is the sender's.
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
