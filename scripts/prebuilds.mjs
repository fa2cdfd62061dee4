/**
 * `npm run prebuilds`: the addon built for every platform the package ships a binary for
 * (prebuilds/linux-x64, prebuilds/linux-arm64), and prebuilds/manifest.json recording the
 * sources each was built from (a test fails when they changed and this was not run again).
 *
 * Why our own script rather than prebuildify + node-gyp-build: the addon is one C++ file using
 * Node-API only (NAPI_VERSION 8), so one binary per architecture serves every Node the package
 * supports, and a build is one compiler call with binding.gyp's own defines and flags (read
 * from it, so they live in one place). Node-API's headers are the same on every architecture:
 * those of the Node running this script serve the cross build too, so nothing is downloaded.
 * The loader (src/native/Native.ts) picks the binary by `process.platform`-`process.arch`,
 * which is all node-gyp-build would add. arm64 is cross-compiled with Debian's
 * g++-aarch64-linux-gnu (installed here with apt-get when missing).
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { addonSourceDigest } from "./addon-sources.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const require = createRequire(join(root, "package.json"))

/** The platforms shipped, with the compiler for each and the Debian package that has it. */
const TARGETS = [
  { platform: "linux", arch: "x64", compiler: "g++", debian: "g++" },
  { platform: "linux", arch: "arm64", compiler: "aarch64-linux-gnu-g++", debian: "g++-aarch64-linux-gnu" }
]

const run = (command, args) => {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.error?.message ?? `exit ${result.status}`})`)
  }
}

const hasCommand = (command) => spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0

const ensureCompiler = (target) => {
  if (hasCommand(target.compiler)) return
  console.log(`prebuild: ${target.compiler} is missing; installing Debian's ${target.debian}`)
  run("apt-get", ["install", "-y", "--no-install-recommends", target.debian])
}

const build = (target) => {
  const gyp = JSON.parse(readFileSync(join(root, "binding.gyp"), "utf8")).targets[0]
  const nodeHeaders = join(dirname(dirname(process.execPath)), "include", "node")
  if (!existsSync(join(nodeHeaders, "node_api.h"))) throw new Error(`no Node-API headers at ${nodeHeaders}`)
  const out = join(root, "prebuilds", `${target.platform}-${target.arch}`, `${gyp.target_name}.node`)
  mkdirSync(dirname(out), { recursive: true })
  ensureCompiler(target)
  run(target.compiler, [
    "-shared",
    "-fPIC",
    "-s",
    ...gyp.cflags_cc,
    ...gyp.defines.map((d) => `-D${d}`),
    `-DNODE_GYP_MODULE_NAME=${gyp.target_name}`,
    `-I${nodeHeaders}`,
    `-I${require("node-addon-api").include_dir}`,
    ...gyp.sources.map((s) => join(root, s)),
    "-o",
    out,
    ...gyp.libraries
  ])
  return { file: `prebuilds/${target.platform}-${target.arch}/${gyp.target_name}.node`, bytes: statSync(out).size }
}

const digest = addonSourceDigest()
const binaries = TARGETS.map(build)
writeFileSync(
  join(root, "prebuilds", "manifest.json"),
  JSON.stringify({ sources: digest, binaries: binaries.map((b) => b.file) }, null, 2) + "\n"
)
for (const b of binaries) console.log(`prebuild: ${b.file} (${b.bytes} bytes)`)
