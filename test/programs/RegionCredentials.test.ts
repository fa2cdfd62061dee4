/**
 * A region's default credential files belong to that region (bundled CLI, real processes): a
 * standby takes over with them and publishers keep authenticating, `cxlog regions --remove`
 * removes them with the region, a head that makes the region anew gets a fresh secret (never a
 * dead region's), an `--attach` head keeps the region's own, one that fails to start leaves none
 * it made, and `regions --prune` removes the files of regions that are gone (its credential step,
 * run in this process).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync, rmSync } from "node:fs"
import {
  defaultCredentialPath,
  defaultSecretPath,
  ensureRegionCredentials,
  readCredentialFile
} from "../../src/layers/net/Auth.js"
import { removeWakeFifos } from "../../src/layers/region/Doorbell.js"
import { ownStartTag, startTagOf } from "../../src/layers/region/ProcessInfo.js"
import { pruneStaleCredentials } from "../../src/programs/admin/RegionPrune.js"
import { forkCli, loseRegion, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"
import { unreapedProcess } from "../helpers/Unreaped.js"

/** The region's secret file's text and its credential file's binding. */
const credentialsOf = (region: string) => ({
  secret: readFileSync(defaultSecretPath(region), "utf8"),
  binding: readCredentialFile(defaultCredentialPath(region)).region
})

const filesExist = (region: string) =>
  [defaultCredentialPath(region), defaultSecretPath(region)].map((path) => existsSync(path))

/** `cxlog regions --json`'s `createdAtMs` of `region`. */
const createdAtMs = (region: string, env: Record<string, string>) =>
  Effect.map(runCli(["regions", "--json"], env), (listing) => {
    expect(listing.code, listing.stderr).toBe(0)
    return (JSON.parse(listing.stdout) as Array<{ name: string; createdAtMs: number }>).find((r) => r.name === region)
      ?.createdAtMs
  })

/** Region `name` (not uniqueRegion's own: one derived from it), its shm object, FIFOs and default files removed at the scope's end. */
const namedRegion = (name: string) =>
  Effect.acquireRelease(Effect.succeed(name), () =>
    Effect.sync(() => {
      rmSync(`/dev/shm/${name}`, { force: true })
      removeWakeFifos(name)
      rmSync(defaultCredentialPath(name), { force: true })
      rmSync(defaultSecretPath(name), { force: true })
    }))

