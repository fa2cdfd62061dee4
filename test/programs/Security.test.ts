/**
 * Security from the command line (docs/security.md): the head's credential file lets the local
 * user publish with no flags, while a process of another OS user and users without the right
 * are refused with their typed errors; `cxlog user` adds and removes users; a broker beyond
 * loopback without TLS, or on a host name that resolves to nothing, refuses to start in one line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { defaultCredentialPath, defaultSecretPath } from "../../src/layers/net/Auth.js"
import { cli, forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

const NOBODY = 65534

/**
 * A copy of the CLI that the OS user nobody can run: the checkout may sit under a 0700 directory
 * (what `mktemp -d` makes) and Node under /root, both out of its reach, and a stranger that
 * cannot even start must not pass for one the broker refused. The launcher, the bundle, the
 * addon, the manifest by which the bundle finds its package, and Node (hard-linked when it can be).
 */
const strangersCopy = Effect.acquireRelease(
  Effect.sync(() => {
    const from = dirname(dirname(cli))
    const root = mkdtempSync(join(tmpdir(), "cxlog-stranger-"))
    const files = ["package.json", "dist/cxlog.mjs", "dist/cxlog.cjs", "build/Release/cxlog_native.node"]
    for (const file of files) {
      mkdirSync(dirname(join(root, file)), { recursive: true })
      copyFileSync(join(from, file), join(root, file))
    }
    const node = join(root, "node")
    try {
      linkSync(process.execPath, node)
    } catch {
      copyFileSync(process.execPath, node)
    }
    for (const path of [root, join(root, "dist"), join(root, "build"), join(root, "build", "Release")]) {
      chmodSync(path, 0o755)
    }
    for (const file of files) chmodSync(join(root, file), 0o644)
    chmodSync(node, 0o755)
    return { node, cli: join(root, "dist", "cxlog.mjs"), root }
  }),
  ({ root }) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
)

/** `cxlog ARGS` as the OS user nobody, from its own copy (only root may switch users). */
const runAsNobody = (args: ReadonlyArray<string>) =>
  Effect.flatMap(strangersCopy, (copy) =>
    Effect.acquireUseRelease(
      Effect.sync(() =>
        spawn(copy.node, [copy.cli, ...args], {
          stdio: ["ignore", "pipe", "pipe"],
          uid: NOBODY,
          gid: NOBODY,
          env: { PATH: process.env["PATH"] ?? "" }
        })
      ),
      (child) =>
        Effect.async<{ code: number | null; stderr: string }, Error>((resume) => {
          let stderr = ""
          child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()))
          child.on("error", (error) =>
            resume(Effect.fail(new Error(`nobody cannot start ${copy.node}: ${error.message}`))))
          child.on("close", (code) =>
            resume(Effect.succeed({ code, stderr })))
        }),
      (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
    ))

