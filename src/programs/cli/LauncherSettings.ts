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

export const HEAP_GROWTH_SETTING = {
  env: "CXLOG_HEAP_GROWING_PERCENT",
  default: 100,
  min: 0,
  description:
    "how far V8 lets a cxlog process's heap grow past what its last full collection kept, in percent, before the next (V8's --heap-growing-percent); 0 leaves it to V8's own estimate"
} as const

/** The heap growth `given` names (the default when unset), or why it names none. */
export const heapGrowingPercent = (given: string | undefined): number | string => {
  if (given === undefined || given === "") return HEAP_GROWTH_SETTING.default
  return /^\d{1,6}$/.test(given)
    ? Number(given)
    : `${HEAP_GROWTH_SETTING.env} must be a whole number of percent (0 leaves it to V8), not ${JSON.stringify(given)}`
}

/** What the launcher reads from its environment: the cache mode, the user's cache directory, whether Node runs with extra flags, and the heap's growth. */
export const launcherEnvironment = () => {
  const env = process.env
  const given = env[CODE_CACHE_SETTING.env] ?? CODE_CACHE_SETTING.default
  const cacheHome = env["XDG_CACHE_HOME"] !== undefined && env["XDG_CACHE_HOME"] !== ""
    ? env["XDG_CACHE_HOME"]
    : join(homedir(), ".cache")
  return {
    mode: given as CodeCacheMode,
    cacheHome,
    nodeOptions: env["NODE_OPTIONS"] ?? "",
    heapGrowth: heapGrowingPercent(env[HEAP_GROWTH_SETTING.env])
  }
}
