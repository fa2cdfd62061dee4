/**
 * A standby head that took over serves the region's topics, though it was started without any
 * (`cxlog head --standby`): it names them in its start line and reports their ordered counts to
 * its orchestrator, as the head it replaced did; and it writes the region's directory from then
 * on, at its own epoch (bundled CLI, real processes).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { defaultTopicShape } from "../../src/layers/log/Layout.js"
import type { TopicShape } from "../../src/layers/log/TopicShape.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { DirectoryHeaderView } from "../../src/layers/region/DirectoryRecords.js"
import { configFromParams, resolve } from "../../src/layers/RegionLayout.js"
import { forkCli, smallRegionConfigFor, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

describe("a standby head's takeover", () => {
  it.scopedLive(
    "names the region's topics, reports their ordered counts, and writes the directory at its epoch",
    () =>
      Effect.gen(function*() {
        const regionName = yield* uniqueRegion("standbytopics")
        const env = { ...smallRegionEnv, CXLOG_REGION: regionName }
        const head = yield* forkCli(["head", "--topic", "t:4:1"], env)
        yield* head.event("ready")
        // Its topic holds its records' extent of the heap: no writer has written it yet.
        const held = (defaultTopicShape(smallRegionConfigFor(1)) as TopicShape).mainBytes
        expect(head.output()).toContain(
          `topics: t (order 4, ack 1); directory: 1 objects, heap ${
            ((2 ** 31 - held) / 2 ** 20).toFixed(1)
          } of 2048.0 MiB free`
        )
        // The directory's writer epoch, as every process reads it from the region.
        const region = yield* CxlMemoryLayers.make({ name: regionName, mode: "attach" })
        const layout = yield* resolve(configFromParams(region.params), region.size)
        const writerEpoch = () => new DirectoryHeaderView(region).writerEpoch(layout.directory.header)
        expect(writerEpoch()).toBe(1)
        const standby = yield* forkCli(["head", "--standby"], env)
        yield* standby.event("standby")

        head.child.kill("SIGKILL")
        yield* head.exited
        expect(yield* standby.event("ready", 30_000)).toMatchObject({ epoch: 2, pid: standby.pid })
        expect(standby.output()).toContain("topics: t (order 4, ack 1)")
        expect(writerEpoch()).toBe(2)
        expect(standby.output()).not.toContain("topics: none")
        expect((yield* standby.event("ordered", 10_000))["ordered"]).toEqual({ t: 0 })
      }),
    120_000
  )
})
