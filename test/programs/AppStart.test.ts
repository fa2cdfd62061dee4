/**
 * `cxlog app start FILE`: an app file's processes under the supervisor, from the bundled CLI as a
 * user runs it — a child that fails once restarted by `on-failure`, SIGTERM stopping every child
 * and exiting 0; with `drain`, SIGTERM draining a writer's values to a slow reader (both children
 * members of a `cxlog head`'s region) before they exit — and a file that does not decode refused
 * with its field named, exit code 2.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import type { ChildProcess } from "node:child_process"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Readable } from "node:stream"
import { ipcHead } from "../fixtures/ipc-member.js"
import { runCli, runCliWithin } from "../helpers/CliRoles.js"
import { fixtureEntry } from "../helpers/FixtureBuild.js"
import { isRunning, tempDir, uniqueRegion } from "../helpers/Processes.js"

/** Runs until SIGTERM, then exits 0. */
const STEADY = `process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000)\n`
/** Marks that it runs; on SIGTERM leaves another mark, and exits 0 a second and a half later: a child slow to stop. */
const SLOW_TO_STOP = `import { writeFileSync } from "node:fs"
const mark = (name) => writeFileSync(new URL("./" + name, import.meta.url), "")
process.on("SIGTERM", () => { mark("terminated"); setTimeout(() => process.exit(0), 1500) })
mark("running")
setInterval(() => {}, 1000)
`
/** Exits 1 the first time it runs (it leaves a mark), then runs as STEADY does. */
const FAILS_ONCE = `import { existsSync, writeFileSync } from "node:fs"
const mark = new URL("./failed-once", import.meta.url)
if (!existsSync(mark)) { writeFileSync(mark, ""); process.exit(1) }
${STEADY}`

/** Runs, taking no notice of SIGTERM: only a SIGKILL ends it. */
const DEAF = `process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)\n`

/** Resolves once `ok()` holds; bounded. */
const waitFor = (what: string, ok: () => boolean, output: () => string) =>
  Effect.gen(function*() {
    while (!ok()) yield* Effect.sleep("20 millis")
  }).pipe(Effect.timeoutFail({ duration: 60_000, onTimeout: () => new Error(`no ${what}: ${output()}`) }))

/** Child pids the app printed as started (`ChildStarted child=… pid=…`). */
const startedPids = (output: string) =>
  [...output.matchAll(/^ChildStarted child=\S+ pid=(\d+)/gm)].map((m) => Number(m[1]))

/**
 * `cxlog app start FILE` forked, its stdout gathered; whatever it started and left running (a
 * failure midway) is SIGKILLed with the scope: each child runs in a process group of its own.
 */
const startApp = (file: string, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    let output = ""
    const started = yield* Deferred.make<ChildProcess>()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const pid of startedPids(output)) if (isRunning(pid)) process.kill(-pid, "SIGKILL")
      })
    )
    const app = yield* Effect.fork(runCli(["app", "start", file], env, (child) => {
      child.stdout!.on("data", (c: Buffer) => (output += c.toString()))
      Deferred.unsafeDone(started, Effect.succeed(child))
    }))
    return { app, child: yield* Deferred.await(started), output: () => output }
  })

