import { defineConfig } from "vitest/config"
import LongestFirst from "./test/helpers/LongestFirst.js"

export default defineConfig({
  test: {
    // The example apps carry their own tests (examples/*/test), run with the rest.
    include: ["test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
    pool: "forks",
    // Two cores on CI. A multi-process test spends much of its time waiting on its processes
    // (a lease, a bound, a restart): a third file in flight keeps both cores busy meanwhile.
    maxWorkers: 3,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ["test/helpers/globalSetup.ts"],
    sequence: { sequencer: LongestFirst }
  }
})
