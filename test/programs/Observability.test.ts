/**
 * Observability of real role processes (the bundled CLI, `dist/cxlog.mjs`): each role's
 * `--metrics-port` endpoint parses as Prometheus text and its counters move while traffic
 * flows; `--log-format json` logs JSON lines, a broker's stats lines among them; text log lines
 * go to stderr as JSON ones do; `cxlog run --report` writes a self-contained HTML report with the
 * run's data series.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { existsSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import parsePrometheusTextFormat, { type MetricFamily } from "parse-prometheus-text-format"
import { freePorts } from "../../src/programs/bench/peers/PeerServer.js"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { roleFamilyNames } from "../helpers/MetricFamilies.js"
import { uniqueRegion } from "../helpers/Processes.js"

const scrape = (port: number) =>
  Effect.tryPromise(async () =>
    parsePrometheusTextFormat(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())
  )

/** The series of a counter or gauge family: labels and value. */
const series = (families: ReadonlyArray<MetricFamily>, name: string) =>
  (families.find((f) => f.name === name)?.metrics ?? []).flatMap((
    m
  ) => ("value" in m ? [{ labels: m.labels ?? {}, value: Number(m.value) }] : []))

const sum = (families: ReadonlyArray<MetricFamily>, name: string) =>
  series(families, name).reduce((total, s) => total + s.value, 0)

