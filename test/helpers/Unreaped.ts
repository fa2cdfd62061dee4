/**
 * A process that stays unreaped once it exits (a zombie): started in the background by a shell
 * that then becomes `sleep`, which never waits for it, as an orphan waits for a slow init to
 * reap it. Both are SIGKILLed when the test's scope closes (init then reaps the zombie).
 */
import { Effect, Queue, Schedule, type Scope } from "effect"
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { procStat } from "../../src/layers/region/ProcessInfo.js"

export interface Unreaped {
  /** The background process's pid. */
  readonly pid: number
  /** The lines it printed on stdout (the shell's first line, its pid, is not among them). */
  readonly lines: Queue.Dequeue<string>
  /** SIGKILLs it and waits until it is a zombie (at most 10 s). */
  readonly killToZombie: Effect.Effect<void, Error>
}

/** Runs the shell command `command` (its last word a program, run in the background) under a parent that never reaps it. */
export const unreapedProcess = (command: string): Effect.Effect<Unreaped, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const lines = yield* Queue.unbounded<string>()
    let pid = 0
    const parent = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn("sh", ["-c", `${command} & echo "$!"; exec sleep 600`], { stdio: ["ignore", "pipe", "inherit"] })
      ),
      (parent) =>
        Effect.sync(() => {
          if (pid > 0 && procStat(pid) !== undefined && procStat(pid)?.state !== "Z") process.kill(pid, "SIGKILL")
          parent.kill("SIGKILL")
        })
    )
    createInterface({ input: parent.stdout! }).on("line", (line) => {
      if (pid === 0) pid = Number(line)
      else Queue.unsafeOffer(lines, line)
    })
    yield* Effect.suspend(() => (pid > 0 ? Effect.void : Effect.fail(new Error("no pid from the shell yet")))).pipe(
      Effect.retry({ times: 200, schedule: Schedule.spaced("50 millis") })
    )
    const killToZombie = Effect.sync(() => process.kill(pid, "SIGKILL")).pipe(
      Effect.zipRight(
        Effect.suspend(() => (procStat(pid)?.state === "Z"
          ? Effect.void
          : Effect.fail(new Error(`process ${pid} is not a zombie: ${procStat(pid)?.state ?? "gone"}`)))
        ).pipe(
          Effect.retry({ times: 200, schedule: Schedule.spaced("50 millis") })
        )
      )
    )
    return { pid, lines, killToZombie }
  })
