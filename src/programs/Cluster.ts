/**
 * A local cluster of role processes for `cxlog run` and `cxlog bench`: a head, N brokers, a
 * subscriber and a publisher, each a real `cxlog` process forked with an IPC channel. Every
 * child is stopped and the region unlinked when the scope closes, Ctrl-C included.
 */
import { Data, Deferred, Duration, Effect, FiberId, type Scope } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { existsSync, unlinkSync } from "node:fs"
import { removeWakeFifos } from "../layers/region/Doorbell.js"
import { procStat, USER_HZ } from "../layers/region/ProcessInfo.js"
import { removeDefaultCredentials } from "../layers/net/Auth.js"
import { cliEntry } from "../PackageRoot.js"
import type { RoleEvent } from "./Report.js"

/** The typed error a role reported before it failed (`reportFailure`): its tag, message and fields. */
export type ReportedError = { readonly _tag: string; readonly message: string } & Record<string, unknown>

export class RoleFailed extends Data.TaggedError("RoleFailed")<{
  readonly role: string
  /** The role's process id (0 if it never started). */
  readonly pid?: number
  readonly reason: string
  /** What the orchestrator was waiting for when the role failed. */
  readonly waitingFor?: string
  /** The typed error the role reported, if it did. */
  readonly error?: ReportedError
  readonly stderr: string
}> {
  override get message() {
    const who = this.pid === undefined ? this.role : `${this.role} (pid ${this.pid})`
    const during = this.waitingFor === undefined ? "" : ` while the run waited for ${this.waitingFor}`
    const typed = this.error === undefined ? "" : `: ${this.error._tag}: ${this.error.message}`
    const tail = this.stderr.trim() === "" ? "" : `\n--- ${this.role} stderr (last lines) ---\n${this.stderr.trimEnd()}`
    return `${who} failed: ${this.reason}${during}${typed}${tail}`
  }
  /** The same failure, seen while the run waited for `waitingFor`. */
  during(waitingFor: string): RoleFailed {
    const { role, pid, reason, error, stderr } = this
    return new RoleFailed({ role, reason, stderr, waitingFor, ...(pid === undefined ? {} : { pid }), ...(error === undefined ? {} : { error }) })
  }
}

export interface RoleProcess {
  readonly role: string
  readonly pid: number
  readonly child: ChildProcess
  /** The first event of this kind (waits for it). */
  readonly event: (kind: string, timeoutMs: number) => Effect.Effect<RoleEvent, RoleFailed>
  /** Called for every event, in order. */
  readonly on: (listener: (event: RoleEvent) => void) => void
  /** Fails when the process exits before `done` was reported. */
  readonly exited: Effect.Effect<never, RoleFailed>
  readonly kill: (signal: NodeJS.Signals) => void
  /** CPU seconds (user + system, all threads) the process has used so far; undefined once it is gone or off Linux. */
  readonly cpuSeconds: () => number | undefined
}

const TAIL_BYTES = 8192
/** utime + stime of a process from /proc/PID/stat, in seconds. */
export const processCpuSeconds = (pid: number): number | undefined => {
  const stat = procStat(pid)
  return stat === undefined ? undefined : stat.cpuTicks / USER_HZ
}

/** `CXLOG_PROFILE_DIR=dir` writes a V8 CPU profile of every role process there (finding hot spots). */
export const profileArgs = (): Array<string> => {
  const dir = process.env["CXLOG_PROFILE_DIR"]
  return dir === undefined || dir === "" ? [] : ["--cpu-prof", `--cpu-prof-dir=${dir}`]
}

/** Stops a child process: SIGTERM, then SIGKILL if it has not exited within 3 s; resumes once it is gone. */
export const stopChild = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const force = setTimeout(() => child.kill("SIGKILL"), 3_000)
    child.once("exit", () => {
      clearTimeout(force)
      resume(Effect.void)
    })
    child.kill("SIGTERM")
  })

/** How long a role's failure waits, after it exited, for the rest of its output. */
const STDIO_DRAIN_MS = 1_000

