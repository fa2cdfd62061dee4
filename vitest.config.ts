import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // The example apps carry their own tests (examples/*/test), run with the rest.
    include: ["test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
    pool: "forks",
    // Two cores on CI: multi-process tests already use both.
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ["test/helpers/globalSetup.ts"]
  }
})