describe("cxlog app start", () => {
  it.scopedLive(
    "restarts a child that failed by its on-failure policy; SIGTERM stops every child and exits 0",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-app-")
        writeFileSync(join(dir, "steady.mjs"), STEADY)
        writeFileSync(join(dir, "flaky.mjs"), FAILS_ONCE)
        const file = join(dir, "app.json")
        writeFileSync(
          file,
          JSON.stringify({
            processes: [
              { name: "steady", script: "steady.mjs", count: 2, restart: "never" },
              { name: "flaky", script: "flaky.mjs", restart: "on-failure", backoffMs: 10 }
            ]
          })
        )
        const { app, child, output } = yield* startApp(file)
        const restarted = /^ChildStarted child=flaky#0 pid=\d+ restarts=1$/m
        yield* waitFor(
          "restart of flaky#0",
          () => restarted.test(output()) && startedPids(output()).length === 4,
          output
        )
        expect(output()).toMatch(/^ChildExited child=flaky#0 pid=\d+ code=1 signal=null failed=true$/m)
        expect(output()).toMatch(/^ChildRestarting child=flaky#0 restarts=1 delayMs=10$/m)
        const pids = startedPids(output())
        expect(pids.filter(isRunning)).toHaveLength(3) // both steady, and flaky as restarted

        child.kill("SIGTERM")
        const result = yield* Fiber.join(app).pipe(Effect.timeout("30 seconds"))
        expect(result.code).toBe(0)
        expect(result.stdout).toMatch(/^ShutdownStarted children=3$/m)
        expect(result.stdout).toMatch(/^ShutdownDone stopped=3 killed=0 drain=none$/m)
        expect(pids.filter(isRunning)).toEqual([])
      }),
    60_000
  )

  it.scopedLive(
    "SIGKILLed, it leaves no child behind: they get SIGTERM, and SIGKILL past the stop timeout",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-app-")
        writeFileSync(join(dir, "steady.mjs"), STEADY)
        writeFileSync(join(dir, "deaf.mjs"), DEAF)
        const file = join(dir, "app.json")
        writeFileSync(
          file,
          JSON.stringify({
            processes: [
              { name: "steady", script: "steady.mjs", count: 2 },
              { name: "deaf", script: "deaf.mjs" }
            ]
          })
        )
        const { child, output } = yield* startApp(file, { CXLOG_SUPERVISOR_STOP_TIMEOUT_MS: "500" })
        yield* waitFor("three children", () => startedPids(output()).length === 3, output)
        const pids = startedPids(output())
        expect(pids.filter(isRunning)).toHaveLength(3)
        child.kill("SIGKILL")
        yield* waitFor(
          `the end of the children (${pids.join(", ")})`,
          () => pids.every((pid) => !isRunning(pid)),
          output
        )
      }),
    90_000
  )

  it.scopedLive(
    "its stdout's reader gone (| head -1), it stops every child and exits 0, with nothing more to print",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-app-")
        // Each says its pid in a file of its own: the app's stdout, which says it too, is closed.
        writeFileSync(
          join(dir, "marked.mjs"),
          `import { writeFileSync } from "node:fs"\nwriteFileSync(new URL("./pid-" + process.pid, import.meta.url), "")\n${STEADY}`
        )
        const file = join(dir, "app.json")
        writeFileSync(file, JSON.stringify({ processes: [{ name: "marked", script: "marked.mjs", count: 2 }] }))
        const pids = () => readdirSync(dir).filter((f) => f.startsWith("pid-")).map((f) => Number(f.slice(4)))
        // A failure midway leaves none running: each child runs in a process group of its own.
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            for (const pid of pids()) if (isRunning(pid)) process.kill(-pid, "SIGKILL")
          })
        )
        let stdout: Readable | undefined
        const app = yield* Effect.fork(runCli(["app", "start", file], {}, (child) => {
          stdout = child.stdout!
          stdout.on("data", () => {})
        }))
        yield* waitFor("two children", () => pids().length === 2, () => readdirSync(dir).join(" "))
        // As `| head -1`: the reader goes once the children run (earlier, the app would stop a child
        // before it marked itself), and they run on printing nothing more.
        stdout!.destroy()
        const result = yield* Fiber.join(app).pipe(Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error("cxlog app start ran on 30 s after its stdout closed")
        }))
        expect(result.code, result.stderr).toBe(0)
        yield* waitFor(
          "the end of the children",
          () => pids().every((pid) => !isRunning(pid)),
          () => pids().filter(isRunning).join(" ")
        )
      }),
    60_000
  )

  it.scopedLive(
    "a second SIGINT while it stops its children is said and waited through: the children stop as the first asked, exit 0",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-app-")
        writeFileSync(join(dir, "slow.mjs"), SLOW_TO_STOP)
        const file = join(dir, "app.json")
        writeFileSync(file, JSON.stringify({ processes: [{ name: "slow", script: "slow.mjs", restart: "never" }] }))
        const { app, child, output } = yield* startApp(file)
        yield* waitFor("slow#0 running", () => existsSync(join(dir, "running")), output)
        const [pid] = startedPids(output())
        child.kill("SIGINT")
        // The app is stopping: its child took the SIGTERM and takes its time.
        yield* waitFor("the child's SIGTERM", () => existsSync(join(dir, "terminated")), output)
        child.kill("SIGINT")
        const result = yield* Fiber.join(app).pipe(Effect.timeout("30 seconds"))
        expect(result.code, result.stderr).toBe(0)
        expect(result.stderr).toContain("cxlog app: SIGINT while stopping: still cleaning up what it holds")
        expect(result.stdout).toMatch(/^ChildExited child=slow#0 pid=\d+ code=0 signal=null failed=false$/m)
        expect(result.stdout).toMatch(/^ShutdownDone stopped=1 killed=0 drain=none$/m)
        expect(isRunning(pid!)).toBe(false)
      }),
    60_000
  )

  it.scopedLive(
    "with drain: SIGTERM fences over the group, the reader processes every value the writer published before they exit",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("app-drain")
        yield* ipcHead(region)
        const dir = yield* tempDir("cxlog-app-")
        const member = (role: string, extra: object = {}) => ({
          name: role,
          command: process.execPath,
          args: [fixtureEntry("drain-member"), JSON.stringify({ region, dir, role, ...extra })],
          restart: "never"
        })
        const file = join(dir, "app.json")
        writeFileSync(
          file,
          JSON.stringify({
            region,
            drain: { group: "app" },
            processes: [member("read"), member("write", { after: "read.ready" })]
          })
        )
        const { app, child, output } = yield* startApp(file)
        // The writer is held back by the slow reader by now.
        yield* waitFor("the writer's backlog", () => existsSync(join(dir, "write.busy")), output)
        child.kill("SIGTERM")
        const result = yield* Fiber.join(app).pipe(Effect.timeout("60 seconds"))
        expect(result.code).toBe(0)
        expect(result.stdout).toMatch(/^ShutdownDrained group=app completed=true arrived=\S+ missing= reason=$/m)
        expect(result.stdout).toMatch(/^ShutdownDone stopped=2 killed=0 drain=completed$/m)
        const report = (role: string) => JSON.parse(readFileSync(join(dir, `${role}.json`), "utf8"))
        const { published } = report("write")
        expect(report("read")).toEqual({ processed: published, outOfOrder: 0 })
      }),
    120_000
  )

  it.scopedLive(
    "a file that does not decode, or names a script or cwd that is not there, is refused naming the field, exit code 2",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-app-")
        const file = join(dir, "app.json")
        writeFileSync(file, JSON.stringify({ processes: [{ name: "w", script: "w.mjs", restart: "sometimes" }] }))
        const result = yield* runCliWithin(["app", "start", file], {}, 30_000)
        expect(result.code).toBe(2)
        expect(result.stderr).toContain(
          `cxlog app: ${file}: processes.0.restart: Expected "never" | "on-failure" | "always"`
        )
        expect(result.stdout).toBe("")
        // A drain over a group every member is in would wait for the head too.
        writeFileSync(file, JSON.stringify({ drain: { group: "all" }, processes: [{ name: "w", script: "w.mjs" }] }))
        const everyone = yield* runCliWithin(["app", "start", file], {}, 30_000)
        expect(everyone.code).toBe(2)
        expect(everyone.stderr).toContain(`cxlog app: ${file}: drain.group: all is every member's group`)
        // A script that is not there is refused before anything starts (Node would start and fail as the script).
        writeFileSync(join(dir, "here.mjs"), STEADY)
        writeFileSync(
          file,
          JSON.stringify({ processes: [{ name: "here", script: "here.mjs" }, { name: "gone", script: "gone.mjs" }] })
        )
        // Started as the others are: should it start anything (the check gone), that goes with the test, pass or fail.
        const { app } = yield* startApp(file)
        const missing = yield* Fiber.join(app).pipe(Effect.timeout("30 seconds"))
        expect(missing.code).toBe(2)
        expect(missing.stderr).toContain(`cxlog app: ${file}: processes.1.script: no file ${join(dir, "gone.mjs")}`)
        expect(missing.stdout).toBe("")
        // So is a working directory that is not there (the spawn would fail blaming Node, which is there).
        writeFileSync(
          file,
          JSON.stringify({
            processes: [{ name: "here", script: "here.mjs" }, { name: "lost", script: "here.mjs", cwd: "gone" }]
          })
        )
        const { app: lost } = yield* startApp(file)
        const noDirectory = yield* Fiber.join(lost).pipe(Effect.timeout("30 seconds"))
        expect(noDirectory.code).toBe(2)
        expect(noDirectory.stderr).toContain(`cxlog app: ${file}: processes.1.cwd: no directory ${join(dir, "gone")}`)
        expect(noDirectory.stdout).toBe("")
      }),
    60_000
  )
})
