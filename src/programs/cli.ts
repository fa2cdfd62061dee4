#!/usr/bin/env node
/**
 * The `cxlog` command line: a table of commands whose flags (CliKit) each carry their meaning,
 * default and `CXLOG_*` variable. A mistake of the user's is one line on stderr and exit code
 * 2 (usage) or 1 (runtime); `--verbose` adds the full cause.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Either, Exit, Logger, Schema } from "effect"
import { cliEntry } from "../PackageRoot.js"
import { requireDataDir } from "../layers/log/DurableTier.js"
import { regionConfig } from "../layers/RegionLayout.js"
import { defaultSequencerOptions } from "../services/log/Sequencer.js"
import { DEFAULT_MAX_IN_FLIGHT_BATCHES } from "../services/net/Publisher.js"
import { parseAddresses } from "../layers/net/ClientConnection.js"
import { AckLevel, OrderMode, REPLICATION_FACTORS, TopicName, type TopicSpec, topicSpecConflict } from "../services/log/Topics.js"
import { bench } from "./Bench.js"
import { broker } from "./BrokerMain.js"
import { describeFailure, failUsage } from "./CliFailure.js"
import * as Cli from "./CliKit.js"
import { configuration } from "./Configuration.js"
import { createTopic } from "./CreateTopic.js"
import { runDashboard } from "./Dashboard.js"
import { DEFAULT_STANDBY_CHECK_MS, head } from "./Head.js"
import { loopbackSend } from "./Loopback.js"
import { logFormatFlag, observed, observeFlags, withLogFormat } from "./Observe.js"
import { mirrorCommand as makeMirrorCommand } from "./Mirror.js"
import { benchMirror } from "./MirrorBench.js"
import { publish } from "./Publish.js"
import { regions } from "./Regions.js"
import { exitWithParent, parentEvent, report, tolerateClosedOutput } from "./Report.js"
import { run } from "./Run.js"
import { REDIS } from "./peers/RedisPeer.js"
import { loopbackEcho, rtt, type RttPeer } from "./Rtt.js"
import { selfCheck, selfCheckPeer } from "./SelfCheck.js"
import { printTopic, subscribe } from "./Subscribe.js"
import { consumersReport } from "./Consumers.js"
import { topics as listTopics } from "./TopicAdmin.js"
import { brokerSecurity, clientSecurity, headCredentials, users } from "./Users.js"
import { remoteAudit } from "./RemoteAudit.js"

const cliPath = cliEntry()
const VERSION = "0.1.0"

// ---- flags shared by several commands ---------------------------------------------------------

const region = Cli.text("region", {
  default: "cxlog",
  placeholder: "NAME",
  env: "CXLOG_REGION",
  description: "the region: a POSIX shared-memory name (under /dev/shm), or a path (a DAX device or a file on the CXL node)"
})
const coherence = Cli.choice("coherence", ["coherent", "non-coherent"], {
  default: "coherent",
  env: "CXLOG_COHERENCE",
  description: "non-coherent: flush every line written and invalidate before reading (multi-host CXL without coherence)"
})
const json = Cli.toggle("json", { description: "print the result as JSON" })
const messageBytes = Cli.integer("message-bytes", {
  default: 1024,
  min: 1,
  placeholder: "BYTES",
  env: "CXLOG_MESSAGE_BYTES",
  description: "size of each test message"
})
const batchBytes = Cli.size("batch-bytes", {
  default: "64KiB",
  env: "CXLOG_BATCH_BYTES",
  description: "a publisher's batch seals when the next message would not fit"
})
const window = Cli.integer("window", {
  default: DEFAULT_MAX_IN_FLIGHT_BATCHES,
  min: 1,
  env: "CXLOG_MAX_IN_FLIGHT",
  description: "batches a publisher keeps in flight awaiting their ACK"
})
const ack = Cli.choice("ack", ["0", "1", "2"], {
  default: "1",
  env: "CXLOG_ACK_LEVEL",
  description: "when a batch counts as published: 0 written to the socket, 1 ordered, 2 replicated"
})
const order = Cli.choice("order", ["0", "2", "4", "5"], {
  default: "5",
  env: "CXLOG_ORDER",
  description: "order mode: 0 per-broker arrival, 2 one total order, 4 + FIFO per (client, broker), 5 + FIFO per client session"
})

const credentials = Cli.optionalText("credentials", {
  placeholder: "FILE",
  shown: "the region's, in this user's private directory",
  env: "CXLOG_CREDENTIALS",
  description: "the credential file (0600): users, their salted keys and topic rights; the head creates it (docs/security.md)"
})
const secretFile = Cli.optionalText("secret-file", {
  placeholder: "FILE",
  shown: "the region's local user's, when readable",
  env: "CXLOG_SECRET_FILE",
  description: "authenticate as the user in this 0600 file (NAME:SECRET, from `cxlog user add`)"
})
const tlsCa = Cli.optionalText("tls-ca", {
  placeholder: "FILE",
  shown: "no TLS",
  env: "CXLOG_TLS_CA",
  description: "connect with TLS, trusting brokers whose certificate this CA (PEM) signed"
})
const tlsClientCert = Cli.optionalText("tls-client-cert", {
  placeholder: "FILE",
  shown: "none",
  env: "CXLOG_TLS_CLIENT_CERT",
  description: "with --tls-ca: present this client certificate (PEM) to brokers that ask for one"
})
const tlsClientKey = Cli.optionalText("tls-client-key", {
  placeholder: "FILE",
  shown: "none",
  env: "CXLOG_TLS_CLIENT_KEY",
  description: "the key of --tls-client-cert (PEM)"
})
/** The clients' side of `broker --insecure` (the same variable, so one `CXLOG_INSECURE=true` sets up a whole cluster). */
const clientInsecure = Cli.toggle("insecure", {
  env: "CXLOG_INSECURE",
  description: "also take brokers that authenticate nobody (started --insecure): without it, a client holding credentials refuses them"
})

const ORDERS = OrderMode.literals
const ACKS = AckLevel.literals
const isTopicName = Schema.is(TopicName)

