/**
 * What every role process shares for being watched: `--metrics-port` (its Prometheus
 * endpoint) and `--log-format` (text, or one JSON object a line on stderr).
 */
import { Options } from "@effect/cli"
import { Config, Effect, FiberRef, HashSet, Logger } from "effect"
import { serveMetrics } from "./MetricsServer.js"

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
 * stderr so a command's data on stdout (subscribe's messages) stays clean. The format goes
 * into the environment too, so the roles `cxlog run` and `bench` fork log the same way.
 */
export const withLogFormat = (format: "text" | "json") => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  format === "text"
    ? effect
    : Effect.sync(() => {
      process.env["CXLOG_LOG_FORMAT"] = "json"
    }).pipe(
      Effect.zipRight(Effect.locallyWith(effect, FiberRef.currentLoggers, (loggers) =>
        HashSet.add(
          HashSet.filter(loggers, (logger) => logger !== Logger.defaultLogger && logger !== Logger.prettyLoggerDefault),
          Logger.withConsoleError(Logger.jsonLogger)
        )))
    )

/**
 * Runs a role with its metrics endpoint (when a port is set) and log format. `labels` go on
 * every series (`role`, and `broker` for a broker) so one Prometheus or dashboard tells roles
 * apart. The address it serves on is logged.
 */
export const observed = (role: string, settings: ObserveSettings, labels: Record<string, string> = {}) =>
<A, E, R>(effect: Effect.Effect<A, E, R>) => {
  const host = process.env["CXLOG_METRICS_HOST"] ?? "127.0.0.1"
  const withMetrics = settings.metricsPort > 0
    ? Effect.gen(function*() {
      const served = yield* serveMetrics({ host, port: settings.metricsPort, labels: { role, ...labels } })
      yield* Effect.logInfo(`${role}: metrics on http://${served.host}:${served.port}/metrics`)
      return yield* effect
    }).pipe(Effect.scoped)
    : effect
  return withMetrics.pipe(withLogFormat(settings.logFormat))
}
