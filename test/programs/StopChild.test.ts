/** `stopChild`: resumes once the child is gone and what it printed last has been read, bounded when a grandchild holds its pipes. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { stopChild } from "../../src/programs/run/Cluster.js"

describe("stopChild", () => {
  it.live(
    "what a child's process prints as SIGTERM stops it is all read when stopChild resumes",
    () =>
      Effect.gen(function*() {
        // On SIGTERM the shell exits at once; what it started prints its last line 300 ms later, down the same pipe.
        const child = spawn("sh", [
          "-c",
          "trap '(sleep 0.3; echo last) & exit 0' TERM; echo up; while :; do sleep 0.05; done"
        ], {
          stdio: ["ignore", "pipe", "ignore"]
        })
        let output = ""
        child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
        while (!output.includes("up")) yield* Effect.sleep("10 millis")
        yield* stopChild(child)
        expect(output).toBe("up\nlast\n")
      }),
    30_000
  )

  it.scopedLive(
    "a grandchild holding the child's pipes open delays stopChild by at most its drain bound",
    () =>
      Effect.gen(function*() {
        const child = spawn("sh", ["-c", "sleep 30 & echo up; wait"], {
          stdio: ["ignore", "pipe", "ignore"],
          detached: true
        })
        // The sleep, in the shell's process group, goes when the test does.
        yield* Effect.addFinalizer(() => Effect.sync(() => process.kill(-child.pid!, "SIGKILL")))
        yield* Effect.promise(() => new Promise((resolve) => child.stdout!.once("data", resolve)))
        const started = Date.now()
        yield* stopChild(child)
        expect(child.signalCode ?? child.exitCode).not.toBeNull()
        expect(Date.now() - started).toBeLessThan(10_000)
      }),
    30_000
  )
})
