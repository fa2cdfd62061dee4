/**
 * Gauges read at scrape time (`sampleOnScrape`) never take the metrics endpoint, or its process,
 * down: a sampler that throws fails that one scrape (500, naming its error) and is dropped, and a
 * ring writer whose region was unmapped before the writer was closed stops sampling with it. A
 * gauge read from something that closes (a ring's writer, a reader's cursor on a topic) is served
 * while one is open, and is gone from the scrape once the last closes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { runSamplers, sampleOnScrape } from "../../src/Metrics.js"
import { serveMetrics } from "../../src/programs/roles/MetricsServer.js"
import { implementations } from "../fixtures/log-harness.js"
import { openRegionRings } from "../fixtures/ring-harness.js"
import { layout } from "../fixtures/rpc-methods.js"
import { innerScope } from "../helpers/InnerScope.js"

const scrape = (port: number) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`)
    return { status: response.status, text: await response.text() }
  })

/** The scraped series of `family` with label `label`=`value`: their lines. */
const seriesOf = (text: string, family: string, label: string, value: string) =>
  text.split("\n").filter((line) => line.startsWith(`${family}{`) && line.includes(`${label}="${value}"`))

describe("samplers at scrape time", () => {
  it.scopedLive("a sampler that throws fails one scrape with a 500 naming its error; the next is served without it", () =>
    Effect.gen(function*() {
      const { port } = yield* serveMetrics({ host: "127.0.0.1", port: 0, labels: { role: "broker" } })
      let sampled = 0
      const stopBroken = sampleOnScrape(() => {
        throw new Error("the sampler's source went away")
      })
      const stopSound = sampleOnScrape(() => void sampled++)
      yield* Effect.addFinalizer(() => Effect.sync(() => (stopBroken(), stopSound())))
      const failed = yield* scrape(port)
      expect(failed.status).toBe(500)
      expect(failed.text).toContain("the sampler's source went away")
      // The other samplers ran in that scrape too.
      expect(sampled).toBe(1)
      const served = yield* scrape(port)
      expect(served.status).toBe(200)
      expect(served.text).toContain("cxlog_broker_rejected")
      expect(sampled).toBe(2)
    }))

  it.scopedLive("a ring writer left open when its region is unmapped stops sampling, and closes without touching the region", () =>
    Effect.gen(function*() {
      const regionScope = yield* innerScope
      const writerScope = yield* innerScope
      const { rings } = yield* openRegionRings()().pipe(Scope.extend(regionScope))
      yield* rings.writer(layout(65536).replies).pipe(Scope.extend(writerScope))
      expect(() => runSamplers()).not.toThrow()
      // The region goes first: its mapping is detached under the writer still open.
      yield* Scope.close(regionScope, Exit.void)
      expect(() => runSamplers()).not.toThrow()
      const closed = yield* Effect.exit(Scope.close(writerScope, Exit.void))
      expect(Exit.isSuccess(closed), String(closed)).toBe(true)
    }))

  it.scopedLive("a ring writer's occupancy and a cursor's lag are served while one is open, gone once the last closes", () =>
    Effect.gen(function*() {
      const { port } = yield* serveMetrics({ host: "127.0.0.1", port: 0, labels: { role: "subscriber" } })
      const text = Effect.map(scrape(port), (scraped) => scraped.text)
      const { rings } = yield* openRegionRings()()
      const writerScope = yield* innerScope
      yield* rings.writer(layout(65536).replies).pipe(Scope.extend(writerScope))
      expect(seriesOf(yield* text, "cxlog_ring_occupancy_bytes", "ring", "100")).toHaveLength(1)
      yield* Scope.close(writerScope, Exit.void)
      // Closed, its last occupancy is no longer served as if it were now's.
      expect(seriesOf(yield* text, "cxlog_ring_occupancy_bytes", "ring", "100")).toEqual([])

      const cluster = yield* implementations[0]!.make()
      yield* cluster.topics.create({ name: "lagged", order: 5, ackLevel: 1, replicationFactor: 1 })
      const [first, second] = [yield* innerScope, yield* innerScope]
      yield* cluster.reader.subscribe("lagged").pipe(Scope.extend(first))
      yield* cluster.reader.subscribe("lagged").pipe(Scope.extend(second))
      expect(seriesOf(yield* text, "cxlog_reader_lag_messages", "topic", "lagged")).toHaveLength(1)
      yield* Scope.close(first, Exit.void)
      expect(seriesOf(yield* text, "cxlog_reader_lag_messages", "topic", "lagged")).toHaveLength(1)
      yield* Scope.close(second, Exit.void)
      expect(seriesOf(yield* text, "cxlog_reader_lag_messages", "topic", "lagged")).toEqual([])
    }))
})
