/**
 * `dist/cxlog.mjs`: starts the bundled CLI (`dist/cxlog.cjs`) from V8's code cache. Parsing and
 * compiling the 5 MB bundle was most of a process's start-up, and the functions a role first
 * calls under load were compiled lazily during the run (a 256 MiB bench spent a seventh of a
 * broker's CPU in V8's parser). The cache holds the bytecode of everything a command compiled
 * in a run, one file per command, in the user's cache directory — never in the package, which
 * may be read-only and is not ours to grow: `$XDG_CACHE_HOME/cxlog/code-cache` (else
 * `~/.cache/cxlog/code-cache`), `COMMAND-NODEVERSION-gGROWTH-SIZE-MTIME.bin`, named after the Node (and heap growth) that
 * made it and the bundle it belongs to, so another Node or a rebuilt bundle never meets an old
 * cache; writing one removes the caches this Node made for that command's other bundles under the same growth. A command without a usable
 * cache (none, or one V8 refuses) writes its own when it exits successfully; nothing is shipped.
 * This, not Node's `module.enableCompileCache` (Node ≥ 22.1), because that one caches what was
 * compiled when the module loaded, not the functions a command compiles as it runs.
 *
 * `CXLOG_CODE_CACHE`: `off` (compile from source), `write` (rewrite this command's cache at exit,
 * or at a SIGTERM once the command is done: `npm run bundle`'s warm-up run), `report` (as `on`,
 * and say on stderr whether the cache was used), default `on`.
 *
 * `CXLOG_HEAP_GROWING_PERCENT` (default 100): V8's `--heap-growing-percent` for this process, so a
 * full collection comes once the heap has grown that much past what the last one kept.
 */
import { isAscii } from "node:buffer"
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { setFlagsFromString } from "node:v8"
import { Script } from "node:vm"
import { launcherEnvironment } from "./LauncherSettings.js"

const here = dirname(fileURLToPath(import.meta.url))
const bundle = join(here, "cxlog.cjs")
const environment = launcherEnvironment()
if ("problem" in environment) {
  process.stderr.write(`cxlog: ${environment.problem}\n`)
  process.exit(2)
}
const { cacheHome, heapGrowth, mode, nodeOptions } = environment
// Set before anything is compiled: V8 refuses a code cache made under other flags, so the
// growth is part of the cache's name. Without it a broker serving a consumer group ran a full
// collection every 0.2 s, its heap held to what the last one kept plus a few MiB
// (docs/performance.md, "The heap's growth").
if (heapGrowth > 0) setFlagsFromString(`--heap-growing-percent=${heapGrowth}`)
const cacheDirectory = join(cacheHome, "cxlog", "code-cache")
const command = /^[a-z][a-z-]*$/.test(process.argv[2] ?? "") ? process.argv[2]! : "cli"
const { mtimeMs, size } = statSync(bundle)
const cacheName = `${command}-${process.version}-g${heapGrowth}-${size}-${Math.trunc(mtimeMs)}.bin`
const cacheFile = join(cacheDirectory, cacheName)

const readCache = (): Buffer | undefined => {
  if (mode === "off") return undefined
  try {
    return readFileSync(cacheFile)
  } catch {
    return undefined
  }
}

const cachedData = readCache()
/**
 * The bundle's text. `npm run bundle` leaves it ASCII with no hashbang (scripts/bundle.mjs), read
 * as one byte a character: a tenth of the time decoding its 5 MB as UTF-8 took (30 ms a command).
 * A bundle made otherwise is still read right, as UTF-8, its hashbang taken off.
 */
const bundleText = (): string => {
  const bytes = readFileSync(bundle)
  const text = isAscii(bytes) ? bytes.toString("latin1") : bytes.toString("utf8")
  return text.startsWith("#!") ? text.replace(/^#!.*/, "") : text
}
// The bundle as a CommonJS module body; no newline before it, so its line numbers stay its own.
const source = `(function (exports, require, module, __filename, __dirname) {${bundleText()}\n})`
const script = new Script(source, { filename: bundle, ...(cachedData === undefined ? {} : { cachedData }) })

// A cache made under extra V8 flags (a profiling run) would be refused by every ordinary run.
const plainFlags = process.execArgv.length === 0 && nodeOptions === ""
const reading = mode === "on" || mode === "report"
if (mode === "report") {
  const status = cachedData === undefined ? "none" : script.cachedDataRejected === false ? "used" : "refused"
  process.stderr.write(`cxlog: code cache ${status}: ${cacheFile}\n`)
}
if (mode === "write" || (reading && (cachedData === undefined || script.cachedDataRejected === true) && plainFlags)) {
  let written = false
  const write = () => {
    if (written) return
    written = true
    // What this process compiled so far goes in; a read-only install just keeps compiling.
    try {
      mkdirSync(cacheDirectory, { recursive: true })
      const partial = `${cacheFile}.${process.pid}`
      writeFileSync(partial, script.createCachedData())
      renameSync(partial, cacheFile)
      for (const name of readdirSync(cacheDirectory)) {
        // Its other bundles' caches under this growth, and partial files of writers killed mid-write
        // (another growth's cache stays: a role run with another growth would otherwise delete it).
        if (name.startsWith(`${command}-${process.version}-g${heapGrowth}-`) && name !== cacheName) {
          unlinkSync(join(cacheDirectory, name))
        }
      }
    } catch {
      // No cache: the next start compiles from source, as without one.
    }
  }
  // A command that failed (a mistyped one among them) leaves no cache behind it.
  process.on("exit", (code) => (code === 0 || mode === "write") && write())
  if (mode === "write") {
    // Roles of `cxlog run` idle after their work until SIGTERMed, which then ends them without an
    // exit event; while writing caches, a SIGTERM nothing else handles writes, then exits.
    process.prependListener("SIGTERM", () => {
      write()
      if (process.listenerCount("SIGTERM") === 1) process.exit(143)
    })
  }
}

const module = { exports: {} }
;(script.runInThisContext() as (...args: ReadonlyArray<unknown>) => void)(
  module.exports,
  createRequire(bundle),
  module,
  bundle,
  here
)
