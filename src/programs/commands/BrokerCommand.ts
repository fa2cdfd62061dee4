/** `cxlog broker`: takes a broker slot of the region and serves publishers and remote subscribers over TCP. */
import { Effect } from "effect"
import { BROKER_SETTINGS } from "../../services/net/Broker.js"
import { broker } from "../roles/BrokerMain.js"
import * as Cli from "../cli/CliKit.js"
import { observed, observeFlags } from "../roles/Observe.js"
import { exitWithParent } from "../roles/Report.js"
import { brokerSecurity } from "../admin/Users.js"
import { coherence, credentials, fileFlag, region } from "./SharedFlags.js"

export const brokerCommand = Cli.command({
  name: "broker",
  summary: "Serve publishers over TCP, appending their batches into the region",
  details: "A broker attaches the region a head created, takes a broker slot and listens for publishers. " +
    "It stops with an error once the head has been gone for CXLOG_HEAD_LOST_MS.",
  flags: {
    region,
    coherence,
    brokerId: Cli.integer("broker-id", { default: 0, env: "CXLOG_BROKER_ID", description: "this broker's slot (0 … CXLOG_LOG_MAX_BROKERS-1)" }),
    host: Cli.text("host", {
      default: BROKER_SETTINGS.host.default,
      placeholder: "ADDRESS",
      env: BROKER_SETTINGS.host.env,
      description: "address to listen on (0.0.0.0 for every interface)"
    }),
    port: Cli.integer("port", { default: BROKER_SETTINGS.port.default, env: BROKER_SETTINGS.port.env, description: "TCP port to listen on (0: any free port)" }),
    maxBatchBytes: Cli.size("max-batch-bytes", {
      default: BROKER_SETTINGS.maxBatchBytes.shown,
      env: BROKER_SETTINGS.maxBatchBytes.env,
      description: "largest batch accepted from a publisher (also bounded by the region's CXLOG_LOG_MAX_BATCH_BYTES)"
    }),
    ackIntervalMs: Cli.float("ack-interval-ms", {
      default: BROKER_SETTINGS.ackIntervalMs.default,
      placeholder: "MS",
      env: BROKER_SETTINGS.ackIntervalMs.env,
      description: "coalesce ACKs to one per connection per interval (0: at most one per event-loop turn)"
    }),
    idleTimeoutMs: Cli.float("idle-timeout-ms", {
      default: BROKER_SETTINGS.idleTimeoutMs.default,
      placeholder: "MS",
      env: BROKER_SETTINGS.idleTimeoutMs.env,
      description: "close a connection that sent nothing for this long (0: never)"
    }),
    maxConnections: Cli.integer("max-connections", {
      default: BROKER_SETTINGS.maxConnections.default,
      min: 1,
      env: BROKER_SETTINGS.maxConnections.env,
      description: "refuse connections beyond this many"
    }),
    credentials,
    insecure: Cli.toggle("insecure", {
      env: BROKER_SETTINGS.insecure.env,
      description: "authenticate nobody, and allow listening beyond loopback without TLS (docs/security.md)"
    }),
    tlsCert: fileFlag("tls-cert", "CXLOG_TLS_CERT", "no TLS", "serve TLS with this certificate (PEM)"),
    tlsKey: fileFlag("tls-key", "CXLOG_TLS_KEY", "no TLS", "the key of --tls-cert (PEM)"),
    tlsClientCa: fileFlag("tls-client-ca", "CXLOG_TLS_CLIENT_CA", "no client certificates", "require client certificates signed by this CA (PEM)"),
    connectionMessagesPerS: Cli.integer("connection-messages-per-s", {
      default: 0,
      env: "CXLOG_CONNECTION_MESSAGES_PER_S",
      description: "a connection past this many messages a second gets ERROR rate-limited (0: no limit; per-user limits: cxlog user add)"
    }),
    connectionBytesPerS: Cli.integer("connection-bytes-per-s", {
      default: 0,
      placeholder: "BYTES",
      env: "CXLOG_CONNECTION_BYTES_PER_S",
      description: "a connection past this many bytes a second gets ERROR rate-limited (0: no limit)"
    }),
    statsEveryMs: Cli.integer("stats-every-ms", {
      default: 10_000,
      min: 0,
      placeholder: "MS",
      env: "CXLOG_STATS_EVERY_MS",
      description: "log a stats line (connections, batches, MB/s, unordered backlog) this often while traffic flows (0: never)"
    }),
    consumerHoldMs: Cli.integer("consumer-hold-ms", {
      default: 30_000,
      min: 0,
      placeholder: "MS",
      env: "CXLOG_CONSUMER_HOLD_MS",
      description: "cut off a named consumer whose committed offset kept appends waiting for room this long (0: never; docs/clients.md)"
    }),
    dataDir: Cli.optionalText("data-dir", {
      placeholder: "DIR",
      shown: "none: only what the region holds",
      env: "CXLOG_DATA_DIR",
      description: "the head's data directory (same host): subscribers asking for offsets of replication factor 2 topics that the region recycled are served from the copy on disk (docs/durability.md)"
    }),
    ...observeFlags
  },
  examples: [
    "cxlog broker --broker-id 0 --port 7400",
    "cxlog broker --region orders --broker-id 1 --host 0.0.0.0 --port 7401"
  ],
  run: (o) =>
    Effect.sync(exitWithParent).pipe(
      Effect.zipRight(brokerSecurity({ ...o, region: o.region })),
      Effect.flatMap((security) =>
        broker({
          region: { name: o.region, coherence: o.coherence },
          brokerId: o.brokerId,
          server: {
            host: o.host,
            port: o.port,
            maxBatchBytes: o.maxBatchBytes,
            ackIntervalMs: o.ackIntervalMs,
            idleTimeoutMs: o.idleTimeoutMs,
            maxConnections: o.maxConnections,
            ...security
          },
          statsEveryMs: o.statsEveryMs,
          consumerHoldMs: o.consumerHoldMs,
          ...(o.dataDir === undefined ? {} : { dataDir: o.dataDir })
        })
      ),
      observed("broker", o, { broker: `${o.brokerId}` })
    )
})
