/**
 * `cxlog run --report FILE.html` / `cxlog bench --report FILE.html`: a self-contained HTML
 * report of one run — throughput over time per role, per-broker ACK rates, CPU per role, the
 * ACK latency CDF, the configuration and the audit — drawn with uPlot (see ChartPage.ts).
 *
 * The time series come from what the roles already tell the orchestrator (the publisher's
 * progress and per-broker ACK counts, the head's ordered counts, the subscriber's progress,
 * 4 a second) and from each role's CPU time in /proc, sampled by the orchestrator.
 */
import { Data, Effect, Schedule, type Scope } from "effect"
import { writeFileSync } from "node:fs"
import type { RoleProcess } from "../run/Cluster.js"
import { chartPage, type ChartSpec, keyValueTable } from "./ChartPage.js"

/** How often the orchestrator samples its roles for a report. */
const SAMPLE_EVERY_MS = 250

interface Row {
  /** Seconds since the first sample. */
  readonly t: number
  readonly published: number
  readonly ordered: number
  readonly read: number
  /** Batches acked per broker link (the publisher's view), by broker name. */
  readonly brokerAcks: Record<string, number>
  /** CPU seconds per role (null once the role is gone). */
  readonly cpu: Record<string, number | null>
}

/** The run's final counts: the roles' last events may never come (the head reports every 250 ms). */
export interface FinalCounts {
  readonly published: number
  readonly ordered: number
  readonly read: number
}

/**
 * Samples `roles` every 250 ms until the scope closes: message counts from their events,
 * CPU seconds from /proc. `rows(final)` is the series so far, ending with a sample taken then
 * that counts at least the run's final figures (a short run's last events otherwise fall
 * between samples, or never come).
 */
export const makeTimeline = (
  roles: ReadonlyArray<RoleProcess>
): Effect.Effect<{ readonly rows: (final?: FinalCounts) => ReadonlyArray<Row> }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const latest = { published: 0, ordered: 0, read: 0, brokerAcks: {} as Record<string, number> }
    for (const role of roles) {
      role.on((e) => {
        if (role.role === "publisher" && (e.event === "progress" || e.event === "done")) {
          latest.published = (e["ackedMessages"] as number | undefined) ?? latest.published
          for (const link of (e["brokers"] as ReadonlyArray<{ name: string; acked: number }> | undefined) ?? []) {
            latest.brokerAcks[link.name] = link.acked
          }
        } else if (role.role === "head" && e.event === "ordered") {
          latest.ordered = Object.values(e["ordered"] as Record<string, number>).reduce((a, b) => a + b, 0)
        } else if (role.role === "subscriber" && (e.event === "progress" || e.event === "done")) {
          latest.read = (e["messages"] as number | undefined) ?? latest.read
        }
      })
    }
    const rows: Array<Row> = []
    const started = performance.now()
    const takeSample = () => {
      const cpu: Record<string, number | null> = {}
      for (const role of roles) cpu[role.role] = role.cpuSeconds() ?? null
      rows.push({
        t: (performance.now() - started) / 1000,
        published: latest.published,
        ordered: latest.ordered,
        read: latest.read,
        brokerAcks: { ...latest.brokerAcks },
        cpu
      })
    }
    yield* Effect.forkScoped(Effect.repeat(Effect.sync(takeSample), Schedule.spaced(`${SAMPLE_EVERY_MS} millis`)))
    return {
      rows: (final) => {
        if (final !== undefined) {
          latest.published = Math.max(latest.published, final.published)
          latest.ordered = Math.max(latest.ordered, final.ordered)
          latest.read = Math.max(latest.read, final.read)
        }
        takeSample()
        return rows
      }
    }
  })

