/**
 * A role's metrics over HTTP in Prometheus text format: `GET /metrics`.
 *
 * The exporter is prom-client, the maintained Prometheus client for Node.js. It renders the
 * exposition format (escaping, label sets, histogram series, content type) and adds the
 * process's own metrics (CPU seconds, memory, heap, event-loop delay, GC, file descriptors);
 * cxlog hands it the Effect `Metric` registry on every scrape through one collector per metric
 * name, so src/Metrics.ts stays the one place metrics are declared and updated.
 */
import { Data, Duration, Effect, Metric as EffectMetric, MetricState, Option, Schedule, type Scope } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import { collectDefaultMetrics, type Metric, Registry } from "prom-client"
import { declareRoleFamilies, isShownOnScrape, runSamplers } from "../../Metrics.js"
import { serveHttp } from "./ScopedHttpServer.js"

export class MetricsListenFailed extends Data.TaggedError("MetricsListenFailed")<{
  readonly host: string
  readonly port: number
  readonly reason: string
  /** Another socket holds the port (EADDRINUSE). */
  readonly taken: boolean
}> {
  override get message() {
    return `cannot serve metrics on ${this.host}:${this.port}: ${this.reason} (--metrics-port / CXLOG_METRICS_PORT)`
  }
}

type Sample = { value: number; labels: Record<string, string>; metricName?: string }
type Family = { name: string; help: string; type: "counter" | "gauge" | "histogram"; values: Array<Sample> }

const number = (value: number | bigint): number => (typeof value === "bigint" ? Number(value) : value)

/** Whether a series has counted or measured nothing yet. */
const isZero = (state: MetricState.MetricState.Untyped): boolean =>
  MetricState.isCounterState(state)
    ? number(state.count) === 0
    : MetricState.isGaugeState(state)
    ? number(state.value) === 0
    : MetricState.isHistogramState(state)
    ? state.count === 0
    : false

/**
 * The Effect registry now, as metric families (counters, gauges and histograms; cxlog declares
 * no others). A family whose series carry a label (a topic, a broker) is declared with one
 * series without it (`declareRoleFamilies`): that placeholder, still at zero, is left out once
 * the family has series of its own.
 */
const effectFamilies = (): Map<string, Family> => {
  const families = new Map<string, Family>()
  const snapshot = EffectMetric.unsafeSnapshot().filter((pair) => isShownOnScrape(pair.metricKey))
  const labelled = new Set(snapshot.filter((pair) => pair.metricKey.tags.length > 0).map((pair) => pair.metricKey.name))
  for (const { metricKey, metricState } of snapshot) {
    if (metricKey.tags.length === 0 && labelled.has(metricKey.name) && isZero(metricState)) continue
    const labels: Record<string, string> = {}
    for (const tag of metricKey.tags) labels[tag.key] = tag.value
    const help = Option.getOrElse(metricKey.description, () => metricKey.name)
    const family = (type: Family["type"]) => {
      let found = families.get(metricKey.name)
      if (found === undefined) {
        found = { name: metricKey.name, help, type, values: [] }
        families.set(metricKey.name, found)
      }
      return found
    }
    if (MetricState.isCounterState(metricState)) {
      family("counter").values.push({ value: number(metricState.count), labels })
    } else if (MetricState.isGaugeState(metricState)) {
      family("gauge").values.push({ value: number(metricState.value), labels })
    } else if (MetricState.isHistogramState(metricState)) {
      // Effect's buckets are cumulative already, as Prometheus's are, and end with an Infinity boundary (+Inf).
      const values = family("histogram").values
      for (const [le, count] of metricState.buckets) {
        values.push({
          metricName: `${metricKey.name}_bucket`,
          value: count,
          labels: { ...labels, le: le === Infinity ? "+Inf" : String(le) }
        })
      }
      values.push({ metricName: `${metricKey.name}_sum`, value: metricState.sum, labels })
      values.push({ metricName: `${metricKey.name}_count`, value: metricState.count, labels })
    }
  }
  return families
}

