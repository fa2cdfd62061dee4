/**
 * `cxlog user add` on a user that exists sets its rights and limits and keeps its secret, so the
 * secret files its clients hold go on working; `--new-secret` replaces it (and writes the new file).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { readCredentialFile } from "../../src/layers/net/Auth.js"
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
})
