/**
 * Runs the bundled CLI (`dist/cxlog.mjs`) to completion as a user runs it, for tests that read
 * its `--json` summary. Unlike CliRoles.runCli's default it stops a leftover run with SIGTERM
 * first, so the run stops its roles and removes its region; SIGKILL follows if it does not exit in 3 s.
 */
import type { ChildProcess } from "node:child_process"
import { cli, runCli as runRole } from "./CliRoles.js"

export { cli }

const terminateThenKill = (child: ChildProcess) => {
  child.kill("SIGTERM")
  setTimeout(() => child.kill("SIGKILL"), 3_000).unref()
}

/** Runs `cxlog <args>` to completion; SIGTERM (then SIGKILL) if the scope closes first. */
export const runCli = (args: ReadonlyArray<string>) => runRole(args, {}, undefined, terminateThenKill)