/** Per-interval rate of a cumulative series (null where either end is unknown); the first point has none. */
const rates = (
  rows: ReadonlyArray<Row>,
  value: (row: Row) => number | null | undefined,
  scale = 1
): Array<number | null> =>
  rows.map((row, i) => {
    if (i === 0) return null
    const a = value(rows[i - 1]!)
    const b = value(row)
    const dt = row.t - rows[i - 1]!.t
    return a === null || a === undefined || b === null || b === undefined || dt <= 0
      ? null
      : Math.max(0, ((b - a) / dt) * scale)
  })

export interface ReportInput {
  readonly title: string
  readonly rows: ReadonlyArray<Row>
  readonly messageBytes: number
  /** Latency at every percentile 0..100 (µs), from the publisher. */
  readonly ackLatencyQuantilesUs: ReadonlyArray<number>
  readonly configuration: Record<string, unknown>
  readonly summary: Record<string, unknown>
  readonly audit: Record<string, unknown> | undefined
}

/** The report's charts, from the sampled rows. */
export const reportCharts = (input: ReportInput): Array<ChartSpec> => {
  const { rows } = input
  const xs = rows.map((r) => Math.round(r.t * 1000) / 1000)
  const mbps = input.messageBytes / 1e6
  const roleNames = rows.length === 0 ? [] : Object.keys(rows[rows.length - 1]!.cpu)
  const brokerNames = [...new Set(rows.flatMap((r) => Object.keys(r.brokerAcks)))]
  const latency = input.ackLatencyQuantilesUs
  return [
    {
      id: "throughput",
      title: "Throughput per role",
      unit: "MB/s",
      x: "seconds",
      xs,
      series: [
        { label: "publisher (acked)", values: rates(rows, (r) => r.published, mbps) },
        { label: "head (ordered)", values: rates(rows, (r) => r.ordered, mbps) },
        ...(rows.some((r) => r.read > 0)
          ? [{ label: "subscriber (read)", values: rates(rows, (r) => r.read, mbps) }]
          : [])
      ]
    },
    {
      id: "brokers",
      title: "ACKs per broker (batches/s, the publisher's view)",
      unit: "batches/s",
      x: "seconds",
      xs,
      series: brokerNames.map((name) => ({ label: name, values: rates(rows, (r) => r.brokerAcks[name]) }))
    },
    {
      id: "cpu",
      title: "CPU per role (% of one core)",
      unit: "%",
      x: "seconds",
      xs,
      series: roleNames.map((name) => ({ label: name, values: rates(rows, (r) => r.cpu[name], 100) }))
    },
    {
      id: "latency-cdf",
      title: "ACK latency CDF (seal → ack)",
      unit: "fraction",
      x: "log",
      xLabel: "µs",
      // A CDF's x is the latency: one point per percentile (a log scale needs x > 0).
      xs: latency.map((us) => Math.max(us, 1)),
      series: [{ label: "publisher", values: latency.map((_, p) => p / 100) }]
    }
  ]
}

/** The report page: charts, then the configuration, the summary and the audit. */
export const renderReport = (input: ReportInput): string =>
  chartPage({
    title: input.title,
    subtitle: `${input.rows.length} samples every ${SAMPLE_EVERY_MS} ms`,
    data: {
      charts: reportCharts(input),
      html: [
        keyValueTable("Configuration", input.configuration),
        keyValueTable("Summary", input.summary),
        input.audit === undefined ? "<p>No subscriber audited this run.</p>" : keyValueTable("Audit", input.audit)
      ].join("")
    }
  })

export class ReportWriteFailed
  extends Data.TaggedError("ReportWriteFailed")<{ readonly path: string; readonly reason: string }>
{
  override get message() {
    return `cannot write the report to ${this.path}: ${this.reason}`
  }
}

export const writeReport = (path: string, input: ReportInput): Effect.Effect<void, ReportWriteFailed> =>
  Effect.try({
    try: () => writeFileSync(path, renderReport(input)),
    catch: (error) => new ReportWriteFailed({ path, reason: error instanceof Error ? error.message : String(error) })
  })
