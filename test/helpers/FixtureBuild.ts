/**
 * The test fixtures (test/fixtures/*.ts) as the processes of multi-process tests start them: built
 * once per test run into plain ES modules (one file per fixture, the code they share in common
 * chunks), so a fixture process loads compiled JavaScript instead of compiling the sources it
 * imports at every start (under tsx that cost each process seconds of CPU, and a test starts
 * dozens). The build lives inside the checkout (`.fixtures-build/RUN`), where the package is
 * found from a module's own path as it is from dist/ (src/PackageRoot.ts: the addon, the CLI).
 */
import { build } from "esbuild"
import { existsSync, readdirSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const sources = join(root, "test", "fixtures")
const builds = join(root, ".fixtures-build")
/** Set by the run's setup for every test process: where this run's fixtures are built. */
const BUILD_DIR_ENV = "CXLOG_TEST_FIXTURES"

/** Builds every fixture for test run `run`; returns the directory that holds them. */
export const buildFixtures = async (run: string): Promise<string> => {
  const outdir = join(builds, run)
  await build({
    entryPoints: readdirSync(sources).filter((f) => f.endsWith(".ts")).map((f) => join(sources, f)),
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning",
    // Packages written as CommonJS call `require`, which an ES module has not: give them one.
    banner: {
      js:
        "import { createRequire as __fixtureRequire } from \"node:module\"; const require = __fixtureRequire(import.meta.url);"
    }
  })
  process.env[BUILD_DIR_ENV] = outdir
  return outdir
}

/** Removes the fixtures built for `run` (at its teardown, or once a later run found it dead). */
export const removeFixtureBuild = (run: string): void => rmSync(join(builds, run), { recursive: true, force: true })

/** The built module of fixture `name` (test/fixtures/NAME.ts), to run with plain `node`. */
export const fixtureEntry = (name: string): string => {
  const dir = process.env[BUILD_DIR_ENV]
  if (dir === undefined) {
    throw new Error(`${BUILD_DIR_ENV} is not set: the fixtures are built by the test run's setup (vitest.config.ts)`)
  }
  const entry = join(dir, `${name}.mjs`)
  if (!existsSync(entry)) throw new Error(`no built fixture ${name} in ${dir} (test/fixtures/${name}.ts?)`)
  return entry
}
