/**
 * The package as an app gets it: `npm pack`, then `npm install <tarball>` into a fresh app whose
 * PATH has no compiler (no g++, cc, make or python3), with effect already installed. The install
 * succeeds without a warning about engines or peers, uses the prebuilt addon, `cxlog selfcheck`
 * passes, and the README's Effect example, as an app writes it, publishes to a head and broker
 * started by the installed CLI and reads its messages back. An app whose effect is another 3.x
 * in the peer range keeps one copy of effect, and publishing says nothing of two versions.
 * npm, the self-check and the example run as processes the test waits on (RunProcess.ts): an install
 * held in `spawnSync` for a minute failed a run whose tests had all passed.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { type ChildProcess, execFileSync, fork, spawnSync } from "node:child_process"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { uniqueRegion } from "../helpers/Processes.js"
import { runProcess } from "../helpers/RunProcess.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

/** A directory of this run's, removed when the scope closes. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), `cxlog-test-${process.env["CXLOG_TEST_RUN"]}-pack-`))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** A PATH with node, npm, npx and a shell only: whatever the install would compile with is missing. */
const noCompilerPath = (dir: string) => {
  const bin = join(dir, "bin")
  mkdirSync(bin)
  // npm's own scripts, run by this node (the registry's Node packages carry no npm: the machine's serves).
  const npmCli = dirname(realpathSync(execFileSync("sh", ["-c", "command -v npm"], { encoding: "utf8" }).trim()))
  symlinkSync(process.execPath, join(bin, "node"))
  symlinkSync(join(npmCli, "npm-cli.js"), join(bin, "npm"))
  symlinkSync(join(npmCli, "npx-cli.js"), join(bin, "npx"))
  symlinkSync("/bin/sh", join(bin, "sh"))
  for (const tool of ["g++", "gcc", "cc", "c++", "make", "python3"]) {
    expect(
      spawnSync("sh", ["-c", `command -v ${tool}`], { env: { PATH: bin } }).status,
      `${tool} must not be on the app's PATH`
    ).not.toBe(0)
  }
  return bin
}

/**
 * An app's environment: this one's (its CA certificates, its proxy), the no-compiler PATH, and
 * none of the npm_* settings an `npm test` hands its scripts (such as the nodedir CI builds with).
 */
const appEnvironment = (bin: string): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith("npm_"))),
  PATH: bin
})

/** npm in `app`, with the no-compiler PATH; its output (npm's warnings go to stderr). */
const npm = (app: string, bin: string, args: ReadonlyArray<string>) =>
  Effect.map(
    runProcess(join(bin, "npm"), [...args, "--no-audit", "--no-fund", "--loglevel=warn"], {
      cwd: app,
      env: appEnvironment(bin),
      timeoutMs: 240_000
    }),
    (done) => ({ status: done.status, output: `${done.stdout}${done.stderr}` })
  )

/** The tarball `npm pack` makes of the built tree (built already: the test script builds first). */
const pack = (dir: string) =>
  Effect.map(
    runProcess("npm", ["pack", "--ignore-scripts", "--pack-destination", dir, "--loglevel=error"], {
      cwd: root,
      env: process.env,
      timeoutMs: 120_000
    }),
    (done) => {
      expect(done.status, done.stderr).toBe(0)
      return join(dir, done.stdout.trim().split("\n").at(-1)!)
    }
  )

/**
 * The tarball the file's apps install, packed at the first install: the built tree is the same
 * for each, and packing it took seconds an app. Its directory goes when the file is done.
 */
let packed: { readonly dir: string; readonly tarball: string } | undefined
const tarball = Effect.suspend(() => {
  if (packed !== undefined) return Effect.succeed(packed.tarball)
  const dir = mkdtempSync(join(tmpdir(), `cxlog-test-${process.env["CXLOG_TEST_RUN"]}-tarball-`))
  return Effect.map(pack(dir), (tarball) => {
    packed = { dir, tarball }
    return tarball
  })
})
afterAll(() => {
  if (packed !== undefined) rmSync(packed.dir, { recursive: true, force: true })
  packed = undefined
})

/**
 * A fresh app, in a scratch directory removed with the scope, on a PATH with no compiler: first
 * `effect@effectVersion`, then the file's packed tarball (with `installFlags`), which must install.
 */
const installedApp = (effectVersion: string, installFlags: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const dir = yield* scratch
    const bin = noCompilerPath(dir)
    const appDir = join(dir, "app")
    mkdirSync(appDir)
    writeFileSync(
      join(appDir, "package.json"),
      JSON.stringify({ name: "an-app", version: "1.0.0", type: "module", private: true })
    )
    const withEffect = yield* npm(appDir, bin, ["install", `effect@${effectVersion}`])
    expect(withEffect.status, withEffect.output).toBe(0)
    const install = yield* npm(appDir, bin, ["install", ...installFlags, yield* tarball])
    expect(install.status, install.output).toBe(0)
    return { appDir, bin, installOutput: install.output }
  })

/** `npx cxlog selfcheck` in the app: maps a region through the addon, across two processes. */
const selfcheck = (appDir: string, bin: string) =>
  Effect.map(
    runProcess(join(bin, "npx"), ["cxlog", "selfcheck"], { cwd: appDir, env: appEnvironment(bin), timeoutMs: 120_000 }),
    (done) => ({ status: done.status, output: `${done.stdout}${done.stderr}` })
  )

