/**
 * Where the addon cannot be loaded (none prebuilt for the platform and no compiler to build one),
 * what needs no region still works — the CLI's help and its TCP publish and subscribe against
 * brokers elsewhere — and what maps a region fails with NativeUnavailable naming the fix.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** The environment of a process on a host where no addon loads (CXLOG_NATIVE_PATH names the only file tried). */
const noAddon = { CXLOG_NATIVE_PATH: "/nonexistent/cxlog_native.node" }

describe("without the native addon", () => {
  it.scopedLive("the CLI publishes and subscribes over TCP; selfcheck and a head fail with NativeUnavailable and the fix", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("no-addon")
      const env = { ...smallRegionEnv, CXLOG_REGION: region }
      const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
      yield* head.event("ready")
      const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
      const brokers = `127.0.0.1:${(yield* broker.event("listening"))["port"] as number}`

      const published = yield* runCli(["publish", "--brokers", brokers, "--topic", "t", "--count", "3"], {
        ...env,
        ...noAddon
      })
      expect(published.code, published.stderr).toBe(0)
      const read = yield* runCli(["subscribe", "--brokers", brokers, "--topic", "t", "--limit", "3"], {
        ...env,
        ...noAddon
      })
      expect(read.code, read.stderr).toBe(0)
      expect(read.stdout.trim().split("\n")).toHaveLength(3)
      expect((yield* runCli(["--help"], noAddon)).code).toBe(0)

      const selfcheck = yield* runCli(["selfcheck"], noAddon)
      expect(selfcheck.code).not.toBe(0)
      expect(selfcheck.stderr).toContain("native addon unavailable")
      expect(selfcheck.stderr).toContain("npm rebuild cxlog")
      expect(selfcheck.stderr).toContain("TCP clients")
      const otherHead = yield* runCli(["head", "--topic", "t"], { ...env, ...noAddon, CXLOG_REGION: `${region}-b` })
      expect(otherHead.code).not.toBe(0)
      expect(otherHead.stderr).toContain("npm rebuild cxlog")
    }))
})
