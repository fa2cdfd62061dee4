/**
 * What every role process shares for being watched: `--metrics-port` (its Prometheus
 * endpoint) and `--log-format` (text, or one JSON object a line on stderr).
 */
import { Options } from "@effect/cli"
import { Config, Effect, FiberRef, HashSet, Logger } from "effect"
import { serveMetrics } from "./MetricsServer.js"
import { report } from "./Report.js"

/** Set by `cxlog run` / `bench --report` for their roles: serve metrics on any free port and tell the orchestrator which. */
export const METRICS_ANY_PORT_ENV = "CXLOG_METRICS_ANY_PORT"

export const metricsPortOption = Options.integer("metrics-port").pipe(
  Options.withFallbackConfig(Config.integer("CXLOG_METRICS_PORT")),
  Options.withDefault(0),
  Options.withDescription("serve Prometheus metrics on this port at /metrics (0 = off; host CXLOG_METRICS_HOST, default 127.0.0.1) [CXLOG_METRICS_PORT]")
)

export const logFormatOption = Options.choice("log-format", ["text", "json"]).pipe(
  Options.withFallbackConfig(Config.literal("text", "json")("CXLOG_LOG_FORMAT")),
  Options.withDefault("text" as const),
  Options.withDescription("log lines as text, or as one JSON object a line on stderr [CXLOG_LOG_FORMAT]")
)

/** The options every role command takes. */
export const observeFlags = { metricsPort: metricsPortOption, logFormat: logFormatOption }

export interface ObserveSettings {
  readonly metricsPort: number
  readonly logFormat: "text" | "json"
}

/**
 * JSON log lines replace whatever logger the runtime installed (runMain's pretty one), on
 * stderr so a command's data on stdout (subscribe's messages) stays clean.
 */
export const withLogFormat = (format: "text" | "json") => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  format === "text"
    ? effect
    : Effect.locallyWith(effect, FiberRef.currentLoggers, (loggers) =>
      HashSet.add(
        HashSet.filter(loggers, (logger) => logger !== Logger.defaultLogger && logger !== Logger.prettyLoggerDefault),
        Logger.withConsoleError(Logger.jsonLogger)
      ))

/**
 * Runs a role with its metrics endpoint (when a port is set) and log format. `labels` go on
 * every series (`role`, and `broker` for a broker) so one Prometheus or dashboard tells roles
 * apart. The port it serves on is logged and reported to an orchestrator (`metrics` event).
 */
export const observed = (role: string, settings: ObserveSettings, labels: Record<string, string> = {}) =>
<A, E, R>(effect: Effect.Effect<A, E, R>) => {
  // Roles forked by `cxlog run` inherit the orchestrator's format through the environment.
  if (settings.logFormat === "json") process.env["CXLOG_LOG_FORMAT"] = "json"
  const anyPort = process.env[METRICS_ANY_PORT_ENV] === "1"
  const serving = settings.metricsPort > 0 || anyPort
  const host = process.env["CXLOG_METRICS_HOST"] ?? "127.0.0.1"
  const withMetrics = serving
    ? Effect.gen(function*() {
      const served = yield* serveMetrics({ host, port: anyPort ? 0 : settings.metricsPort, labels: { role, ...labels } })
      yield* Effect.logInfo(`${role}: metrics on http://${served.host}:${served.port}/metrics`)
      report({ event: "metrics", port: served.port, host: served.host })
      return yield* effect
    }).pipe(Effect.scoped)
    : effect
  return withMetrics.pipe(withLogFormat(settings.logFormat))
}
