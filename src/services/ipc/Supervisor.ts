/**
 * Supervisor: runs child processes (a Node script or any command) as members of the region, each
 * in a process group of its own, restarts them by policy with exponential backoff and a limit in
 * a window, and stops them all together: at `shutdown`, or when the scope it was built in closes.
 * A draining supervisor's shutdown runs a processing fence over its drain group first: children
 * that opted in (`drainOnStop`, src/layers/ipc/DrainOnStop.ts) arrive at it on their SIGTERM.
 * docs/ipc.md, "Supervised processes", has what a shutdown guarantees.
 */
import { Context, Data, type Effect, Schema, type Stream } from "effect"
import type { ProcessExit } from "./Discovery.js"

export const RestartPolicy = Schema.Literal("never", "on-failure", "always")
export type RestartPolicy = typeof RestartPolicy.Type

/** What a supervisor runs: `count` instances of one program. */
export const ChildSpec = Schema.Struct({
  /** Names its instances (`name#0`, `name#1`, …) in events and in discovery. */
  name: Schema.String.pipe(Schema.minLength(1)),
  /** A Node script, run by this Node (`process.execPath`); or give `command`. */
  script: Schema.optional(Schema.String),
  /** Any executable (found on PATH); or give `script`. */
  command: Schema.optional(Schema.String),
  args: Schema.optional(Schema.Array(Schema.String)),
  count: Schema.optional(Schema.Int.pipe(Schema.between(1, 1024))),
  /** never; on-failure (an exit by signal or with a code other than 0); always (any exit). Default on-failure. */
  restart: Schema.optional(RestartPolicy),
  /** The first restart's wait and the longest (ms), doubling between; defaults from CXLOG_SUPERVISOR_*. */
  backoffMs: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  maxBackoffMs: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  /** Restarts allowed within `restartWindowMs`; one more gives the child up. */
  restartLimit: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  restartWindowMs: Schema.optional(Schema.Int.pipe(Schema.positive())),
  env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  cwd: Schema.optional(Schema.String),
  /** Where the child's stdout and stderr go: this process's (`inherit`, the default) or nowhere. */
  output: Schema.optional(Schema.Literal("inherit", "ignore"))
})
export type ChildSpec = typeof ChildSpec.Type

/** The barrier a draining shutdown's processing fence is, in the drain group (the group is the supervisor's and its children's only). */
export const SHUTDOWN_BARRIER = "supervisor.shutdown"

/** What a shutdown's fence came to: `none` without a drain group. */
export type ShutdownDrain = "none" | "completed" | "failed"

/** What a shutdown did: the children it stopped, those it had to SIGKILL, and its fence. */
export interface ShutdownResult {
  readonly stopped: number
  readonly killed: number
  readonly drain: ShutdownDrain
}

export type SupervisorEvent = Data.TaggedEnum<{
  /** An instance started (again: `restarts` > 0), as pid `pid`. */
  ChildStarted: { readonly child: string; readonly pid: number; readonly restarts: number }
  /** An instance's process ended; `reason` when its program could not be started at all (not found, not executable). */
  ChildExited: {
    readonly child: string
    readonly pid: number
    readonly exit: ProcessExit
    readonly failed: boolean
    readonly reason?: string
  }
  /** It is started again after `delayMs` (its policy asked for it). */
  ChildRestarting: { readonly child: string; readonly restarts: number; readonly delayMs: number }
  /** Its restarts passed the limit within the window: it stays down. */
  ChildGaveUp: { readonly child: string; readonly restarts: number; readonly windowMs: number }
  /** A collective shutdown: every child sent SIGTERM. */
  ShutdownStarted: { readonly children: number }
  /**
   * A draining shutdown's processing fence is over: `completed` (every participant arrived, and
   * every value they had published on their channels is in their group's subscriptions), or not
   * and why; the children that arrived, and those the fence went without (not arrived, or dead).
   */
  ShutdownDrained: {
    readonly group: string
    readonly completed: boolean
    readonly arrived: ReadonlyArray<string>
    readonly missing: ReadonlyArray<string>
    readonly reason: string
  }
  /** The shutdown is over: `killed` children had to be SIGKILLed after the bound; how its fence ended. */
  ShutdownDone: ShutdownResult
}>
export const SupervisorEvent = Data.taggedEnum<SupervisorEvent>()

/** An instance as the supervisor holds it now. */
export interface ChildStatus {
  readonly child: string
  readonly spec: string
  /** The pid running now, undefined while it is down (waiting to restart, given up, or stopped). */
  readonly pid: number | undefined
  readonly restarts: number
  readonly state: "running" | "restarting" | "exited" | "gave-up" | "stopped"
}

export interface SupervisorShape {
  /** Starts `spec.count` instances of the spec, supervised until shutdown. */
  readonly start: (spec: ChildSpec) => Effect.Effect<ReadonlyArray<string>, SupervisorSpecInvalid | SupervisorStopped>
  readonly children: Effect.Effect<ReadonlyArray<ChildStatus>>
  /** What happens to the children from now on (the stream ends after `ShutdownDone`). */
  readonly events: Stream.Stream<SupervisorEvent>
  /**
   * Stops every child together: SIGTERM to each one's process group; with a drain group, the
   * processing fence over it (bounded by CXLOG_SUPERVISOR_DRAIN_TIMEOUT_MS); a wait bounded by
   * CXLOG_SUPERVISOR_STOP_TIMEOUT_MS, then SIGKILL to the groups still there; no restart after it.
   */
  readonly shutdown: Effect.Effect<ShutdownResult>
}

export class Supervisor extends Context.Tag("cxlog/Supervisor")<Supervisor, SupervisorShape>() {}

export class SupervisorSpecInvalid extends Data.TaggedError("SupervisorSpecInvalid")<{
  readonly name: string
  readonly reason: string
}> {
  override get message() {
    return `child ${JSON.stringify(this.name)}: ${this.reason}`
  }
}

export class SupervisorStopped extends Data.TaggedError("SupervisorStopped")<{ readonly name: string }> {
  override get message() {
    return `child ${JSON.stringify(this.name)} not started: the supervisor is shutting down`
  }
}
