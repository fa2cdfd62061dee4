/**
 * `cxlog dashboard --targets host:port,…`: a live web page over the roles' metrics endpoints.
 * The server scrapes every target's `/metrics` (Prometheus text, parsed with
 * parse-prometheus-text-format) once per interval, keeps the last samples, and serves the page
 * (uPlot, inlined) and the chart data as JSON at `/data`, which the page polls.
 *
 * Charts: throughput (MB/s into brokers, MB/s acked by publishers), ordered messages/s per
 * broker (the sequencer's count), ACK latency percentiles per interval (from the publishers'
 * histogram), sequencer state (rounds/s, held batches, brokers' unordered backlog), reader
 * lag, CPU per role.
 */
import { Data, Effect, Option, Schedule, Schema, type Scope } from "effect"
import { readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import parsePrometheusTextFormat, { type MetricFamily } from "parse-prometheus-text-format"
import { authDirectory } from "../../layers/net/AuthRegionFiles.js"
import { isProcessAlive, ownStartTag } from "../../layers/region/ProcessInfo.js"
import { serveHttp } from "../roles/ScopedHttpServer.js"
import { chartPage, type ChartSpec, escapeHtml, type PageData } from "./ChartPage.js"
import { scrapeMetrics } from "./MetricsScrape.js"

/** The listen failures that are the address's, not the port's: a host that does not resolve, or is not this machine's. */
const HOST_FAILURES = ["ENOTFOUND", "EAI_AGAIN", "EADDRNOTAVAIL"]

export class DashboardListenFailed extends Data.TaggedError("DashboardListenFailed")<{
  readonly host: string
  readonly port: number
  readonly reason: string
  /** The flag to change: `--host` for an address that is not this machine's, else `--port`. */
  readonly flag: "--host" | "--port"
}> {
  override get message() {
    return `cannot serve the dashboard on ${this.host}:${this.port}: ${this.reason} (${this.flag})`
  }
}

// ---- local runs announce their endpoints ------------------------------------------------

const ANNOUNCE_PREFIX = "metrics-"

/**
 * Where announcements are: this user's private directory (AuthRegionFiles.ts), which no other
 * user can write into — in the shared temporary directory anyone could point a dashboard at any
 * address. Undefined where there is no such directory to use.
 */
const announcementDirectory = (): string | undefined => {
  try {
    return authDirectory()
  } catch {
    return undefined
  }
}

/**
 * `cxlog run --metrics-port` and `cxlog serve --metrics-port` tell dashboards of this user where
 * their roles serve: a file named after the pid, holding its start tag, removed at their end.
 */
export const announceTargets = (targets: ReadonlyArray<string>): Effect.Effect<void, never, Scope.Scope> => {
  const dir = announcementDirectory()
  if (dir === undefined) return Effect.void
  const file = join(dir, `${ANNOUNCE_PREFIX}${process.pid}.json`)
  return Effect.acquireRelease(
    Effect.sync(() =>
      writeFileSync(file, JSON.stringify({ pid: process.pid, startTag: ownStartTag(), targets }), { mode: 0o600 })
    ),
    () => Effect.sync(() => unlinkSync(file))
  ).pipe(Effect.catchAllDefect(() => Effect.void))
}

/** What an announcement file holds: the announcing process (its pid and start tag), and its roles' `host:port`s. */
const Announcement = Schema.parseJson(
  Schema.Struct({ pid: Schema.Int, startTag: Schema.Int, targets: Schema.Array(Schema.String) })
)

/**
 * The endpoints every live local run announced. The file of a run that is gone (SIGKILLed: it
 * removed nothing) is removed here, where it would stay for good; a later process under its pid
 * has another start tag. A file that is not an announcement (cut short) is skipped, where its
 * missing targets would have failed the page.
 */
export const discoverTargets = (): Array<string> => {
  const dir = announcementDirectory()
  if (dir === undefined) return []
  return readdirSync(dir).filter((name) => name.startsWith(ANNOUNCE_PREFIX) && name.endsWith(".json")).flatMap(
    (name) => {
      const file = join(dir, name)
      let text: string
      try {
        text = readFileSync(file, "utf8")
      } catch {
        return [] // gone since the listing: its run ended
      }
      return Option.match(Schema.decodeUnknownOption(Announcement)(text), {
        onNone: () => [],
        onSome: ({ pid, startTag, targets }) => {
          if (isProcessAlive(pid, startTag)) return targets
          rmSync(file, { force: true })
          return []
        }
      })
    }
  )
}

export interface DashboardOptions {
  /** host:port of each role's metrics endpoint; "discover": those local runs announce, looked up every round. */
  readonly targets: ReadonlyArray<string> | "discover"
  readonly host: string
  /** 0 = any free port. */
  readonly port: number
  /** Scrape (and page refresh) interval. */
  readonly everyMs: number
  /** How many samples the charts keep. */
  readonly keep: number
}

type Labels = Record<string, string>

/** One scrape of one target: counter/gauge values by name and labels, histograms' buckets. */
export interface Scrape {
  readonly at: number
  readonly families: ReadonlyArray<MetricFamily>
}

const labelsOf = (sample: MetricFamily["metrics"][number]): Labels => sample.labels ?? {}

/** Values of a counter or gauge family, one per label set. */
const samples = (scrape: Scrape | undefined, name: string): Array<{ labels: Labels; value: number }> => {
  const family = scrape?.families.find((f) => f.name === name)
  if (family === undefined) return []
  return family.metrics.flatMap((m) => ("value" in m ? [{ labels: labelsOf(m), value: Number(m.value) }] : []))
}

const total = (scrape: Scrape | undefined, name: string): number | undefined => {
  const found = samples(scrape, name)
  return found.length === 0 ? undefined : found.reduce((sum, s) => sum + s.value, 0)
}

/** Cumulative bucket counts of a histogram family, ascending `le` (+Inf last). */
const buckets = (scrape: Scrape | undefined, name: string): Array<[number, number]> | undefined => {
  const family = scrape?.families.find((f) => f.name === name)
  const first = family?.metrics[0]
  if (first === undefined || !("buckets" in first)) return undefined
  return Object.entries(first.buckets).map((
    [le, count]
  ): [number, number] => [le === "+Inf" ? Infinity : Number(le), Number(count)]).sort((a, b) => a[0] - b[0])
}

/** The q-quantile of the observations between two histogram scrapes, interpolated within its bucket (as Prometheus does). */
export const intervalQuantile = (
  before: ReadonlyArray<[number, number]> | undefined,
  after: ReadonlyArray<[number, number]>,
  q: number
): number | null => {
  const counts = after.map(([le, c], i) => [le, c - (before?.[i]?.[1] ?? 0)] as const)
  const n = counts[counts.length - 1]?.[1] ?? 0
  if (n <= 0) return null
  const rank = q * n
  let previousLe = 0
  let previousCount = 0
  for (const [le, count] of counts) {
    if (count >= rank) {
      if (le === Infinity) return previousLe
      return previousLe + ((le - previousLe) * (rank - previousCount)) / Math.max(count - previousCount, 1)
    }
    previousLe = le
    previousCount = count
  }
  return previousLe
}

/** The name a target's series go by: its role (and broker id), else its address. */
/** Every cxlog role serves its process's CPU labelled with its role (MetricsServer.ts). */
const isRolesCpu = (family: MetricFamily): boolean =>
  family.name === "process_cpu_seconds_total" && family.metrics.some((m) => m.labels?.["role"] !== undefined)

const NOT_A_ROLE = "not a cxlog role's metrics (no process_cpu_seconds_total labelled with a role)"

const roleName = (scrape: Scrape | undefined, target: string): string => {
  const labels = samples(scrape, "process_cpu_seconds_total")[0]?.labels ?? {}
  const role = labels["role"]
  if (role === undefined) return target
  return labels["broker"] === undefined ? role : `${role} ${labels["broker"]}`
}

/** The time series the page draws, appended once per scrape round. */
class History {
  readonly times: Array<number> = []
  readonly charts = new Map<string, { title: string; unit: string; series: Map<string, Array<number | null>> }>()
  constructor(readonly keep: number) {}

  /** Starts a round at `at` (ms). */
  tick(at: number): void {
    this.times.push(at / 1000)
    for (const chart of this.charts.values()) for (const values of chart.series.values()) values.push(null)
    if (this.times.length > this.keep) {
      this.times.shift()
      for (const chart of this.charts.values()) for (const values of chart.series.values()) values.shift()
    }
  }

  /** A value for this round; `undefined` (the target has no such metric) starts no series. */
  set(chart: string, title: string, unit: string, label: string, value: number | null | undefined): void {
    if (value === undefined && this.charts.get(chart)?.series.has(label) !== true) return
    let c = this.charts.get(chart)
    if (c === undefined) {
      c = { title, unit, series: new Map() }
      this.charts.set(chart, c)
    }
    let values = c.series.get(label)
    if (values === undefined) {
      values = this.times.map(() => null)
      c.series.set(label, values)
    }
    values[values.length - 1] = value === undefined || value === null || !Number.isFinite(value)
      ? null
      : Math.round(value * 100) / 100
  }

  /** The charts in `order` (by id), each once it has a series. */
  specs(order: ReadonlyArray<string>): Array<ChartSpec> {
    return [...this.charts].sort(([a], [b]) => order.indexOf(a) - order.indexOf(b)).map(([id, c]) => ({
      id,
      title: c.title,
      unit: c.unit,
      x: "time" as const,
      xs: [...this.times],
      series: [...c.series].map(([label, values]) => ({ label, values: [...values] }))
    }))
  }
}

/**
 * Adds one target's ordered messages per second, per broker, between two scrapes to `into`. A
 * broker's batches are ordered by the head's sequencer or by the broker's own rounds after its
 * appends (docs/log.md): its rate is the sum of both, from whichever roles serve them. A family's
 * label-less series (its declaration's placeholder, at zero) names no broker and is skipped.
 */
export const addOrdered = (into: Map<string, number>, before: Scrape | undefined, now: Scrape): void => {
  const seconds = before === undefined ? 0 : (now.at - before.at) / 1000
  if (seconds <= 0) return
  for (const family of ["cxlog_sequencer_messages_ordered", "cxlog_log_appender_messages_ordered"]) {
    for (const { labels, value } of samples(now, family)) {
      const broker = labels["broker"]
      const previous = samples(before, family).find((s) => s.labels["broker"] === broker)
      if (broker === undefined || previous === undefined) continue
      into.set(broker, (into.get(broker) ?? 0) + Math.max(0, value - previous.value) / seconds)
    }
  }
}

/** The charts, in their order on the page (each appears once it has a value). */
const CHARTS = {
  throughput: ["throughput", "Throughput", "MB/s"],
  perBroker: ["per-broker", "Ordered messages per broker", "msg/s"],
  latency: ["ack-latency", "ACK latency (seal → ack), per interval", "µs"],
  sequencer: ["sequencer", "Sequencer: rounds/s, held batches, unordered backlog", ""],
  lag: ["lag", "Reader lag", "messages"],
  cpu: ["cpu", "CPU per role", "% of a core"]
} as const

/** Scrapes every target each interval into a History, and serves the page and `/data`. */
export const dashboard = (
  options: DashboardOptions
): Effect.Effect<{ readonly port: number; readonly url: string }, DashboardListenFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const history = new History(options.keep)
    const last = new Map<string, Scrape>()
    const status = new Map<string, { name: string; up: boolean; error: string }>()
    const currentTargets = () => (options.targets === "discover" ? discoverTargets() : options.targets)

    const scrapeTarget = (target: string): Promise<Scrape> =>
      scrapeMetrics(target, Math.max(options.everyMs, 500)).then((text) => {
        const families = parsePrometheusTextFormat(text)
        // Any server answers 200 to a GET (a web page, another program's port): up means a role's metrics.
        if (!families.some(isRolesCpu)) throw new Error(NOT_A_ROLE)
        return { at: Date.now(), families }
      })

    const round = Effect.promise(async () => {
      const targets = currentTargets()
      for (const target of status.keys()) if (!targets.includes(target)) status.delete(target)
      const results = await Promise.allSettled(targets.map(scrapeTarget))
      history.tick(Date.now())
      const set = (chart: readonly [string, string, string], label: string, value: number | null | undefined) =>
        history.set(chart[0], chart[1], chart[2], label, value)
      const orderedPerBroker = new Map<string, number>()
      targets.forEach((target, i) => {
        const result = results[i]!
        const before = last.get(target)
        if (result.status === "rejected") {
          const error = result.reason instanceof Error ? result.reason.message : String(result.reason)
          status.set(target, { name: status.get(target)?.name ?? target, up: false, error })
          return
        }
        const now = result.value
        const name = roleName(now, target)
        status.set(target, { name, up: true, error: "" })
        last.set(target, now)
        const seconds = before === undefined ? 0 : (now.at - before.at) / 1000
        const rate = (metric: string, scale = 1) => {
          const a = total(before, metric)
          const b = total(now, metric)
          return a === undefined || b === undefined || seconds <= 0 ? undefined : (Math.max(0, b - a) / seconds) * scale
        }
        set(CHARTS.throughput, `${name} in`, rate("cxlog_broker_bytes", 1e-6))
        set(CHARTS.throughput, `${name} acked`, rate("cxlog_publisher_acked_bytes", 1e-6))
        addOrdered(orderedPerBroker, before, now)
        const latency = buckets(now, "cxlog_publisher_ack_latency_us")
        if (latency !== undefined && before !== undefined) {
          const earlier = buckets(before, "cxlog_publisher_ack_latency_us")
          for (const q of [0.5, 0.9, 0.99]) {
            set(CHARTS.latency, `${name} p${q * 100}`, intervalQuantile(earlier, latency, q))
          }
        }
        set(CHARTS.sequencer, `${name} rounds/s`, rate("cxlog_sequencer_rounds"))
        set(CHARTS.sequencer, `${name} held`, total(now, "cxlog_sequencer_held"))
        set(CHARTS.sequencer, `${name} unordered`, total(now, "cxlog_broker_unordered_batches"))
        for (const { labels, value } of samples(now, "cxlog_reader_lag_messages")) {
          if (labels["topic"] !== undefined) set(CHARTS.lag, `${name} ${labels["topic"]}`, value)
        }
        set(CHARTS.cpu, name, rate("process_cpu_seconds_total", 100))
      })
      for (const [broker, perSecond] of orderedPerBroker) set(CHARTS.perBroker, `broker ${broker}`, perSecond)
    })

    const data = (): PageData => ({
      charts: history.specs(Object.values(CHARTS).map(([id]) => id)),
      html: status.size === 0 ?
        "<p>No endpoints yet: waiting for a local `cxlog run --metrics-port PORT` or `cxlog serve --metrics-port PORT`.</p>" :
        `<table><caption>Targets</caption><tr><th>endpoint</th><th>role</th><th>state</th></tr>${
          [...status].map(([target, s]) =>
            `<tr><td>${escapeHtml(target)}</td><td>${escapeHtml(s.name)}</td><td>${
              s.up ? "up" : `down: ${escapeHtml(s.error)}`
            }</td></tr>`
          ).join("")
        }</table>`
    })

    yield* Effect.forkScoped(Effect.repeat(round, Schedule.spaced(`${options.everyMs} millis`)))

    const port = yield* serveHttp(
      options.host,
      options.port,
      (request, response) => {
        const path = (request.url ?? "/").split("?")[0]
        // Only read: a POST or a DELETE (a mistaken client, a probe) is not answered as if it had done something.
        if (request.method !== "GET" && request.method !== "HEAD") {
          response.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end(
            `cxlog dashboard: ${request.method} is not served; GET / (the page) or /data (its JSON)\n`
          )
        } else if (path === "/data") {
          response.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(
            JSON.stringify(data())
          )
        } else if (path === "/") {
          const watching = options.targets === "discover"
            ? "the endpoints local runs announce"
            : `${options.targets.length} endpoints`
          const page = chartPage({
            title: "cxlog dashboard",
            subtitle: `${watching}, every ${options.everyMs} ms`,
            data: data(),
            live: { url: "/data", everyMs: options.everyMs }
          })
          response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page)
        } else {
          response.writeHead(404, { "content-type": "text/plain" }).end(
            "cxlog dashboard: / (the page), /data (its JSON)\n"
          )
        }
      },
      (reason, code) =>
        new DashboardListenFailed({
          host: options.host,
          port: options.port,
          reason,
          flag: code !== undefined && HOST_FAILURES.includes(code) ? "--host" : "--port"
        })
    )
    return { port, url: `http://${options.host}:${port}/` }
  })

/** `cxlog dashboard`: serves until interrupted (Ctrl-C). */
export const runDashboard = (options: DashboardOptions) =>
  Effect.gen(function*() {
    const { url } = yield* dashboard(options)
    const watching = options.targets === "discover"
      ? "the endpoints of local `cxlog run --metrics-port` runs and `cxlog serve --metrics-port` servers"
      : options.targets.join(", ")
    yield* Effect.logInfo(`cxlog dashboard: ${url} (scraping ${watching})`)
    return yield* Effect.never
  }).pipe(Effect.scoped)
