/**
 * A local cluster of role processes for `cxlog run` and `cxlog bench`: a head, N brokers, a
 * subscriber and a publisher, each a real `cxlog` process forked with an IPC channel. Every
 * child is stopped and the region unlinked when the scope closes, Ctrl-C included.
 */
import { Data, Deferred, Duration, Effect, FiberId, type Scope } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import { existsSync, unlinkSync } from "node:fs"
import { cliEntry } from "../PackageRoot.js"
import type { RoleEvent } from "./Report.js"

export class RoleFailed extends Data.TaggedError("RoleFailed")<{ readonly role: string; readonly reason: string; readonly stderr: string }> {
  override get message() {
    return `${this.role} failed: ${this.reason}${this.stderr.trim() === "" ? "" : `\n--- ${this.role} stderr (last lines) ---\n${this.stderr.trimEnd()}`}`
  }
}

export interface RoleProcess {
  readonly role: string
  readonly child: ChildProcess
  /** The first event of this kind (waits for it). */
  readonly event: (kind: string, timeoutMs: number) => Effect.Effect<RoleEvent, RoleFailed>
  /** Called for every event, in order. */
  readonly on: (listener: (event: RoleEvent) => void) => void
  /** Fails when the process exits before `done` was reported. */
  readonly exited: Effect.Effect<never, RoleFailed>
  readonly kill: (signal: NodeJS.Signals) => void
}

const TAIL_BYTES = 8192

/** `CXLOG_PROFILE_DIR=dir` writes a V8 CPU profile of every role process there (finding hot spots). */
const profileArgs = (): Array<string> => {
  const dir = process.env["CXLOG_PROFILE_DIR"]
  return dir === undefined || dir === "" ? [] : ["--cpu-prof", `--cpu-prof-dir=${dir}`]
}

/** Forks `cxlog <args>`; SIGTERM then SIGKILL when the scope closes. */
export const spawnRole = (role: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Effect.Effect<RoleProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const seen = new Map<string, Deferred.Deferred<RoleEvent, RoleFailed>>()
    const listeners: Array<(event: RoleEvent) => void> = []
    const exit = yield* Deferred.make<never, RoleFailed>()
    let stderr = ""
    const deferredFor = (kind: string) => {
      let d = seen.get(kind)
      if (d === undefined) {
        d = Deferred.unsafeMake<RoleEvent, RoleFailed>(FiberId.none)
        seen.set(kind, d)
      }
      return d
    }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(cliEntry(), [...args], {
          stdio: ["ignore", "pipe", "pipe", "ipc"],
          env: { ...process.env, ...env },
          serialization: "advanced",
          execArgv: profileArgs()
        })
      ),
      (child) =>
        Effect.async<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          const force = setTimeout(() => child.kill("SIGKILL"), 3_000)
          child.once("exit", () => {
            clearTimeout(force)
            resume(Effect.void)
          })
          child.kill("SIGTERM")
        })
    )
    const keep = (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-TAIL_BYTES)
    }
    child.stdout!.on("data", keep)
    child.stderr!.on("data", keep)
    child.on("message", (message) => {
      const event = message as RoleEvent
      for (const listener of listeners) listener(event)
      Deferred.unsafeDone(deferredFor(event.event), Effect.succeed(event))
    })
    child.on("exit", (code, signal) => {
      const failure = new RoleFailed({ role, reason: `exited with ${signal ?? `code ${code}`}`, stderr })
      Deferred.unsafeDone(exit, Effect.fail(failure))
      for (const d of seen.values()) Deferred.unsafeDone(d, Effect.fail(failure))
    })
    return {
      role,
      child,
      event: (kind, timeoutMs) =>
        Deferred.await(deferredFor(kind)).pipe(
          Effect.timeoutFail({
            duration: Duration.millis(timeoutMs),
            onTimeout: () => new RoleFailed({ role, reason: `no "${kind}" within ${timeoutMs} ms`, stderr })
          })
        ),
      on: (listener) => {
        listeners.push(listener)
      },
      exited: Deferred.await(exit),
      kill: (signal) => {
        child.kill(signal)
      }
    }
  })

/** Unlinks the region at scope close if a crashed head left it behind. */
export const regionGuard = (name: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      const path = `/dev/shm/${name.replace(/^\//, "")}`
      if (existsSync(path)) unlinkSync(path)
    })
  )
