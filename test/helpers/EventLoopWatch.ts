/**
 * Names a test that holds its process's event loop for long (a setup file: vitest.config.ts).
 * Vitest's worker answers its runner on that loop within a fixed 60 s; a test holding it longer
 * fails the run with "Timeout calling onTaskUpdate", naming no test, while every test passes. This
 * says which test it was, and does so from 20 s on, before a slower machine reaches the bound
 * (docs/testing.md, "a test never holds its process").
 */
import { expect } from "@effect/vitest"

/** How long a held loop goes unsaid; a third of Vitest's bound. */
const SAID_FROM_MS = 20_000
const TICK_MS = 1_000

// Files share their worker's modules and run this file each (`isolate: false`): one watch a worker.
const watching = Symbol.for("cxlog/test/EventLoopWatch")
const worker = globalThis as { [watching]?: true }
if (worker[watching] === undefined) {
  worker[watching] = true
  let last = Date.now()
  setInterval(() => {
    const now = Date.now()
    const held = now - last - TICK_MS
    last = now
    if (held < SAID_FROM_MS) return
    const { currentTestName, testPath } = expect.getState()
    console.warn(
      `test ${testPath ?? "?"} > ${currentTestName ?? "?"} held its process's event loop for ${
        Math.round(held / 1000)
      } s: Vitest's worker fails the run past 60 s; await a process (test/helpers/RunProcess.ts) or yield between parts of long work`
    )
  }, TICK_MS).unref()
}