const AGE_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** An age as `500ms`, `30s`, `15m`, `12h`, `7d` or a number of milliseconds. */
export const parseAge = (text: string): Either.Either<number, string> => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  const ms = match === null ? Number.NaN : Math.round(Number(match[1]) * AGE_UNITS[match[2] ?? "ms"]!)
  return ms >= 1 && Number.isSafeInteger(ms) ? Either.right(ms) : Either.left(`${text} is not an age: use 500ms, 30s, 15m, 12h, 7d or a number of milliseconds`)
}

/**
 * `name[:order[:ack[:rf[:disk-bytes[:disk-age]]]]]` → a topic spec, or the field that is wrong.
 * The last two bound what the disk keeps of a replication factor 2 topic (empty: no bound).
 */
export const parseTopicSpec = (spec: string): Either.Either<TopicSpec, string> => {
  const [name = "", orderText = "5", ackText = "1", rfText = "1", bytesText = "", ageText = "", ...extra] = spec.split(":")
  if (extra.length > 0) return Either.left(`${spec}: a topic is name[:order[:ack[:rf[:disk-bytes[:disk-age]]]]], 6 fields at most`)
  if (!isTopicName(name)) return Either.left(`${spec}: the name ${JSON.stringify(name)} is not 1 to 100 of A-Z a-z 0-9 . _ -`)
  const orderMode = ORDERS.find((o) => `${o}` === orderText)
  if (orderMode === undefined) return Either.left(`${spec}: the order ${orderText} is not one of ${ORDERS.join(", ")}`)
  const ackLevel = ACKS.find((a) => `${a}` === ackText)
  if (ackLevel === undefined) return Either.left(`${spec}: the ack level ${ackText} is not one of ${ACKS.join(", ")}`)
  const rf = REPLICATION_FACTORS.find((r) => `${r}` === rfText)
  if (rf === undefined) {
    return Either.left(`${spec}: the replication factor ${rfText} is not one of ${REPLICATION_FACTORS.join(", ")} (1: the region; 2: the region and a copy on disk)`)
  }
  const maxBytes = bytesText === "" ? undefined : Cli.parseSize(bytesText)
  if (maxBytes !== undefined && Either.isLeft(maxBytes)) return Either.left(`${spec}: the disk retention size ${maxBytes.left}`)
  const maxAgeMs = ageText === "" ? undefined : parseAge(ageText)
  if (maxAgeMs !== undefined && Either.isLeft(maxAgeMs)) return Either.left(`${spec}: the disk retention age ${maxAgeMs.left}`)
  const topic: TopicSpec = maxBytes === undefined && maxAgeMs === undefined
    ? { name, order: orderMode, ackLevel, replicationFactor: rf }
    : {
      name,
      order: orderMode,
      ackLevel,
      replicationFactor: rf,
      diskRetention: { ...(maxBytes === undefined ? {} : { maxBytes: maxBytes.right }), ...(maxAgeMs === undefined ? {} : { maxAgeMs: maxAgeMs.right }) }
    }
  const conflict = topicSpecConflict(topic)
  return conflict === undefined ? Either.right(topic) : Either.left(`${spec}: ${conflict}`)
}

const topics = Cli.repeated(
  Cli.custom<TopicSpec>("topic", "NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]]", parseTopicSpec, {
    default: { name: "", order: 5, ackLevel: 1, replicationFactor: 1 },
    shown: "",
    env: "CXLOG_TOPICS",
    description: "a topic to create, e.g. orders:5:1 (order 5, ack 1, RF 1; those are the defaults), or orders:5:2:2:10GiB:7d " +
      "(a copy on disk, which keeps at most 10 GiB and 7 days of it); repeat for more"
  })
)

/** The disk retention of replication factor 2 topics whose spec gives none. */
const diskRetentionFlags = {
  diskRetentionBytes: Cli.custom<number | undefined>("disk-retention-bytes", "SIZE", Cli.parseSize, {
    default: undefined,
    shown: "no bound",
    env: "CXLOG_DISK_RETENTION_BYTES",
    description: "replication factor 2 topics created here whose --topic gives no disk size: the disk keeps at most this much of each (whole old segments are deleted)"
  }),
  diskRetentionAge: Cli.custom<number | undefined>("disk-retention-age", "AGE", parseAge, {
    default: undefined,
    shown: "no bound",
    env: "CXLOG_DISK_RETENTION_AGE",
    description: "likewise for age: segments whose last write is older than this (e.g. 7d, 12h) are deleted"
  })
}

/** `specs` with the flags' disk retention filled in where a replication factor 2 topic gives none. */
const withDiskRetention = (specs: ReadonlyArray<TopicSpec>, o: { readonly diskRetentionBytes: number | undefined; readonly diskRetentionAge: number | undefined }) =>
  specs.map((spec): TopicSpec => {
    if (spec.replicationFactor < 2) return spec
    const maxBytes = spec.diskRetention?.maxBytes ?? o.diskRetentionBytes
    const maxAgeMs = spec.diskRetention?.maxAgeMs ?? o.diskRetentionAge
    if (maxBytes === undefined && maxAgeMs === undefined) return spec
    return { ...spec, diskRetention: { ...(maxBytes === undefined ? {} : { maxBytes }), ...(maxAgeMs === undefined ? {} : { maxAgeMs }) } }
  })

// ---- commands ---------------------------------------------------------------------------------