describe("cxlog security", () => {
  it.scoped("the local user publishes with no flags; another OS user, a user without the right and a removed user are refused", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("security")
      const dir = yield* tempDir("cxlog-security-cli-")
      const env = { ...smallRegionEnv, CXLOG_REGION: region }
      const head = yield* forkCli(["head", "--topic", "t:5:1", "--topic", "other:5:1"], env)
      yield* head.event("ready")
      const users = defaultCredentialPath(region)
      expect(statSync(users).mode & 0o777).toBe(0o600)
      expect(statSync(defaultSecretPath(region)).mode & 0o777).toBe(0o600)
      const wide = yield* runCli(["broker", "--host", "0.0.0.0", "--port", "0"], env)
      expect(wide.code).toBe(1)
      expect(wide.stderr.trim().split("\n")).toEqual([
        "cxlog broker: broker cannot listen on 0.0.0.0:0: refusing to serve beyond loopback without TLS: give --tls-cert and --tls-key with authentication on (a credential file), or --insecure (docs/security.md)"
      ])
      // A name that resolves to nothing is not taken for an address beyond loopback.
      const nowhere = yield* runCli(["broker", "--host", "notahost.invalid", "--port", "0"], env)
      expect(nowhere.code).toBe(1)
      expect(nowhere.stderr.trim().split("\n")).toEqual([
        "cxlog broker: broker cannot listen on notahost.invalid:0: cannot resolve host notahost.invalid (ENOTFOUND): give an address of this host (127.0.0.1, 0.0.0.0, …) or a name that resolves to one"
      ])
      const broker = yield* forkCli(["broker", "--port", "0"], env)
      const port = (yield* broker.event("listening"))["port"] as number
      const brokers = `127.0.0.1:${port}`

      const local = yield* runCli([
        "publish",
        "--brokers",
        brokers,
        "--topic",
        "t",
        "--count",
        "20",
        "--message-bytes",
        "64"
      ], env)
      expect(local.code, local.stderr).toBe(0)

      if (process.getuid?.() === 0) {
        const stranger = yield* runAsNobody([
          "publish",
          "--brokers",
          brokers,
          "--topic",
          "t",
          "--count",
          "1",
          "--region",
          region
        ])
        // The broker's own words (the client's for a missing secret differ): the stranger reached it.
        expect(stranger.stderr).toContain(
          `${brokers} refused the session: auth-required: this broker requires authentication`
        )
        expect(stranger.code).toBe(1)
      }

      const bobSecret = join(dir, "bob.secret")
      const added = yield* runCli([
        "user",
        "add",
        "bob",
        "--publish",
        "other",
        "--read",
        "",
        "--secret-file",
        bobSecret
      ], env)
      expect(added.code, added.stderr).toBe(0)
      expect(statSync(bobSecret).mode & 0o777).toBe(0o600)
      const listed = yield* runCli(["user", "list", "--json"], env)
      expect(JSON.parse(listed.stdout).users).toContainEqual({
        user: "bob",
        publish: "other",
        read: "-",
        consume: "*",
        admin: "-",
        limits: "-"
      })
      const forbidden = yield* runCli([
        "publish",
        "--brokers",
        brokers,
        "--topic",
        "t",
        "--count",
        "1",
        "--secret-file",
        bobSecret
      ], env)
      expect(forbidden.code).toBe(1)
      expect(forbidden.stderr).toMatch(/forbidden: user bob may not publish to topic t/)
      const own = yield* runCli([
        "publish",
        "--brokers",
        brokers,
        "--topic",
        "other",
        "--count",
        "5",
        "--secret-file",
        bobSecret
      ], env)
      expect(own.code, own.stderr).toBe(0)
      expect((yield* runCli(["user", "remove", "bob"], env)).code).toBe(0)
      const removed = yield* runCli([
        "publish",
        "--brokers",
        brokers,
        "--topic",
        "other",
        "--count",
        "1",
        "--secret-file",
        bobSecret
      ], env)
      expect(removed.stderr).toMatch(/auth-failed/)

      const topics = yield* runCli(["topics", "--json"], env)
      expect(JSON.parse(topics.stdout).topics.map((t: { end: number }) => t.end)).toEqual([20, 5])
      // The head that made the files removes them with its region, stopped by a hangup (its
      // terminal closed) as by Ctrl-C or SIGTERM: Node's default for SIGHUP would kill it mid-run.
      head.child.kill("SIGHUP")
      expect(yield* head.exited).toEqual({ code: 0, signal: null })
      expect(existsSync(users)).toBe(false)
      expect(existsSync(`/dev/shm/${region}`)).toBe(false)
    }))

  it.scoped("cxlog user list and remove on a region with no credential file say who makes one; removing a user the file lacks fails (exit 1), naming it", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("no-users")
      const env = { CXLOG_REGION: region }
      const path = defaultCredentialPath(region)
      for (const args of [["user", "list"], ["user", "remove", "bob"]]) {
        const got = yield* runCli(args, env)
        expect(got.code).toBe(1)
        expect(got.stderr.trim().split("\n")).toEqual([
          `cxlog user: credentials ${path}: no such file: region ${region} has no credential file (its head makes one with the region, cxlog user add makes one; --region or --credentials names another)`
        ])
      }
      // Not a usage mistake (exit 2): the command line was right, the file has no such user.
      const dir = yield* tempDir("cxlog-users-")
      const file = join(dir, "users.json")
      const added = yield* runCli(["user", "add", "alice", "--credentials", file, "--secret-file", join(dir, "a")])
      expect(added.code, added.stderr).toBe(0)
      const unknown = yield* runCli(["user", "remove", "bob", "--credentials", file])
      expect({ code: unknown.code, stderr: unknown.stderr.trim().split("\n") }).toEqual({
        code: 1,
        stderr: [`cxlog user: ${file} has no user bob (cxlog user list --credentials ${file} lists its users)`]
      })
      // A file others may read (copied without its mode): brokers refuse it, and the list says so.
      chmodSync(file, 0o644)
      const listed = yield* runCli(["user", "list", "--credentials", file, "--json"])
      expect(listed.code, listed.stderr).toBe(0)
      expect((JSON.parse(listed.stdout) as { users: Array<{ user: string }> }).users.map((u) => u.user)).toEqual([
        "alice"
      ])
      expect(listed.stderr.trim()).toBe(
        `cxlog user: brokers authenticate nobody with ${file} as it is: mode 644 lets others read it: chmod 600 it`
      )
    }))

  it.scoped(
    "the local user's found credentials refuse a broker started --insecure; cxlog publish and subscribe take it with --insecure or CXLOG_INSECURE=true",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("insecure")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        // The head writes the local user's secret file, which publish and subscribe find by themselves.
        yield* (yield* forkCli(["head", "--topic", "t:5:1"], env)).event("ready")
        const broker = yield* forkCli(["broker", "--port", "0", "--insecure"], env)
        const brokers = `127.0.0.1:${(yield* broker.event("listening"))["port"] as number}`
        const publish = ["publish", "--brokers", brokers, "--topic", "t", "--count", "3", "--message-bytes", "16"]
        const read = ["subscribe", "--brokers", brokers, "--topic", "t", "--limit", "6", "--idle-timeout-ms", "20000"]

        const refused = yield* runCli(publish, env)
        expect(refused.code).toBe(1)
        expect(refused.stderr).toMatch(
          /auth-failed: .*welcomed this client without authenticating it .*found in the region's secret file.*--insecure/
        )
        const unread = yield* runCli(read, env)
        expect(unread.code).toBe(1)
        expect(unread.stderr).toMatch(/auth-failed: .*subscribed this client without authenticating it/)

        for (
          const opted of [
            yield* runCli([...publish, "--insecure"], env),
            yield* runCli(publish, { ...env, CXLOG_INSECURE: "true" })
          ]
        ) {
          expect(opted.code, opted.stderr).toBe(0)
        }
        const got = yield* runCli([...read, "--insecure"], env)
        expect(got.code, got.stderr).toBe(0)
        expect(got.stdout.trim().split("\n")).toHaveLength(6)
      }),
    120_000
  )
})
