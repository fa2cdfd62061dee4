/**
 * Test helpers for multi-process tests: unique region names and child processes that are
 * killed when the test's scope closes, pass or fail.
 */
import { Deferred, Effect, Queue, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, rmSync, unlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { defaultCredentialPath, defaultSecretPath } from "../../src/layers/net/Auth.js"
import { removeWakeFifos } from "../../src/layers/region/Doorbell.js"
import { fixtureEntry } from "./FixtureBuild.js"

/** A region name no other test run uses; unlinked in a finalizer even if the test fails. */
export const uniqueRegion = (label: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() =>
      `cxlog-test-${process.env["CXLOG_TEST_RUN"] ?? "adhoc"}-${label}-${process.pid}-${randomBytes(4).toString("hex")}`
    ),
    (name) =>
      Effect.sync(() => {
        if (existsSync(`/dev/shm/${name}`)) unlinkSync(`/dev/shm/${name}`)
        // Its processes are gone by now; the SIGKILLed ones left their wake FIFOs and their head its credential files behind.
        removeWakeFifos(name)
        rmSync(defaultCredentialPath(name), { force: true })
        rmSync(defaultSecretPath(name), { force: true })
      })
  )

/** Whether a process of `pid` runs (signal 0: nothing is sent). */
export const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** SIGKILLs process groups `groups()` names when the scope closes, pass or fail: no command a test started outlives it. */
export const killGroupsAtEnd = (groups: () => ReadonlyArray<number>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const group of groups()) {
        try {
          process.kill(-group, "SIGKILL")
        } catch {
          // Gone already.
        }
      }
    })
  )

/** A new directory under the system's temporary one, removed with what it holds when the scope closes. */
export const tempDir = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

export interface Child {
  readonly process: ChildProcess
  /** Lines the child printed on stdout, parsed as JSON. */
  readonly messages: Queue.Dequeue<unknown>
  /** Next message satisfying `predicate`, failing after `timeoutMs`. */
  readonly next: <A = Record<string, unknown>>(timeoutMs?: number) => Effect.Effect<A, Error>
  readonly exited: Deferred.Deferred<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly stderr: () => string
}

/** Runs `test/fixtures/<fixture>.ts` (as built for this run: FixtureBuild.ts); SIGKILLs it when the scope closes. */
export const spawnFixture = (
  fixture: string,
  args: ReadonlyArray<string> = [],
  env: Record<string, string> = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.gen(function*() {
    const messages = yield* Queue.unbounded<unknown>()
    const exited = yield* Deferred.make<{ code: number | null; signal: NodeJS.Signals | null }>()
    let stderr = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [fixtureEntry(fixture), ...args], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, ...env }
        })
      ),
      (child) =>
        Effect.sync(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        })
    )
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        Queue.unsafeOffer(messages, JSON.parse(line))
      } catch {
        Queue.unsafeOffer(messages, { text: line })
      }
    })
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    // "close", not "exit": its output has been read to the end by then.
    child.on("close", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal })))
    const next = <A>(timeoutMs = 30_000) =>
      Queue.take(messages).pipe(
        Effect.map((m) => m as A),
        Effect.timeoutFail({
          duration: timeoutMs,
          onTimeout: () => new Error(`${fixture}: no message within ${timeoutMs} ms; stderr: ${stderr}`)
        })
      )
    return { process: child, messages, next, exited, stderr: () => stderr }
  })

/**
 * The child's next JSON message, which must carry `key`. Its log lines (not JSON: the runtime's
 * logger writes them to stdout too, a stale heartbeat's notice say) are passed over; a message
 * without `key` fails, naming it.
 */
export const said = <A extends object>(child: Child, key: string, timeoutMs = 60_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const m = yield* child.next<A & Record<string, unknown>>(Math.max(1, deadline - Date.now()))
      if (Object.keys(m).length === 1 && typeof m["text"] === "string") continue
      if (key in m) return m
      return yield* Effect.fail(new Error(`expected ${key}: ${JSON.stringify(m)} ${child.stderr()}`))
    }
  })

/** The pid of a process that ran and is gone (reaped: no zombie names it). */
export const exitedPid = Effect.async<number>((resume) => {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" })
  child.once("exit", () => resume(Effect.succeed(child.pid!)))
})