const headCommand = Cli.command({
  name: "head",
  summary: "Create the region and run its coordinator and sequencer",
  details: "The head creates the region (sized by the CXLOG_LOG_* and ring variables, see cxlog config), owns " +
    "process slot 0, writes the topic table and orders every topic's batches. It runs until stopped (Ctrl-C); " +
    "without --keep the region is removed when it stops.",
  flags: {
    region,
    coherence,
    topics,
    ...diskRetentionFlags,
    keep: Cli.toggle("keep", { env: "CXLOG_REGION_KEEP", description: "leave the region in /dev/shm when the head stops" }),
    credentials,
    attach: Cli.toggle("attach", {
      env: "CXLOG_ATTACH",
      description: "take over an existing region whose head is gone, keeping its data (the region stays on exit); " +
        "if the region is gone and --data-dir is given, recover it from there as --recover does"
    }),
    holdTimeoutMs: Cli.integer("hold-timeout-ms", {
      default: defaultSequencerOptions.holdTimeoutMs,
      placeholder: "MS",
      env: "CXLOG_HOLD_TIMEOUT_MS",
      description: "order 5: how long the sequencer holds a session's later batches for a gap before skipping it"
    }),
    sessionIdleMs: Cli.integer("session-idle-ms", {
      default: defaultSequencerOptions.sessionIdleMs,
      placeholder: "MS",
      env: "CXLOG_SESSION_IDLE_MS",
      description: "release a publisher session that sent no batch for this long"
    }),
    sessionGapIdleMs: Cli.optionalInteger("session-gap-idle-ms", {
      placeholder: "MS",
      shown: "6 x --session-idle-ms",
      env: "CXLOG_SESSION_GAP_IDLE_MS",
      description: "orders 0/2/4: a session with batches ordered above a gap lapses after this long with no batch (its publisher is told unknown-session)"
    }),
    leaseMs: Cli.integer("sequencer-lease-ms", {
      default: defaultSequencerOptions.leaseMs,
      min: 1,
      placeholder: "MS",
      env: "CXLOG_SEQUENCER_LEASE_MS",
      description: "the sequencer's lease in the region: a head that stops renewing it is gone after this long"
    }),
    standby: Cli.toggle("standby", {
      env: "CXLOG_STANDBY",
      description: "attach to a running region and take over its sequencer and coordinator when its head's lease lapses"
    }),
    standbyCheckMs: Cli.integer("standby-check-ms", {
      default: DEFAULT_STANDBY_CHECK_MS,
      min: 1,
      placeholder: "MS",
      env: "CXLOG_STANDBY_CHECK_MS",
      description: "--standby: how often to look at the head's lease"
    }),
    dataDir: Cli.optionalText("data-dir", {
      placeholder: "DIR",
      shown: "none: memory only (no topic may have replication factor 2)",
      env: "CXLOG_DATA_DIR",
      description: "the durable tier: topics with replication factor 2 are persisted here, and ACK 2 means on disk (docs/durability.md)"
    }),
    recover: Cli.optionalText("recover", {
      placeholder: "DIR",
      shown: "none",
      description: "create the region and rebuild every topic the data directory DIR recorded (and any --topic), in the recorded order, " +
        "with its named consumers at their committed offsets; then persist there"
    }),
    ...observeFlags
  },
  examples: [
    "cxlog head --topic events",
    "cxlog head --region orders --topic orders:5:1 --topic audit:2:0 --keep",
    "cxlog head --attach            # carry on with a region whose head died",
    "cxlog head --standby           # a second head: takes over when the first dies or hangs"
  ],
  run: (o) =>
    Effect.gen(function*() {
      exitWithParent()
      const config = yield* regionConfig
      const topics = withDiskRetention(o.topics, o)
      // Before the region exists: the head would refuse these topics only once it had made it.
      yield* requireDataDir(topics, o.recover ?? o.dataDir)
      // A standby uses what its head made (creating them too could race it).
      if (!o.standby) yield* headCredentials(o.region, o.credentials, o.keep || o.attach)
      yield* head({
        region: { name: o.region, coherence: o.coherence },
        config,
        topics,
        keep: o.keep,
        attach: o.attach,
        standby: o.standby,
        checkEveryMs: o.standbyCheckMs,
        sequencer: {
          holdTimeoutMs: o.holdTimeoutMs,
          sessionIdleMs: o.sessionIdleMs,
          ...(o.sessionGapIdleMs === undefined ? {} : { sessionGapIdleMs: o.sessionGapIdleMs }),
          leaseMs: o.leaseMs
        },
        reportEveryMs: 250,
        ...(o.recover !== undefined ? { dataDir: o.recover, recover: true } : o.dataDir === undefined ? {} : { dataDir: o.dataDir })
      })
    }).pipe(Effect.scoped, observed("head", o))
})

