/**
 * `cxlog consume` whose stdout's reader goes away (`| head -2`), as a user runs it on the region's
 * host: the member stops, also with nothing more to print, and what it could not hand to its reader
 * stays the group's, for the next member, never spent on deliveries that meet the same closed
 * output up to the dead letters.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCli } from "../helpers/CliRoles.js"
import { cliOk, groupsHead } from "../helpers/GroupCli.js"

const head = groupsHead("consume-out", ["jobs"])

/** `cxlog consume --group g` whose stdout's reader goes after its first output: how it ended (at most 30 s). */
const consumeUntilReaderGoes = (env: Record<string, string>) =>
  runCli(["consume", "--group", "g"], env, (child) => child.stdout!.once("data", () => child.stdout!.destroy())).pipe(
    Effect.timeoutFail({
      duration: "30 seconds",
      onTimeout: () => new Error("cxlog consume ran on 30 s after its stdout closed")
    })
  )

const MESSAGES = 200

describe("cxlog consume with its stdout closed", () => {
  it.scopedLive(
    "printing, with nothing more to print once its reader went: the member stops (exit 0) and leaves the group",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* cliOk(["publish", "--local", "--topic", "jobs", "--count", "1", "--message-bytes", "16"], env)
        yield* cliOk(["groups", "create", "g", "--topic", "jobs"], env)
        // The one message printed and acked, the reader goes: the member waits for more, which never come.
        const closed = yield* consumeUntilReaderGoes(env)
        expect(closed.code, closed.stderr).toBe(0)
        expect(JSON.parse(yield* cliOk(["groups", "describe", "g", "--json"], env))).toMatchObject({ members: [] })
      }),
    60_000
  )

  it.scopedLive(
    "printing a backlog when its reader goes: the write that fails ends the member normally (exit 0, nothing said); the next member gets every message not acked",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        // Far more than a pipe holds: the member is still printing when its reader goes.
        yield* cliOk(["publish", "--local", "--topic", "jobs", "--count", "20000", "--message-bytes", "100"], env)
        yield* cliOk(["groups", "create", "g", "--topic", "jobs"], env)
        const closed = yield* consumeUntilReaderGoes(env)
        expect(closed.code, closed.stderr).toBe(0)
        expect(closed.stderr).toBe("")
        const { acked } = JSON.parse(yield* cliOk(["groups", "describe", "g", "--json"], env))
        expect(acked).toBeLessThan(20000)
        const rest = yield* cliOk(["consume", "--group", "g", "--idle-exit-ms", "2000"], env)
        expect(rest.trim().split("\n")).toHaveLength(20000 - acked)
        expect(JSON.parse(yield* cliOk(["groups", "describe", "g", "--json"], env))).toMatchObject({
          acked: 20000,
          pending: 0,
          deadLetters: 0
        })
      }),
    120_000
  )

  it.scopedLive(
    "--exec: the commands killed by SIGPIPE are not nak'd to the dead letters: the member stops, the next one gets every message left",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* cliOk(["publish", "--local", "--topic", "jobs", "--count", `${MESSAGES}`, "--message-bytes", "16"], env)
        yield* cliOk(["groups", "create", "g", "--topic", "jobs", "--max-deliver", "2"], env)
        // Its reader reads the first output and goes, as `| head -1` does: the commands after it write to nobody.
        const closed = yield* runCli(
          ["consume", "--group", "g", "--exec", "cat; echo"],
          env,
          (child) => child.stdout!.once("data", () => child.stdout!.destroy())
        ).pipe(Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error("cxlog consume did not stop within 30 s of its stdout closing")
        }))
        // Stopped by a command's SIGPIPE, or first by the look at its stdout: no message nak'd either way.
        expect(closed.stderr).not.toContain("it is delivered again")
        expect(closed.code, closed.stderr).toBe(0)
        const after = JSON.parse(yield* cliOk(["groups", "describe", "g", "--json"], env))
        expect(after).toMatchObject({ deadLetters: 0 })
        // The next member is given every message not acked: nothing was lost to the closed output.
        const rest = yield* cliOk(
          ["consume", "--group", "g", "--exec", "cat >/dev/null", "--idle-exit-ms", "2000"],
          env
        )
        expect(rest).toBe("")
        expect(JSON.parse(yield* cliOk(["groups", "describe", "g", "--json"], env))).toMatchObject({
          acked: MESSAGES,
          pending: 0,
          deadLetters: 0
        })
      }),
    120_000
  )
})
