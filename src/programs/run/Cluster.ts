/**
 * A local cluster of role processes for `cxlog run` and `cxlog bench`: a head, N brokers, a
 * subscriber and a publisher, each a real `cxlog` process forked with an IPC channel. Every
 * child is stopped and the region unlinked when the scope closes, Ctrl-C included.
 */
import { Data, Deferred, Duration, Effect, Either, FiberId, ParseResult, Schema, type Scope } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { existsSync, unlinkSync } from "node:fs"
import { pipeWatcher } from "../../layers/ipc/PipeWatcher.js"
import { removeDefaultCredentials } from "../../layers/net/Auth.js"
import { removeWakeFifos } from "../../layers/region/Doorbell.js"
import { mainThreadStat, procStat, type ThreadStat, USER_HZ } from "../../layers/region/ProcessInfo.js"
import { processEnvironment, readSetting } from "../../Settings.js"
import { cliEntry, ORCHESTRATOR_SETTINGS } from "../ProgramSettings.js"
import { RoleEvent } from "../roles/Report.js"
import { BrokerEvents, FailedEvent, HeadEvents, type ReportedError } from "../roles/RoleEvents.js"

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
    return new RoleFailed({
      role,
      reason,
      stderr,
      waitingFor,
      ...(pid === undefined ? {} : { pid }),
      ...(error === undefined ? {} : { error })
    })
  }
}

/** A role's events by kind: the Schema each is decoded with as it arrives (RoleEvents.ts). */
export type Vocabulary = { readonly [kind: string]: Schema.Schema.AnyNoContext }

/** An event of kind `K` of a role's vocabulary, decoded (what it does not name is kept as sent). */
export type Heard<V extends Vocabulary, K extends keyof V> = Schema.Schema.Type<V[K]> & RoleEvent

/** An event of kind `K`: decoded where the role's vocabulary names the kind, else as sent. */
export type Said<V extends Vocabulary, K extends string> = K extends keyof V ? Heard<V, K> : RoleEvent

export interface RoleProcess {
  readonly role: string
  readonly pid: number
  readonly child: ChildProcess
  /** The first event of this kind (waits for it). */
  readonly event: (kind: string, timeoutMs: number) => Effect.Effect<RoleEvent, RoleFailed>
  /** Called for every event, in order. */
  readonly on: (listener: (event: RoleEvent) => void) => void
  /** Fails once the role has failed: its process exited, or it sent a malformed event. */
  readonly exited: Effect.Effect<never, RoleFailed>
  readonly kill: (signal: NodeJS.Signals) => void
  /** CPU seconds (user + system, all threads) the process has used so far; undefined once it is gone or off Linux. */
  readonly cpuSeconds: () => number | undefined
  /** Its main thread's CPU ticks and sleeps so far; undefined once it is gone or off Linux. */
  readonly mainThread: () => ThreadStat | undefined
}

/** A role whose events of the kinds its vocabulary names come decoded. */
export interface RoleOf<V extends Vocabulary> extends RoleProcess {
  readonly event: <K extends string>(kind: K, timeoutMs: number) => Effect.Effect<Said<V, K>, RoleFailed>
  /** Called for every event of this kind of the role's vocabulary, decoded, in order. */
  readonly onEvent: <K extends keyof V & string>(kind: K, listener: (event: Heard<V, K>) => void) => void
}

export const TAIL_BYTES = 8192
/** utime + stime of a process from /proc/PID/stat, in seconds. */
export const processCpuSeconds = (pid: number): number | undefined => {
  const stat = procStat(pid)
  return stat === undefined ? undefined : stat.cpuTicks / USER_HZ
}