/** Forks the installed CLI with an IPC channel; its first `kind` event (bounded); killed with the scope. */
const role = (appDir: string, args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(join(appDir, "node_modules", "cxlog", "dist", "cxlog.mjs"), [...args], {
          stdio: ["ignore", "pipe", "pipe", "ipc"],
          env: { ...process.env, ...env }
        })
      ),
      (child: ChildProcess) => Effect.sync(() => child.kill("SIGKILL"))
    )
    const events: Array<Record<string, unknown>> = []
    const arrived = yield* Deferred.make<void>()
    child.on("message", (m) => {
      events.push(m as Record<string, unknown>)
      Deferred.unsafeDone(arrived, Effect.void)
    })
    const event = (kind: string) =>
      Effect.gen(function*() {
        for (;;) {
          const found = events.find((e) => e["event"] === kind)
          if (found !== undefined) return found
          if (child.exitCode !== null) return yield* Effect.die(new Error(`cxlog ${args[0]} exited before "${kind}"`))
          yield* Effect.sleep(50)
        }
      }).pipe(
        Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`cxlog ${args[0]}: no "${kind}"`) })
      )
    return { event }
  })

/** The README's Effect example as an app writes it, on the test's region and broker; then the messages read back. */
const example = (brokers: string, region: string) => `
import { Effect } from "effect"
import { Publisher, PublisherLayers, CxlogSubscriber } from "cxlog"

const brokers = ${JSON.stringify(brokers)}.split(",").map((a) => ({ host: "127.0.0.1", port: Number(a.split(":")[1]) }))
const program = Effect.gen(function*() {
  const publisher = yield* Publisher
  for (let i = 0; i < 100; i++) yield* publisher.publish(new TextEncoder().encode(\`message \${i}\`))
  yield* publisher.flush(5_000)
})
await Effect.runPromise(program.pipe(Effect.provide(PublisherLayers.layer({ brokers, topic: "events", region: ${
  JSON.stringify(region)
} }))))
const subscriber = await CxlogSubscriber.open({ brokers, topic: "events", region: ${JSON.stringify(region)} })
let read = 0
for await (const message of subscriber) if (++read === 100) break
await subscriber.close()
console.log(\`read \${read}\`)
`

describe("the packed package", () => {
  it.scopedLive(
    "installs with no compiler and no warning, passes selfcheck, and runs the README's Effect example against its own server",
    () =>
      Effect.gen(function*() {
        const { appDir, bin, installOutput } = yield* installedApp("3.22.4")
        expect(installOutput).not.toMatch(/EBADENGINE|ERESOLVE|peer dep|unable to build|native addon unavailable/i)
        expect(
          existsSync(join(appDir, "node_modules", "cxlog", "build")),
          "the prebuilt addon served: nothing was built"
        ).toBe(false)
        for (const unwanted of ["@nats-io", "ioredis", "prom-client", "uplot", "@effect"]) {
          expect(existsSync(join(appDir, "node_modules", unwanted)), unwanted).toBe(false)
        }

        const checked = yield* selfcheck(appDir, bin)
        expect(checked.status, checked.output).toBe(0)

        const region = yield* uniqueRegion("pack")
        const env = { CXLOG_REGION: region, PATH: bin }
        const head = yield* role(appDir, ["head", "--topic", "events"], env)
        yield* head.event("ready")
        const broker = yield* role(appDir, ["broker", "--broker-id", "0", "--port", "0"], env)
        const brokers = `127.0.0.1:${(yield* broker.event("listening"))["port"] as number}`
        writeFileSync(join(appDir, "example.mjs"), example(brokers, region))
        const ran = yield* runProcess(join(bin, "node"), ["example.mjs"], {
          cwd: appDir,
          env: appEnvironment(bin),
          timeoutMs: 60_000
        })
        expect(ran.status, ran.stderr).toBe(0)
        expect(ran.stdout.trim()).toBe("read 100")
        expect(ran.stderr).not.toContain("Executing an Effect versioned")
      }),
    300_000
  )

  it.scopedLive(
    "with its install script never run (npm 12 runs none of a dependency's unless the app approves it) the prebuilt addon still serves",
    () =>
      Effect.gen(function*() {
        const { appDir, bin } = yield* installedApp("3.22.4", ["--ignore-scripts"])
        expect(existsSync(join(appDir, "node_modules", "cxlog", "build")), "nothing was built").toBe(false)
        const checked = yield* selfcheck(appDir, bin)
        expect(checked.status, checked.output).toBe(0)
        expect(checked.output).toContain("self-check passed")
      }),
    300_000
  )

  it.scopedLive(
    "an app on another effect 3.x in the peer range keeps its one copy of effect",
    () =>
      Effect.gen(function*() {
        const { appDir } = yield* installedApp("3.22.0")
        const copies: Array<string> = []
        const walk = (modules: string) => {
          if (!existsSync(modules)) return
          for (const name of readdirSync(modules)) {
            if (name === "effect") copies.push(join(modules, name))
            const nested = join(modules, name, "node_modules")
            if (!name.startsWith(".")) walk(nested)
            if (name.startsWith("@")) {
              for (const scoped of readdirSync(join(modules, name))) walk(join(modules, name, scoped, "node_modules"))
            }
          }
        }
        walk(join(appDir, "node_modules"))
        expect(copies).toEqual([join(appDir, "node_modules", "effect")])
        expect(
          (JSON.parse(readFileSync(join(appDir, "node_modules", "effect", "package.json"), "utf8")) as {
            version: string
          }).version
        ).toBe("3.22.0")
      }),
    300_000
  )
})
