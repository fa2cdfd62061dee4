/**
 * Test helpers for the bundled CLI (`dist/cxlog.mjs`) as its roles run under an orchestrator:
 * each forked with an IPC channel, whose events (`ready`, `listening`, `subscribed`, `failed`
 * with the typed error …) the test awaits. Every process is SIGKILLed when the scope closes.
 */
import { Deferred, Effect, type Scope } from "effect"
import { type ChildProcess, fork, spawn } from "node:child_process"
import { readdirSync, readFileSync, unlinkSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { defaultLogConfig, type LogConfig, topicMemoryFor } from "../../src/layers/log/Layout.js"

export const cli = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "dist", "cxlog.mjs")

export type Event = { readonly event: string } & Record<string, unknown>

export interface CliRole {
  readonly child: ChildProcess
  readonly pid: number
  /** The first event of this kind (it may have come already); fails after `timeoutMs` or if the process exits first. */
  readonly event: (kind: string, timeoutMs?: number) => Effect.Effect<Event, Error>
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly output: () => string
  /** The latest event of this kind so far, if any. */
  readonly latest: (kind: string) => Event | undefined
  /** Every event of this kind so far, in the order they came. */
  readonly events: (kind: string) => ReadonlyArray<Event>
}

/** A small region: one topic, one broker slot, 1 MiB Blogs (256 KiB batches at most). */
/**
 * A small region's variables: `brokers` broker slots, batches of 256 KiB at most, and topics
 * whose Blogs are each `blogBytes` (1 MiB).
 */
export const smallRegionConfigFor = (
  brokers: number,
  blogBytes = 1 << 20,
  shape: { readonly goiSlots?: number; readonly pbrSlots?: number } = {}
): LogConfig => {
  const goiSlots = shape.goiSlots ?? 4096
  const pbrSlots = shape.pbrSlots ?? defaultLogConfig.pbrSlots
  const maxBatchBytes = 256 << 10
  const config = { ...defaultLogConfig, maxBrokers: brokers, maxBatchBytes, goiSlots, pbrSlots }
  return { ...config, topicWriters: brokers, topicMemoryBytes: topicMemoryFor(config, blogBytes) }
}

/** `smallRegionConfigFor`'s region as the variables a head reads it from. */
export const smallRegionEnvFor = (
  brokers: number,
  blogBytes = 1 << 20,
  shape: { readonly goiSlots?: number; readonly pbrSlots?: number } = {}
): Record<string, string> => {
  const c = smallRegionConfigFor(brokers, blogBytes, shape)
  return {
    CXLOG_LOG_MAX_BROKERS: `${c.maxBrokers}`,
    CXLOG_LOG_MAX_BATCH_BYTES: `${c.maxBatchBytes}`,
    CXLOG_LOG_GOI_SLOTS: `${c.goiSlots}`,
    CXLOG_LOG_PBR_SLOTS: `${c.pbrSlots}`,
    CXLOG_TOPIC_WRITERS: `${c.topicWriters}`,
    CXLOG_TOPIC_MEMORY: `${c.topicMemoryBytes}`
  }
}

export const smallRegionEnv: Record<string, string> = smallRegionEnvFor(1)

/** Forks `cxlog <args>` with an IPC channel; SIGKILL when the scope closes. */
/**
 * SIGKILL, then wait (at most 5 s) until the process is gone: the finalizers after this one (a
 * tmpfs unmounted, a region unlinked) must not race a process that still holds its files.
 */
const killAndReap = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    let done = false
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(bound)
      resume(Effect.void)
    }
    const bound = setTimeout(finish, 5_000)
    child.once("exit", finish)
    child.kill("SIGKILL")
  })

/**
 * A crash that loses the region (a reboot, an unlink by hand): each of `roles` SIGKILLed and
 * reaped, then the region's file unlinked.
 */
export const loseRegion = (region: string, ...roles: ReadonlyArray<CliRole>): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (const role of roles) role.child.kill("SIGKILL")
    for (const role of roles) yield* role.exited
    unlinkSync(`/dev/shm/${region}`)
  })

