/**
 * The commands `cxlog consume --exec` runs: each reads its message whole from a file written
 * before it starts (never from a pipe filled as it runs, which a member killed in between left
 * empty), and the environment names the message. A command interrupted (its member stopping) is
 * over only once it and all it started are gone, SIGKILLed past the grace period if it ignores SIGTERM.
 * Each starts behind a gate its member opens once its watcher knows of it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { spawn } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Duplex } from "node:stream"
import { processGroupRuns } from "../../src/layers/region/ProcessInfo.js"
import {
  commandRunner,
  gatedShell,
  INPUT_NOT_WRITTEN,
  STOP_GRACE_MS
} from "../../src/programs/roles/ConsumeCommands.js"
import type { Delivery } from "../../src/services/groups/ConsumerGroups.js"
import { killGroupsAtEnd, tempDir } from "../helpers/Processes.js"

const delivery = (value: string): Delivery => ({
  group: "g",
  topic: "t",
  offset: 7,
  timestamp: 0,
  key: undefined,
  headers: undefined,
  value: new TextEncoder().encode(value),
  deliveryCount: 2,
  ack: Effect.succeed(true),
  nak: () => Effect.succeed(true),
  term: () => Effect.succeed(true),
  inProgress: Effect.succeed(true)
})

/**
 * Spawns `command` behind its gate as the runner does, then `gate(fd3)` (open it or shut it); its
 * exit code, and its pid.
 */
