import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig, type Plugin } from "vitest/config"
import LongestFirst from "./test/helpers/LongestFirst.js"

const root = dirname(fileURLToPath(import.meta.url))
const sources = join(root, "src")
const built = join(root, "dist", "src")

/**
 * The tests import the package's modules as `../../src/….js`; they get the build of them that
 * `npm test` makes first (dist/src, what the package ships, and what the CLI and the examples'
 * `import … from "cxlog"` run), loaded by Node itself. Through Vite's transform every test file
 * loaded some hundreds of modules again in its own process: a second and a half of CPU per file,
 * a fifth of the suite's.
 */
const builtSources: Plugin = {
  name: "cxlog-built-sources",
  enforce: "pre",
  resolveId(source, importer) {
    if (importer === undefined || !source.startsWith(".") || !source.endsWith(".js")) return null
    const target = resolve(dirname(importer), source)
    return target.startsWith(`${sources}/`) ? join(built, relative(sources, target)) : null
  }
}

export default defineConfig({
  plugins: [builtSources],
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
    sequence: { sequencer: LongestFirst },
    server: { deps: { external: [built] } }
  }
})
