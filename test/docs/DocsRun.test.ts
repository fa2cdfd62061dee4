/**
 * Docs that run: every program block of README.md and docs/ (test/helpers/DocBlocks.ts) runs as
 * a newcomer copies it, against what the docs assume — region `cxlog`, brokers on 127.0.0.1:7400
 * and 7401, topics `events` and `orders` — and must exit 0. `npx cxlog` and `cxlog` are this
 * tree's CLI, `import … from "cxlog"` this package (each block is run by Node from inside it, its
 * types stripped, so the package's own name resolves). Blocks that start a head of their own run
 * one at a time with no server up; the rest share one `cxlog serve`. Each runs in a process group
 * of its own, killed afterwards, so what it left in the background goes with it; the region and its
 * files are removed at the end.
 */
import { describe, expect, it } from "@effect/vitest"
import { transformSync } from "esbuild"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { type DocBlock, docBlocks, infoProblem } from "../helpers/DocBlocks.js"
import { expectMirrorFigures } from "../helpers/MirrorFigures.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const blocks = docBlocks(root)
const programs = blocks.filter((b) => b.program !== undefined)
/** A block that starts a head or a server of its own needs the region and the ports to itself. */
const startsHead = (b: DocBlock) => b.program === "sh" && /cxlog (head(?! --standby)|serve(?! --stop))/.test(b.code)
const REGION = "cxlog"
const PORTS = [7400, 7401]
const BLOCK_TIMEOUT_MS = 90_000
/**
 * A bench block measures for as long as its figures need and shares the cores with the rest of
 * the suite: its bound is wider, still a bound.
 */
const BENCH_BLOCK_TIMEOUT_MS = 240_000
/** How much of the shared server's output a failure report carries. */
const SERVER_TAIL_CHARS = 8_000
const boundOf = (b: DocBlock) => (/cxlog bench\b/.test(b.code) ? BENCH_BLOCK_TIMEOUT_MS : BLOCK_TIMEOUT_MS)

const where = (b: DocBlock) => `${b.file}:${b.line}`

/** A program that reads through a named consumer, which a second run resumes. */
const RESUMES = /\bconsumer: "/

/**
 * docs/mirror.md's mirror bench is the suite's one run of `cxlog bench --type mirror` with a
 * nats-server: its output is checked here for every figure and the audit. Its 2 000 messages in
 * five region steps and its lag step's 4 s at 1 MB/s (3 906 of 1 KiB) are the offsets audited.
 */
const MIRROR_BENCH = /cxlog bench --type mirror\b/
const MIRROR_AUDIT = "13906 offsets once, in order, payloads equal"

/** `cxlog` and `npx cxlog` as this tree's CLI, in a bin directory put first on PATH. */
const shims = () => {
  const bin = mkdtempSync(join(tmpdir(), "cxlog-docs-bin-"))
  const write = (name: string, text: string) => {
    writeFileSync(join(bin, name), text)
    chmodSync(join(bin, name), 0o755)
  }
  write("cxlog", `#!/bin/sh\nexec "${process.execPath}" "${join(root, "dist", "cxlog.mjs")}" "$@"\n`)
  write(
    "npx",
    `#!/bin/sh\nif [ "$1" = cxlog ]; then shift; exec "${join(bin, "cxlog")}" "$@"; fi\nexec "${
      join(dirname(process.execPath), "npx")
    }" "$@"\n`
  )
  return bin
}

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** Ends a process group: SIGTERM, then SIGKILL after 3 s. */
const stopGroup = async (child: ChildProcess) => {
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, s)
    } catch {
      // Already gone.
    }
  }
  signal("SIGTERM")
  const alive = () => {
    try {
      process.kill(-child.pid!, 0)
      return true
    } catch {
      return false
    }
  }
  for (let i = 0; i < 30 && alive(); i++) await new Promise((r) => setTimeout(r, 100))
  signal("SIGKILL")
}

/**
 * A TypeScript block as the JavaScript Node runs: its types stripped by esbuild, as tsx does
 * before running a file, without tsx's loader (seconds of start-up per block).
 */
const withoutTypes = (code: string) => transformSync(code, { loader: "ts", format: "esm", target: "node20" }).code

