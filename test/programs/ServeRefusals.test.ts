/**
 * What `cxlog serve` refuses before anything starts, in one line and exit code 2, where a role
 * would otherwise fail only after the others had started: a `--host` its brokers would not
 * listen on (beyond loopback without TLS or CXLOG_INSECURE in serve's environment, or a name
 * that resolves to nothing); a region without writer slots for its brokers and two local
 * publishers, or one the head would refuse to make (with `--detach` too); a file of the
 * region's name in /dev/shm that is no cxlog region (exit 1, as a region there is).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { serveLogPath } from "../../src/programs/serve/ServeDetach.js"
import { forkCli, runCli } from "../helpers/CliRoles.js"
import { tempDir } from "../helpers/Processes.js"
import { serveRegion } from "../helpers/ServeProcess.js"

/** No CXLOG_INSECURE for serve's brokers, whatever the environment the tests run in says (nor do they set TLS files). */
const plain = { CXLOG_INSECURE: "false" }

/** `cxlog serve --region <region> <args>` refused before it started anything: exit 2, one line, no role's output, no region. */
const refusedServe = (region: string, args: ReadonlyArray<string>, env: Record<string, string> = plain) =>
  Effect.map(runCli(["serve", "--region", region, ...args], env), (result) => {
    expect(result.code, result.stderr).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(existsSync(`/dev/shm/${region}`)).toBe(false)
    return result.stderr.trimEnd()
  })

const oneBroker = ["--port", "0", "--broker-count", "1"]