const brokerCommand = Cli.command({
  name: "broker",
  summary: "Serve publishers over TCP, appending their batches into the region",
  details: "A broker attaches the region a head created, takes a broker slot and listens for publishers. " +
    "It stops with an error once the head has been gone for CXLOG_HEAD_LOST_MS.",
  flags: {
    region,
    coherence,
    brokerId: Cli.integer("broker-id", { default: 0, env: "CXLOG_BROKER_ID", description: "this broker's slot (0 … CXLOG_LOG_MAX_BROKERS-1)" }),
    host: Cli.text("host", {
      default: "127.0.0.1",
      placeholder: "ADDRESS",
      env: "CXLOG_BROKER_HOST",
      description: "address to listen on (0.0.0.0 for every interface)"
    }),
    port: Cli.integer("port", { default: 7400, env: "CXLOG_BROKER_PORT", description: "TCP port to listen on (0: any free port)" }),
    maxBatchBytes: Cli.size("max-batch-bytes", {
      default: "1MiB",
      env: "CXLOG_MAX_BATCH_BYTES",
      description: "largest batch accepted from a publisher (also bounded by the region's CXLOG_LOG_MAX_BATCH_BYTES)"
    }),
    ackIntervalMs: Cli.float("ack-interval-ms", {
      default: 0,
      placeholder: "MS",
      env: "CXLOG_ACK_INTERVAL_MS",
      description: "coalesce ACKs to one per connection per interval (0: at most one per event-loop turn)"
    }),
    idleTimeoutMs: Cli.float("idle-timeout-ms", {
      default: 600_000,
      placeholder: "MS",
      env: "CXLOG_BROKER_IDLE_TIMEOUT_MS",
      description: "close a connection that sent nothing for this long (0: never)"
    }),
    maxConnections: Cli.integer("max-connections", {
      default: 1024,
      min: 1,
      env: "CXLOG_BROKER_MAX_CONNECTIONS",
      description: "refuse connections beyond this many"
    }),
    credentials,
    insecure: Cli.toggle("insecure", {
      env: "CXLOG_INSECURE",
      description: "authenticate nobody, and allow listening beyond loopback without TLS (docs/security.md)"
    }),
    tlsCert: Cli.optionalText("tls-cert", { placeholder: "FILE", shown: "no TLS", env: "CXLOG_TLS_CERT", description: "serve TLS with this certificate (PEM)" }),
    tlsKey: Cli.optionalText("tls-key", { placeholder: "FILE", shown: "no TLS", env: "CXLOG_TLS_KEY", description: "the key of --tls-cert (PEM)" }),
    tlsClientCa: Cli.optionalText("tls-client-ca", {
      placeholder: "FILE",
      shown: "no client certificates",
      env: "CXLOG_TLS_CLIENT_CA",
      description: "require client certificates signed by this CA (PEM)"
    }),
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

const brokers = Cli.text("brokers", {
  default: "127.0.0.1:7400",
  placeholder: "HOST:PORT,…",
  env: "CXLOG_BROKERS",
  description: "the brokers' addresses",
  check: (t) => Either.isLeft(Either.try(() => parseAddresses(t))) ? `${t} is not a list of host:port addresses` : undefined
})

const parseHeader = (t: string): Either.Either<readonly [string, string], string> => {
  const at = t.indexOf("=")
  return at < 1 ? Either.left(`${t} is not a header: use NAME=VALUE`) : Either.right([t.slice(0, at), t.slice(at + 1)] as const)
}

/** `--header name=value`, repeatable; each taken whole (a value may hold commas and `=`). */
const messageHeader: Cli.Flag<ReadonlyArray<readonly [string, string]>> = {
  ...Cli.repeated(Cli.custom("header", "NAME=VALUE", parseHeader, {
    default: ["", ""] as const,
    shown: "none",
    description: "a header every message carries (repeat for more; the value is UTF-8 text)"
  })),
  parse: (t) => Either.map(parseHeader(t), (header) => [header])
}

const publishCommand = Cli.command({
  name: "publish",
  summary: "Publish stdin lines (or --count test messages) to a topic through the brokers",
  details: "Each stdin line is one message. With --count it publishes stamped test messages a subscriber can " +
    "audit. It exits once every message is acknowledged at the --ack level, or with an error naming the first " +
    "line that could not be published.",
  flags: {
    brokers,
    topic: Cli.text("topic", { default: "events", placeholder: "NAME", env: "CXLOG_TOPIC", description: "the topic to publish to" }),
    count: Cli.optionalInteger("count", { min: 0, shown: "stdin lines", description: "publish this many stamped test messages instead of stdin" }),
    warmupCount: Cli.integer("warmup-count", {
      default: 0,
      min: 0,
      hidden: true,
      description: "with --count: this many stamped messages first, all acknowledged, not in the figures (run/bench --warmup)"
    }),
    messageBytes,
    batchBytes,
    lingerMs: Cli.float("linger-ms", {
      default: 1,
      placeholder: "MS",
      env: "CXLOG_LINGER_MS",
      description: "a batch waiting behind batches in flight goes this long after its first message at the latest"
    }),
    window,
    ack,
    clientId: Cli.optionalInteger("client-id", { shown: "random", env: "CXLOG_CLIENT_ID", description: "this publisher's client id" }),
    spread: Cli.choice("spread", ["round-robin", "sticky"], {
      default: "round-robin",
      env: "CXLOG_SPREAD",
      description: "round-robin batches over the brokers, or sticky: one broker until it fails"
    }),
    connectTimeoutMs: Cli.integer("connect-timeout-ms", {
      default: 5_000,
      min: 1,
      placeholder: "MS",
      env: "CXLOG_CONNECT_TIMEOUT_MS",
      description: "give up when no broker accepts a connection within this long"
    }),
    flushTimeoutMs: Cli.integer("flush-timeout-ms", {
      default: 120_000,
      placeholder: "MS",
      env: "CXLOG_FLUSH_TIMEOUT_MS",
      description: "at the end, wait this long at most for the last ACKs"
    }),
    rateMbps: Cli.optionalFloat("rate-mbps", { shown: "as fast as possible", env: "CXLOG_RATE_MBPS", description: "offered load in MB/s (with --count)" }),
    key: Cli.optionalText("key", { placeholder: "KEY", shown: "none", description: "the key every message carries (UTF-8)" }),
    header: messageHeader,
    publisherIndex: Cli.integer("publisher-index", { default: 0, hidden: true, description: "which stamp stream (audit runs)" }),
    region,
    secretFile,
    insecure: clientInsecure,
    tlsCa,
    tlsClientCert,
    tlsClientKey,
    ...observeFlags
  },
  examples: [
    "seq 1 5 | cxlog publish --brokers 127.0.0.1:7400,127.0.0.1:7401 --topic events",
    "cxlog publish --topic events --count 100000 --message-bytes 256 --ack 2",
    "echo '{\"total\": 12}' | cxlog publish --topic orders --key order-17 --header source=web --header trace=ab12"
  ],
  run: (o) =>
    Effect.gen(function*() {
      exitWithParent()
      const security = yield* clientSecurity(o)
      yield* publish({
        publisher: {
          ...security,
          brokers: parseAddresses(o.brokers),
          topic: o.topic,
          ackLevel: Number(o.ack) as 0 | 1 | 2,
          batchBytes: o.batchBytes,
          lingerMs: o.lingerMs,
          maxInFlightBatches: o.window,
          spread: o.spread,
          connectTimeoutMs: o.connectTimeoutMs,
          ...(o.clientId === undefined ? {} : { clientId: o.clientId })
        },
        ...(o.count === undefined ? {} : { count: o.count }),
        ...(o.warmupCount === 0 ? {} : { warmupCount: o.warmupCount }),
        messageBytes: o.messageBytes,
        publisherIndex: o.publisherIndex,
        flushTimeoutMs: o.flushTimeoutMs,
        reportEveryMs: 250,
        ...(o.rateMbps === undefined ? {} : { rateMBps: o.rateMbps }),
        ...(o.key === undefined && o.header.length === 0 ? {} : {
          message: { ...(o.key === undefined ? {} : { key: o.key }), ...(o.header.length === 0 ? {} : { headers: o.header }) }
        })
      })
    }).pipe(observed("publisher", o))
})

const parseFrom = (t: string): Either.Either<number | "earliest" | "latest", string> =>
  t === "earliest" || t === "latest"
    ? Either.right(t)
    : /^\d+$/.test(t)
    ? Either.right(Number(t))
    : Either.left(`${t} is not a position: use earliest, latest or a message offset (0, 1, …)`)

const subscribeCommand = Cli.command({
  name: "subscribe",
  summary: "Print a topic's messages in their total order, over TCP from any broker or from the region in place",
  details: "With --brokers it reads over TCP (from anywhere); without, it maps the region (on its host). It prints one " +
    "message per line until stopped, or exactly --limit messages. It holds no retention unless it reads as a named " +
    "--consumer, which resumes where it committed and commits what it printed (a message printed after the last commit " +
    "is printed again by the next member).",
  flags: {
    region,
    coherence,
    topic: Cli.text("topic", { default: "events", placeholder: "NAME", env: "CXLOG_TOPIC", description: "the topic to read" }),
    brokers: Cli.optionalText("brokers", {
      placeholder: "HOST:PORT,…",
      shown: "read the region in place",
      env: "CXLOG_SUBSCRIBE_BROKERS",
      description: "read over TCP from the first of these brokers that takes the subscription"
    }),
    consumer: Cli.optionalText("consumer", {
      placeholder: "NAME",
      shown: "anonymous",
      env: "CXLOG_CONSUMER",
      description: "read as this named consumer of the topic (≤ 24 bytes): one member at a time, resuming at its committed offset"
    }),
    format: Cli.choice("format", ["text", "json"], {
      default: "text",
      env: "CXLOG_SUBSCRIBE_FORMAT",
      description: "text: offset TAB payload; json: one object per line with offset and payload (base64 when not UTF-8)"
    }),
    secretFile,
    insecure: clientInsecure,
    tlsCa,
    tlsClientCert,
    tlsClientKey,
    from: Cli.custom("from", "earliest|latest|OFFSET", parseFrom, {
      default: "earliest",
      shown: "earliest",
      description: "where to start: the oldest message held, the end, or a message offset"
    }),
    limit: Cli.optionalInteger("limit", { min: 1, shown: "no limit", description: "stop after this many messages" }),
    idleTimeoutMs: Cli.integer("idle-timeout-ms", {
      default: 30_000,
      placeholder: "MS",
      env: "CXLOG_SUBSCRIBE_IDLE_MS",
      description: "with --limit: give up after this long without a new message"
    }),
    auditPublishers: Cli.integer("audit-publishers", { default: 0, hidden: true, description: "audit stamped messages of this many publishers" }),
    auditMessages: Cli.integer("audit-messages", { default: 0, hidden: true, description: "messages each audited publisher sends" }),
    auditOrder: Cli.integer("audit-order", { default: 5, hidden: true, description: "the audited topic's order mode (publish order is checked in mode 5 only)" }),
    untilPublishersDone: Cli.toggle("until-publishers-done", {
      hidden: true,
      description: "read to the log's end as of the orchestrator's publishersDone message"
    }),
    ...observeFlags
  },
  examples: [
    "cxlog subscribe --topic events",
    "cxlog subscribe --brokers 10.0.0.5:7400 --topic events --from 1000 --limit 10 --format json",
    "cxlog subscribe --brokers 127.0.0.1:7400 --topic events --consumer billing"
  ],
  run: (o) =>
    Effect.gen(function*() {
      exitWithParent()
      if (o.auditPublishers === 0) {
        const security = yield* clientSecurity(o)
        const remote = o.brokers === undefined ? undefined : { brokers: parseAddresses(o.brokers), ...security }
        yield* printTopic({
          topic: o.topic,
          from: o.from,
          region: { name: o.region, coherence: o.coherence },
          ...(remote === undefined ? {} : { remote }),
          ...(o.consumer === undefined ? {} : { consumer: o.consumer }),
          ...(o.limit === undefined ? {} : { limit: o.limit }),
          idleTimeoutMs: o.idleTimeoutMs,
          format: o.format
        })
        return
      }
      const publishersDone = o.untilPublishersDone
        ? yield* Effect.acquireRelease(Effect.sync(() => parentEvent("publishersDone")), (signal) => Effect.sync(signal.close))
        : undefined
      if (o.brokers !== undefined) {
        // `run --remote-subscribers`: audit over TCP, as the local user (the region's secret file).
        const security = yield* clientSecurity(o)
        const audited = yield* remoteAudit({
          remote: { brokers: parseAddresses(o.brokers), ...security },
          topic: o.topic,
          publishers: o.auditPublishers,
          perPublisher: o.auditMessages,
          order: o.auditOrder,
          publishersDone: publishersDone?.said ?? (() => false),
          idleTimeoutMs: o.idleTimeoutMs,
          reportEveryMs: 250,
          ...(o.consumer === undefined ? {} : { consumer: o.consumer })
        })
        if (!audited.passed) return yield* Effect.fail(new Error("audit failed"))
        return
      }
      const result = yield* subscribe({
        ...(publishersDone === undefined ? {} : { publishersDone: publishersDone.said }),
        region: { name: o.region, coherence: o.coherence },
        topic: o.topic,
        from: o.from,
        ...(o.auditPublishers > 0 ? { audit: { publishers: o.auditPublishers, perPublisher: o.auditMessages, order: o.auditOrder } } : {}),
        ...(o.limit === undefined ? {} : { limit: o.limit }),
        idleTimeoutMs: o.idleTimeoutMs,
        reportEveryMs: 250,
        print: o.auditPublishers === 0
      })
      if (result !== undefined && !result.passed) return yield* Effect.fail(new Error("audit failed"))
    }).pipe(Effect.scoped, observed("subscriber", o))
})

const mirrorCommand = makeMirrorCommand({ region, coherence, secretFile, insecure: clientInsecure, tlsCa, tlsClientCert, tlsClientKey, parseAge, parseFrom })

/** What `run` and `bench` give their roles for being watched, and where their report goes. */
const clusterObserveFlags = {
  metricsPort: Cli.integer("metrics-port", {
    default: 0,
    min: 0,
    placeholder: "PORT",
    env: "CXLOG_METRICS_PORT",
    description: "give every role a Prometheus endpoint: the head on PORT, broker i on PORT+1+i, then the publisher and the subscriber (0: none)"
  }),
  logFormat: logFormatFlag,
  report: Cli.optionalText("report", {
    placeholder: "FILE.html",
    shown: "none",
    env: "CXLOG_REPORT",
    description: "write a self-contained HTML report: throughput per role over time, ACK latency CDF, CPU per role, configuration, audit"
  })
}

/** The local cluster `run` and `bench` start; `bytes` defaults differ. */
const clusterFlags = (defaultBytes: string) => ({
  bytes: Cli.size("bytes", { default: defaultBytes, env: "CXLOG_BYTES", description: "payload to publish in all" }),
  messageBytes,
  brokerCount: Cli.integer("broker-count", { default: 4, min: 1, env: "CXLOG_BROKER_COUNT", description: "broker processes to start" }),
  order,
  ack,
  batchBytes,
  window,
  remoteSubscribers: Cli.integer("remote-subscribers", {
    default: 0,
    min: 0,
    placeholder: "N",
    description: "also run N subscribers reading over TCP from the brokers (round-robin), each auditing the whole total order"
  }),
  warmup: Cli.custom("warmup", "SIZE", (t) => (t.trim() === "0" ? Either.right(0) : Cli.parseSize(t)), {
    default: 0,
    shown: "0",
    env: "CXLOG_WARMUP",
    description: "publish this much first, through the same publisher and subscriber, and measure only what follows: a warm cluster's figures (0: a cold one's)"
  })
})

const clusterShape = (o: {
  bytes: number
  messageBytes: number
  brokerCount: number
  order: "0" | "2" | "4" | "5"
  ack: "0" | "1" | "2"
  batchBytes: number
  window: number
  warmup: number
}) => ({
  totalBytes: o.bytes,
  messageBytes: o.messageBytes,
  brokers: o.brokerCount,
  order: Number(o.order) as 0 | 2 | 4 | 5,
  ackLevel: Number(o.ack) as 0 | 1 | 2,
  batchBytes: o.batchBytes,
  window: o.window,
  ...(o.warmup > 0 ? { warmupBytes: o.warmup } : {})
})

const runCommand = Cli.command({
  name: "run",
  summary: "Run a whole cluster on a fresh region: head, brokers, a publisher and an auditing subscriber",
  details: "Everything in one command: it starts the processes, publishes --bytes of stamped messages, checks that " +
    "the subscriber read each one once and in order, prints the throughput and ACK latency, and removes its region.",
  flags: {
    ...clusterFlags("1GiB"),
    json: Cli.toggle("json", { description: "print the summary as one JSON line" }),
    killBroker: Cli.optionalInteger("kill-broker", {
      shown: "none",
      placeholder: "INDEX",
      description: "SIGKILL this broker 30 % into the run (the publisher must fail over)"
    }),
    killHead: Cli.toggle("kill-head", { description: "run standby heads and SIGKILL the active head 30 % into the run; reports takeoverMs" }),
    standby: Cli.integer("standby", { default: 1, min: 1, description: "--kill-head: how many standby heads to run" }),
    ...clusterObserveFlags
  },
  examples: ["cxlog run", "cxlog run --bytes 64MiB --broker-count 2 --order 2 --ack 1", "cxlog run --bytes 256MiB --kill-broker 1"],
  run: (o) =>
    run({
      ...clusterShape(o),
      output: o.json ? "json" : "human",
      ...(o.killBroker === undefined ? {} : { killBroker: { index: o.killBroker, atFraction: 0.3 } }),
      ...(o.killHead ? { killHead: { standbys: o.standby, atFraction: 0.3 } } : {}),
      metricsPort: o.metricsPort,
      remoteSubscribers: o.remoteSubscribers,
      ...(o.report === undefined ? {} : { report: { path: o.report, title: "cxlog run" } })
    }).pipe(Effect.asVoid, withLogFormat(o.logFormat))
})

/** `--peers redis`: reference systems by name, comma-separated (`none`: only cxlog). */
const parsePeers = (text: string): Either.Either<ReadonlyArray<RttPeer>, string> => {
  const names = text.split(",").map((n) => n.trim()).filter((n) => n !== "" && n !== "none")
  const unknown = names.filter((n) => n !== REDIS)
  return unknown.length > 0 ? Either.left(`${unknown.join(", ")}: the peers are redis`) : Either.right(names as Array<RttPeer>)
}

const benchCommand = Cli.command({
  name: "bench",
  summary: "Measure a local cluster's throughput and ACK latency next to the loopback TCP bound",
  flags: {
    ...clusterFlags("256MiB"),
    type: Cli.choice("type", ["publish", "e2e", "latency", "rtt", "mirror"], {
      default: "e2e",
      env: "CXLOG_BENCH_TYPE",
      description: "publish (publish → ACK), e2e (with an auditing subscriber), latency (at --rate-mbps), rtt (one message at a time, next to a TCP ping-pong), " +
        "mirror (cxlog mirror into a 3-node JetStream cluster next to publishing to it directly; docs/mirror.md)"
    }),
    mirrorMessages: Cli.integer("mirror-messages", { default: 20_000, min: 1, env: "CXLOG_BENCH_MIRROR_MESSAGES", description: "mirror: messages of each measured step" }),
    mirrorRateMbps: Cli.float("mirror-rate-mbps", { default: 5, env: "CXLOG_BENCH_MIRROR_RATE_MBPS", description: "mirror: the steady load its lag is measured under, MB/s" }),
    rateMbps: Cli.float("rate-mbps", { default: 50, env: "CXLOG_RATE_MBPS", description: "latency: the offered load in MB/s" }),
    samples: Cli.integer("samples", { default: 2_000, min: 1, env: "CXLOG_SAMPLES", description: "rtt: round trips measured" }),
    peers: Cli.custom("peers", "redis|none", parsePeers, {
      default: [],
      shown: "none",
      env: "CXLOG_BENCH_PEERS",
      description: "rtt: also measure these reference systems in the same interleaved loop (redis: Debian's redis-server with ioredis)"
    }),
    json: Cli.toggle("json", { description: "print only the JSON line" }),
    tls: Cli.toggle("tls", {
      env: "CXLOG_BENCH_TLS",
      description: "after a plain warm-up, run plain, with TLS + authentication (a throwaway CA) twice, plain; ratio = mean secured MB/s ÷ mean plain MB/s"
    }),
    ...clusterObserveFlags
  },
  examples: ["cxlog bench", "cxlog bench --type publish --bytes 1GiB --broker-count 2", "cxlog bench --type rtt --samples 5000"],
  run: (o) =>
    o.type !== "rtt" && o.peers.length > 0
      ? failUsage(`--peers is measured with --type rtt so far, not ${o.type}`)
      : o.type === "mirror"
      ? benchMirror({ messages: o.mirrorMessages, messageBytes: o.messageBytes, rateMBps: o.mirrorRateMbps, json: o.json }).pipe(Effect.asVoid)
      : o.type === "rtt"
      ? rtt({ brokers: o.brokerCount, messageBytes: o.messageBytes, order: clusterShape(o).order, samples: o.samples, json: o.json, peers: o.peers }).pipe(Effect.asVoid)
      : bench({
        ...clusterShape(o),
        type: o.type,
        rateMBps: o.rateMbps,
        json: o.json,
        tls: o.tls,
        metricsPort: o.metricsPort,
        remoteSubscribers: o.remoteSubscribers,
        ...(o.report === undefined ? {} : { report: o.report })
      }).pipe(Effect.asVoid, withLogFormat(o.logFormat))
})

const dashboardCommand = Cli.command({
  name: "dashboard",
  summary: "Serve a live web page of a cluster's metrics: throughput, ACK latency, per-broker rates, sequencer, lag, CPU",
  details: "It scrapes each role's Prometheus endpoint (--metrics-port on head, broker, publish, subscribe; `cxlog run " +
    "--metrics-port PORT` prints the list) and serves the charts at http://HOST:PORT/. See docs/observability.md.",
  flags: {
    targets: Cli.optionalText("targets", {
      placeholder: "HOST:PORT,…",
      shown: "none",
      env: "CXLOG_DASHBOARD_TARGETS",
      description: "the metrics endpoints to scrape; without it, those every local `cxlog run --metrics-port` announces"
    }),
    host: Cli.text("host", { default: "127.0.0.1", placeholder: "ADDRESS", env: "CXLOG_DASHBOARD_HOST", description: "address to serve the page on" }),
    port: Cli.integer("port", { default: 9300, min: 0, env: "CXLOG_DASHBOARD_PORT", description: "port to serve the page on (0: any free port)" }),
    everyMs: Cli.integer("every-ms", { default: 1_000, min: 100, placeholder: "MS", env: "CXLOG_DASHBOARD_EVERY_MS", description: "scrape and refresh interval" }),
    keep: Cli.integer("keep", { default: 600, min: 2, placeholder: "N", env: "CXLOG_DASHBOARD_KEEP", description: "samples each chart keeps" })
  },
  examples: [
    "cxlog run --bytes 4GiB --metrics-port 9400    # prints the dashboard command for its roles",
    "cxlog dashboard --targets 127.0.0.1:9400,127.0.0.1:9401,127.0.0.1:9402",
    "cxlog dashboard                                  # whatever local runs with --metrics-port serve"
  ],
  run: (o) =>
    runDashboard({
      targets: o.targets === undefined ? "discover" : o.targets.split(",").map((t) => t.trim()).filter((t) => t !== ""),
      host: o.host,
      port: o.port,
      everyMs: o.everyMs,
      keep: o.keep
    })
})

const createTopicCommand = Cli.command({
  name: "create-topic",
  summary: "Create topics through the running head's coordinator",
  flags: { region, coherence, topics, ...diskRetentionFlags },
  examples: [
    "cxlog create-topic --topic orders:5:1",
    "cxlog create-topic --region orders --topic audit:2:0 --topic clicks:0:0",
    "cxlog create-topic --topic payments:5:2:2:10GiB:7d   # a copy on disk, keeping 10 GiB and 7 days at most"
  ],
  run: (o) =>
    o.topics.length === 0
      ? failUsage("cxlog create-topic: name a topic with --topic NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]]")
      : createTopic({ name: o.region, coherence: o.coherence }, withDiskRetention(o.topics, o))
})

const regionsCommand = Cli.command({
  name: "regions",
  summary: "List the cxlog regions in /dev/shm (size, owner, whether it runs); remove or prune them",
  flags: {
    remove: Cli.optionalText("remove", {
      placeholder: "NAME",
      shown: "none",
      description: "remove this region and its default credential files (refused while a live process uses it; its data is lost)"
    }),
    prune: Cli.toggle("prune", {
      description: "remove every orphaned `cxlog run` region (its run gone, nothing using it) and the default credential files of regions that are gone"
    }),
    json
  },
  examples: ["cxlog regions", "cxlog regions --remove orders", "cxlog regions --prune"],
  run: (o) => regions({ ...(o.remove === undefined ? {} : { remove: o.remove }), prune: o.prune, json: o.json })
})

const consumersCommand = Cli.command({
  name: "consumers",
  summary: "List a topic's named consumers with their committed offset, lag and active member; --remove one",
  details: "Runs on the region's host. A consumer holds retention from its committed offset on, with or without a member: " +
    "delete one that is no longer read (refused while a member is active).",
  flags: {
    region,
    coherence,
    topic: Cli.text("topic", { default: "events", placeholder: "NAME", env: "CXLOG_TOPIC", description: "the topic whose consumers to list" }),
    remove: Cli.optionalText("remove", { placeholder: "NAME", shown: "none", description: "delete this consumer (its retention is released)" }),
    json
  },
  examples: ["cxlog consumers --topic events", "cxlog consumers --topic events --remove billing"],
  run: (o) =>
    consumersReport({
      region: { name: o.region, coherence: o.coherence },
      topic: o.topic,
      ...(o.remove === undefined ? {} : { remove: o.remove }),
      json: o.json
    })
})

const topicsCommand = Cli.command({
  name: "topics",
  summary: "List and describe a region's topics: order, ACK, RF, offsets held, sessions, subscribers, retention",
  details: "Reads the region in place without joining it, so it works next to a running cluster and on a region whose head is gone.",
  flags: {
    region,
    coherence,
    topic: Cli.optionalText("topic", { placeholder: "NAME", shown: "every topic", description: "describe only this topic" }),
    json: Cli.toggle("json", { description: "print the description as JSON" })
  },
  examples: ["cxlog topics", "cxlog topics --region orders --topic orders --json"],
  run: (o) => listTopics({ region: { name: o.region, coherence: o.coherence }, ...(o.topic === undefined ? {} : { topic: o.topic }), json: o.json })
})

const userCommand = Cli.command({
  name: "user",
  summary: "Add, remove or list the users of a credential file: who may publish to and read which topics",
  details: "add NAME makes a random secret and prints NAME:SECRET once (or writes it to --secret-file, 0600): the " +
    "content of that user's secret file. Brokers re-read the file on change: a removed user's next connection is refused. " +
    "Per-user limits hold per broker. See docs/security.md.",
  positional: "add NAME | remove NAME | list",
  flags: {
    region,
    credentials,
    publish: Cli.text("publish", {
      default: "*",
      placeholder: "PATTERN,…",
      description: "add: topics the user may publish to (* matches any characters; \"\" for none)"
    }),
    read: Cli.text("read", { default: "*", placeholder: "PATTERN,…", description: "add: topics the user may read (* matches any characters)" }),
    consume: Cli.text("consume", { default: "*", placeholder: "PATTERN,…", description: "add: named consumers the user may join and commit for (\"\" for none)" }),
    secretFile: Cli.optionalText("secret-file", { placeholder: "FILE", shown: "print it", description: "add: write the user's secret file here (0600)" }),
    messagesPerS: Cli.integer("messages-per-s", { default: 0, description: "add: the user's messages a second per broker (0: no limit)" }),
    bytesPerS: Cli.integer("bytes-per-s", { default: 0, placeholder: "BYTES", description: "add: the user's bytes a second per broker (0: no limit)" }),
    connections: Cli.integer("connections", { default: 0, description: "add: the user's connections per broker (0: no limit)" }),
    json
  },
  examples: [
    "cxlog user add alice --publish 'orders.*' --read '*' --secret-file alice.secret",
    "cxlog user add metrics --publish metrics --read '' --messages-per-s 10000 --connections 4",
    "cxlog user list",
    "cxlog user remove alice"
  ],
  run: (o, args) => users({ ...o, action: args[0], name: args[1] })
})

const selfcheckCommand = Cli.command({
  name: "selfcheck",
  summary: "Check this host: create a region, attach it from a second process, exchange a value and doorbell wakes",
  flags: { peer: Cli.optionalText("peer", { hidden: true, description: "run as the attaching peer of this region" }) },
  examples: ["cxlog selfcheck"],
  run: ({ peer }) => (peer === undefined ? selfCheck(cliPath) : selfCheckPeer(peer))
})

const loopbackSendCommand = Cli.command({
  name: "loopback-send",
  summary: "internal: the sending side of the loopback TCP reference",
  hidden: true,
  positional: "PORT BYTES CHUNK",
  flags: {},
  run: (_, args) => loopbackSend(Number(args[0] ?? 0), Number(args[1] ?? 0), Number(args[2] ?? 65536))
})

const loopbackEchoCommand = Cli.command({
  name: "loopback-echo",
  summary: "internal: the echo side of the TCP ping-pong reference",
  hidden: true,
  flags: {},
  run: () => loopbackEcho
})

const configCommand = Cli.command({
  name: "config",
  summary: "Print every CXLOG_* variable's value as cxlog resolves it here, and where it came from",
  details: "Flags fall back to their variable, then to their default. The region, ring and coordinator variables " +
    "have no flag: the head reads them when it creates the region. docs/configuration.md describes each.",
  flags: { json },
  examples: ["cxlog config", "CXLOG_LOG_BLOG_BYTES=67108864 cxlog config --json"],
  run: (o) => configuration(commands, globals, o.json)
})

const commands: ReadonlyArray<Cli.Command<NodeContext.NodeContext>> = [
  runCommand,
  benchCommand,
  headCommand,
  brokerCommand,
  publishCommand,
  subscribeCommand,
  mirrorCommand,
  consumersCommand,
  createTopicCommand,
  topicsCommand,
  dashboardCommand,
  regionsCommand,
  userCommand,
  configCommand,
  selfcheckCommand,
  loopbackSendCommand,
  loopbackEchoCommand
]

const verbose = Cli.toggle("verbose", { env: "CXLOG_VERBOSE", description: "on an error, print its full cause too" })
const globals = [
  Cli.toggle("help", { description: "show help (also: cxlog help COMMAND)" }),
  verbose,
  Cli.toggle("version", { description: "print the version" })
]

const ABOUT = "a totally ordered shared log whose hot tier lives in shared (CXL) memory"
const FOOTER = "Start with `cxlog run` (a whole local cluster in one command), or by hand: `cxlog head --topic events`, " +
  "`cxlog broker`, then `cxlog publish` and `cxlog subscribe`. Every flag can also be set by the CXLOG_* variable " +
  "its help names; `cxlog config` shows the resolved configuration (docs/configuration.md)."

const app: Cli.App<NodeContext.NodeContext> = { name: "cxlog", version: VERSION, about: ABOUT, commands, globals, footer: FOOTER }

const main = Effect.suspend(() => {
  tolerateClosedOutput()
  const words = process.argv.slice(2)
  // Read before parsing: it says how a command line that does not parse is reported.
  const isVerbose = words.includes("--verbose") ||
    Either.getOrElse(Cli.resolveFlag("cxlog", verbose, process.env), () => ({ value: false })).value === true
  const color = Cli.useColor(process.stdout, process.env)
  const named = commands.find((c) => c.name === words[0])
  return Cli.runApp(app, words.filter((w) => w !== "--verbose"), color).pipe(
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const failure = describeFailure(cause, named === undefined ? "cxlog" : `cxlog ${named.name}`)
      return Effect.sync(() => {
        process.stderr.write(`${failure.line}\n`)
        // A role forked by `cxlog run`/`bench` tells it why too, whatever the command (a role that
        // reported its typed error already keeps that one: the orchestrator keeps the first).
        const tag = Cause.failureOption(cause).pipe((o) => (o._tag === "Some" ? (o.value as { _tag?: unknown } | null)?._tag : undefined))
        report({ event: "failed", error: { _tag: typeof tag === "string" ? tag : "Error", message: failure.line } })
        if (isVerbose) process.stderr.write(`${Cause.pretty(cause, { renderErrorCause: true })}\n`)
        process.exitCode = failure.exitCode
      })
    }),
    Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ colors: color })))
  )
})

// The exit code main chose (2 usage, 1 runtime) ends the process even with an IPC channel to a parent holding the loop open.
main.pipe(Effect.provide(NodeContext.layer), (effect) =>
  NodeRuntime.runMain(effect, {
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause) ? 1 : Number(process.exitCode ?? 0))
  }))
