/**
 * The launcher's settings (Launcher.ts). The launcher runs before the bundle and without
 * Effect, so they are declared plainly and read here; `cxlog config` shows them through
 * programs/ProgramSettings.ts.
 */
import { homedir } from "node:os"
import { join } from "node:path"
import { type Read, readChoice, readWholeNumber, SET_BUT_EMPTY } from "../../SettingText.js"

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
const heapGrowingPercent = (given: string | undefined): Read<number> => {
  if (given === undefined) return { value: HEAP_GROWTH_SETTING.default }
  const read = readWholeNumber(given, HEAP_GROWTH_SETTING.min)
  return "value" in read ? read : {
    problem: `${HEAP_GROWTH_SETTING.env} must be a whole number of percent (0 leaves it to V8), not ${
      JSON.stringify(given)
    }`
  }
}

/** The code cache's mode `given` names (the default when unset), or why it names none. */
const codeCacheMode = (given: string | undefined): Read<CodeCacheMode> => {
  if (given === undefined) return { value: CODE_CACHE_SETTING.default }
  const read = readChoice(given, CODE_CACHE_SETTING.values)
  return "value" in read ? read : { problem: `${CODE_CACHE_SETTING.env}: ${read.problem}` }
}

/**
 * What the launcher reads from its environment: the cache mode, the user's cache directory,
 * whether Node runs with extra flags, and the heap's growth; or, as `cxlog config` would say it,
 * why a setting of its names no value (a variable set but empty included).
 */
export const launcherEnvironment = (): {
  readonly mode: CodeCacheMode
  readonly cacheHome: string
  readonly nodeOptions: string
  readonly heapGrowth: number
} | { readonly problem: string } => {
  const env = process.env
  for (const name of [CODE_CACHE_SETTING.env, HEAP_GROWTH_SETTING.env]) {
    if (env[name] === "") return { problem: `${name}: ${SET_BUT_EMPTY}: give it a value, or unset it for the default` }
  }
  const mode = codeCacheMode(env[CODE_CACHE_SETTING.env])
  if ("problem" in mode) return mode
  const heapGrowth = heapGrowingPercent(env[HEAP_GROWTH_SETTING.env])
  if ("problem" in heapGrowth) return heapGrowth
  const cacheHome = env["XDG_CACHE_HOME"] !== undefined && env["XDG_CACHE_HOME"] !== ""
    ? env["XDG_CACHE_HOME"]
    : join(homedir(), ".cache")
  return { mode: mode.value, cacheHome, nodeOptions: env["NODE_OPTIONS"] ?? "", heapGrowth: heapGrowth.value }
}
