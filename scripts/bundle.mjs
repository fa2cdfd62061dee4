/**
 * `npm run bundle`: the CLI as one CommonJS file (dist/cxlog.cjs), started by a small launcher
 * (dist/cxlog.mjs, from src/programs/cli/Launcher.ts) from V8's code cache; then this machine's
 * caches (in the user's cache directory, never in dist/), written at exit by every process of a
 * short `cxlog run` (see Launcher.ts). That run needs the addon and /dev/shm: without them the
 * CLI still works, each command writing its own cache when it first succeeds, and this step says so.
 */
import { build } from "esbuild"
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const dist = join(root, "dist")
const require = createRequire(join(root, "package.json"))
const common = { bundle: true, platform: "node", target: "node20", logLevel: "warning" }

/**
 * Modules the CLI imports but never runs, left out of its bundle: every module a bundle holds is
 * evaluated at every start, and these were two fifths of them (335 of 760 for `cxlog --version`).
 * effect's Schema and Arbitrary reach fast-check only to make arbitraries (tests do, from the
 * package, not from this bundle); @effect/cli reaches the yaml, toml and ini parsers only for
 * options read from such files, which cxlog's flags never are. Each is an empty module here: a
 * use would fail loudly (a function that is not one), never silently.
 */
const NEVER_RUN = [
  "node_modules/effect/dist/esm/FastCheck.js",
  "node_modules/yaml/dist/index.js",
  "node_modules/toml/index.js",
  "node_modules/ini/lib/ini.js"
]
const leaveOut = {
  name: "leave-out-never-run",
  setup(b) {
    const files = new Set(NEVER_RUN.map((file) => join(root, file)))
    b.onLoad({ filter: /\.js$/ }, (args) =>
      files.has(args.path)
        ? { contents: args.path.endsWith("FastCheck.js") ? "export {}" : "module.exports = {}", loader: "js" }
        : undefined)
  }
}

await build({
  ...common,
  entryPoints: [join(dist, "src", "programs", "cli.js")],
  format: "cjs",
  outfile: join(dist, "cxlog.cjs"),
  plugins: [leaveOut],
  // The sources are ES modules that find the package from their own URL; the report pages' chart
  // library goes inside the bundle (ChartPage.ts), so the installed CLI needs no uplot package.
  define: {
    "import.meta.url": "__cxlogModuleUrl",
    __CXLOG_UPLOT__: JSON.stringify({
      script: readFileSync(require.resolve("uplot/dist/uPlot.iife.min.js"), "utf8"),
      style: readFileSync(require.resolve("uplot/dist/uPlot.min.css"), "utf8")
    })
  },
  banner: { js: "const __cxlogModuleUrl = require(\"node:url\").pathToFileURL(__filename).href;" }
})
// Read by the launcher as one byte a character (Launcher.ts): esbuild escapes what is not ASCII in
// the code, so only comments still hold some, escaped here too; the hashbang goes, its line kept.
const bundled = join(dist, "cxlog.cjs")
writeFileSync(
  bundled,
  readFileSync(bundled, "utf8")
    .replace(/^#!.*/, "")
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
)
await build({
  ...common,
  entryPoints: [join(dist, "src", "programs", "cli", "Launcher.js")],
  format: "esm",
  outfile: join(dist, "cxlog.mjs"),
  banner: { js: "#!/usr/bin/env node" }
})

if (process.env["CXLOG_CODE_CACHE"] !== "off") {
  const warm = spawnSync(process.execPath, [
    join(dist, "cxlog.mjs"),
    "run",
    "--bytes",
    "8MiB",
    "--remote-subscribers",
    "1"
  ], {
    cwd: root,
    env: { ...process.env, CXLOG_CODE_CACHE: "write" },
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 180_000
  })
  if (warm.status !== 0) {
    const why = warm.error?.message ?? warm.stderr.toString().trim().split("\n").slice(-3).join(" / ")
    console.warn(
      `bundle: no code cache written (a short cxlog run failed: ${why}); the CLI compiles from source until each command writes its own`
    )
  }
}
