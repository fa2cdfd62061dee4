/**
 * The commands `cxlog consume --exec` runs. Each is `sh -c CMD` in a process group of its own, so
 * that stopping it (the member interrupted: Ctrl-C, SIGTERM) stops everything it started, not only
 * its shell, whose children would go on running the message another member is given. Should this
 * process die without stopping them (SIGKILL), one watcher stops the groups still running: an
 * `awk` told of each group as it starts and ends over a pipe only this process writes, which at
 * the pipe's end signals the ones left.
 *
 * A command reads its message from a file written whole before it starts (opened, then unlinked:
 * nothing is left behind), not from a pipe this process fills as the command runs: a member
 * killed between the two would leave the command reading an empty input to its end.
 */
import { Effect, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { closeSync, openSync, unlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Delivery } from "../../services/groups/ConsumerGroups.js"
import { processEnvironment } from "../../Settings.js"

/** `+ PGID` when a command starts, `- PGID` when it ended; at the end of input, SIGTERM to each group left. */
const WATCHER = `$1 == "+" { left[$2] = 1 } $1 == "-" { delete left[$2] } ` +
  `END { for (g in left) system("kill -TERM -" g " 2>/dev/null") }`

/** What a command whose input could not be written "exits" with: it did not run (as a shell's 126, cannot execute). */
export const INPUT_NOT_WRITTEN = 126

/** Runs `sh -c command` on a message: its exit code (its output is this process's). */
export type RunCommand = (command: string, d: Delivery) => Effect.Effect<number>

const decoder = new TextDecoder()

/** Stops a command's process group (it may have ended already). */
const stopGroup = (child: ChildProcess) => {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, "SIGTERM")
  } catch {
    // Gone already.
  }
}

/**
 * The message's bytes as a file descriptor reading them from the start: its file written whole,
 * then unlinked at once (no directory of its own, which a member killed would leave behind).
 */
const inputOf = (n: number, value: Uint8Array): number => {
  const file = join(tmpdir(), `cxlog-consume-${process.pid}-${n}-${randomBytes(6).toString("hex")}`)
  writeFileSync(file, value, { flag: "wx", mode: 0o600 })
  try {
    return openSync(file, "r")
  } finally {
    unlinkSync(file)
  }
}

/** A runner of commands for as long as the scope lasts; its watcher goes with the scope. */
export const commandRunner: Effect.Effect<RunCommand, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => {
      const watcher = spawn("awk", [WATCHER], { stdio: ["pipe", "ignore", "ignore"] })
      watcher.on("error", () => {}) // no awk: commands are still stopped when this process stops them
      watcher.stdin!.on("error", () => {})
      // Neither keeps this process running.
      watcher.unref()
      ;(watcher.stdin as unknown as { unref: () => void }).unref()
      return { watcher, made: { n: 0 } }
    }),
    // Every command was stopped or ended by now: the watcher has nothing left to stop.
    ({ watcher }) => Effect.sync(() => watcher.stdin!.end())
  ),
  ({ made, watcher }): RunCommand => (command, d) =>
    Effect.async<number>((resume) => {
      let input: number
      try {
        input = inputOf(made.n++, d.value)
      } catch (error) {
        // No room or no right in the temp dir: the command cannot have its message, so it does not run (delivered again).
        process.stderr.write(
          `cxlog consume: offset ${d.offset}: its command's input was not written: ${String(error)}\n`
        )
        return resume(Effect.succeed(INPUT_NOT_WRITTEN))
      }
      const child = spawn("sh", ["-c", command], {
        stdio: [input, "inherit", "inherit"],
        detached: true,
        env: {
          ...processEnvironment(),
          CONSUME_GROUP: d.group,
          CONSUME_TOPIC: d.topic,
          CONSUME_OFFSET: `${d.offset}`,
          CONSUME_DELIVERY_COUNT: `${d.deliveryCount}`,
          ...(d.key === undefined ? {} : { CONSUME_KEY: decoder.decode(d.key) })
        }
      })
      // The command has its own copy of the descriptor.
      closeSync(input)
      const group = child.pid
      if (group !== undefined) watcher.stdin!.write(`+ ${group}\n`)
      child.on("error", () => resume(Effect.succeed(127)))
      child.on("close", (code) => {
        if (group !== undefined) watcher.stdin!.write(`- ${group}\n`)
        resume(Effect.succeed(code ?? 128))
      })
      return Effect.sync(() => stopGroup(child))
    })
)
