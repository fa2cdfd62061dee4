/**
 * Runs the bundled CLI (`dist/cxlog.mjs`) to completion as a user runs it, for tests that read
 * its `--json` summary. Unlike CliRoles.runCli it stops a leftover run with SIGTERM first, so the
 * run stops its roles and removes its region; SIGKILL follows if it does not exit in 3 s.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { cli } from "./CliRoles.js"

export { cli }

/** Runs `cxlog <args>` to completion; SIGTERM (then SIGKILL) if the scope closes first. */
export const runCli = (args: ReadonlyArray<string>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] })),
    (child) =>
      Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
        let stdout = ""
        let stderr = ""
        child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()))
        child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()))
        // "close", not "exit": the output has been read to the end by then.
        child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
      }),
    (child) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM")
          setTimeout(() => child.kill("SIGKILL"), 3_000).unref()
        }
      })
  )
