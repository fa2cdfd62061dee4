import { defineConfig } from "vitest/config"
import LongestFirst from "./test/helpers/LongestFirst.js"

export default defineConfig({
  test: {
    // The example apps carry their own tests (examples/*/test), run with the rest.
    include: ["test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
    pool: "forks",
    // A fork runs file after file with its modules loaded once: loading effect and cxlog's sources
    // again for each file, in a fork of its own, was a fifth of the suite's CPU (docs/testing.md).
    // So a test file may not count on a fresh process (one that needs one starts it: test/fixtures)
    // and puts back what it changes that outlives it (test/helpers/SharedLayer.ts).
    isolate: false,
    // Two cores on CI. A multi-process test spends much of its time waiting on its processes
    // (a lease, a bound, a restart): a third file in flight keeps both cores busy meanwhile.
    // All three forks from start to end: with fewer kept (minWorkers 1) and forks shared between
    // files, a run here ended with the pool's "Terminating worker thread" as it let forks go.
    maxWorkers: 3,
    minWorkers: 3,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ["test/helpers/globalSetup.ts"],
    // Names a test that holds its worker's event loop near Vitest's 60 s bound for the worker's answers.
    setupFiles: ["test/helpers/EventLoopWatch.ts"],
    sequence: { sequencer: LongestFirst }
  }
})
