/** `cxlog broker`: takes a broker slot of the region and serves publishers and remote subscribers over TCP. */
import { Effect } from "effect"
import { DEFAULT_CONSUMER_HOLD_MS } from "../../services/log/Consumers.js"
import { DURABLE_SETTINGS } from "../../services/log/LogSettings.js"
import { BROKER_SETTINGS } from "../../services/net/NetSettings.js"
import * as Cli from "../cli/CliKit.js"
import { observed, observeFlags } from "../roles/Observe.js"
import { exitWithParent } from "../roles/Report.js"
import { brokerTransportFlags, coherence, credentials, region } from "./SharedFlags.js"

export const brokerCommand = Cli.command({
  name: "broker",
  summary: "Serve publishers over TCP, appending their batches into the region",
  details: "A broker attaches the region a head created, takes a broker slot and listens for publishers. " +
    "It stops with an error once the head has been gone for CXLOG_HEAD_LOST_MS.",
  flags: {
    region,
    coherence,
    brokerId: Cli.integer("broker-id", {
      default: 0,
      env: "CXLOG_BROKER_ID",
      description: "this broker's slot (0 … CXLOG_LOG_MAX_BROKERS-1)"
    }),
    host: Cli.fromSetting("host", BROKER_SETTINGS.settings.host),
    port: Cli.fromSetting("port", BROKER_SETTINGS.settings.port),
    maxBatchBytes: Cli.fromSetting("max-batch-bytes", BROKER_SETTINGS.settings.maxBatchBytes),
    ackIntervalMs: Cli.fromSetting("ack-interval-ms", BROKER_SETTINGS.settings.ackIntervalMs),
    idleTimeoutMs: Cli.fromSetting("idle-timeout-ms", BROKER_SETTINGS.settings.idleTimeoutMs),
    maxConnections: Cli.fromSetting("max-connections", BROKER_SETTINGS.settings.maxConnections),
    maxSessions: Cli.fromSetting("max-sessions", BROKER_SETTINGS.settings.maxSessions),
    credentials,
    ...brokerTransportFlags,
    connectionMessagesPerS: Cli.integer("connection-messages-per-s", {
      default: 0,
      env: "CXLOG_CONNECTION_MESSAGES_PER_S",
      description:
        "a connection past this many messages a second gets ERROR rate-limited (0: no limit; per-user limits: cxlog user add)"
    }),
    connectionBytesPerS: Cli.integer("connection-bytes-per-s", {
      default: 0,
      placeholder: "BYTES",
      env: "CXLOG_CONNECTION_BYTES_PER_S",
      description: "a connection past this many bytes a second gets ERROR rate-limited (0: no limit)"
    }),
    statsEveryMs: Cli.millis("stats-every-ms", {
      default: 10_000,
      min: 0,
      env: "CXLOG_STATS_EVERY_MS",
      description:
        "log a stats line (connections, batches, MB/s, unordered backlog) this often while traffic flows (0: never)"
    }),
    consumerHoldMs: Cli.millis("consumer-hold-ms", {
      default: DEFAULT_CONSUMER_HOLD_MS,
      min: 0,
      env: "CXLOG_CONSUMER_HOLD_MS",
      description:
        "cut off a named consumer whose committed offset kept appends waiting for room this long (0: never; docs/clients.md)"
    }),
    dataDir: Cli.fromSetting("data-dir", DURABLE_SETTINGS.settings.dataDir, {
      shown: "none: only what the region holds",
      description:
        "the head's data directory (same host): subscribers asking for offsets of replication factor 2 topics that the region recycled are served from the copy on disk (docs/durability.md)"
    }),
    ...observeFlags
  },
  examples: [
    "cxlog broker --broker-id 0 --port 7400",
    "cxlog broker --region orders --broker-id 1 --host 0.0.0.0 --port 7401"
  ],
  run: (o) =>
    Effect.gen(function*() {
      exitWithParent()
      const { brokerSecurity } = yield* Cli.load(() => import("../admin/Users.js"))
      const { broker } = yield* Cli.load(() => import("../roles/BrokerMain.js"))
      const security = yield* brokerSecurity({ ...o, region: o.region })
      yield* broker({
        region: { name: o.region, coherence: o.coherence },
        brokerId: o.brokerId,
        server: {
          host: o.host,
          port: o.port,
          maxBatchBytes: o.maxBatchBytes,
          ackIntervalMs: o.ackIntervalMs,
          idleTimeoutMs: o.idleTimeoutMs,
          maxConnections: o.maxConnections,
          maxSessions: o.maxSessions,
          ...security
        },
        statsEveryMs: o.statsEveryMs,
        consumerHoldMs: o.consumerHoldMs,
        ...(o.dataDir === undefined ? {} : { dataDir: o.dataDir })
      })
    }).pipe(observed("broker", o, { broker: `${o.brokerId}` }))
})