const behindGate = (command: string, gate: (fd3: Duplex) => void) =>
  Effect.async<{ readonly code: number | null; readonly pid: number }>((resume) => {
    const [shell, args] = gatedShell(command)
    const child = spawn(shell, args, { stdio: ["ignore", "ignore", "ignore", "pipe"], detached: true })
    const fd3 = child.stdio[3] as Duplex
    fd3.on("error", () => {}) // the shell gone already: its exit code says how it ended
    fd3.resume()
    child.on("close", (code) => resume(Effect.succeed({ code, pid: child.pid! })))
    gate(fd3)
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(Effect.timeout("10 seconds"))

const inputFiles = () => readdirSync(tmpdir()).filter((name) => name.startsWith(`cxlog-consume-${process.pid}-`))

describe("cxlog consume --exec commands", () => {
  it.scoped("read their message from a file there whole before they start; nothing of it is left behind", () =>
    Effect.gen(function*() {
      const before = inputFiles()
      const run = yield* Effect.scoped(Effect.gen(function*() {
        const run = yield* commandRunner
        const big = "x".repeat(300_000)
        // A regular file, not a pipe: its whole size is there as the command starts.
        expect(yield* run(`[ -f /dev/stdin ] && [ "$(wc -c)" -eq 300000 ]`, delivery(big))).toBe(0)
        expect(
          yield* run(`[ "$(cat)" = hello ] && [ "$CONSUME_OFFSET $CONSUME_DELIVERY_COUNT" = "7 2" ]`, delivery("hello"))
        )
          .toBe(0)
        // A command that does not read its input is no failure.
        expect(yield* run("exit 0", delivery("unread"))).toBe(0)
        expect(yield* run("exit 3", delivery("x"))).toBe(3)
        // A shell killed has no exit code: the signal is how it ended.
        expect(yield* run("kill -KILL $$", delivery("x"))).toBe("SIGKILL")
        expect(yield* run("kill -TERM $$", delivery("x"))).toBe("SIGTERM")
        return run
      }))
      expect(run).toBeDefined()
      expect(inputFiles()).toEqual(before)
    }))

  it.scoped(
    "are given every key's exact bytes in CONSUME_KEY_BASE64, and CONSUME_KEY only for a key an environment carries as it is: UTF-8 without NUL",
    () =>
      Effect.gen(function*() {
        const run = yield* commandRunner
        const dir = yield* tempDir("consume-keys-")
        const seen = join(dir, "seen")
        // A member run by another member's command has that message's key in its environment: not this one's.
        const before = process.env["CONSUME_KEY"]
        process.env["CONSUME_KEY"] = "the member's own"
        yield* Effect.addFinalizer(() =>
          Effect.sync(() =>
            before === undefined ? delete process.env["CONSUME_KEY"] : void (process.env["CONSUME_KEY"] = before)
          )
        )
        const envOf = (key: Uint8Array | undefined) =>
          Effect.gen(function*() {
            const command = `printf '%s|%s' "\${CONSUME_KEY-unset}" "\${CONSUME_KEY_BASE64-unset}" > ${seen}`
            expect(yield* run(command, { ...delivery("v"), key })).toBe(0)
            return readFileSync(seen, "utf8")
          })
        const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")
        // A NUL cannot be in an environment (spawn refused the whole command), bytes that are not UTF-8
        // would come replaced (U+FFFD): neither is given as text, both exactly in base64.
        const nul = new Uint8Array([0x61, 0x00, 0x62])
        expect(yield* envOf(nul)).toBe(`unset|${b64(nul)}`)
        const latin1 = new Uint8Array([0x63, 0x61, 0x66, 0xe9])
        expect(yield* envOf(latin1)).toBe(`unset|${b64(latin1)}`)
        const text = new TextEncoder().encode("customer-7 é")
        expect(yield* envOf(text)).toBe(`customer-7 é|${b64(text)}`)
        // A leading BOM is one of the key's characters, not dropped.
        const bom = new TextEncoder().encode("\uFEFFk")
        expect(yield* envOf(bom)).toBe(`\uFEFFk|${b64(bom)}`)
        expect(yield* envOf(undefined)).toBe("unset|unset")
      })
  )

  it.scoped("whose input cannot be written do not run: the runner answers 126 (delivered again), nothing thrown", () =>
    Effect.gen(function*() {
      const run = yield* commandRunner
      const before = process.env["TMPDIR"]
      process.env["TMPDIR"] = "/nonexistent-cxlog-tmp"
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => before === undefined ? delete process.env["TMPDIR"] : void (process.env["TMPDIR"] = before))
      )
      expect(yield* run("exit 0", delivery("never read"))).toBe(INPUT_NOT_WRITTEN)
    }))

  it.scopedLive(
    "interrupted, are over only once their process group is gone: at once for one that stops on SIGTERM, SIGKILLed after the grace period for one that ignores it",
    () =>
      Effect.gen(function*() {
        const run = yield* commandRunner
        const dir = yield* tempDir("consume-stop-")
        const started = join(dir, "started")
        const groups = () => (existsSync(started) ? readFileSync(started, "utf8").trim().split("\n").map(Number) : [])
        yield* killGroupsAtEnd(groups)
        /** Runs `command` (which writes its group to `started`) until it started, interrupts it: how long the interruption took. */
        const interrupted = (command: string, n: number) =>
          Effect.gen(function*() {
            const fiber = yield* Effect.fork(run(`echo $$ >> ${started}; ${command}`, delivery("x")))
            yield* Effect.sync(() => groups().length >= n).pipe(
              Effect.repeat({ until: (there) => there, schedule: Schedule.spaced("20 millis") }),
              Effect.timeout("10 seconds")
            )
            const from = performance.now()
            yield* Fiber.interrupt(fiber)
            const took = performance.now() - from
            // Over means gone: nothing of the command is left to run beside the message's next delivery.
            expect(processGroupRuns(groups()[n - 1]!)).toBe(false)
            return took
          })
        // A process of its own as well as its shell: both are gone, at once.
        expect(yield* interrupted("sleep 300 & wait", 1)).toBeLessThan(STOP_GRACE_MS)
        // Ignoring SIGTERM (its children too): SIGKILLed once the grace period is over, not left to run on.
        const stubborn = yield* interrupted(`trap "" TERM; sleep 300 & wait`, 2)
        expect(stubborn).toBeGreaterThanOrEqual(STOP_GRACE_MS)
        expect(stubborn).toBeLessThan(STOP_GRACE_MS + 5_000)
      }),
    30_000
  )

  it.scopedLive(
    "start behind a gate: shut without its line (a member killed before its watcher knew), the command never runs; opened, it runs as sh -c would",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("consume-gate-")
        const ran = join(dir, "ran")
        // Says its pid, $0 and argument count, and fails if fd 3 (the gate) is still open.
        const command = `echo "$$ $0 $#" > ${ran}; [ ! -e /dev/fd/3 ]`
        const shut = yield* behindGate(command, (fd3) => fd3.end())
        expect(shut.code).toBe(INPUT_NOT_WRITTEN)
        expect(existsSync(ran)).toBe(false)
        const opened = yield* behindGate(command, (fd3) => fd3.end("\n"))
        expect(opened.code).toBe(0)
        // The same process as the gate's shell (so its group and $$ are the ones the watcher was told).
        expect(readFileSync(ran, "utf8")).toBe(`${opened.pid} sh 0\n`)
      })
  )
})
