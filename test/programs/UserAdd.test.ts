/**
 * `cxlog user add` on a user that exists sets its rights and limits and keeps its secret, so the
 * secret files its clients hold go on working; `--new-secret` replaces it (and writes the new file).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import {
  AuthServer,
  clientProof,
  CredentialError,
  readCredentialFile,
  readSecretFile
} from "../../src/layers/net/Auth.js"
import { type UserCommand, users } from "../../src/programs/admin/Users.js"
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
})
