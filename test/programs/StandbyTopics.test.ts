/**
 * A standby head that took over serves the region's topics, though it was started without any
 * (`cxlog head --standby`): it names them in its start line and reports their ordered counts to
 * its orchestrator, as the head it replaced did (bundled CLI, real processes).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

describe("a standby head's takeover", () => {
  it.scopedLive("names the region's topics and reports their ordered counts", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("standbytopics")
      const env = { ...smallRegionEnv, CXLOG_REGION: region }
      const head = yield* forkCli(["head", "--topic", "t:4:1"], env)
      yield* head.event("ready")
      expect(head.output()).toContain("topics: t (order 4, ack 1)")
      const standby = yield* forkCli(["head", "--standby"], env)
      yield* standby.event("standby")

      head.child.kill("SIGKILL")
      yield* head.exited
      expect(yield* standby.event("ready", 30_000)).toMatchObject({ epoch: 2, pid: standby.pid })
      expect(standby.output()).toContain("topics: t (order 4, ack 1)")
      expect(standby.output()).not.toContain("topics: none")
      expect((yield* standby.event("ordered", 10_000))["ordered"]).toEqual({ t: 0 })
    }), 120_000)
})