/** Runs a program block in a process group of its own; its exit code and output. */
const runBlock = async (b: DocBlock, env: NodeJS.ProcessEnv, scratch: string) => {
  let command: string
  let args: Array<string>
  if (b.program === "sh") {
    command = "bash"
    args = ["-e", "-o", "pipefail", "-c", b.code]
  } else {
    // Inside the package, so `import … from "cxlog"` resolves to this build as an installed package would.
    const dir = join(root, ".docs-run")
    mkdirSync(dir, { recursive: true })
    const file = join(dir, `${b.file.replace(/[^A-Za-z0-9]/g, "-")}-${b.line}.mjs`)
    writeFileSync(file, b.program === "ts" ? withoutTypes(b.code) : b.code)
    command = process.execPath
    args = [file]
  }
  const child = spawn(command, args, { cwd: scratch, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout!.on("data", (c: Buffer) => (output += c.toString()))
  child.stderr!.on("data", (c: Buffer) => (output += c.toString()))
  const code = await new Promise<number | string>((resolve) => {
    const bound = setTimeout(() => resolve(`no exit within ${boundOf(b)} ms`), boundOf(b))
    child.once("exit", (code, signal) => {
      clearTimeout(bound)
      resolve(code ?? `${signal}`)
    })
  })
  await stopGroup(child)
  return { code, output: output.slice(-4000) }
}

/**
 * Removes what a block may leave of region `cxlog`: a server it detached (`cxlog serve --detach`,
 * outside the block's process group, stopped as `--stop` does), then the region and its
 * credential files, left when a head is stopped hard.
 */
const cleanRegion = (env: NodeJS.ProcessEnv) => {
  spawnSync(join(env["PATH"]!.split(":")[0]!, "cxlog"), ["serve", "--stop"], { env, stdio: "ignore", timeout: 30_000 })
  if (existsSync(`/dev/shm/${REGION}`)) unlinkSync(`/dev/shm/${REGION}`)
  const auth = join(env["XDG_RUNTIME_DIR"]!, "cxlog")
  if (existsSync(auth)) {
    for (const name of readdirSync(auth)) if (name.startsWith(`${REGION}.`)) rmSync(join(auth, name), { force: true })
  }
}

/** `cxlog serve` on the docs' addresses, until `stop`; resolves once it is ready. */
const serve = async (env: NodeJS.ProcessEnv) => {
  const child = spawn(join(env["PATH"]!.split(":")[0]!, "cxlog"), [
    "serve",
    "--broker-count",
    "2",
    "--port",
    `${PORTS[0]}`,
    "--topic",
    "events",
    "--topic",
    "orders",
    "--json"
  ], {
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  await new Promise<void>((resolve, reject) => {
    const bound = setTimeout(() => reject(new Error(`cxlog serve: not ready within 60 s: ${output}`)), 60_000)
    child.stdout!.on("data", (c: Buffer) => {
      output += c.toString()
      if (/"event":"ready"/.test(output)) {
        clearTimeout(bound)
        resolve()
      }
    })
    child.stderr!.on("data", (c: Buffer) => (output += c.toString()))
    child.once("exit", (code) => reject(new Error(`cxlog serve exited (${code}) before it was ready: ${output}`)))
  })
  // What it printed since it was ready, kept as a tail: a block that fails against it is reported with it.
  let since = ""
  const keep = (c: Buffer) => (since = (since + c.toString()).slice(-SERVER_TAIL_CHARS))
  child.stdout!.on("data", keep)
  child.stderr!.on("data", keep)
  return { stop: () => stopGroup(child), output: () => since }
}

const failures = (results: ReadonlyArray<{ block: DocBlock; code: number | string; output: string }>) =>
  results.filter((r) => r.code !== 0).map((r) => `${where(r.block)} (${r.block.info}) ended ${r.code}:\n${r.output}`)

describe("the docs' code blocks", () => {
  it("every block says what it is: a program (ts, js, sh, or a fragment of one), or output", () => {
    expect(blocks.flatMap((b) => (infoProblem(b.info) === undefined ? [] : [`${where(b)}: ${infoProblem(b.info)}`])))
      .toEqual([])
    expect(programs.length).toBeGreaterThan(10)
  })

  it("every program runs as written and exits 0", async () => {
    expect(
      existsSync(`/dev/shm/${REGION}`),
      `a region named ${REGION} exists (a cxlog server of this machine?): the docs' programs need it; stop that server`
    ).toBe(false)
    for (const port of PORTS) {
      expect(await portFree(port), `port ${port} is taken: the docs' brokers listen there; free it`).toBe(true)
    }
    const bin = shims()
    const scratch = mkdtempSync(join(tmpdir(), "cxlog-docs-run-"))
    // A runtime directory of its own: the docs' server writes region cxlog's secret file there, where
    // the suite's other clients, given no credentials, would otherwise find it and refuse their
    // --insecure brokers.
    const runtime = mkdtempSync(join(tmpdir(), "cxlog-docs-runtime-"))
    const env = { ...process.env, PATH: `${bin}:${process.env["PATH"]}`, XDG_RUNTIME_DIR: runtime }
    const results: Array<{ block: DocBlock; code: number | string; output: string }> = []
    try {
      const server = await serve(env)
      try {
        for (const block of programs.filter((b) => !startsHead(b))) {
          results.push({ block, ...(await runBlock(block, env, scratch)) })
          // A program with a named consumer is run again, as a newcomer would: it resumes where it committed.
          if (RESUMES.test(block.code)) results.push({ block, ...(await runBlock(block, env, scratch)) })
        }
      } finally {
        await server.stop()
        cleanRegion(env)
        const served = results.filter((r) => !startsHead(r.block))
        if (served.some((r) => r.code !== 0)) {
          console.error(`the docs' shared cxlog serve printed, after it was ready:\n${server.output()}`)
        }
      }
      for (const block of programs.filter(startsHead)) {
        try {
          results.push({ block, ...(await runBlock(block, env, scratch)) })
        } finally {
          cleanRegion(env)
        }
      }
    } finally {
      rmSync(bin, { recursive: true, force: true })
      rmSync(runtime, { recursive: true, force: true })
      rmSync(scratch, { recursive: true, force: true })
      rmSync(join(root, ".docs-run"), { recursive: true, force: true })
    }
    expect(failures(results)).toEqual([])
    const mirrorBenches = results.filter((r) => MIRROR_BENCH.test(r.block.code))
    expect(mirrorBenches.map((r) => where(r.block))).toHaveLength(1)
    expectMirrorFigures(mirrorBenches[0]!.output, MIRROR_AUDIT)
  }, 900_000)
})
