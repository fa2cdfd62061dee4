/**
 * A command run to its end while the test's process goes on: a test waits on it instead of
 * holding its process in `spawnSync`. Vitest's worker answers its runner through that process's
 * event loop, within a fixed 60 s; an npm install held in `spawnSync` for a minute on a slow
 * machine made runs whose tests had all passed fail on that bound (docs/testing.md).
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"

export interface Ran {
  /** The exit status; null when a signal ended it (the bound's SIGKILL among them) or it never started. */
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `command`, SIGKILLed past `timeoutMs` or when the fiber is interrupted: its status and output. */
export const runProcess = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env: NodeJS.ProcessEnv; readonly timeoutMs: number; readonly cwd?: string }
): Effect.Effect<Ran> =>
  Effect.async<Ran>((resume) => {
    const child = spawn(command, args, {
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: options.timeoutMs,
      killSignal: "SIGKILL"
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()))
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.on("error", (e) => resume(Effect.succeed({ status: null, stdout, stderr: `${stderr}${e.message}` })))
    // "close", not "exit": its output has been read to the end by then.
    child.on("close", (status) => resume(Effect.succeed({ status, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })
