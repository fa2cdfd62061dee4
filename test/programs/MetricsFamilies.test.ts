/**
 * Every family a role updates is on its endpoint from the first scrape, at zero before anything
 * happened (a counter first used later would have no series for rate() until then). Each endpoint
 * is served by a fresh process (test/fixtures/metrics-first-scrape.ts), which has used no cxlog
 * metric before its scrapes: this file's own process may share its modules, and their metrics,
 * with other test files.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { roleFamilyNames } from "../helpers/MetricFamilies.js"
import { said, spawnFixture } from "../helpers/Processes.js"

interface Family {
  readonly name: string
  readonly metrics: ReadonlyArray<{ labels?: Record<string, string>; value?: string; buckets?: Record<string, string> }>
}

const rejectedSeries = (families: ReadonlyArray<Family>) =>
  families.find((f) => f.name === "cxlog_broker_rejected")?.metrics

describe("metric families at the first scrape", () => {
  for (const [role, names] of Object.entries(roleFamilyNames)) {
    it.scopedLive(`a ${role}'s endpoint serves its ${names.length} families at once, each with a series at zero`, () =>
      Effect.gen(function*() {
        const server = yield* spawnFixture("metrics-first-scrape", [role])
        const { first } = yield* said<{ first: ReadonlyArray<Family> }>(server, "first")
        for (const name of names) {
          const family = first.find((f) => f.name === name)
          expect(family, name).toBeDefined()
          const series = family!.metrics[0]!
          expect(series.value ?? series.buckets?.["+Inf"], name).toBe("0")
        }
      }))
  }

  it.scopedLive("a labelled family's label-less series at zero goes once the family has a series of its own", () =>
    Effect.gen(function*() {
      const server = yield* spawnFixture("metrics-first-scrape", ["broker", "reject"])
      const { first } = yield* said<{ first: ReadonlyArray<Family> }>(server, "first")
      expect(rejectedSeries(first)).toEqual([{ labels: { role: "broker" }, value: "0" }])
      const { after } = yield* said<{ after: ReadonlyArray<Family> }>(server, "after")
      expect(rejectedSeries(after)).toEqual([{ labels: { code: "forbidden", role: "broker" }, value: "1" }])
    }))
})
