/**
 * `cxlog serve`'s one stream on stdout: every line its roles print (stdout and stderr), each
 * behind its role's name (`head     | …`, `broker 0 | …`), and serve's own lines behind
 * `serve`. With `--json` each line is a JSON object instead: `{"event":"log","role","line"}`
 * for what a role printed, and serve's events (`starting`, `ready`, `exited`, `stopping`,
 * `stopped`) with their fields, so a program can follow the server.
 */
import type { Readable } from "node:stream"
import type { RoleProcess } from "../run/Cluster.js"

export interface ServeLog {
  /** Prints every line `role` prints from now on, and says when it exits. */
  readonly follow: (role: RoleProcess) => void
  /** Serve's own line (human) or event (`--json`: `fields` under `event`). */
  readonly say: (line: string, event: string, fields?: Record<string, unknown>) => void
  /** A block for people (the ready banner) as it is; with `--json` the event that carries the same facts instead. */
  readonly announce: (text: string, event: string, fields: Record<string, unknown>) => void
}

const write = (text: string) => {
  process.stdout.write(text)
}

/** Calls `onLine` with each whole line `stream` gives, and the last one unterminated at its end. */
const eachLine = (stream: Readable | null, onLine: (line: string) => void) => {
  if (stream === null) return
  let partial = ""
  stream.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split("\n")
    partial = lines.pop()!
    for (const line of lines) onLine(line)
  })
  stream.on("end", () => {
    if (partial !== "") onLine(partial)
    partial = ""
  })
}

/** The stream for roles named at most `width` characters (the prefixes line up). */
export const makeServeLog = (json: boolean, width: number): ServeLog => {
  const prefixed = (role: string, line: string) => write(`${role.padEnd(width)} | ${line}\n`)
  const say: ServeLog["say"] = (line, event, fields = {}) =>
    json ? write(`${JSON.stringify({ event, ...fields })}\n`) : prefixed("serve", line)
  return {
    follow: (role) => {
      const onLine = (
        line: string
      ) => (json ? write(`${JSON.stringify({ event: "log", role: role.role, line })}\n`) : prefixed(role.role, line))
      eachLine(role.child.stdout, onLine)
      eachLine(role.child.stderr, onLine)
      // "close", not "exit": its last lines come before the word that it ended.
      role.child.once("close", (code, signal) => {
        const how = signal === null ? `code ${code}` : signal
        say(`${role.role} (pid ${role.pid}) exited with ${how}`, "exited", {
          role: role.role,
          pid: role.pid,
          code,
          signal
        })
      })
    },
    say,
    announce: (text, event, fields) => (json ? say(text, event, fields) : write(text))
  }
}