/**
 * A prom-client registry over this process: its default metrics, `labels` on every series
 * (role, broker id), and the Effect registry, read afresh (samplers first) on every scrape.
 * Every family of the role its `role` label names is there from the first scrape, at zero.
 */
export const makeMetricsRegistry = (labels: Record<string, string>) => {
  declareRoleFamilies(labels["role"])
  const registry = new Registry()
  registry.setDefaultLabels(labels)
  // Event-loop delay is sampled by a timer; 500 ms (the control plane's cadence) keeps an idle role idle.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 500 })
  let current = new Map<string, Family>()
  const registered = new Set<string>()
  const refresh = () => {
    runSamplers()
    current = effectFamilies()
    for (const name of current.keys()) {
      if (registered.has(name)) continue
      registered.add(name)
      // prom-client formats any object with a name and `get()`; its own metric classes cannot
      // take a histogram's buckets as they are, so each Effect metric is such an object.
      const collector = {
        name,
        get: () =>
          Promise.resolve({
            aggregator: "sum",
            ...(current.get(name) ?? { name, help: name, type: "gauge", values: [] })
          })
      }
      registry.registerMetric(collector as unknown as Metric)
    }
  }
  return {
    registry,
    /** The exposition text of every metric now; a sampler that throws fails the promise, not its caller. */
    text: async (): Promise<string> => {
      refresh()
      return registry.metrics()
    }
  }
}

export interface MetricsServerOptions {
  readonly host: string
  /** 0 = any free port. */
  readonly port: number
  readonly labels: Record<string, string>
}

/** The handler of `GET /metrics`, over a registry of this process with `labels` on every series. */
const metricsHandler = (labels: Record<string, string>) => {
  const metrics = makeMetricsRegistry(labels)
  return (request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? "/").split("?")[0]
    if (request.method !== "GET" || path !== "/metrics") {
      response.writeHead(path === "/metrics" ? 405 : 404, { "content-type": "text/plain" }).end(
        "cxlog metrics: GET /metrics\n"
      )
      return
    }
    metrics.text().then(
      (text) => response.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`)
    )
  }
}

/** Listens with `handle` on `host:port` until the scope closes: the port (the system's pick for 0). */
const listen = (
  host: string,
  port: number,
  handle: (request: IncomingMessage, response: ServerResponse) => void
): Effect.Effect<{ readonly host: string; readonly port: number }, MetricsListenFailed, Scope.Scope> =>
  Effect.map(
    serveHttp(
      host,
      port,
      handle,
      (reason, code) => new MetricsListenFailed({ host, port, reason, taken: code === "EADDRINUSE" })
    ),
    (listening) => ({ host, port: listening })
  )

/** Serves `GET /metrics` until the scope closes; resolves with the port it listens on. */
export const serveMetrics = (
  options: MetricsServerOptions
): Effect.Effect<{ readonly host: string; readonly port: number }, MetricsListenFailed, Scope.Scope> =>
  Effect.suspend(() => listen(options.host, options.port, metricsHandler(options.labels)))

/**
 * Serves `GET /metrics` on a port that may be taken for now, until the scope closes: a taken
 * port (`onTaken` says so, once) is tried again every `everyMs` until it is free; any other
 * failure to listen is the caller's. What a standby head that took over does with the head's
 * port (Observe.ts): a dead head's socket went with its process, but one only stopped (SIGSTOP)
 * holds it until it is continued (and exits, fenced) or killed.
 */
export const serveMetricsOnceFree = (
  options: MetricsServerOptions,
  everyMs: number,
  onTaken: (failed: MetricsListenFailed) => Effect.Effect<void>
): Effect.Effect<{ readonly host: string; readonly port: number }, MetricsListenFailed, Scope.Scope> =>
  Effect.suspend(() => {
    const once = listen(options.host, options.port, metricsHandler(options.labels))
    return once.pipe(Effect.catchIf((failed) => failed.taken, (failed) =>
      Effect.zipRight(
        onTaken(failed),
        Effect.retry(once, {
          while: (again) => again.taken,
          schedule: Schedule.spaced(Duration.millis(everyMs))
        })
      )))
  })
