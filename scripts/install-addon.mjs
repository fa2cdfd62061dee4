/**
 * npm's install step for the package: builds the native addon from source with node-gyp.
 */
import { spawnSync } from "node:child_process"

const build = spawnSync("node-gyp", ["rebuild"], { stdio: "inherit", shell: process.platform === "win32" })
process.exit(build.status ?? 1)
