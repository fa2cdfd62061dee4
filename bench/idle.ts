/**
 * bench idle: what an idle cluster costs. Starts `cxlog head --topic t` and 4 `cxlog broker`s
 * on a fresh region, as a user would (plain CLI, no orchestrator channel), lets them settle,
 * then reads each process's CPU time (every thread's time on a CPU, /proc's schedstat, in ns)
 * and its threads' context switches (each a wake-up) over `--seconds` (default 20). The reference is
 * a Node process that does nothing but keep its loop alive, measured in the same window.
 * `ratio` = 0.02 / total cores: ≥ 1 meets the goal of under 2 % of one core for the cluster.
 * Flags: --seconds=N, --settle-ms=N (default 45000), --cli=PATH (default: the bundled dist/cxlog.mjs).
 * The settle lets start-up pass before the window opens: each process's V8 optimizes its hot
 * tick code over the first seconds and, 15–45 s after start, its memory reducer runs one or two
 * full GCs that shrink the start-up heap (10–19 CPU ticks per process, once); a window that
 * holds them measures start-up, not idling.
 * Every process is killed, the region unlinked and its wake FIFOs removed when the bench ends,
 * pass or fail.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readdirSync, readFileSync, unlinkSync } from "node:fs"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { removeWakeFifos } from "../src/layers/region/Doorbell.js"
import { procStat, USER_HZ } from "../src/layers/region/ProcessInfo.js"
import { stopChild } from "../src/programs/run/Cluster.js"
import { emit, table } from "./Report.js"

const BROKERS = 4
const GOAL_CORES = 0.02
const READY_TIMEOUT_MS = 30_000

const bundledCli = join(dirname(fileURLToPath(import.meta.url)), "..", "cxlog.mjs")

class IdleBenchFailed extends Error {}

interface Sample {
  /** CPU time of every thread, in seconds. */
  readonly cpuSeconds: number
  readonly switches: number
}

/** A thread's time on a CPU in ns, from /proc's schedstat (its first field); undefined where the kernel keeps none. */
const scheduledNs = (path: string): number | undefined => {
  try {
    return Number(readFileSync(path, "utf8").split(" ")[0])
  } catch {
    return undefined
  }
}

/**
 * CPU time of the whole process and context switches summed over its threads. The time is the
 * scheduler's own count in ns (schedstat): utime and stime are in 10 ms ticks, too coarse for
 * processes that run a few ms a second; they are the fallback where schedstat is missing.
 */
const sample = (pid: number): Sample => {
  let switches = 0
  let ns = 0
  let scheduled = true
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, "utf8")
      for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) switches += Number(m[1])
    } catch {
      // the thread ended between listing and reading
    }
    const taskNs = scheduledNs(`/proc/${pid}/task/${task}/schedstat`)
    if (taskNs === undefined) scheduled = false
    else ns += taskNs
  }
  if (scheduled) return { cpuSeconds: ns / 1e9, switches }
  return { cpuSeconds: (procStat(pid)?.cpuTicks ?? 0) / USER_HZ, switches }
}

interface Role {
  readonly name: string
  readonly child: ChildProcess
}

/** Spawns `args`, resolving once a log line (stderr) matches `ready`; killed (SIGTERM, then SIGKILL) with the scope. */
const start = (name: string, command: ReadonlyArray<string>, env: Record<string, string>, ready: RegExp) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, command, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } })
    ),
    stopChild
  ).pipe(
    Effect.flatMap((child) =>
      Effect.async<Role, IdleBenchFailed>((resume) => {
        let stderr = ""
        const timer = setTimeout(() =>
          resume(
            Effect.fail(new IdleBenchFailed(`${name}: not ready within ${READY_TIMEOUT_MS} ms; stderr: ${stderr}`))
          ), READY_TIMEOUT_MS)
        createInterface({ input: child.stderr! }).on("line", (line) => {
          stderr = `${stderr}${line}\n`.slice(-4000)
          if (!ready.test(line)) {
            return
          }
          clearTimeout(timer)
          resume(Effect.succeed({ name, child }))
        })
        child.once("exit", (code) => {
          clearTimeout(timer)
          resume(Effect.fail(new IdleBenchFailed(`${name} exited with ${code} before it was ready; stderr: ${stderr}`)))
        })
      })
    )
  )

export const run = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const seconds = Number(args.find((a) => a.startsWith("--seconds="))?.slice(10) ?? 20)
    const settleMs = Number(args.find((a) => a.startsWith("--settle-ms="))?.slice(12) ?? 45_000)
    // Another build of the CLI, to compare variants in one sitting.
    const cli = args.find((a) => a.startsWith("--cli="))?.slice(6) ?? bundledCli
    const region = yield* Effect.acquireRelease(Effect.succeed(`cxlog-bench-idle-${process.pid}`), (name) =>
      Effect.sync(() => {
        if (existsSync(`/dev/shm/${name}`)) {
          unlinkSync(`/dev/shm/${name}`)
        }
        // A process that had to be SIGKILLed cannot remove its own wake FIFO.
        removeWakeFifos(name)
      }))
    const env = { CXLOG_REGION: region }
    const roles: Array<Role> = [yield* start("head", [cli, "head", "--topic", "t"], env, /head: region/)]
    for (let b = 0; b < BROKERS; b++) {
      roles.push(
        yield* start(`broker ${b}`, [cli, "broker", "--broker-id", `${b}`, "--port", "0"], env, /listening on/)
      )
    }
    const reference = yield* start("reference", ["-e", "console.log('up'); setInterval(() => {}, 2 ** 30)"], {}, /up/)
    yield* Effect.sleep(settleMs)
    const measured = [...roles, reference]
    const before = measured.map((r) =>
      sample(r.child.pid!)
    )
    const t0 = performance.now()
    yield* Effect.sleep(seconds * 1000)
    const after = measured.map((r) => sample(r.child.pid!))
    const elapsed = (performance.now() - t0) / 1000
    const rows = measured.map((r, i) => ({
      name: r.name,
      cores: (after[i]!.cpuSeconds - before[i]!.cpuSeconds) / elapsed,
      wakeups: (after[i]!.switches - before[i]!.switches) / elapsed
    }))
    const cluster = rows.slice(0, roles.length)
    const cores = cluster.reduce((s, r) => s + r.cores, 0)
    const wakeups = cluster.reduce((s, r) => s + r.wakeups, 0)
    const head = cluster[0]!
    const brokers = cluster.slice(1)
    const ref = rows[rows.length - 1]!
    const text = table(["idle process", "cores (CPU s / s)", "context switches / s"], [
      ...cluster.map((r) => [r.name, r.cores, r.wakeups]),
      [`cluster (head + ${BROKERS} brokers)`, cores, wakeups],
      ["a Node process doing nothing (reference)", ref.cores, ref.wakeups]
    ])
    emit(text, {
      bench: "idle",
      seconds: elapsed,
      cores,
      contextSwitchesPerSecond: wakeups,
      perRole: {
        head: { cores: head.cores, contextSwitchesPerSecond: head.wakeups },
        brokers: {
          cores: brokers.reduce((s, r) => s + r.cores, 0),
          contextSwitchesPerSecond: brokers.reduce((s, r) => s + r.wakeups, 0)
        }
      },
      referenceCores: ref.cores,
      referenceContextSwitchesPerSecond: ref.wakeups,
      // A cluster that measured no CPU time at all meets the goal by any margin.
      ratio: cores > 0 ? GOAL_CORES / cores : GOAL_CORES * USER_HZ * elapsed
    })
  }).pipe(Effect.scoped)
