/**
 * What every role process shares for being watched: `--metrics-port` (its Prometheus
 * endpoint) and `--log-format` (text, or one JSON object a line on stderr).
 */
import { Config, type ConfigError, Effect, FiberRef, HashSet, Logger, type Scope } from "effect"
import { exportSetting, settingConfig } from "../../Settings.js"
import * as Cli from "../cli/CliKit.js"
import { METRICS_SETTINGS } from "../ProgramSettings.js"

export const metricsPortFlag = Cli.port("metrics-port", {
  default: 0,
  env: "CXLOG_METRICS_PORT",
  description: "serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: off; CXLOG_METRICS_HOST sets the address)"
})

export const logFormatFlag = Cli.choice("log-format", ["text", "json"], {
  default: "text",
  env: "CXLOG_LOG_FORMAT",
  description: "log lines as text, or as one JSON object a line on stderr"
})

/** The flags every role command takes. */
export const observeFlags = { metricsPort: metricsPortFlag, logFormat: logFormatFlag }

export interface ObserveSettings {
  readonly metricsPort: number
  readonly logFormat: "text" | "json"
}

/**
 * JSON log lines replace whatever loggers the CLI installed (its pretty one), on stderr so a
 * command's data on stdout (subscribe's messages) stays clean. The format goes into the
 * environment too, so the roles `cxlog run` and `bench` fork log the same way.
 */
export const withLogFormat =
  (format: "text" | "json") => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    format === "text"
      ? effect
      : Effect.sync(() => {
        exportSetting(logFormatFlag, "json")
      }).pipe(
        Effect.zipRight(Effect.locallyWith(effect, FiberRef.currentLoggers, () =>
          HashSet.make(Logger.withConsoleError(Logger.jsonLogger))))
      )

/** The address metrics endpoints listen on: `CXLOG_METRICS_HOST`, else loopback only. */
export const metricsHost: Config.Config<string> = settingConfig(METRICS_SETTINGS.settings.metricsHost)

/**
 * Runs a role with its metrics endpoint (when a port is set) and log format. `labels` go on
 * every series (`role`, and `broker` for a broker) so one Prometheus or dashboard tells roles
 * apart. The address it serves on is logged.
 */
export const observed =
  (role: string, settings: ObserveSettings, labels: Record<string, string> = {}) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) => {
    const withMetrics = settings.metricsPort > 0
      ? Effect.gen(function*() {
        const host = yield* metricsHost
        // The Prometheus client is loaded only by a role that serves metrics (Cli.load).
        const { serveMetrics } = yield* Cli.load(() => import("./MetricsServer.js"))
        const served = yield* serveMetrics({ host, port: settings.metricsPort, labels: { role, ...labels } })
        yield* Effect.logInfo(`${role}: metrics on http://${served.host}:${served.port}/metrics`)
        return yield* effect
      }).pipe(Effect.scoped)
      : effect
    return withMetrics.pipe(withLogFormat(settings.logFormat))
  }

/** How often a standby head that took over tries the head's metrics port again while another process holds it. */
const TAKEN_PORT_RETRY_MS = 1_000

/**
 * A standby head's metrics endpoint: on `port` once it is the head, not before. The port is the
 * head's (`cxlog serve` gives both heads the one it announces), held by the head until it dies.
 * Read at start (a bad CXLOG_METRICS_HOST fails the standby then); the effect returned runs in
 * the head's scope once it holds the lease (HeadOptions.whenHead), in the background: a port
 * still taken (the head before only stopped, not gone) is taken once free, saying so, and any
 * other failure to listen is logged, not the end of the head that took over.
 */
export const metricsOnceHead = (
  role: string,
  port: number
): Effect.Effect<Effect.Effect<void, never, Scope.Scope>, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const host = yield* metricsHost
    const { serveMetricsOnceFree } = yield* Cli.load(() => import("./MetricsServer.js"))
    const served = serveMetricsOnceFree(
      { host, port, labels: { role } },
      TAKEN_PORT_RETRY_MS,
      (taken) =>
        Effect.logWarning(
          `${role}: metrics port ${taken.host}:${taken.port} is taken (the head before this one may be stopped, not gone, ` +
            `or another process holds it): serving metrics there once it is free, trying every ${TAKEN_PORT_RETRY_MS} ms`
        )
    )
    return served.pipe(
      Effect.matchEffect({
        onSuccess: (at) => Effect.logInfo(`${role}: metrics on http://${at.host}:${at.port}/metrics`),
        onFailure: (failed) => Effect.logWarning(`${role}: ${failed.message}; serving no metrics`)
      }),
      Effect.forkScoped,
      Effect.asVoid
    )
  })
