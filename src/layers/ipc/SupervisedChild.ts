/**
 * One supervised child process: spawned in a process group of its own (so a signal to the group
 * reaches whatever it started), its exit as an Effect, and the signals a supervisor sends it.
 */
import { Deferred, Effect } from "effect"
import { spawn } from "node:child_process"
import { statSync } from "node:fs"
import type { ProcessExit } from "../../services/ipc/Discovery.js"
import type { ChildSpec } from "../../services/ipc/Supervisor.js"
import { SUPERVISED_SETTINGS } from "../../services/region/SupervisedSettings.js"
import { processEnvironment } from "../../Settings.js"

/** The exit told for a program that could not be started at all (not found, not executable). */
const NOT_STARTED: ProcessExit = { code: 127, signal: null }

export interface RunningChild {
  readonly pid: number
  readonly exited: Deferred.Deferred<ProcessExit>
  readonly hasExited: () => boolean
  /** Why its program could not be started (not found, not executable), once it is known; else undefined. */
  readonly startError: () => string | undefined
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

/** What a child is told of itself: its process slot carries it, for every process of the region to see. */
const identityEnv = (name: string, restarts: number): Record<string, string> => {
  const { name: nameSetting, restarts: restartsSetting, supervisor } = SUPERVISED_SETTINGS.settings
  return { [nameSetting.env]: name, [supervisor.env]: String(process.pid), [restartsSetting.env]: String(restarts) }
}

/**
 * Starts one instance of `spec`, named `name` and restarted `restarts` times before, in its
 * environment (CXLOG_SUPERVISED_*), with the supervisor's `env` added.
 */
export const spawnChild = (
  spec: ChildSpec,
  name: string,
  restarts: number,
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
      env: { ...processEnvironment(), ...spec.env, ...env, ...identityEnv(name, restarts) },
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd })
    })
    let ended = false
    const end = (exit: ProcessExit) => {
      ended = true
      Deferred.unsafeDone(exited, Effect.succeed(exit))
    }
    child.once("exit", (code, signal) => end({ code, signal }))
    let startError: string | undefined
    child.once("error", (error) => {
      // A working directory that is not there fails the spawn as ENOENT, naming the program, which is there.
      const cwdMissing = spec.cwd !== undefined && statSync(spec.cwd, { throwIfNoEntry: false })?.isDirectory() !== true
      startError = cwdMissing ? `${error.message}: no directory ${spec.cwd} to run in (cwd)` : error.message
      end(NOT_STARTED)
    })
    const pid = child.pid ?? -1
    return {
      pid,
      exited,
      hasExited: () => ended,
      startError: () => startError,
      signal: (signal) => (pid > 0 ? signalGroup(pid, signal) : false)
    }
  })
