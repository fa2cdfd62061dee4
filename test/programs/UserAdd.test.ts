/**
 * `cxlog user add` on a user that exists sets its rights and limits and keeps its secret, so the
 * secret files its clients hold go on working; `--new-secret` replaces it (and writes the new file).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, watch, writeFileSync } from "node:fs"
import { join } from "node:path"
import {
  AuthServer,
  clientProof,
  CredentialError,
  readCredentialFile,
  readSecretFile,
  upsertUser,
  userRecord,
  writeCredentialFile
} from "../../src/layers/net/Auth.js"
import { tryLock } from "../../src/layers/region/PidLockFile.js"
import { type UserCommand, users } from "../../src/programs/admin/Users.js"
import { forkCli, runCliWithin } from "../helpers/CliRoles.js"
import { tempDir } from "../helpers/Processes.js"

const command = (dir: string, extra: Partial<UserCommand>): UserCommand => ({
  action: "add",
  name: "alice",
  region: "unused",
  credentials: join(dir, "users"),
  publish: "orders.*",
  read: "*",
  consume: "*",
  admin: "",
  secretFile: undefined,
  messagesPerS: 0,
  bytesPerS: 0,
  connections: 0,
  newSecret: false,
  json: false,
  ...extra
})

/**
 * Watches `dir` for files made there; the effect it gives waits (30 s at most) for one whose name
 * starts with a prefix, whether made before or after it is asked.
 */
const lockTriesIn = (dir: string) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const seen: Array<string> = []
        const waiters = new Set<() => void>()
        const watcher = watch(dir, (_, name) => {
          if (name !== null) seen.push(name)
          for (const wake of waiters) wake()
        })
        return { watcher, seen, waiters }
      }),
      ({ watcher }) => Effect.sync(() => watcher.close())
    ),
    ({ seen, waiters }) => (prefix: string) =>
      Effect.async<void>((resume) => {
        const look = () => {
          if (!seen.some((name) => name.startsWith(prefix))) return
          waiters.delete(look)
          resume(Effect.void)
        }
        waiters.add(look)
        look()
        return Effect.sync(() => waiters.delete(look))
      }).pipe(
        Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`no file ${prefix}* in ${dir}`) })
      )
  )

