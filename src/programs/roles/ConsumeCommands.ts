/**
 * The commands `cxlog consume --exec` runs. Each is `sh -c CMD` in a process group of its own, so
 * that stopping it (the member interrupted: Ctrl-C, SIGTERM) stops everything it started, not only
 * its shell, whose children would go on running the message another member is given. A stop is
 * SIGTERM to the group, then SIGKILL once it outlived STOP_GRACE_MS (a command may ignore
 * SIGTERM), and it is over only once no process of the group runs: the member leaves the group,
 * handing the message to the next, only after that. Should this process die without stopping
 * them (SIGKILL), one watcher stops the groups still running: an `awk` told of each group as it
 * starts and ends over a pipe only this process writes, which at the pipe's end signals the ones
 * left the same way, SIGTERM then SIGKILL after the grace period.
 *
 * A command reads its message from a file written whole before it starts (opened, then unlinked:
 * nothing is left behind), not from a pipe this process fills as the command runs: a member
 * killed between the two would leave the command reading an empty input to its end.
 *
 * A command's shell starts behind a gate (`GATE`): it runs the command only once this process has
 * told the watcher of its group. A member killed between the spawn and that line would otherwise
 * leave a command the watcher never heard of, running on (or stopped for good) while the next
 * member is given its message; behind the gate, such a command finds the gate closed and never runs.
 */
import { Effect, type Scope } from "effect"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { closeSync, openSync, unlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Duplex } from "node:stream"
import { processGroupRuns } from "../../layers/region/ProcessInfo.js"
import type { Delivery } from "../../services/groups/ConsumerGroups.js"
import { processEnvironment } from "../../Settings.js"

/**
 * How long a command's process group has after its SIGTERM before it is SIGKILLed: long enough for
 * a command to clean up, short enough that a member stopping is not kept long (docs/consumers.md).
 */
export const STOP_GRACE_MS = 2_000

/** How long a stop waits for the group to be gone after its SIGKILL (a process in the kernel's hands may take a moment). */
const KILLED_WAIT_MS = 1_000

/** How often a stopping command's group is looked at. */
const LOOK_EVERY_MS = 25

/**
 * `+ PGID` when a command starts, `- PGID` when it ended; at the end of input, SIGTERM (and
 * SIGCONT, for a stopped one) to each group left, then, after the grace period, SIGKILL.
 */
const WATCHER = `$1 == "+" { left[$2] = 1 } $1 == "-" { delete left[$2] } ` +
  `END { n = 0; for (g in left) { n++; system("kill -TERM -" g " 2>/dev/null; kill -CONT -" g " 2>/dev/null") } ` +
  `if (n > 0) { system("sleep ${STOP_GRACE_MS / 1000}"); for (g in left) system("kill -KILL -" g " 2>/dev/null") } }`

/** What a command whose input could not be written "exits" with: it did not run (as a shell's 126, cannot execute). */
export const INPUT_NOT_WRITTEN = 126

/**
 * The shell a command is spawned as: it waits for a line on fd 3, which this process writes once the
 * watcher knows the shell's group, closes fd 3, then runs the command itself as `sh -c COMMAND`
 * would (`$0` sh, no arguments, `$$` its group): an `exec sh -c` there cost a second exec, 3.4 ms a
 * command on the project's VM against 1.1 for this. Fd 3 at its end without the line (this process
 * died first) means the command never runs.
 */
const GATE = `read -r _ <&3 || exit ${INPUT_NOT_WRITTEN}; exec 3<&-; eval "shift; $1"`

/** The program and arguments that run `command` behind the gate: its fd 3 is the gate. */
export const gatedShell = (command: string): readonly [string, ReadonlyArray<string>] => [
  "sh",
  ["-c", GATE, "sh", command]
]

/**
 * How a command ended: its exit code, or the signal that killed its shell (which then has no exit
 * code: a 128 in its place said the same of every signal).
 */
export type CommandEnd = number | NodeJS.Signals

/** How a command ended, as words: `exited 1`, `was killed by SIGKILL`. */
export const endedHow = (end: CommandEnd): string => typeof end === "number" ? `exited ${end}` : `was killed by ${end}`

/** Runs `sh -c command` on a message: how it ended (its output is this process's). */
export type RunCommand = (command: string, d: Delivery) => Effect.Effect<CommandEnd>

/** Exact text: fatal on bytes that are not UTF-8, and a leading BOM kept (it is one of the key's characters). */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * A key as a variable's value: its text, or undefined when it has none that an environment can
 * carry exactly. Bytes that are not UTF-8 would reach the command replaced (U+FFFD), and a NUL
 * cannot be in an environment at all: Node's spawn refuses it, which failed every delivery of the
 * message and so every member that took it, with the other messages it held.
 */