describe("cxlog serve refuses before anything starts", () => {
  it.scopedLive(
    "--host beyond loopback without TLS or CXLOG_INSECURE names the variables serve's brokers read; an unknown name is not found",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-host")
        expect(yield* refusedServe(region, [...oneBroker, "--host", "0.0.0.0"])).toBe(
          "cxlog serve: --host 0.0.0.0 is beyond loopback, where serve's brokers listen only with TLS and authentication, " +
            "or with neither: set CXLOG_TLS_CERT and CXLOG_TLS_KEY (the brokers' certificate and key, PEM files), " +
            "or CXLOG_INSECURE=true, in serve's environment, which its brokers read them from (serve takes no flag for them; docs/security.md)"
        )
        // One of the two TLS files is no TLS.
        expect(
          yield* refusedServe(region, [...oneBroker, "--host", "0.0.0.0"], {
            ...plain,
            CXLOG_TLS_CERT: "/nonexistent.pem"
          })
        )
          .toContain("set CXLOG_TLS_CERT and CXLOG_TLS_KEY")
        expect(yield* refusedServe(region, [...oneBroker, "--host", "notahost.invalid"])).toBe(
          "cxlog serve: cannot resolve host notahost.invalid (ENOTFOUND): give an address of this host (127.0.0.1, 0.0.0.0, …) or a name that resolves to one"
        )
        // With CXLOG_INSECURE=true in its environment, serve's brokers listen there.
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(serveLogPath(region), { force: true })))
        const served = yield* runCli(
          ["serve", "--detach", "--region", region, "--host", "0.0.0.0", "--port", "0", "--broker-count", "1"],
          { ...plain, CXLOG_INSECURE: "true" }
        )
        expect(served.code, served.stderr).toBe(0)
        expect(readFileSync(serveLogPath(region), "utf8")).toMatch(/^broker 0 +\| .*listening on 0\.0\.0\.0:\d+/m)
        const stopped = yield* runCli(["serve", "--stop", "--region", region])
        expect(stopped.code, stopped.stderr).toBe(0)
      }),
    120_000
  )

  it.scopedLive(
    "CXLOG_LOG_MAX_BROKERS short of the brokers and two local publishers, or a region the head would refuse: exit 2, with --detach too",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-slots")
        const slots = (brokers: number, variable: string, needed: number) =>
          `cxlog serve: --broker-count ${brokers} needs ${needed} writer slots in the region (one per broker, and 2 for local publishers: cxlog publish --local), and ${variable}`
        expect(yield* refusedServe(region, ["--port", "0", "--broker-count", "2"], { CXLOG_LOG_MAX_BROKERS: "2" }))
          .toBe(`${slots(2, "CXLOG_LOG_MAX_BROKERS=2", 4)} gives it 2: raise it to 4, or start fewer brokers`)
        expect(
          yield* refusedServe(region, ["--detach", "--port", "0", "--broker-count", "2"], {
            CXLOG_LOG_MAX_BROKERS: "2"
          })
        ).toBe(`${slots(2, "CXLOG_LOG_MAX_BROKERS=2", 4)} gives it 2: raise it to 4, or start fewer brokers`)
        expect(yield* refusedServe(region, ["--port", "0", "--broker-count", "3"], { CXLOG_LOG_MAX_BROKERS: "4" }))
          .toBe(`${slots(3, "CXLOG_LOG_MAX_BROKERS=4", 5)} gives it 4: raise it to 5, or start fewer brokers`)
        expect(yield* refusedServe(region, ["--port", "0", "--broker-count", "63"])).toBe(
          `${
            slots(63, "CXLOG_LOG_MAX_BROKERS's default", 65)
          } gives it 64: a region has at most 64: start at most 62 brokers`
        )
        // Room enough, but a default topic's writers the region's slots cannot have: the head's own refusal, up front.
        expect(
          yield* refusedServe(region, ["--port", "0", "--broker-count", "2"], {
            CXLOG_LOG_MAX_BROKERS: "5",
            CXLOG_TOPIC_WRITERS: "8"
          })
        ).toMatch(
          /^cxlog serve: invalid log configuration: a topic of the default memory and writers cannot be made: writers 8 must be a whole number from 1 to 5 .*; effective configuration: maxBrokers=5 /
        )
      }),
    120_000
  )

  it.scopedLive("a file of the region's name in /dev/shm that is no cxlog region: ServeRegionTaken, exit 1, naming it", () =>
    Effect.gen(function*() {
      const region = yield* serveRegion("serve-foreign")
      writeFileSync(`/dev/shm/${region}`, "another program's shared memory\n")
      const refused = yield* runCli(["serve", "--region", region, ...oneBroker])
      expect(refused.code, refused.stderr).toBe(1)
      expect(refused.stdout).toBe("")
      expect(refused.stderr.trimEnd()).toBe(
        `cxlog serve: /dev/shm/${region} exists and is not a cxlog region (another program's shared memory, or a file put there): ` +
          `give this serve another --region (CXLOG_REGION), or remove that file if nothing uses it (rm /dev/shm/${region})`
      )
      expect(readFileSync(`/dev/shm/${region}`, "utf8")).toBe("another program's shared memory\n")
    }))

  it.scopedLive(
    "a region its killed head left behind, with --data-dir: the way to carry on names the data directory, and taken it keeps the copy on disk",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-left")
        const dir = yield* tempDir("cxlog-serve-left-")
        const head = yield* forkCli(["head", "--region", region, "--topic", "events:5:2:2", "--data-dir", dir])
        yield* head.event("ready")
        const published = yield* runCli([
          "publish",
          "--local",
          "--region",
          region,
          "--topic",
          "events",
          "--count",
          "10"
        ])
        expect(published.code, published.stderr).toBe(0)
        head.child.kill("SIGKILL")
        yield* head.exited
        const refused = yield* runCli(["serve", "--region", region, "--data-dir", dir, ...oneBroker])
        expect(refused.code, refused.stderr).toBe(1)
        expect(refused.stderr).toContain(`but for what its replication factor 2 topics hold in ${dir}`)
        const advice = /carry on with its data by hand: `([^`]+)`/.exec(refused.stderr)?.[1]
        expect(advice).toBe(`cxlog head --attach --region ${region} --data-dir ${dir}`)
        // Taken as said, the head carries on with the region and its copy on disk: not one stopped for want of it.
        const attached = yield* forkCli(advice!.split(" ").slice(1))
        yield* attached.event("ready")
        const topics = yield* runCli(["topics", "--region", region, "--json"])
        expect(topics.code, topics.stderr).toBe(0)
        const [events] = JSON.parse(topics.stdout).topics
        expect(events.name).toBe("events")
        expect(events.diskCopyStopped).toBeUndefined()
      }),
    60_000
  )
})