describe("cxlog user add", () => {
  it.scoped("a user that exists gets the rights and limits given and keeps its secret; --new-secret replaces it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-user-add-")
      const alice = () => readCredentialFile(join(dir, "users")).users.find((u) => u.name === "alice")!
      yield* users(command(dir, { secretFile: join(dir, "a1.secret") }))
      const first = alice()
      const secret = readFileSync(join(dir, "a1.secret"), "utf8")
      yield* users(command(dir, { publish: "orders.eu", connections: 2, secretFile: join(dir, "a2.secret") }))
      const updated = alice()
      expect(updated).toMatchObject({ publish: ["orders.eu"], limits: { connections: 2 } })
      expect([updated.salt, updated.storedKey, updated.serverKey]).toEqual([
        first.salt,
        first.storedKey,
        first.serverKey
      ])
      // Nothing new to write: the secret is the one a1.secret holds.
      expect(existsSync(join(dir, "a2.secret"))).toBe(false)
      expect(readFileSync(join(dir, "a1.secret"), "utf8")).toBe(secret)
      yield* users(command(dir, { newSecret: true, secretFile: join(dir, "a3.secret") }))
      expect(alice().storedKey).not.toBe(first.storedKey)
      expect(readFileSync(join(dir, "a3.secret"), "utf8")).not.toBe(secret)
    }))

  it.scoped("a secret file that cannot be written adds no user: the command fails naming that file, and the next add with a usable one gives the user a secret that signs in", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-user-add-")
      const path = join(dir, "users")
      yield* users(command(dir, { name: "bob", secretFile: join(dir, "bob.secret") }))
      const before = readFileSync(path, "utf8")
      mkdirSync(join(dir, "a-directory"))
      for (const unwritable of [join(dir, "missing", "alice.secret"), join(dir, "a-directory")]) {
        const refused = yield* Effect.flip(users(command(dir, { secretFile: unwritable })))
        expect(refused).toBeInstanceOf(CredentialError)
        expect(refused.message).toContain(`credentials ${unwritable}: cannot write the secret file`)
        // Nothing added (a user whose secret nobody holds), nothing left behind.
        expect(readFileSync(path, "utf8")).toBe(before)
        expect(readdirSync(dir).sort()).toEqual(["a-directory", "bob.secret", "users"])
        expect(readdirSync(join(dir, "a-directory"))).toEqual([])
      }
      // A credential file that cannot take the user leaves no secret file either.
      const damaged = join(dir, "damaged")
      mkdirSync(damaged)
      writeFileSync(join(damaged, "users"), "{ not json", { mode: 0o600 })
      const unusable = yield* Effect.flip(
        users(command(damaged, { secretFile: join(damaged, "alice.secret") }))
      )
      expect(unusable.message).toContain("unreadable")
      expect(readdirSync(damaged)).toEqual(["users"])
      yield* users(command(dir, { secretFile: join(dir, "alice.secret") }))
      const credentials = readSecretFile(join(dir, "alice.secret"))
      const server = AuthServer.open(path)
      const challenge = server.challenge(credentials.user, "client-nonce")
      const { proof } = clientProof(credentials, "client-nonce", challenge)
      expect(server.verify(challenge, proof)?.user.name).toBe("alice")
    }))

  it.scopedLive("cxlog user add of a user that exists changes the rights and limits it is given and keeps the others: raising a restricted user's rate does not widen its rights", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-user-add-")
      const path = join(dir, "users")
      const add = (args: ReadonlyArray<string>) =>
        Effect.map(
          runCliWithin(["user", "add", "metrics", "--credentials", path, ...args], {}, 30_000),
          (done) => expect(done.code, done.stderr).toBe(0)
        )
      const metrics = () => readCredentialFile(path).users.find((u) => u.name === "metrics")!
      yield* add([
        "--publish",
        "metrics",
        "--read",
        "",
        "--consume",
        "",
        "--admin",
        "metrics",
        "--messages-per-s",
        "10000",
        "--connections",
        "4",
        "--secret-file",
        join(dir, "metrics.secret")
      ])
      const first = metrics()
      yield* add(["--messages-per-s", "20000"])
      expect(metrics()).toEqual({ ...first, limits: { ...first.limits, messagesPerSecond: 20000 } })
      yield* add(["--read", "metrics.*", "--connections", "0"])
      expect(metrics()).toEqual({
        ...first,
        read: ["metrics.*"],
        limits: { ...first.limits, messagesPerSecond: 20000, connections: 0 }
      })
      // A new user takes the defaults for what it is not given.
      const fresh = yield* runCliWithin(["user", "add", "fresh", "--credentials", path], {}, 30_000)
      expect(fresh.code, fresh.stderr).toBe(0)
      expect(readCredentialFile(path).users.find((u) => u.name === "fresh")).toMatchObject({
        publish: ["*"],
        read: ["*"],
        consume: ["*"],
        admin: [],
        limits: { messagesPerSecond: 0, bytesPerSecond: 0, connections: 0 }
      })
    }))

  it.scoped("a secret file is written over only when it holds the same user's secret: another user's, the credential file named by mistake, a link or a pipe is refused with nothing changed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-user-add-")
      const path = join(dir, "users")
      const aliceFile = join(dir, "alice.secret")
      yield* users(command(dir, { secretFile: aliceFile }))
      const alice = readFileSync(aliceFile, "utf8")
      const credentials = readFileSync(path, "utf8")
      // A link (as /dev/stdout is) and a pipe would be replaced by the file: refused, left as they are.
      const link = join(dir, "stdout")
      symlinkSync("/dev/null", link)
      const pipe = join(dir, "pipe")
      execFileSync("mkfifo", [pipe])
      const refusals: Array<[string, string]> = [
        [aliceFile, "it holds user alice's secret, which is kept nowhere else"],
        [path, "it is there and is not a secret file"],
        [link, "it is there and is not a regular file (a link, a device, a pipe)"],
        [pipe, "it is there and is not a regular file"]
      ]
      for (const [secretFile, reason] of refusals) {
        const refused = yield* Effect.flip(users(command(dir, { name: "bob", secretFile })))
        expect(refused).toBeInstanceOf(CredentialError)
        expect(refused.message).toContain(`credentials ${secretFile}: not writing the secret file: ${reason}`)
        expect(readFileSync(aliceFile, "utf8")).toBe(alice)
        expect(readFileSync(path, "utf8")).toBe(credentials)
      }
      expect([lstatSync(link).isSymbolicLink(), lstatSync(pipe).isFIFO()]).toEqual([true, true])
      // Alice's own file takes her new secret.
      yield* users(command(dir, { newSecret: true, secretFile: aliceFile }))
      expect(readFileSync(aliceFile, "utf8")).not.toBe(alice)
      const server = AuthServer.open(path)
      const challenge = server.challenge("alice", "client-nonce")
      const { proof } = clientProof(readSecretFile(aliceFile), "client-nonce", challenge)
      expect(server.verify(challenge, proof)?.user.name).toBe("alice")
    }))

  it.scopedLive("an add waiting for the lock builds on the user as the file has it once it holds the lock: a secret replaced meanwhile stays replaced", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-user-add-")
      const path = join(dir, "users")
      upsertUser(path, userRecord("alice", "first-secret", { publish: ["*"], read: ["*"] }, undefined, 64))
      // This process holds the file's lock, as another `cxlog user add` changing it would.
      const held = yield* Effect.acquireRelease(
        Effect.sync(() => tryLock(`${path}.lock`, { olderBuildStaleMs: 30_000 })),
        (lock) => Effect.sync(() => lock.taken && lock.release())
      )
      expect(held.taken).toBe(true)
      const tries = yield* lockTriesIn(dir)
      const add = yield* forkCli(["user", "add", "alice", "--credentials", path, "--publish", "orders"])
      // The add tries the lock (each try writes a file naming its pid): it read all it reads before it.
      yield* tries(`users.lock.${add.pid}.`)
      const replaced = userRecord("alice", "second-secret", { publish: ["*"], read: ["*"] }, undefined, 64)
      writeCredentialFile(path, { ...readCredentialFile(path), users: [replaced] })
      if (held.taken) held.release()
      const exit = yield* add.exited.pipe(
        Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(add.output()) })
      )
      expect(exit.code, add.output()).toBe(0)
      const alice = readCredentialFile(path).users.find((u) => u.name === "alice")!
      expect(alice.publish).toEqual(["orders"])
      expect([alice.salt, alice.storedKey, alice.serverKey]).toEqual([
        replaced.salt,
        replaced.storedKey,
        replaced.serverKey
      ])
    }))
})
