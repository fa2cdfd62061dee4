/**
 * `dist/cxlog.mjs`: starts the bundled CLI (`dist/cxlog.cjs`) from V8's code cache. Parsing and
 * compiling the 4 MB bundle was most of a process's start-up, and the functions a role first
 * calls under load were compiled lazily during the run (a 256 MiB bench spent a seventh of a
 * broker's CPU in V8's parser). The cache holds the bytecode of everything a command compiled
 * in a representative run, one file per command: `dist/code-cache/COMMAND-SIZE-MTIME.bin`,
 * named after the bundle it belongs to, so a rebuilt bundle never meets an old cache (V8
 * itself also refuses a cache made by another V8 or other flags: the bundle is then compiled
 * as before). `npm run bundle` writes the caches from a short `cxlog run`
 * (scripts/bundle.mjs); a command without one writes its own when it exits successfully.
 *
 * `CXLOG_CODE_CACHE`: `off` (compile from source), `write` (rewrite this command's cache at exit,
 * or at a SIGTERM once the command is done), `report` (as `on`, and say on stderr whether the
 * cache was used), default `on`.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Script } from "node:vm"

const here = dirname(fileURLToPath(import.meta.url))
const bundle = join(here, "cxlog.cjs")
const cacheDirectory = join(here, "code-cache")
const mode = process.env["CXLOG_CODE_CACHE"] ?? "on"
const command = /^[a-z][a-z-]*$/.test(process.argv[2] ?? "") ? process.argv[2]! : "cli"
const { mtimeMs, size } = statSync(bundle)
const cacheFile = join(cacheDirectory, `${command}-${size}-${Math.trunc(mtimeMs)}.bin`)

const readCache = (): Buffer | undefined => {
  if (mode === "off") return undefined
  try {
    return readFileSync(cacheFile)
  } catch {
    return undefined
  }
}

const cachedData = readCache()
// The bundle as a CommonJS module body; no newline before it, so its line numbers stay its own.
const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(bundle, "utf8").replace(/^#!.*/, "")}\n})`
const script = new Script(source, { filename: bundle, ...(cachedData === undefined ? {} : { cachedData }) })

// A cache made under extra V8 flags (a profiling run) would be refused by every ordinary run.
const plainFlags = process.execArgv.length === 0 && (process.env["NODE_OPTIONS"] ?? "") === ""
const reading = mode === "on" || mode === "report"
if (mode === "report") {
  const status = cachedData === undefined ? "none" : script.cachedDataRejected === false ? "used" : "refused"
  process.stderr.write(`cxlog: code cache ${status}: ${cacheFile}\n`)
}
if (mode === "write" || (reading && cachedData === undefined && plainFlags)) {
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
;(script.runInThisContext() as (...args: ReadonlyArray<unknown>) => void)(module.exports, createRequire(bundle), module, bundle, here)