describe("observability of role processes", () => {
  it.scopedLive(
    "head, broker and subscriber serve metrics that move with traffic; --log-format json logs JSON",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("metrics")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const [headPort, brokerPort, subscriberPort] = yield* freePorts(3)
        const head = yield* forkCli(["head", "--topic", "t:5:1", "--metrics-port", `${headPort}`], env)
        yield* head.event("ready")
        const broker = yield* forkCli([
          "broker",
          "--broker-id",
          "0",
          "--port",
          "0",
          "--metrics-port",
          `${brokerPort}`,
          "--log-format",
          "json",
          "--stats-every-ms",
          "500"
        ], env)
        const listening = yield* broker.event("listening")
        const subscriber = yield* forkCli(["subscribe", "--topic", "t", "--metrics-port", `${subscriberPort}`], env)
        yield* subscriber.event("subscribed")

        const headBefore = yield* scrape(headPort)
        const brokerBefore = yield* scrape(brokerPort)
        // Before any traffic, each role serves every family it updates (at zero until then).
        for (const [role, scraped] of [["head", headBefore], ["broker", brokerBefore]] as const) {
          expect(
            roleFamilyNames[role]!.filter((name) => !scraped.some((f) => f.name === name)),
            `${role} families missing`
          ).toEqual([])
        }
        const published = yield* runCli([
          "publish",
          "--brokers",
          `127.0.0.1:${listening["port"]}`,
          "--topic",
          "t",
          "--count",
          "2000",
          "--message-bytes",
          "256"
        ], env)
        expect(published.code, published.stderr).toBe(0)
        // Everything is acked, so ordered; the subscriber reads it soon after (bounded wait).
        const subscriberAfter = yield* scrape(subscriberPort).pipe(
          Effect.filterOrFail(
            (f) => sum(f, "cxlog_reader_messages") >= 2000,
            () => new Error("the subscriber has not read 2000 messages")
          ),
          Effect.retry({ times: 50, schedule: Schedule.spaced("100 millis") })
        )
        const [headAfter, brokerAfter] = [yield* scrape(headPort), yield* scrape(brokerPort)]

        // Rounds ran, and broker 0's messages were ordered: by the head's sequencer, or by the broker's own rounds (docs/log.md).
        const rounds = (head: ReadonlyArray<MetricFamily>, broker: ReadonlyArray<MetricFamily>) =>
          sum(head, "cxlog_sequencer_rounds") + sum(broker, "cxlog_log_appender_rounds")
        expect(rounds(headAfter, brokerAfter)).toBeGreaterThan(rounds(headBefore, brokerBefore))
        const ordered = (head: ReadonlyArray<MetricFamily>, broker: ReadonlyArray<MetricFamily>) =>
          (series(head, "cxlog_sequencer_messages_ordered").find((s) => s.labels["broker"] === "0")?.value ?? 0) +
          sum(broker, "cxlog_log_appender_messages_ordered")
        expect(ordered(headAfter, brokerAfter) - ordered(headBefore, brokerBefore)).toBe(2000)
        expect(series(headAfter, "cxlog_ring_occupancy_bytes").length).toBeGreaterThan(0)
        expect(series(headAfter, "cxlog_sequencer_held")[0]?.labels["role"]).toBe("head")
        // The broker: batches and bytes in, labelled with its id; nothing left unordered.
        expect(sum(brokerAfter, "cxlog_broker_batches")).toBeGreaterThan(sum(brokerBefore, "cxlog_broker_batches"))
        expect(sum(brokerAfter, "cxlog_broker_bytes") - sum(brokerBefore, "cxlog_broker_bytes")).toBeGreaterThanOrEqual(
          2000 * 256
        )
        expect(series(brokerAfter, "cxlog_broker_batches")[0]?.labels).toMatchObject({ role: "broker", broker: "0" })
        expect(sum(brokerAfter, "process_cpu_seconds_total")).toBeGreaterThan(0)
        // The subscriber: everything read, so no lag (read at the scrape).
        expect(sum(subscriberAfter, "cxlog_reader_messages")).toBe(2000)
        expect(series(subscriberAfter, "cxlog_reader_lag_messages")).toEqual([{
          labels: { topic: "t", role: "subscriber" },
          value: 0
        }])
        // The broker's log lines are JSON objects: its "listening" line, and a stats line once traffic moved.
        type Line = { message: unknown; annotations: Record<string, unknown> }
        const logged = () =>
          broker.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Line)
        expect(logged().some((l) => String(l.message).includes("listening on"))).toBe(true)
        // A period can close while the publisher has connected but sent nothing yet: the latest stats line counts it all.
        const stats = yield* Effect.sync(() => logged().filter((l) => String(l.message).includes("stats")).at(-1)).pipe(
          Effect.filterOrFail(
            (last) => last?.annotations["messages"] === 2000,
            () => new Error("no stats line from the broker counting 2000 messages")
          ),
          Effect.retry({ times: 30, schedule: Schedule.spaced("100 millis") })
        )
        expect(stats?.annotations).toMatchObject({ messages: 2000 })
      }),
    30_000
  )

  it.scopedLive(
    "text log lines go to stderr: stdout carries only a command's own output",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("log-stream")
        const ready = `head: region ${region}`
        let stderr = ""
        // Stopped (SIGINT) once its first log line is out; runCli kills it at the scope's end if it never is.
        const ran = yield* runCli(["head", "--topic", "t"], { ...smallRegionEnv, CXLOG_REGION: region }, (child) =>
          child.stderr!.on("data", (chunk: Buffer) => {
            stderr += chunk.toString()
            if (stderr.includes(ready)) {
              child.kill("SIGINT")
            }
          })).pipe(Effect.timeout("20 seconds"))
        expect(ran.stderr).toMatch(new RegExp(`INFO .*${ready}`))
        // The line says which pages the region is mapped in (docs/operations.md, "Huge pages for the region").
        expect(ran.stderr).toMatch(
          new RegExp(
            `${ready} .*MiB free; (2 MiB|4 KiB) pages \\((/dev/shm is a tmpfs with huge=\\w+|the host's shmem_enabled is \\w+)`
          )
        )
        expect(ran.stdout).toBe("")
      }),
    30_000
  )

  it.scopedLive(
    "cxlog run --report writes a self-contained HTML report with the run's series, configuration and audit",
    () =>
      Effect.gen(function*() {
        const file = join(tmpdir(), `cxlog-report-${process.pid}-${Date.now()}.html`)
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(file, { force: true })))
        const ran = yield* runCli(["run", "--bytes", "16MiB", "--broker-count", "2", "--report", file])
        expect(ran.code, ran.stderr).toBe(0)
        expect(ran.stdout).toContain(`report: ${file}`)
        expect(existsSync(file)).toBe(true)
        const html = readFileSync(file, "utf8")
        // Self-contained: no element loads anything (no src or href attribute at all), uPlot is inlined.
        expect(html.match(/\s(src|href)\s*=/gi)).toBeNull()
        expect(html).toContain("uPlot")
        const data = JSON.parse(
          /<script type="application\/json" id="cxlog-data">(.*?)<\/script>/s.exec(html)![1]!
        ) as {
          charts: Array<
            { id: string; xs: Array<number>; series: Array<{ label: string; values: Array<number | null> }> }
          >
          html: string
        }
        const chart = (id: string) => data.charts.find((c) => c.id === id)!
        const positive = (values: Array<number | null>) => values.some((v) => v !== null && v > 0)
        const throughput = chart("throughput")
        expect(throughput.xs.length).toBeGreaterThan(1)
        for (const label of ["publisher (acked)", "head (ordered)", "subscriber (read)"]) {
          expect(positive(throughput.series.find((s) => s.label === label)!.values), label).toBe(true)
        }
        expect(chart("cpu").series.map((s) => s.label)).toEqual([
          "head",
          "broker 0",
          "broker 1",
          "publisher",
          "subscriber"
        ])
        expect(chart("brokers").series.map((s) => s.label)).toEqual(["B0", "B1"])
        const cdf = chart("latency-cdf")
        expect(cdf.xs.length).toBe(101)
        expect(cdf.xs).toEqual([...cdf.xs].sort((a, b) => a - b))
        // The configuration table names the run's shape as given (2 brokers).
        expect(/<caption>Configuration<\/caption>(.*?)<\/table>/.exec(data.html)?.[1]).toContain(
          "<tr><th>brokers</th><td>2</td></tr>"
        )
        expect(data.html).toMatch(/<th>passed<\/th><td>true<\/td>/)
      }),
    30_000
  )
})
