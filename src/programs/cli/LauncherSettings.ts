/**
 * The launcher's settings (Launcher.ts). The launcher runs before the bundle and without
 * Effect, so they are declared plainly and read here; `cxlog config` shows them through
 * programs/ProgramSettings.ts.
 */
import { homedir } from "node:os"
import { join } from "node:path"

export const CODE_CACHE_SETTING = {
  env: "CXLOG_CODE_CACHE",
  values: ["on", "off", "write", "report"],
  default: "on",
  description:
    "V8's code cache for the CLI: off compiles from source, write rewrites this command's cache, report says whether it was used"
} as const

export type CodeCacheMode = typeof CODE_CACHE_SETTING.values[number]

/** What the launcher reads from its environment: the cache mode, the user's cache directory, and whether Node runs with extra flags. */
export const launcherEnvironment = () => {
  const env = process.env
  const given = env[CODE_CACHE_SETTING.env] ?? CODE_CACHE_SETTING.default
  const cacheHome = env["XDG_CACHE_HOME"] !== undefined && env["XDG_CACHE_HOME"] !== ""
    ? env["XDG_CACHE_HOME"]
    : join(homedir(), ".cache")
  return {
    mode: given as CodeCacheMode,
    cacheHome,
    nodeOptions: env["NODE_OPTIONS"] ?? ""
  }
}
