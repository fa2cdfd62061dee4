/**
 * npm's install step for the package. An installed package uses the prebuilt addon for its
 * platform (prebuilds/<platform>-<arch>, scripts/prebuilds.mjs) when it loads — tried in a child
 * process, so a binary that crashes on load cannot take npm down — and builds from source with
 * node-gyp only when none does. Should that build fail too (no compiler), the install still
 * succeeds: it says what the missing addon disables and how to get it, since the TCP clients
 * and the CLI's remote commands need no addon.
 *
 * A checkout of the repository (it has .git), `--from-source` or CXLOG_BUILD_FROM_SOURCE=true
 * always builds from source, and fails when that fails: a developer changing the C++ wants
 * that build, and CI builds it for each Node it tests.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")

/**
 * CXLOG_BUILD_FROM_SOURCE read as every cxlog switch is (src/Settings.ts, parseSwitch; nothing
 * of the package is built yet to import it from): `1`, `yes` or `TRUE` ask for the build as
 * `true` does, and a value that is none of them stops the install, where it was taken for off.
 */
const buildFromSourceAsked = () => {
  const text = process.env["CXLOG_BUILD_FROM_SOURCE"] ?? ""
  const value = text.toLowerCase()
  if (["true", "1", "yes", "on"].includes(value)) return true
  if (["false", "0", "no", "off", ""].includes(value)) return false
  console.error(`cxlog install: CXLOG_BUILD_FROM_SOURCE: ${text} is not true or false`)
  process.exit(2)
}

const fromSource = process.argv.includes("--from-source") || buildFromSourceAsked() || existsSync(join(root, ".git"))
const platform = `${process.platform}-${process.arch}`
const prebuilt = join(root, "prebuilds", platform, "cxlog_native.node")

const loads = (path) =>
  existsSync(path) &&
  spawnSync(process.execPath, ["-e", `require(${JSON.stringify(path)})`], { stdio: "ignore", timeout: 30_000 })
      .status === 0

if (!fromSource && loads(prebuilt)) process.exit(0)

const build = spawnSync("node-gyp", ["rebuild"], { cwd: root, stdio: fromSource ? "inherit" : "pipe" })
if (build.status === 0) process.exit(0)
if (fromSource) process.exit(build.status ?? 1)

const why = build.error !== undefined
  ? `node-gyp did not run (${build.error.message})`
  : "node-gyp rebuild failed (no C++ toolchain or python3?)"
const prebuiltState = existsSync(prebuilt)
  ? `the prebuilt addon for ${platform} does not load here`
  : `no addon is prebuilt for ${platform}`
console.warn(
  `cxlog: native addon unavailable: ${prebuiltState}, and ${why}. ` +
    "The head, brokers, local publishers and subscribers on a region's host need it; the TCP publisher and subscriber and the CLI's " +
    "remote commands work without it. To build it, install a C++ toolchain and python3, then run `npm rebuild cxlog`."
)
