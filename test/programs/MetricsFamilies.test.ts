/**
 * Every family a role updates is on its endpoint from the first scrape, at zero before anything
 * happened (a counter first used later would have no series for rate() until then). This file's
 * process has used no cxlog metric before its scrapes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import parsePrometheusTextFormat from "parse-prometheus-text-format"
import { brokerRejected } from "../../src/Metrics.js"
import { serveMetrics } from "../../src/programs/roles/MetricsServer.js"
import { roleFamilyNames } from "../helpers/MetricFamilies.js"

const scrape = (port: number) =>
  Effect.promise(async () => parsePrometheusTextFormat(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()))

describe("metric families at the first scrape", () => {
  for (const [role, names] of Object.entries(roleFamilyNames)) {
    it.scopedLive(`a ${role}'s endpoint serves its ${names.length} families at once, each with a series at zero`, () =>
      Effect.gen(function*() {
        const { port } = yield* serveMetrics({ host: "127.0.0.1", port: 0, labels: { role } })
        const families = yield* scrape(port)
        for (const name of names) {
          const family = families.find((f) => f.name === name)
          expect(family, name).toBeDefined()
          const series = family!.metrics[0] as { value?: string; buckets?: Record<string, string> }
          expect(series.value ?? series.buckets?.["+Inf"], name).toBe("0")
        }
      }))
  }

  it.scopedLive("a labelled family's label-less series at zero goes once the family has a series of its own", () =>
    Effect.gen(function*() {
      const { port } = yield* serveMetrics({ host: "127.0.0.1", port: 0, labels: { role: "broker" } })
      const rejected = () =>
        Effect.map(scrape(port), (families) => families.find((f) => f.name === "cxlog_broker_rejected")?.metrics)
      expect(yield* rejected()).toEqual([{ labels: { role: "broker" }, value: "0" }])
      brokerRejected.pipe(Metric.tagged("code", "forbidden")).unsafeUpdate(1, [])
      expect(yield* rejected()).toEqual([{ labels: { code: "forbidden", role: "broker" }, value: "1" }])
    }))
})
