/**
 * What `cxlog serve` refuses before anything starts, in one line and exit code 2, where a role
 * would otherwise fail only after the others had started: a `--host` its brokers would not
 * listen on (beyond loopback without TLS or CXLOG_INSECURE in serve's environment, or a name
 * that resolves to nothing).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync, rmSync } from "node:fs"
import { serveLogPath } from "../../src/programs/serve/ServeDetach.js"
import { runCli } from "../helpers/CliRoles.js"
import { serveRegion } from "../helpers/ServeProcess.js"

/** No CXLOG_INSECURE for serve's brokers, whatever the environment the tests run in says (nor do they set TLS files). */
const plain = { CXLOG_INSECURE: "false" }

/** `cxlog serve <args>` refused before it started anything: exit 2, one line, no role's output, no region. */
const refusedServe = (region: string, args: ReadonlyArray<string>, env: Record<string, string> = plain) =>
  Effect.map(runCli(["serve", "--region", region, "--port", "0", "--broker-count", "1", ...args], env), (result) => {
    expect(result.code, result.stderr).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(existsSync(`/dev/shm/${region}`)).toBe(false)
    return result.stderr.trimEnd()
  })

describe("cxlog serve refuses before anything starts", () => {
  it.scopedLive(
    "--host beyond loopback without TLS or CXLOG_INSECURE names the variables serve's brokers read; an unknown name is not found",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-host")
        expect(yield* refusedServe(region, ["--host", "0.0.0.0"])).toBe(
          "cxlog serve: --host 0.0.0.0 is beyond loopback, where serve's brokers listen only with TLS and authentication, " +
            "or with neither: set CXLOG_TLS_CERT and CXLOG_TLS_KEY (the brokers' certificate and key, PEM files), " +
            "or CXLOG_INSECURE=true, in serve's environment, which its brokers read them from (serve takes no flag for them; docs/security.md)"
        )
        // One of the two TLS files is no TLS.
        expect(yield* refusedServe(region, ["--host", "0.0.0.0"], { ...plain, CXLOG_TLS_CERT: "/nonexistent.pem" }))
          .toContain("set CXLOG_TLS_CERT and CXLOG_TLS_KEY")
        expect(yield* refusedServe(region, ["--host", "notahost.invalid"])).toBe(
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
})