const keyText = (key: Uint8Array): string | undefined => {
  try {
    const text = utf8.decode(key)
    return text.includes("\0") ? undefined : text
  } catch {
    return undefined
  }
}

/**
 * A command's environment: this process's, and its message's. CONSUME_KEY_BASE64 always names the
 * key's exact bytes, CONSUME_KEY only when it is text; neither is inherited (a member run by another
 * member's command would otherwise pass on that message's key as this one's).
 */
const commandEnvironment = (d: Delivery): Record<string, string | undefined> => {
  const env: Record<string, string | undefined> = {
    ...processEnvironment(),
    CONSUME_GROUP: d.group,
    CONSUME_TOPIC: d.topic,
    CONSUME_OFFSET: `${d.offset}`,
    CONSUME_DELIVERY_COUNT: `${d.deliveryCount}`
  }
  delete env["CONSUME_KEY"]
  delete env["CONSUME_KEY_BASE64"]
  if (d.key === undefined) return env
  env["CONSUME_KEY_BASE64"] = Buffer.from(d.key.buffer, d.key.byteOffset, d.key.byteLength).toString("base64")
  const text = keyText(d.key)
  if (text !== undefined) env["CONSUME_KEY"] = text
  return env
}

const signalGroup = (group: number, signal: NodeJS.Signals) => {
  try {
    process.kill(-group, signal)
  } catch {
    // Gone already.
  }
}

/**
 * Waits until `gone` holds, looking every LOOK_EVERY_MS, for at most `ms`: whether it did. Bounded
 * by a deadline it looks at, not by a timeout: a stop runs as its fiber is interrupted, where a
 * timeout cannot interrupt what it bounds.
 */
const goneWithin = (gone: () => boolean, ms: number): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    const deadline = performance.now() + ms
    const look: Effect.Effect<boolean> = Effect.suspend(() =>
      gone()
        ? Effect.succeed(true)
        : performance.now() >= deadline
        ? Effect.succeed(false)
        : Effect.zipRight(Effect.sleep(LOOK_EVERY_MS), look)
    )
    return look
  })

/**
 * Stops a command: SIGTERM to its process group, SIGKILL once it outlived STOP_GRACE_MS; over once
 * its shell ended and no process of the group runs, or KILLED_WAIT_MS after the SIGKILL at most.
 */
const stopCommand = (group: number, ended: () => boolean): Effect.Effect<void> =>
  Effect.suspend(() => {
    const gone = () => ended() && !processGroupRuns(group)
    if (gone()) return Effect.void
    signalGroup(group, "SIGTERM")
    // A stopped command (SIGSTOP) acts on its SIGTERM only once it runs: continued, it ends as it
    // would (its traps run) instead of waiting out the grace period to its SIGKILL.
    signalGroup(group, "SIGCONT")
    return Effect.flatMap(goneWithin(gone, STOP_GRACE_MS), (stopped) => {
      if (stopped) return Effect.void
      signalGroup(group, "SIGKILL")
      return Effect.asVoid(goneWithin(gone, KILLED_WAIT_MS))
    })
  })

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
    Effect.async<CommandEnd>((resume) => {
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
      const [shell, args] = gatedShell(command)
      const child = spawn(shell, args, {
        stdio: [input, "inherit", "inherit", "pipe"],
        detached: true,
        env: commandEnvironment(d)
      })
      // The command has its own copy of the descriptor.
      closeSync(input)
      const group = child.pid
      // Read to its end too (the shell writes nothing there), so that it closes and the child's "close" comes.
      const gate = child.stdio[3] as Duplex | null
      gate?.on("error", () => {}) // the shell gone already: its "close" says how it ended
      gate?.resume()
      const open = () => gate?.end("\n")
      // Opened once the line is in the watcher's pipe (or the watcher is gone: no awk).
      if (group === undefined) open()
      else watcher.stdin!.write(`+ ${group}\n`, open)
      let ended = false
      child.on("error", () => resume(Effect.succeed(127)))
      child.on("close", (code, signal) => {
        ended = true
        if (group !== undefined) watcher.stdin!.write(`- ${group}\n`)
        // Node gives one of the two: the code of a shell that exited, the signal of one killed.
        resume(Effect.succeed(code ?? signal!))
      })
      // Interrupted (the member stopping): over only once the command and all it started are gone.
      return group === undefined ? Effect.void : stopCommand(group, () => ended)
    })
)