export const forkCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {}
): Effect.Effect<CliRole, never, Scope.Scope> =>
  Effect.gen(function*() {
    const events: Array<Event> = []
    const waiters: Array<() => void> = []
    const exit = yield* Deferred.make<{ code: number | null; signal: NodeJS.Signals | null }>()
    let output = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(cli, [...args], {
          stdio: ["ignore", "pipe", "pipe", "ipc"],
          env: { ...process.env, ...env },
          serialization: "advanced"
        })
      ),
      (child) => killAndReap(child)
    )
    const keep = (chunk: Buffer) => {
      output += chunk.toString()
    }
    child.stdout!.on("data", keep)
    child.stderr!.on("data", keep)
    const notify = () => waiters.splice(0).forEach((wake) => wake())
    child.on("message", (message) => {
      events.push(message as Event)
      notify()
    })
    // "close", not "exit": by then its output has been read to the end (a pipe may still hold some at "exit").
    child.on("close", (code, signal) => {
      Deferred.unsafeDone(exit, Effect.succeed({ code, signal }))
      notify()
    })
    const event = (kind: string, timeoutMs = 30_000) =>
      Effect.async<Event, Error>((resume) => {
        const look = () => {
          const found = events.find((e) => e.event === kind)
          if (found !== undefined) return resume(Effect.succeed(found)), true
          if (child.exitCode !== null || child.signalCode !== null) {
            return resume(
              Effect.fail(
                new Error(`cxlog ${args[0]} exited (${child.exitCode ?? child.signalCode}) before "${kind}": ${output}`)
              )
            ),
              true
          }
          return false
        }
        const retry = () => {
          if (!look()) waiters.push(retry)
        }
        retry()
      }).pipe(
        Effect.timeoutFail({
          duration: timeoutMs,
          onTimeout: () => new Error(`cxlog ${args[0]}: no "${kind}" within ${timeoutMs} ms: ${output}`)
        })
      )
    const latest = (kind: string) => {
      for (let i = events.length - 1; i >= 0; i--) if (events[i]!.event === kind) return events[i]
      return undefined
    }
    const ofKind = (kind: string) => events.filter((e) => e.event === kind)
    return { child, pid: child.pid!, event, exited: Deferred.await(exit), output: () => output, latest, events: ofKind }
  })

/** How a child still running when its scope closes is stopped: SIGKILL at once. */
const killNow = (child: ChildProcess) => child.kill("SIGKILL")

/**
 * Runs `cxlog <args>` to completion (no IPC channel: as a user runs it); `stop` ends it if the
 * scope closes first (SIGKILL unless told otherwise).
 */
export const runCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  onStart: (child: ChildProcess) => void = () => {},
  stop: (child: ChildProcess) => void = killNow
) =>
  Effect.acquireUseRelease(
    Effect.sync(() =>
      spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
    ),
    (child) =>
      Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
        let stdout = ""
        let stderr = ""
        child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()))
        child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()))
        child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
        onStart(child)
      }),
    (child) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) stop(child)
      })
  )

/**
 * `runCli` with a bound: a command still running after `withinMs` is stopped and the test fails
 * naming it with what it printed so far, so a hang says where it was instead of timing the test out.
 */
export const runCliWithin = (args: ReadonlyArray<string>, env: Record<string, string>, withinMs: number) => {
  let output = { stdout: "", stderr: "" }
  return runCli(args, env, (child) => {
    child.stdout!.on("data", (c: Buffer) => (output = { ...output, stdout: output.stdout + c.toString() }))
    child.stderr!.on("data", (c: Buffer) => (output = { ...output, stderr: output.stderr + c.toString() }))
  }).pipe(
    Effect.timeoutFail({
      duration: withinMs,
      onTimeout: () =>
        new Error(
          `cxlog ${args.join(" ")} still running after ${withinMs} ms; stderr: ${output.stderr.slice(-4000)}; stdout: ${
            output.stdout.slice(-2000)
          }`
        )
    }),
    Effect.orDie
  )
}

/** Child processes of `pid` whose command line contains `word`, from /proc. */
export const childrenOf = (pid: number, word: string): Array<number> =>
  readdirSync("/proc").flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return []
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0")
      return ppid === pid && cmdline.includes(word) ? [Number(entry)] : []
    } catch {
      return []
    }
  })
