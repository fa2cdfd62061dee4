/**
 * `cxlog serve` as a user starts it, for the tests of serve (test/programs/Serve*.test.ts): the
 * bundled CLI spawned without an IPC channel in a process group of its own, its output kept, its
 * roles found in /proc; a region whose processes are SIGKILLed when the test ends, pass or fail;
 * free ports, and a wait for a condition.
 */
import { Deferred, Effect, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { childrenOf, cli } from "./CliRoles.js"
import { uniqueRegion } from "./Processes.js"

/** Whether `pid` still runs (a zombie nobody reaped yet has ended). */
export const running = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

/** Processes (serve, its roles) with `region` among their arguments, from /proc. */
const processesOf = (region: string) =>
  readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(region) && running(pid)
    } catch {
      return false
    }
  })

/**
 * A region for a test of serve; when the test ends, pass or fail, every process still running
 * with it among its arguments is SIGKILLed (a detached serve, roles a failed test left), then
 * the region and its files are removed.
 */
export const serveRegion = (label: string) =>
  Effect.tap(uniqueRegion(label), (region) =>
    Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const left = processesOf(region)
        for (const pid of left) process.kill(pid, "SIGKILL")
        yield* Effect.ignore(until(() => !left.some(running), 5_000, () => `processes of ${region} still run`))
      })
    ))

/**
 * Waits (looking every `everyMs`, at most `timeoutMs`) until `condition` holds; fails saying
 * `what` otherwise. Every 50 ms suits a process's output; a condition in this process (a fiber's
 * state, a counter) may be looked at every millisecond.
 */
export const until = (condition: () => boolean, timeoutMs: number, what: () => string, everyMs = 50) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`not within ${timeoutMs} ms: ${what()}`))
      yield* Effect.sleep(everyMs)
    }
  })

/** Listens on `port` (0: any) of 127.0.0.1 until the scope closes. */
export const holdPort = (port: number): Effect.Effect<Server & { readonly port: number }, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Server & { readonly port: number }, Error>((resume) => {
      const server = createServer()
      server.once("error", (e) => resume(Effect.fail(e)))
      server.listen(
        { host: "127.0.0.1", port },
        () => resume(Effect.succeed(Object.assign(server, { port: (server.address() as { port: number }).port })))
      )
    }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

/** A port P with P + 1 … P + count - 1 free too, as serve's brokers need. */
export const freePorts = (count: number) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 50; attempt++) {
      const first = yield* Effect.scoped(Effect.map(holdPort(0), (s) => s.port))
      if (first + count - 1 > 65535) continue
      const rest = yield* Effect.scoped(
        Effect.either(Effect.forEach(Array.from({ length: count - 1 }, (_, i) => first + 1 + i), holdPort))
      )
      if (rest._tag === "Right") return first
    }
    return yield* Effect.fail(new Error(`no ${count} consecutive free ports`))
  })

export interface Serving {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** Its role processes (head, brokers) running now, from /proc. */
  readonly roles: () => ReadonlyArray<number>
  /** Ctrl-C in its terminal: SIGINT to its process group (serve, and its roles unless they have groups of their own). */
  readonly interrupt: () => void
}

/**
 * `cxlog serve <args>` as a user starts it. When the scope closes serve is SIGKILLed if it still
 * runs, and so is every role process of it the test saw (they would stop by themselves, but a
 * failing test must not leave them to).
 */
export const startServe = (args: ReadonlyArray<string>): Effect.Effect<Serving, never, Scope.Scope> =>
  Effect.gen(function*() {
    const seen = new Set<number>()
    const exit = yield* Deferred.make<{ code: number | null; signal: NodeJS.Signals | null }>()
    const child = yield* Effect.acquireRelease(
      // A process group of its own, as a shell gives a job: a Ctrl-C is SIGINT to the whole group (`interrupt`).
      Effect.sync(() =>
        spawn(process.execPath, [cli, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"], detached: true })
      ),
      (child) =>
        Effect.sync(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
          for (const pid of seen) if (running(pid)) process.kill(pid, "SIGKILL")
        })
    )
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("close", (code, signal) => Deferred.unsafeDone(exit, Effect.succeed({ code, signal })))
    const roles = () => {
      const pids = [...childrenOf(child.pid!, "head"), ...childrenOf(child.pid!, "broker")]
      for (const pid of pids) seen.add(pid)
      return pids
    }
    return {
      child,
      output: () => output,
      exited: Deferred.await(exit),
      roles,
      interrupt: () => process.kill(-child.pid!, "SIGINT")
    }
  })

/** A serve started with --standby and --json (and `more` flags): its events, and the first of a kind (waited for). */
export const standbyServe = (region: string, more: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const serving = yield* startServe([
      "--region",
      region,
      "--port",
      "0",
      "--broker-count",
      "1",
      "--standby",
      "--json",
      ...more
    ])
    const events = () =>
      serving.output().split("\n").filter((line) => line.startsWith("{")).map((line) =>
        JSON.parse(line) as { readonly event: string } & Record<string, any>
      )
    const eventOf = (kind: string) => events().find((e) => e.event === kind)
    const awaitEvent = (kind: string, timeoutMs: number) =>
      Effect.flatMap(
        until(
          () => eventOf(kind) !== undefined || serving.child.exitCode !== null,
          timeoutMs,
          () => `a ${kind} event:\n${serving.output()}`
        ),
        () => {
          const event = eventOf(kind)
          return event === undefined
            ? Effect.fail(new Error(`serve exited before a ${kind} event:\n${serving.output()}`))
            : Effect.succeed(event)
        }
      )
    return { serving, events, awaitEvent }
  })

/** Waits for serve's ready banner; returns its `--brokers` list. */
export const awaitReady = (serving: Serving) =>
  Effect.gen(function*() {
    yield* until(
      () => serving.output().includes("Ctrl-C stops everything") || serving.child.exitCode !== null,
      120_000,
      () => `serve's ready banner:\n${serving.output()}`
    )
    const brokers = /^ {2}brokers +--brokers (\S+)$/m.exec(serving.output())?.[1]
    if (brokers === undefined) {
      return yield* Effect.fail(new Error(`serve did not say its brokers:\n${serving.output()}`))
    }
    return brokers
  })
