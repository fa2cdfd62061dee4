/**
 * The launcher (dist/cxlog.mjs, src/programs/Launcher.ts) and its code caches, on a copy of the
 * built CLI in a directory of its own (the shared dist/code-cache is left alone): a command
 * without a cache writes one named after the bundle; a cache present is read, not rewritten; a
 * damaged cache is refused by V8 and the command still runs; a rebuilt bundle never meets an
 * old cache; `CXLOG_CODE_CACHE=off` neither reads nor writes.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "dist")

/** Runs `test` on a copy of the built CLI in a directory of its own, removed afterwards whatever happened. */
const withCliCopy = (test: (dir: string) => void) => () => {
  const dir = mkdtempSync(join(tmpdir(), "cxlog-code-cache-"))
  try {
    copyFileSync(join(dist, "cxlog.mjs"), join(dir, "cxlog.mjs"))
    copyFileSync(join(dist, "cxlog.cjs"), join(dir, "cxlog.cjs"))
    test(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** `cxlog --version` from the copy: its output, and what the launcher says of the cache (CXLOG_CODE_CACHE=report). */
const version = (dir: string, mode = "report") => {
  const { NODE_OPTIONS: _options, ...rest } = process.env
  const run = spawnSync(process.execPath, [join(dir, "cxlog.mjs"), "--version"], { env: { ...rest, CXLOG_CODE_CACHE: mode }, encoding: "utf8" })
  expect(run.status).toBe(0)
  return { output: run.stdout.trim(), cache: /code cache (\w+)/.exec(run.stderr)?.[1] }
}

const caches = (dir: string) => {
  try {
    return readdirSync(join(dir, "code-cache")).sort()
  } catch {
    return []
  }
}

/** The cache file a command run now would use: named after the bundle's size and mtime. */
const expectedName = (dir: string, command: string) => {
  const { mtimeMs, size } = statSync(join(dir, "cxlog.cjs"))
  return `${command}-${size}-${Math.trunc(mtimeMs)}.bin`
}

describe("code cache", () => {
  it("a command without a cache writes one; with one it reads it and writes nothing", withCliCopy((dir) => {
    expect(version(dir)).toEqual({ output: "0.1.0", cache: "none" })
    expect(caches(dir)).toEqual([expectedName(dir, "cli")])
    const file = join(dir, "code-cache", expectedName(dir, "cli"))
    // Dated back, so a rewrite would show in its mtime.
    const back = new Date(statSync(file).mtimeMs - 10_000)
    utimesSync(file, back, back)
    const before = statSync(file).mtimeMs
    expect(version(dir)).toEqual({ output: "0.1.0", cache: "used" })
    expect(statSync(file).mtimeMs).toBe(before)
  }))

  it("a damaged cache is refused (the command runs from source) and not replaced", withCliCopy((dir) => {
    expect(version(dir).cache).toBe("none")
    const file = join(dir, "code-cache", expectedName(dir, "cli"))
    const garbage = Buffer.alloc(statSync(file).size, 0x5a)
    writeFileSync(file, garbage)
    expect(version(dir)).toEqual({ output: "0.1.0", cache: "refused" })
    expect(readFileSync(file).equals(garbage)).toBe(true)
  }))

  it("a rebuilt bundle gets its own cache: the old one is never read for it", withCliCopy((dir) => {
    expect(version(dir).cache).toBe("none")
    const old = expectedName(dir, "cli")
    const bundle = join(dir, "cxlog.cjs")
    const later = new Date(statSync(bundle).mtimeMs + 60_000)
    utimesSync(bundle, later, later)
    expect(version(dir)).toEqual({ output: "0.1.0", cache: "none" })
    expect(caches(dir)).toEqual([old, expectedName(dir, "cli")].sort())
  }))

  it("a command that fails (an unknown one) leaves no cache behind", withCliCopy((dir) => {
    const { NODE_OPTIONS: _options, ...rest } = process.env
    const run = spawnSync(process.execPath, [join(dir, "cxlog.mjs"), "no-such-command"], { env: { ...rest, CXLOG_CODE_CACHE: "on" }, encoding: "utf8" })
    expect(run.status).toBe(2)
    expect(caches(dir)).toEqual([])
  }))

  it("CXLOG_CODE_CACHE=off neither writes nor needs a cache", withCliCopy((dir) => {
    expect(version(dir, "off")).toEqual({ output: "0.1.0", cache: undefined })
    expect(caches(dir)).toEqual([])
  }))
})
