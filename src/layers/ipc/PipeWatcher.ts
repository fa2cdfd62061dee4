/**
 * A `sh` that acts once this process is gone: it reads a pipe only this process holds open, and
 * the pipe's end (this process died, however) runs the rest of its script. Neither the watcher nor
 * its pipe keeps this process running. Its scope's end kills it first, so it never acts on a clean
 * exit (where the ids it would signal may be reused since). Without `sh`, or with the watcher
 * killed by someone else, nothing is guarded rather than this process failing.
 */
import { Effect, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"

export const pipeWatcher = (
  script: string,
  args: ReadonlyArray<string>,
  /** A session of its own, where a terminal's Ctrl-C or hang-up does not reach it. */
  options: { readonly detached?: boolean } = {}
): Effect.Effect<ChildProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const watcher = spawn("sh", ["-c", script, ...args], {
        detached: options.detached === true,
        stdio: ["pipe", "ignore", "ignore"]
      })
      watcher.on("error", () => {})
      watcher.stdin!.on("error", () => {})
      watcher.unref()
      ;(watcher.stdin as unknown as { unref: () => void }).unref()
      return watcher
    }),
    (watcher) =>
      Effect.sync(() => {
        // Killed before its input ends: the end of the pipe alone would have it act.
        watcher.kill("SIGKILL")
        watcher.stdin?.destroy()
      })
  )
