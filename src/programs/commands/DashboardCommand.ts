/** `cxlog dashboard`: a live web page of a cluster's metrics, scraped from its roles' Prometheus endpoints. */
import { Effect, Either } from "effect"
import { address } from "../../Settings.js"
import * as Cli from "../cli/CliKit.js"

/** A metrics endpoint as a role serves it: a host (no scheme, no path) and a port. */
const ENDPOINT = /^([^\s/?#@]+):(\d+)$/

/**
 * `host:port,…`, each scraped at `http://host:port/metrics`. A URL (the `http://…/metrics` that
 * serve and run print), a missing port or an empty list is a usage mistake: scraped as given, it
 * was shown down for good.
 */
const parseTargets = (text: string): Either.Either<ReadonlyArray<string>, string> => {
  const targets = text.split(",").map((t) => t.trim()).filter((t) => t !== "")
  if (targets.length === 0) return Either.left(`no endpoint in ${JSON.stringify(text)} (host:port,…)`)
  const bad = targets.find((t) => {
    const port = Number(ENDPOINT.exec(t)?.[2] ?? 0)
    return port < 1 || port > 65535
  })
  return bad === undefined
    ? Either.right(targets)
    : Either.left(`not a metrics endpoint: ${JSON.stringify(bad)} (host:port, as 127.0.0.1:9400, the port in 1..65535)`)
}

export const dashboardCommand = Cli.command({
  name: "dashboard",
  summary:
    "Serve a live web page of a cluster's metrics: throughput, ACK latency, per-broker rates, sequencer, lag, CPU",
  details:
    "It scrapes each role's Prometheus endpoint (--metrics-port on head, broker, publish, subscribe; `cxlog run " +
    "--metrics-port PORT` prints the list) and serves the charts at http://HOST:PORT/. See docs/observability.md.",
  flags: {
    targets: Cli.custom<ReadonlyArray<string> | undefined>("targets", "HOST:PORT,…", parseTargets, {
      default: undefined,
      shown: "none",
      env: "CXLOG_DASHBOARD_TARGETS",
      description:
        "the metrics endpoints to scrape; without it, those every local `cxlog run --metrics-port` or `cxlog serve --metrics-port` announces"
    }),
    host: Cli.custom("host", "ADDRESS", address, {
      default: "127.0.0.1",
      shown: "127.0.0.1",
      env: "CXLOG_DASHBOARD_HOST",
      description: "address to serve the page on"
    }),
    port: Cli.port("port", {
      default: 9300,
      env: "CXLOG_DASHBOARD_PORT",
      description: "port to serve the page on (0: any free port)"
    }),
    everyMs: Cli.millis("every-ms", {
      default: 1_000,
      min: 100,
      env: "CXLOG_DASHBOARD_EVERY_MS",
      description: "scrape and refresh interval"
    }),
    keep: Cli.integer("keep", {
      default: 600,
      min: 2,
      placeholder: "N",
      env: "CXLOG_DASHBOARD_KEEP",
      description: "samples each chart keeps"
    })
  },
  examples: [
    "cxlog run --bytes 4GiB --metrics-port 9400    # prints the dashboard command for its roles",
    "cxlog dashboard --targets 127.0.0.1:9400,127.0.0.1:9401,127.0.0.1:9402",
    "cxlog dashboard                                  # whatever local runs with --metrics-port serve"
  ],
  run: (o) =>
    Cli.load(() => import("../report/Dashboard.js")).pipe(Effect.flatMap(({ runDashboard }) =>
      runDashboard({
        targets: o.targets ?? "discover",
        host: o.host,
        port: o.port,
        everyMs: o.everyMs,
        keep: o.keep
      })
    ))
})
