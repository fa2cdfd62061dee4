/**
 * The launcher (dist/cxlog.mjs, src/programs/cli/Launcher.ts) and its code caches, on a copy of the
 * built CLI with a cache directory of its own (XDG_CACHE_HOME): a command without a cache
 * writes one there, named after the Node and the bundle, and nothing beside the package; a
 * cache present is read, not rewritten; a damaged cache is refused by V8, the command still
 * runs and replaces it; a rebuilt bundle never meets an old cache, whose file goes;
 * `CXLOG_CODE_CACHE=off` neither reads nor writes. The heap growth the launcher gives V8
 * (`CXLOG_HEAP_GROWING_PERCENT`) is one of V8's flags, so it is part of a cache's name, and a
 * cache made under one growth is refused under another. Each command is a process the test waits
 * on (RunProcess.ts), not one that holds the test's process.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { isAscii } from "node:buffer"
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { runProcess } from "../helpers/RunProcess.js"

const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "dist")

/**
 * Runs `test` on a copy of the built CLI in a directory of its own (`dir/package`, the cache home
 * `dir/cache`), removed afterwards whatever happened.
 */
const withCliCopy = (test: (dir: string) => Promise<void>) => async () => {
  const dir = mkdtempSync(join(tmpdir(), "cxlog-code-cache-"))
  try {
    mkdirSync(join(dir, "package"))
    copyFileSync(join(dist, "cxlog.mjs"), join(dir, "package", "cxlog.mjs"))
    copyFileSync(join(dist, "cxlog.cjs"), join(dir, "package", "cxlog.cjs"))
    await test(dir)
    expect(readdirSync(join(dir, "package")).sort(), "nothing is written beside the package").toEqual([
      "cxlog.cjs",
      "cxlog.mjs"
    ])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const environment = (dir: string, mode: string, growth?: string) => {
  const { CXLOG_HEAP_GROWING_PERCENT: _growth, NODE_OPTIONS: _options, ...rest } = process.env
  return {
    ...rest,
    CXLOG_CODE_CACHE: mode,
    XDG_CACHE_HOME: join(dir, "cache"),
    ...(growth === undefined ? {} : { CXLOG_HEAP_GROWING_PERCENT: growth })
  }
}

/** The copy's CLI run with `args` in `env`, to its end. */
const cliCopy = (dir: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  Effect.runPromise(
    runProcess(process.execPath, [join(dir, "package", "cxlog.mjs"), ...args], { env, timeoutMs: 60_000 })
  )

/** `cxlog --version` from the copy: its output, and what the launcher says of the cache (CXLOG_CODE_CACHE=report). */
const version = async (dir: string, mode = "report", growth?: string) => {
  const run = await cliCopy(dir, ["--version"], environment(dir, mode, growth))
  expect(run.status, run.stderr).toBe(0)
  return { output: run.stdout.trim(), cache: /code cache (\w+)/.exec(run.stderr)?.[1] }
}

const caches = (dir: string) => {
  try {
    return readdirSync(join(dir, "cache", "cxlog", "code-cache")).sort()
  } catch {
    return []
  }
}

/** The cache file a command run now would use: named after this Node, the heap growth (default 100) and the bundle's size and mtime. */
const expectedName = (dir: string, command: string, growth = 100) => {
  const { mtimeMs, size } = statSync(join(dir, "package", "cxlog.cjs"))
  return `${command}-${process.version}-g${growth}-${size}-${Math.trunc(mtimeMs)}.bin`
}

const cacheFile = (dir: string, command: string, growth = 100) =>
  join(dir, "cache", "cxlog", "code-cache", expectedName(dir, command, growth))

describe("code cache", () => {
  it(
    "a command without a cache writes one; with one it reads it and writes nothing",
    withCliCopy(async (dir) => {
      expect(await version(dir)).toEqual({ output: "0.1.0", cache: "none" })
      expect(caches(dir)).toEqual([expectedName(dir, "cli")])
      const file = cacheFile(dir, "cli")
      // Dated back, so a rewrite would show in its mtime.
      const back = new Date(statSync(file).mtimeMs - 10_000)
      utimesSync(file, back, back)
      const before = statSync(file).mtimeMs
      expect(await version(dir)).toEqual({ output: "0.1.0", cache: "used" })
      expect(statSync(file).mtimeMs).toBe(before)
    })
  )

  it(
    "a damaged cache is refused (the command runs from source) and replaced by a good one",
    withCliCopy(async (dir) => {
      expect((await version(dir)).cache).toBe("none")
      const file = cacheFile(dir, "cli")
      const garbage = Buffer.alloc(statSync(file).size, 0x5a)
      writeFileSync(file, garbage)
      expect(await version(dir)).toEqual({ output: "0.1.0", cache: "refused" })
      expect(readFileSync(file).equals(garbage)).toBe(false)
      expect(await version(dir)).toEqual({ output: "0.1.0", cache: "used" })
    })
  )

  it(
    "a rebuilt bundle gets its own cache: the old one is never read for it, and goes",
    withCliCopy(async (dir) => {
      expect((await version(dir)).cache).toBe("none")
      const bundle = join(dir, "package", "cxlog.cjs")
      const later = new Date(statSync(bundle).mtimeMs + 60_000)
      utimesSync(bundle, later, later)
      expect(await version(dir)).toEqual({ output: "0.1.0", cache: "none" })
      expect(caches(dir)).toEqual([expectedName(dir, "cli")])
    })
  )

  it(
    "a command that fails (an unknown one) leaves no cache behind",
    withCliCopy(async (dir) => {
      const run = await cliCopy(dir, ["no-such-command"], environment(dir, "on"))
      expect(run.status).toBe(2)
      expect(caches(dir)).toEqual([])
    })
  )

  it(
    "CXLOG_CODE_CACHE=off neither writes nor needs a cache",
    withCliCopy(async (dir) => {
      expect(await version(dir, "off")).toEqual({ output: "0.1.0", cache: undefined })
      expect(caches(dir)).toEqual([])
    })
  )

  it(
    "the heap growth reaches V8: a cache made under one growth is refused under another, and each keeps its own",
    withCliCopy(async (dir) => {
      expect(await version(dir, "report", "0")).toEqual({ output: "0.1.0", cache: "none" })
      expect(caches(dir)).toEqual([expectedName(dir, "cli", 0)])
      // The default growth's cache, made by a process whose V8 ran without the flag: its flags differ.
      copyFileSync(cacheFile(dir, "cli", 0), cacheFile(dir, "cli", 100))
      expect(await version(dir)).toEqual({ output: "0.1.0", cache: "refused" })
      expect(await version(dir)).toEqual({ output: "0.1.0", cache: "used" })
      expect(await version(dir, "report", "250")).toEqual({ output: "0.1.0", cache: "none" })
      expect(caches(dir)).toEqual([100, 250, 0].map((growth) => expectedName(dir, "cli", growth)).sort())
      expect(await version(dir)).toEqual({ output: "0.1.0", cache: "used" })
    })
  )

  it(
    "the built bundle is ASCII with no hashbang (read a byte a character); any other is read as UTF-8",
    withCliCopy(async (dir) => {
      const bundle = join(dir, "package", "cxlog.cjs")
      const built = readFileSync(bundle)
      expect(isAscii(built)).toBe(true)
      expect(built.subarray(0, 2).toString()).not.toBe("#!")
      const text = built.toString("latin1")
      expect(text).toContain(`VERSION = "0.1.0"`)
      writeFileSync(
        bundle,
        `#!/usr/bin/env node\n${text.replace(`VERSION = "0.1.0"`, `VERSION = "0.1.0-\u00e9t\u00e9"`)}`
      )
      expect((await version(dir)).output).toBe("0.1.0-\u00e9t\u00e9")
    })
  )

  it(
    "the launcher's settings read as cxlog config reads them: empty or not one of the values is refused before anything runs",
    withCliCopy(async (dir) => {
      const run = (env: Record<string, string>) => cliCopy(dir, ["--version"], { ...environment(dir, "on"), ...env })
      for (const name of ["CXLOG_HEAP_GROWING_PERCENT", "CXLOG_CODE_CACHE"]) {
        const empty = await run({ [name]: "" })
        expect(empty.status).toBe(2)
        expect(empty.stderr).toBe(`cxlog: ${name}: set but empty: give it a value, or unset it for the default\n`)
      }
      const unknown = await run({ CXLOG_CODE_CACHE: "maybe" })
      expect(unknown.status).toBe(2)
      expect(unknown.stderr).toBe("cxlog: CXLOG_CODE_CACHE: maybe is not one of on, off, write, report\n")
      expect(caches(dir)).toEqual([])
      // Padded, as `cxlog config` takes it.
      expect((await run({ CXLOG_HEAP_GROWING_PERCENT: " 100 " })).stdout.trim()).toBe("0.1.0")
      expect(caches(dir)).toEqual([expectedName(dir, "cli")])
    })
  )

  it(
    "a heap growth that is not a whole number is refused with the setting's name, before anything runs",
    withCliCopy(async (dir) => {
      for (const given of ["fast", "-5", "1.5"]) {
        const run = await cliCopy(dir, ["--version"], environment(dir, "on", given))
        expect(run.status).toBe(2)
        expect(run.stdout).toBe("")
        expect(run.stderr).toContain(`CXLOG_HEAP_GROWING_PERCENT must be a whole number of percent`)
        expect(run.stderr).toContain(JSON.stringify(given))
      }
      expect(caches(dir)).toEqual([])
    })
  )
})
