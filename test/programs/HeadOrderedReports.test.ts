/**
 * A head forked by an orchestrator (`cxlog run`, `bench`, `serve`) reports its topics' ordered
 * counts over its IPC channel when they move, not at every look: an idle log sends nothing, so
 * neither the head nor its orchestrator wakes for it (bundled CLI, real processes).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, runCli, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { until } from "../helpers/ServeProcess.js"

/** How often the head looks at its order lines (HeadCommand.ts: `reportEveryMs`). */
const REPORT_EVERY_MS = 250

describe("the head's ordered reports", () => {
  it.scopedLive("come once for an idle log and again only when its messages are ordered", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("orderedreports")
      const env = { ...smallRegionEnvFor(2, 16 << 20), CXLOG_REGION: region }
      const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
      yield* head.event("ready")
      expect((yield* head.event("ordered", 10_000))["ordered"]).toEqual({ t: 0 })
      // A window for reports that must not come: eight looks at an idle log.
      yield* Effect.sleep(8 * REPORT_EVERY_MS)
      expect(head.events("ordered")).toHaveLength(1)

      const published = yield* runCli(["publish", "--local", "--topic", "t", "--count", "3"], env)
      expect(published.code, published.stderr).toBe(0)
      const orderedOfT = () => (head.latest("ordered")?.["ordered"] as Record<string, number>)["t"]
      yield* until(() => orderedOfT() === 3, 10_000, () =>
        `the head to report the 3 messages ordered (last: ${orderedOfT()})`)
      const reports = head.events("ordered").length
      yield* Effect.sleep(8 * REPORT_EVERY_MS)
      expect(head.events("ordered")).toHaveLength(reports)
    }), 60_000)
})