describe("a region's default credential files", () => {
  it.scopedLive("serve a standby's takeover; go with cxlog regions --remove", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("credtakeover")
      const env = { ...smallRegionEnv, CXLOG_REGION: region }
      const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
      yield* head.event("ready", 60_000)
      const made = credentialsOf(region)
      expect(made.binding).toMatchObject({ name: region, createdAtMs: yield* createdAtMs(region, env), pid: head.pid })
      const standby = yield* forkCli(["head", "--standby"], env)
      yield* standby.event("standby")
      // The broker authenticates against the region's default file; publish finds the local user's secret file.
      const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
      const brokers = `127.0.0.1:${(yield* broker.event("listening"))["port"]}`
      const publish = (count: number) =>
        Effect.map(
          runCli(
            ["publish", "--brokers", brokers, "--topic", "t", "--count", `${count}`, "--message-bytes", "64"],
            env
          ),
          (r) => {
            expect(r.code, r.stderr).toBe(0)
          }
        )
      yield* publish(10)

      head.child.kill("SIGKILL")
      yield* head.exited
      yield* standby.event("ready", 60_000)
      yield* publish(10)
      expect(credentialsOf(region)).toEqual(made)
      standby.child.kill("SIGKILL")
      broker.child.kill("SIGKILL")
      yield* standby.exited
      yield* broker.exited
      // The region is still there (an --attach head may carry on with it), and so are its files.
      expect(filesExist(region)).toEqual([true, true])

      const removed = yield* runCli(["regions", "--remove", region], env)
      expect(removed.code, removed.stderr).toBe(0)
      expect(filesExist(region)).toEqual([false, false])
    }), 180_000)

  it.scopedLive(
    "a head making the region anew gets a fresh secret, not the dead region's; an --attach head keeps the region's own",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("credanew")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const first = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* first.event("ready", 60_000)
        const dead = credentialsOf(region)
        // The region is lost (a reboot that kept the credential directory, an unlink by hand); its files stay behind.
        yield* loseRegion(region, first)

        const second = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* second.event("ready", 60_000)
        const fresh = credentialsOf(region)
        expect(fresh.secret).not.toBe(dead.secret)
        expect(fresh.binding).toMatchObject({
          name: region,
          createdAtMs: yield* createdAtMs(region, env),
          pid: second.pid
        })
        expect(fresh.binding!.createdAtMs).not.toBe(dead.binding!.createdAtMs)
        second.child.kill("SIGKILL")
        yield* second.exited

        const attached = yield* forkCli(["head", "--attach"], env)
        yield* attached.event("ready", 60_000)
        expect(credentialsOf(region).secret).toBe(fresh.secret)
        expect(credentialsOf(region).binding).toMatchObject({ createdAtMs: fresh.binding!.createdAtMs })
      }),
    180_000
  )

  it.scopedLive(
    "a head that fails to start (--attach to a region that is not there) leaves none it made; files there before it stay",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("credattachnone")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const attach = () =>
          Effect.map(runCli(["head", "--attach", "--topic", "t:5:1"], env), (failed) => {
            expect(failed.code).toBe(1)
            // It says how to start a head there, not to start one first.
            expect(failed.stderr.trim()).toBe(
              `cxlog head: region ${region} does not exist: --attach carries on with a region whose head is gone; drop --attach to create it, or name another with --region (cxlog regions lists them)`
            )
          })
        yield* attach()
        expect(filesExist(region)).toEqual([false, false])
        // A user added before any head: the credential file is the operator's, and stays (no secret file is made beside it).
        const dir = yield* tempDir("cxlog-credattach-")
        const added = yield* runCli(
          ["user", "add", "alice", "--publish", "t", "--read", "t", "--secret-file", `${dir}/alice.secret`],
          env
        )
        expect(added.code, added.stderr).toBe(0)
        const users = readFileSync(defaultCredentialPath(region), "utf8")
        yield* attach()
        expect(filesExist(region)).toEqual([true, false])
        expect(readFileSync(defaultCredentialPath(region), "utf8")).toBe(users)
      }),
    60_000
  )

  it.scopedLive(
    "regions --prune removes the files of regions that are gone, and only those",
    () =>
      Effect.gen(function*() {
        const [gone, starting, orphaned] = [
          yield* uniqueRegion("credgone"),
          yield* uniqueRegion("credstarting"),
          yield* uniqueRegion("credorphan")
        ]
        // Bound to a region made once and gone since; made by a head (this process) still creating its region; made by a head that died doing so.
        ensureRegionCredentials(defaultCredentialPath(gone), defaultSecretPath(gone), {
          name: gone,
          createdAtMs: Date.now() - 60_000,
          pid: process.pid,
          start: ownStartTag()
        })
        ensureRegionCredentials(defaultCredentialPath(starting), defaultSecretPath(starting), {
          name: starting,
          createdAtMs: 0,
          pid: process.pid,
          start: ownStartTag()
        })
        const head = yield* unreapedProcess("sleep 600")
        const start = startTagOf(head.pid)
        yield* head.killToZombie
        ensureRegionCredentials(defaultCredentialPath(orphaned), defaultSecretPath(orphaned), {
          name: orphaned,
          createdAtMs: 0,
          pid: head.pid,
          start
        })

        // What `cxlog regions --prune` runs after the run regions (the command itself would also prune other test files' orphaned run regions).
        const pruned = pruneStaleCredentials()
        expect(pruned).not.toContain(starting)
        // Another test file's prune may have removed them first: what must hold is which files are left.
        expect(filesExist(gone)).toEqual([false, false])
        expect(filesExist(orphaned)).toEqual([false, false])
        expect(filesExist(starting)).toEqual([true, true])
      }),
    60_000
  )

  it.scopedLive(
    "regions whose names differ only in a character a file name keeps as _ have files of their own: a head of one leaves the other's users and secret alone",
    () =>
      Effect.gen(function*() {
        const base = yield* uniqueRegion("credstem")
        const [colon, underscore] = yield* Effect.all([namedRegion(`${base}:x`), namedRegion(`${base}_x`)])
        const head = yield* forkCli(["head", "--topic", "t:5:1"], { ...smallRegionEnv, CXLOG_REGION: colon })
        yield* head.event("ready", 60_000)
        const dir = yield* tempDir("cxlog-credstem-")
        const added = yield* runCli(
          ["user", "add", "bob", "--region", colon, "--secret-file", `${dir}/bob.secret`],
          smallRegionEnv
        )
        expect(added.code, added.stderr).toBe(0)
        const before = credentialsOf(colon)

        const other = yield* forkCli(["head", "--topic", "t:5:1"], { ...smallRegionEnv, CXLOG_REGION: underscore })
        yield* other.event("ready", 60_000)
        expect(credentialsOf(colon)).toEqual(before)
        const listed = yield* runCli(["user", "list", "--region", colon, "--json"], smallRegionEnv)
        expect(listed.code, listed.stderr).toBe(0)
        expect((JSON.parse(listed.stdout) as { users: Array<{ user: string }> }).users.map((u) => u.user)).toContain(
          "bob"
        )
        expect(credentialsOf(underscore).binding).toMatchObject({ name: underscore, pid: other.pid })
        // A file region's path and the shm name its slashes would make are two regions too; a plain name keeps its stem.
        expect(defaultCredentialPath("/tmp/x/r")).not.toBe(defaultCredentialPath("tmp_x_r"))
        expect(defaultCredentialPath("/orders")).toBe(defaultCredentialPath("orders"))
        expect(defaultCredentialPath(underscore).endsWith(`/${underscore}.users`)).toBe(true)
      }),
    120_000
  )
})