/** Forks `cxlog <args>`; SIGTERM then SIGKILL when the scope closes. */
export const spawnRole = (role: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Effect.Effect<RoleProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const seen = new Map<string, Deferred.Deferred<RoleEvent, RoleFailed>>()
    const listeners: Array<(event: RoleEvent) => void> = []
    const exit = yield* Deferred.make<never, RoleFailed>()
    let stderr = ""
    let reported: ReportedError | undefined
    /** Why the child exited, once it has: an event first asked for after that fails at once. */
    let exitReason: string | undefined
    const deferredFor = (kind: string) => {
      let d = seen.get(kind)
      if (d === undefined) {
        d = Deferred.unsafeMake<RoleEvent, RoleFailed>(FiberId.none)
        seen.set(kind, d)
        if (exitReason !== undefined) Deferred.unsafeDone(d, Effect.fail(failed(exitReason, `its "${kind}" event`)))
      }
      return d
    }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(cliEntry(), [...args], {
          stdio: ["ignore", "pipe", "pipe", "ipc"],
          env: { ...process.env, ...env },
          serialization: "advanced",
          execArgv: profileArgs()
        })
      ),
      stopChild
    )
    const keep = (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-TAIL_BYTES)
    }
    child.stdout!.on("data", keep)
    child.stderr!.on("data", keep)
    const pid = child.pid ?? 0
    const failed = (reason: string, waitingFor: string) =>
      new RoleFailed({ role, pid, reason, waitingFor, ...(reported === undefined ? {} : { error: reported }), stderr })
    child.on("message", (message) => {
      const event = message as RoleEvent
      // The first report is the role's own typed error; the CLI's line for the same failure may follow.
      if (event.event === "failed") reported ??= event["error"] as ReportedError
      for (const listener of listeners) listener(event)
      Deferred.unsafeDone(deferredFor(event.event), Effect.succeed(event))
    })
    child.on("exit", (code, signal) => {
      const settle = () => {
        if (exitReason !== undefined) return
        const reason = exitReason = `exited with ${signal ?? `code ${code}`}`
        Deferred.unsafeDone(exit, Effect.fail(failed(reason, "it to finish")))
        for (const [kind, d] of seen) Deferred.unsafeDone(d, Effect.fail(failed(reason, `its "${kind}" event`)))
      }
      // "exit" can come before the child's last output is read (a role that fails at start prints
      // why and exits at once): fail once its pipes have closed, so the failure carries that output.
      // A grandchild holding the pipes open must not hold the failure back: bounded.
      const drained = setTimeout(settle, STDIO_DRAIN_MS)
      child.once("close", () => {
        clearTimeout(drained)
        settle()
      })
    })
    return {
      role,
      pid,
      child,
      event: (kind, timeoutMs) =>
        Deferred.await(deferredFor(kind)).pipe(
          Effect.timeoutFail({
            duration: Duration.millis(timeoutMs),
            onTimeout: () => failed(`no "${kind}" within ${timeoutMs} ms`, `its "${kind}" event`)
          })
        ),
      on: (listener) => {
        listeners.push(listener)
      },
      exited: Deferred.await(exit),
      kill: (signal) => {
        child.kill(signal)
      },
      cpuSeconds: () => (child.pid === undefined || child.exitCode !== null || child.signalCode !== null ? undefined : processCpuSeconds(child.pid))
    }
  })

/**
 * `effect`, failed by the first of `roles` to exit meanwhile (its RoleFailed says what the run
 * was waiting for): a run never waits on roles that are gone.
 */
export const whileAlive = (roles: ReadonlyArray<RoleProcess>, waitingFor: string) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | RoleFailed, R> =>
  roles.length === 0
    ? effect
    : Effect.raceFirst(
      effect,
      Effect.raceAll(roles.map((role) => Effect.flip(role.exited))).pipe(
        Effect.flatMap((failure) => Effect.fail(failure.during(waitingFor)))
      )
    )

/** Unlinks the region at scope close if a crashed head left it behind. */
export const regionGuard = (name: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      const path = `/dev/shm/${name.replace(/^\//, "")}`
      if (existsSync(path)) unlinkSync(path)
      // Its processes are stopped by now; a SIGKILLed one left its wake FIFO (and a killed head its credential files) behind.
      removeWakeFifos(name)
      removeDefaultCredentials(name)
    })
  )

/**
 * CPU seconds each role spends between `start()` (the first call counts) and `stop(role)`,
 * read from /proc: the cost of a run without the processes' start-up. Roles not stopped
 * explicitly are stopped by `stopAll()`; a role that died in between counts as 0.
 */
export const makeCpuMeter = (roles: ReadonlyArray<RoleProcess>) => {
  const started = new Map<RoleProcess, number>()
  const used = new Map<RoleProcess, number>()
  const stop = (role: RoleProcess) => {
    const from = started.get(role)
    if (from === undefined || used.has(role)) return
    used.set(role, Math.max(0, (role.cpuSeconds() ?? from) - from))
  }
  return {
    start: () => {
      if (started.size > 0) return
      for (const role of roles) {
        const now = role.cpuSeconds()
        if (now !== undefined) started.set(role, now)
      }
    },
    stop,
    stopAll: () => roles.forEach(stop),
    /** Seconds used by the roles `pick` selects. */
    seconds: (pick: (role: RoleProcess) => boolean) => {
      let total = 0
      for (const [role, seconds] of used) if (pick(role)) total += seconds
      return total
    }
  }
}

/**
 * A head serving `topic` (`name:order:ack`) and `brokers` broker processes on their own ports, once all are ready.
 * `envOf(i)` adds to the environment of the head (0) and broker i (i + 1): each its own metrics port.
 */
export const startHeadAndBrokers = (topic: string, brokers: number, env: Record<string, string>, envOf: (index: number) => Record<string, string> = () => ({})) =>
  Effect.gen(function*() {
    const head = yield* spawnRole("head", ["head", "--topic", topic], { ...env, ...envOf(0) })
    yield* head.event("ready", 20_000)
    const brokerRoles = yield* Effect.forEach(
      Array.from({ length: brokers }, (_, i) => i),
      (i) => spawnRole(`broker ${i}`, ["broker", "--broker-id", `${i}`, "--port", "0"], { ...env, ...envOf(i + 1) }),
      { concurrency: "unbounded" }
    )
    const ports = yield* Effect.forEach(brokerRoles, (b) => Effect.map(b.event("listening", 20_000), (e) => e["port"] as number)).pipe(
      whileAlive([head], "the brokers to listen")
    )
    return { head, brokers: brokerRoles, ports }
  })
