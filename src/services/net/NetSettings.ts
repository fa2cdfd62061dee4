/**
 * The network's settings, declared once (src/Settings.ts): a broker's (`cxlog broker`'s flags
 * and `BrokerLayers.config` read the same declarations) and a publisher's (`cxlog publish` and
 * `PublisherLayers.config`).
 */
import { setting, type SettingsTable } from "../../Settings.js"
import { DEFAULT_MAX_IN_FLIGHT_BATCHES } from "./Publisher.js"

export const BROKER_SETTINGS = {
  usedBy: "broker; library (BrokerLayers.config)",
  settings: {
    host: setting.address({
      env: "CXLOG_BROKER_HOST",
      default: "127.0.0.1",
      placeholder: "ADDRESS",
      description: "address to listen on (0.0.0.0 for every interface)"
    }),
    port: setting.port({
      env: "CXLOG_BROKER_PORT",
      default: 7400,
      description: "TCP port to listen on (0: any free port)"
    }),
    maxBatchBytes: setting.size({
      env: "CXLOG_MAX_BATCH_BYTES",
      default: 1 << 20,
      description: "largest batch accepted from a publisher (also bounded by the region's CXLOG_LOG_MAX_BATCH_BYTES)"
    }),
    ackIntervalMs: setting.fractionalMillis({
      env: "CXLOG_ACK_INTERVAL_MS",
      default: 0,
      description: "coalesce ACKs to one per connection per interval (0: at most one per event-loop turn)"
    }),
    idleTimeoutMs: setting.fractionalMillis({
      env: "CXLOG_BROKER_IDLE_TIMEOUT_MS",
      default: 10 * 60_000,
      description: "close a connection that sent nothing for this long (0: never)"
    }),
    maxConnections: setting.integer({
      env: "CXLOG_BROKER_MAX_CONNECTIONS",
      default: 1024,
      min: 1,
      description: "refuse connections beyond this many"
    }),
    maxSessions: setting.integer({
      env: "CXLOG_BROKER_MAX_SESSIONS",
      default: 4096,
      min: 1,
      description:
        "sessions one publisher connection may hold open (one per topic it publishes to); one more is refused too-many-sessions"
    }),
    credentials: setting.optionalText({
      env: "CXLOG_CREDENTIALS",
      placeholder: "FILE",
      shown: "the region's, in this user's private directory",
      description:
        "the credential file (0600): users, their salted keys and topic rights; the head creates it (docs/security.md)"
    }),
    insecure: setting.toggle({
      env: "CXLOG_INSECURE",
      description: "authenticate nobody, and allow listening beyond loopback without TLS (docs/security.md)"
    }),
    tlsCert: setting.optionalText({
      env: "CXLOG_TLS_CERT",
      placeholder: "FILE",
      shown: "no TLS",
      description: "serve TLS with this certificate (PEM)"
    }),
    tlsKey: setting.optionalText({
      env: "CXLOG_TLS_KEY",
      placeholder: "FILE",
      shown: "no TLS",
      description: "the key of the TLS certificate (PEM)"
    }),
    tlsClientCa: setting.optionalText({
      env: "CXLOG_TLS_CLIENT_CA",
      placeholder: "FILE",
      shown: "no client certificates",
      description: "require client certificates signed by this CA (PEM)"
    })
  }
} as const satisfies SettingsTable

export const PUBLISHER_SETTINGS = {
  usedBy: "publish; library (PublisherLayers.config)",
  settings: {
    brokers: setting.text({
      env: "CXLOG_BROKERS",
      default: "127.0.0.1:7400",
      placeholder: "HOST:PORT,…",
      description: "the brokers' addresses"
    }),
    topic: setting.text({
      env: "CXLOG_TOPIC",
      default: "events",
      placeholder: "NAME",
      description: "the topic to publish to (a library publisher's default topic; a message may name another)"
    }),
    clientId: setting.optionalInteger({
      env: "CXLOG_CLIENT_ID",
      shown: "random",
      // The wire carries it in 32 bits.
      max: 2 ** 32 - 1,
      description: "this publisher's client id"
    }),
    ackLevel: setting.choice({
      env: "CXLOG_ACK_LEVEL",
      values: ["0", "1", "2"],
      default: "1",
      description: "when a batch counts as published: 0 written to the socket, 1 ordered, 2 replicated"
    }),
    batchBytes: setting.size({
      env: "CXLOG_BATCH_BYTES",
      default: 64 << 10,
      description: "a publisher's batch seals when the next message would not fit"
    }),
    lingerMs: setting.fractionalMillis({
      env: "CXLOG_LINGER_MS",
      default: 1,
      description: "a batch waiting behind batches in flight goes this long after its first message at the latest"
    }),
    maxInFlightBatches: setting.integer({
      env: "CXLOG_MAX_IN_FLIGHT",
      default: DEFAULT_MAX_IN_FLIGHT_BATCHES,
      min: 1,
      description: "batches a publisher keeps in flight awaiting their ACK (the adaptive window's cap)"
    }),
    fixedWindow: setting.toggle({
      env: "CXLOG_FIXED_WINDOW",
      description:
        "keep --window batches in flight when saturated instead of adapting under it (the window stops where only the queue grows)"
    }),
    spread: setting.choice({
      env: "CXLOG_SPREAD",
      values: ["round-robin", "sticky"],
      default: "round-robin",
      description: "round-robin batches over the brokers, or sticky: one broker until it fails"
    })
  }
} as const satisfies SettingsTable