/** `CXLOG_PROFILE_DIR=dir` writes a V8 CPU profile of every role process there (finding hot spots). */
export const profileArgs = (): Array<string> => {
  const dir = readSetting(ORCHESTRATOR_SETTINGS.settings.profileDir)
  return dir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${dir}`]
}

/**
 * Stops `child` (SIGTERM) should this process die without stopping it (SIGKILL, a crash): for
 * children that do not watch their parent, as the roles do (servers, CPU loads). A `sh` beside it
 * waits to read the end of a pipe only this process holds open, then signals the child. The
 * watcher goes when the scope closes, before the child's own release stops it, so it never
 * signals a pid reused since.
 */
export const stopWithParent = (child: ChildProcess): Effect.Effect<void, never, Scope.Scope> =>
  child.pid === undefined
    ? Effect.void
    : Effect.asVoid(pipeWatcher("read -r _; kill \"$0\" 2>/dev/null", [`${child.pid}`]))

/** How long a role's failure, or its stop, waits after it exited for the rest of its output. */
const STDIO_DRAIN_MS = 1_000

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Its process has exited and every pipe to it has closed: Node has said "close", or is about to. */
const closed = (child: ChildProcess) =>
  exited(child) && child.stdio.every((stream) => stream === null || stream === undefined || stream.destroyed)

/**
 * Stops a child process: SIGTERM, then SIGKILL if it has not exited within 3 s; resumes once it
 * is gone and its last output has been read ("close", so a caller that prints it sees its last
 * line before going on), or 1 s after it exited if a grandchild holds its pipes.
 */
export const stopChild = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (closed(child)) return resume(Effect.void)
    let force: NodeJS.Timeout | undefined
    let drain: NodeJS.Timeout | undefined
    const gone = () => {
      clearTimeout(force)
      clearTimeout(drain)
      child.off("close", gone)
      resume(Effect.void)
    }
    const draining = () => {
      clearTimeout(force)
      drain = setTimeout(gone, STDIO_DRAIN_MS)
    }
    child.once("close", gone)
    if (exited(child)) return draining()
    force = setTimeout(() => child.kill("SIGKILL"), 3_000)
    child.once("exit", draining)
    child.kill("SIGTERM")
  })

/** Decoding keeps the fields a vocabulary does not name (the HTML report reads some) and names every problem. */
const AS_SENT = { onExcessProperty: "preserve", errors: "all" } as const
const decodeEnvelope = Schema.decodeUnknownEither(RoleEvent)
const isFailedEvent = Schema.is(FailedEvent)

/** What is wrong with an event, on one line: each field's problem. */
const issues = (error: ParseResult.ParseError) =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) =>
    `${issue.path.length === 0 ? "the event" : issue.path.join(".")}: ${issue.message}`
  ).join("; ")

/** How a role's process is started, beyond its arguments and environment. */
export interface SpawnOptions {
  /**
   * Start it in a session (and process group) of its own, so that a terminal's Ctrl-C reaches only
   * the orchestrator, which then stops its roles in its own order (`cxlog serve`: brokers, then
   * heads). The role still ends with its orchestrator: its IPC channel closes (exitWithParent).
   */
  readonly ownProcessGroup?: boolean
}

/**
 * Forks `cxlog <args>`; SIGTERM then SIGKILL when the scope closes. Each event of a kind in
 * `vocabulary` is decoded as it arrives; a malformed one fails the role as its exit would.
 */
export const spawnRole = <V extends Vocabulary = {}>(
  role: string,
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  vocabulary?: V,
  options: SpawnOptions = {}
): Effect.Effect<RoleOf<V>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const seen = new Map<string, Deferred.Deferred<RoleEvent, RoleFailed>>()
    const listeners: Array<(event: RoleEvent) => void> = []
    const kindListeners = new Map<string, Array<(event: RoleEvent) => void>>()
    const decoders = new Map<string, (message: unknown) => Either.Either<RoleEvent, ParseResult.ParseError>>()
    for (const [kind, schema] of Object.entries<Schema.Schema.AnyNoContext>({ failed: FailedEvent, ...vocabulary })) {
      decoders.set(kind, Schema.decodeUnknownEither(schema, AS_SENT))
    }
    const exit = yield* Deferred.make<never, RoleFailed>()
    let stderr = ""
    let reported: ReportedError | undefined
    /** Why the role failed (it exited, or said what it cannot mean), once it has: an event first asked for after that fails at once. */
    let failure: string | undefined
    const deferredFor = (kind: string) => {
      let d = seen.get(kind)
      if (d === undefined) {
        d = Deferred.unsafeMake<RoleEvent, RoleFailed>(FiberId.none)
        seen.set(kind, d)
        if (failure !== undefined) Deferred.unsafeDone(d, Effect.fail(failed(failure, `its "${kind}" event`)))
      }
      return d
    }
    /** Fails whatever waits on the role, and what will. */
    const fail = (reason: string) => {
      if (failure !== undefined) return
      failure = reason
      Deferred.unsafeDone(exit, Effect.fail(failed(reason, "it to finish")))
      for (const [kind, d] of seen) Deferred.unsafeDone(d, Effect.fail(failed(reason, `its "${kind}" event`)))
    }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(cliEntry(), [...args], {
          stdio: ["ignore", "pipe", "pipe", "ipc"],
          env: { ...processEnvironment(), ...env },
          serialization: "advanced",
          execArgv: profileArgs(),
          detached: options.ownProcessGroup === true
        })
      ),
      stopChild
    )
    const running = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null
    const keep = (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-TAIL_BYTES)
    }
    child.stdout!.on("data", keep)
    child.stderr!.on("data", keep)
    const pid = child.pid ?? 0
    const failed = (reason: string, waitingFor: string) =>
      new RoleFailed({ role, pid, reason, waitingFor, ...(reported === undefined ? {} : { error: reported }), stderr })
    child.on("message", (message) => {
      const envelope = decodeEnvelope(message)
      if (Either.isLeft(envelope)) return fail(`sent a malformed event (${issues(envelope.left)})`)
      const kind = envelope.right.event
      const decode = decoders.get(kind)
      const decoded = decode === undefined ? envelope : decode(message)
      if (Either.isLeft(decoded)) return fail(`sent a malformed "${kind}" event (${issues(decoded.left)})`)
      const event = decoded.right
      // The first report is the role's own typed error; the CLI's line for the same failure may follow.
      if (isFailedEvent(event)) reported ??= event.error
      for (const listener of listeners) listener(event)
      for (const listener of kindListeners.get(kind) ?? []) listener(event)
      Deferred.unsafeDone(deferredFor(kind), Effect.succeed(event))
    })
    child.on("exit", (code, signal) => {
      const settle = () => fail(`exited with ${signal ?? `code ${code}`}`)
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
      event: <K extends string>(kind: K, timeoutMs: number) =>
        Deferred.await(deferredFor(kind)).pipe(
          Effect.timeoutFail({
            duration: Duration.millis(timeoutMs),
            onTimeout: () => failed(`no "${kind}" within ${timeoutMs} ms`, `its "${kind}" event`)
          }),
          // Decoded by the vocabulary's schema for `kind` as it arrived (else as sent).
          Effect.map((event) => event as Said<V, K>)
        ),
      on: (listener) => {
        listeners.push(listener)
      },
      onEvent: (kind, listener) => {
        const those = kindListeners.get(kind) ?? []
        those.push(listener as (event: RoleEvent) => void)
        kindListeners.set(kind, those)
      },
      exited: Deferred.await(exit),
      kill: (signal) => {
        child.kill(signal)
      },
      cpuSeconds: () => (running() ? processCpuSeconds(child.pid!) : undefined),
      mainThread: () => (running() ? mainThreadStat(child.pid!) : undefined)
    }
  })

/**
 * `effect`, failed by the first of `roles` to exit meanwhile (its RoleFailed says what the run
 * was waiting for): a run never waits on roles that are gone.
 */
export const whileAlive =
  (roles: ReadonlyArray<RoleProcess>, waitingFor: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | RoleFailed, R> =>
    roles.length === 0
      ? effect
      : Effect.raceFirst(
        effect,
        Effect.raceAll(roles.map((role) => Effect.flip(role.exited))).pipe(
          Effect.flatMap((failure) => Effect.fail(failure.during(waitingFor)))
        )
      )

/**
 * Unlinks the region at scope close if a crashed head left it behind; with `owned`, only once it
 * says the region is this orchestrator's (its head made it), never one another process serves.
 */
export const regionGuard = (name: string, owned: () => boolean = () => true): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      if (!owned()) return
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
  const sample = (role: RoleProcess): CpuSample | undefined => {
    const seconds = role.cpuSeconds()
    const main = role.mainThread()
    return seconds === undefined
      ? undefined
      : { seconds, mainSeconds: (main?.cpuTicks ?? 0) / USER_HZ, sleeps: main?.sleeps ?? 0 }
  }
  const started = new Map<RoleProcess, CpuSample>()
  const used = new Map<RoleProcess, CpuSample>()
  const stop = (role: RoleProcess) => {
    const from = started.get(role)
    if (from === undefined || used.has(role)) return
    const to = sample(role) ?? from
    used.set(role, {
      seconds: Math.max(0, to.seconds - from.seconds),
      mainSeconds: Math.max(0, to.mainSeconds - from.mainSeconds),
      sleeps: Math.max(0, to.sleeps - from.sleeps)
    })
  }
  const sum = (pick: (role: RoleProcess) => boolean, figure: keyof CpuSample) => {
    let total = 0
    for (const [role, sample] of used) if (pick(role)) total += sample[figure]
    return total
  }
  return {
    start: () => {
      if (started.size > 0) return
      for (const role of roles) {
        const now = sample(role)
        if (now !== undefined) started.set(role, now)
      }
    },
    stop,
    stopAll: () => roles.forEach(stop),
    /** Seconds used by the roles `pick` selects. */
    seconds: (pick: (role: RoleProcess) => boolean) => sum(pick, "seconds"),
    /** Of those, their main threads' (their JavaScript's; the rest is V8's and libuv's threads). */
    mainSeconds: (pick: (role: RoleProcess) => boolean) => sum(pick, "mainSeconds"),
    /** How many times their main threads woke. */
    wakes: (pick: (role: RoleProcess) => boolean) => sum(pick, "sleeps")
  }
}

/** A role's CPU so far (or over the run): all threads, its main thread, and its main thread's sleeps. */
interface CpuSample {
  readonly seconds: number
  readonly mainSeconds: number
  readonly sleeps: number
}

/**
 * A head serving `topic` (`name:order:ack`) and `brokers` broker processes on their own ports, once all are ready.
 * `envOf(i)` adds to the environment of the head (0) and broker i (i + 1): each its own metrics port.
 */
export const startHeadAndBrokers = (
  topic: string,
  brokers: number,
  env: Record<string, string>,
  envOf: (index: number) => Record<string, string> = () => ({}),
  headArgs: ReadonlyArray<string> = []
) =>
  Effect.gen(function*() {
    const head = yield* spawnRole("head", ["head", "--topic", topic, ...headArgs], { ...env, ...envOf(0) }, HeadEvents)
    yield* head.event("ready", 20_000)
    const brokerRoles = yield* Effect.forEach(
      Array.from({ length: brokers }, (_, i) => i),
      (i) =>
        spawnRole(
          `broker ${i}`,
          ["broker", "--broker-id", `${i}`, "--port", "0"],
          { ...env, ...envOf(i + 1) },
          BrokerEvents
        ),
      { concurrency: "unbounded" }
    )
    const ports = yield* Effect.forEach(brokerRoles, (b) => Effect.map(b.event("listening", 20_000), (e) => e.port))
      .pipe(
        whileAlive([head], "the brokers to listen")
      )
    return { head, brokers: brokerRoles, ports }
  })
