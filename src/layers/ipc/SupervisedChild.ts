/**
 * One supervised child process: spawned in a process group of its own (so a signal to the group
 * reaches whatever it started), its exit as an Effect, and the signals a supervisor sends it.
 */
import { Deferred, Effect } from "effect"
import { spawn } from "node:child_process"
import type { ProcessExit } from "../../services/ipc/Discovery.js"
import type { ChildSpec } from "../../services/ipc/Supervisor.js"
import { processEnvironment } from "../../Settings.js"

/** The exit told for a program that could not be started at all (not found, not executable). */
const NOT_STARTED: ProcessExit = { code: 127, signal: null }

export interface RunningChild {
  readonly pid: number
  readonly exited: Deferred.Deferred<ProcessExit>
  readonly hasExited: () => boolean
  /** Signals the child's process group; false when it is gone already. */
  readonly signal: (signal: NodeJS.Signals) => boolean
}

export const signalGroup = (pid: number, signal: NodeJS.Signals): boolean => {
  try {
    process.kill(-pid, signal)
    return true
  } catch {
    return false
  }
}

/** Starts one instance of `spec`, named `name` in its environment (SUPERVISED_NAME), with the supervisor's `env` added. */
export const spawnChild = (
  spec: ChildSpec,
  name: string,
  env: Readonly<Record<string, string>>
): Effect.Effect<RunningChild> =>
  Effect.gen(function*() {
    const exited = yield* Deferred.make<ProcessExit>()
    const [file, args] = spec.script !== undefined
      ? [process.execPath, [spec.script, ...(spec.args ?? [])]]
      : [spec.command!, [...(spec.args ?? [])]]
    const child = spawn(file, args, {
      // Its own process group: a shutdown reaches what it started, and a Ctrl-C at a terminal reaches only the supervisor.
      detached: true,
      stdio: spec.output === "ignore" ? "ignore" : ["ignore", "inherit", "inherit"],
      env: { ...processEnvironment(), ...spec.env, ...env, SUPERVISED_NAME: name },
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd })
    })
    let ended = false
    const end = (exit: ProcessExit) => {
      ended = true
      Deferred.unsafeDone(exited, Effect.succeed(exit))
    }
    child.once("exit", (code, signal) => end({ code, signal }))
    child.once("error", () => end(NOT_STARTED))
    const pid = child.pid ?? -1
    return {
      pid,
      exited,
      hasExited: () => ended,
      signal: (signal) => (pid > 0 ? signalGroup(pid, signal) : false)
    }
  })
