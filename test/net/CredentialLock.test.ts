/**
 * The credential file's lock (`FILE.lock`, held while `cxlog user add` or `remove` changes the
 * file) is made whole, naming its holder: a writer killed right after making it is seen dead at
 * once and its lock taken over; a holder that is merely stopped keeps its lock however old it
 * gets (a waiter fails typed, naming it, and removes nothing), and a take-over whose own taker
 * died is finished by the next one. The writers are real processes that send themselves SIGKILL
 * or SIGSTOP right after the call that made the lock (credential-lock-crash).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { CredentialError, readCredentialFile, upsertUser, userRecord } from "../../src/layers/net/Auth.js"
import { spawnFixture, tempDir } from "../helpers/Processes.js"

/** A pid no process has (above any pid_max): `kill(pid, 0)` finds nobody. */
const DEAD_PID = 0x3fffffff

const bob = userRecord("bob", "secret", { publish: ["*"], read: [] }, undefined, 1)
const names = (path: string) => readCredentialFile(path).users.map((u) => u.name).sort()

/** The state letter of `pid` in /proc (T: stopped). */
const stateOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat[stat.lastIndexOf(")") + 2]
}

describe("the credential file's lock", () => {
  it.scopedLive("a writer killed right after making the lock: the next change takes it over at once and leaves nothing behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-lock-")
      const path = join(dir, "users")
      const writer = yield* spawnFixture("credential-lock-crash", [path, "alice", "SIGKILL"])
      const exit = yield* Deferred.await(writer.exited).pipe(
        Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(writer.stderr()) })
      )
      expect(exit.signal, writer.stderr()).toBe("SIGKILL")
      expect(existsSync(`${path}.lock`)).toBe(true)

      upsertUser(path, bob)
      expect(names(path)).toEqual(["bob"])
      // Its lock, and the temporary file it died before removing, are gone.
      expect(readdirSync(dir)).toEqual(["users"])
    }))

  it.scopedLive("a holder stopped past the old 30 s bound keeps its lock: a waiting change fails typed naming it and takes nothing over; continued, the holder's change lands", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-lock-")
      const path = join(dir, "users")
      const lockPath = `${path}.lock`
      const holder = yield* spawnFixture("credential-lock-crash", [path, "alice", "SIGSTOP"])
      const pid = holder.process.pid!
      for (let ms = 0; !(existsSync(lockPath) && stateOf(pid) === "T") && ms < 30_000; ms += 10) {
        yield* Effect.sleep("10 millis")
      }
      expect(stateOf(pid), holder.stderr()).toBe("T")
      // As if it had been stopped for a minute.
      const past = new Date(Date.now() - 60_000)
      utimesSync(lockPath, past, past)
      const lock = statSync(lockPath).ino

      const waited = yield* Effect.either(Effect.try({ try: () => upsertUser(path, bob), catch: (error) => error }))
      if (waited._tag === "Right") return expect.unreachable("the change took a live holder's lock")
      expect(waited.left).toBeInstanceOf(CredentialError)
      expect(String(waited.left)).toContain(`process ${pid} holds its lock`)
      expect(statSync(lockPath).ino).toBe(lock)

      holder.process.kill("SIGCONT")
      yield* holder.next()
      const exit = yield* Deferred.await(holder.exited).pipe(
        Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(holder.stderr()) })
      )
      expect(exit.code, holder.stderr()).toBe(0)
      expect(names(path)).toEqual(["alice"])
      expect(readdirSync(dir)).toEqual(["users"])
    }))

  it.scoped("a take-over whose taker died before finishing it: the next change finishes it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-lock-")
      const path = join(dir, "users")
      // A holder that died, and a taker that died after making its take-over marker.
      writeFileSync(`${path}.lock`, `${DEAD_PID} - 0123456789abcdef\n`, { mode: 0o600 })
      writeFileSync(`${path}.lock.0123456789abcdef.takeover`, `${DEAD_PID} - fedcba9876543210\n`, { mode: 0o600 })
      upsertUser(path, bob)
      expect(names(path)).toEqual(["bob"])
      expect(readdirSync(dir)).toEqual(["users"])
    }))

  it.scoped(
    "a lock path that cannot be read (a directory there): the change fails saying what failed, not that a process holds it",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-lock-")
        const path = join(dir, "users")
        mkdirSync(`${path}.lock`)
        const waited = yield* Effect.either(Effect.try({ try: () => upsertUser(path, bob), catch: (error) => error }))
        if (waited._tag === "Right") return expect.unreachable("the change went ahead without its lock")
        expect(waited.left).toBeInstanceOf(CredentialError)
        expect(String(waited.left)).toMatch(/its lock .*users\.lock could not be read for over 10000 ms: EISDIR/)
        expect(String(waited.left)).not.toContain("holds its lock")
      }),
    30_000
  )
})
