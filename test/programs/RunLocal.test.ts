/**
 * `cxlog run --local`: the run's publisher is local (it appends into the region itself through
 * no broker, in a broker slot of its own), and its subscriber audits the total order as for a
 * TCP publisher. The run's report charts the publisher's acknowledgements per link: one local
 * link (`L0`), no broker's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runCli } from "../helpers/RunJson.js"

describe("cxlog run --local (bundled CLI)", () => {
  it.scopedLive(
    "a local publisher's run: every message read back once, in order, audited; its acknowledgements from its one local link, none through a broker",
    () =>
      Effect.gen(function*() {
        const file = join(tmpdir(), `cxlog-run-local-${process.pid}-${Date.now()}.html`)
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(file, { force: true })))
        const { code, stdout, stderr } = yield* runCli([
          "run",
          "--local",
          "--bytes",
          "16MiB",
          "--broker-count",
          "2",
          "--json",
          "--report",
          file
        ])
        expect(code, stderr).toBe(0)
        const summary = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
          local: boolean
          messages: number
          auditPassed: boolean
          lost: number
          duplicated: number
        }
        expect(summary).toMatchObject({ local: true, messages: 16 * 1024, auditPassed: true, lost: 0, duplicated: 0 })
        const data = JSON.parse(
          /<script type="application\/json" id="cxlog-data">(.*?)<\/script>/s.exec(readFileSync(file, "utf8"))![1]!
        ) as {
          charts: Array<{ id: string; series: Array<{ label: string }> }>
        }
        expect(data.charts.find((c) => c.id === "brokers")!.series.map((s) => s.label)).toEqual(["L0"])
      }),
    120_000
  )
})
