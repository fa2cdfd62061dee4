/** `runToEnd`: a one-shot `cxlog` command of a run (not a role), to its end. */
import { Effect } from "effect"
import { fork } from "node:child_process"
import { processEnvironment } from "../../Settings.js"
import { cliEntry } from "../ProgramSettings.js"
import { RoleFailed, TAIL_BYTES } from "./Cluster.js"

/**
 * Runs `cxlog <args>` to its end (a command, not a role: `consumers reset`), bounded by
 * `timeoutMs`; fails RoleFailed, with its output, unless it exits 0.
 */
export const runToEnd = (
  role: string,
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  timeoutMs = 20_000
): Effect.Effect<void, RoleFailed> =>
  Effect.async<void, RoleFailed>((resume) => {
    const child = fork(cliEntry(), [...args], {
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: { ...processEnvironment(), ...env }
    })
    let output = ""
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-TAIL_BYTES)
    }
    child.stdout!.on("data", keep)
    child.stderr!.on("data", keep)
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.once("close", (code, signal) => {
      clearTimeout(timer)
      resume(
        code === 0
          ? Effect.void
          : Effect.fail(
            new RoleFailed({
              role,
              pid: child.pid ?? 0,
              reason: `exited with ${signal ?? `code ${code}`}`,
              stderr: output
            })
          )
      )
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })
