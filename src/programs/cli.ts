#!/usr/bin/env node
/** The `cxlog` command line. Flags fall back to `CXLOG_*` environment variables. */
import { Args, Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Option } from "effect"
import { fileURLToPath } from "node:url"
import { regionConfig } from "../layers/RegionLayout.js"
import { defaultSequencerOptions } from "../services/log/Sequencer.js"
import { parseAddresses } from "../layers/net/ClientConnection.js"
import { bench } from "./Bench.js"
import { broker } from "./BrokerMain.js"
import { createTopic } from "./CreateTopic.js"
import { head } from "./Head.js"
import { loopbackSend } from "./Loopback.js"
import { publish } from "./Publish.js"
import { regions } from "./Regions.js"
import { exitWithParent, parentEvent, parseBytes } from "./Report.js"
import { run } from "./Run.js"
import { loopbackEcho, rtt } from "./Rtt.js"
import { selfCheck, selfCheckPeer } from "./SelfCheck.js"
import { subscribe } from "./Subscribe.js"

const cliPath = fileURLToPath(import.meta.url)

const region = Options.text("region").pipe(
  Options.withFallbackConfig(Config.string("CXLOG_REGION")),
  Options.withDefault("cxlog"),
  Options.withDescription("region: a POSIX shm name, or a path (DAX device / file on the CXL node)")
)
const coherence = Options.choice("coherence", ["coherent", "non-coherent"]).pipe(
  Options.withFallbackConfig(Config.literal("coherent", "non-coherent")("CXLOG_COHERENCE")),
  Options.withDefault("coherent" as const)
)
const bytesOption = (name: string, fallback: string) =>
  Options.text(name).pipe(Options.withDefault(fallback), Options.mapEffect((t) => Effect.try(() => parseBytes(t)).pipe(Effect.orDie)))
const int = (name: string, fallback: number) => Options.integer(name).pipe(Options.withDefault(fallback))

const topicSpec = Options.text("topic").pipe(
  Options.repeated,
  Options.withDescription("topic to create, name[:order[:ack[:rf]]], e.g. orders:5:1"),
  Options.map((specs) =>
    specs.map((spec) => {
      const [name, order = "5", ack = "1", rf = "1"] = spec.split(":")
      return { name: name!, order: Number(order) as 0 | 2 | 4 | 5, ackLevel: Number(ack) as 0 | 1 | 2, replicationFactor: Number(rf) }
    })
  )
)

const headCommand = Command.make(
  "head",
  {
    region,
    coherence,
    topics: topicSpec,
    keep: Options.boolean("keep").pipe(Options.withDescription("leave the region in /dev/shm on exit")),
    attach: Options.boolean("attach").pipe(
      Options.withDescription("take over the existing region (its head gone), keeping its data; the region stays on exit")
    ),
    holdTimeoutMs: Options.integer("hold-timeout-ms").pipe(
      Options.withFallbackConfig(Config.integer("CXLOG_HOLD_TIMEOUT_MS")),
      Options.withDefault(defaultSequencerOptions.holdTimeoutMs)
    ),
    sessionIdleMs: Options.integer("session-idle-ms").pipe(
      Options.withFallbackConfig(Config.integer("CXLOG_SESSION_IDLE_MS")),
      Options.withDefault(defaultSequencerOptions.sessionIdleMs),
      Options.withDescription("release a publisher session with no batch for this long")
    )
  },
  (o) =>
    Effect.gen(function*() {
      exitWithParent()
      const config = yield* regionConfig
      yield* head({
        region: { name: o.region, coherence: o.coherence },
        config,
        topics: o.topics,
        keep: o.keep,
        attach: o.attach,
        sequencer: { holdTimeoutMs: o.holdTimeoutMs, sessionIdleMs: o.sessionIdleMs },
        reportEveryMs: 250
      })
    })
).pipe(Command.withDescription("Create the region and run the coordinator and the sequencer"))

const brokerCommand = Command.make(
  "broker",
  {
    region,
    coherence,
    brokerId: Options.integer("broker-id").pipe(Options.withFallbackConfig(Config.integer("CXLOG_BROKER_ID")), Options.withDefault(0)),
    host: Options.text("host").pipe(Options.withFallbackConfig(Config.string("CXLOG_BROKER_HOST")), Options.withDefault("127.0.0.1")),
    port: Options.integer("port").pipe(Options.withFallbackConfig(Config.integer("CXLOG_BROKER_PORT")), Options.withDefault(7400))
  },
  (o) =>
    Effect.sync(exitWithParent).pipe(
      Effect.zipRight(
        broker({ region: { name: o.region, coherence: o.coherence }, brokerId: o.brokerId, server: { host: o.host, port: o.port }, statsEveryMs: 1000 })
      )
    )
).pipe(Command.withDescription("Serve publishers over TCP, appending into the region"))

const publishCommand = Command.make(
  "publish",
  {
    brokers: Options.text("brokers").pipe(
      Options.withFallbackConfig(Config.string("CXLOG_BROKERS")),
      Options.withDefault("127.0.0.1:7400"),
      Options.withDescription("host:port,host:port")
    ),
    topic: Options.text("topic").pipe(Options.withDefault("events")),
    count: Options.integer("count").pipe(Options.optional, Options.withDescription("publish this many stamped test messages (default: stdin lines)")),
    messageBytes: int("message-bytes", 1024),
    batchBytes: bytesOption("batch-bytes", "64KiB"),
    lingerMs: int("linger-ms", 1),
    window: int("window", 64),
    ack: Options.choice("ack", ["0", "1", "2"]).pipe(Options.withDefault("1" as const)),
    clientId: Options.integer("client-id").pipe(Options.optional),
    publisherIndex: int("publisher-index", 0),
    flushTimeoutMs: int("flush-timeout-ms", 120_000),
    rateMbps: Options.float("rate-mbps").pipe(Options.optional, Options.withDescription("offered load in MB/s (with --count)"))
  },
  (o) =>
    Effect.gen(function*() {
      exitWithParent()
      yield* publish({
        publisher: {
          brokers: parseAddresses(o.brokers),
          topic: o.topic,
          ackLevel: Number(o.ack) as 0 | 1 | 2,
          batchBytes: o.batchBytes,
          lingerMs: o.lingerMs,
          maxInFlightBatches: o.window,
          ...Option.match(o.clientId, { onNone: () => ({}), onSome: (clientId) => ({ clientId }) })
        },
        ...Option.match(o.count, { onNone: () => ({}), onSome: (count) => ({ count }) }),
        messageBytes: o.messageBytes,
        publisherIndex: o.publisherIndex,
        flushTimeoutMs: o.flushTimeoutMs,
        reportEveryMs: 250,
        ...Option.match(o.rateMbps, { onNone: () => ({}), onSome: (rateMBps) => ({ rateMBps }) })
      })
    })
).pipe(Command.withDescription("Publish messages (stdin lines, or --count stamped test messages)"))

const subscribeCommand = Command.make(
  "subscribe",
  {
    region,
    coherence,
    topic: Options.text("topic").pipe(Options.withDefault("events")),
    from: Options.text("from").pipe(Options.withDefault("earliest"), Options.withDescription("earliest, latest, or a message offset")),
    auditPublishers: int("audit-publishers", 0),
    auditMessages: int("audit-messages", 0),
    limit: Options.integer("limit").pipe(Options.optional),
    idleTimeoutMs: int("idle-timeout-ms", 30_000),
    untilPublishersDone: Options.boolean("until-publishers-done").pipe(
      Options.withDescription("(audit, under cxlog run) read to the log's end as of the orchestrator's publishersDone message")
    )
  },
  (o) =>
    Effect.gen(function*() {
      exitWithParent()
      const publishersDone = o.untilPublishersDone
        ? yield* Effect.acquireRelease(Effect.sync(() => parentEvent("publishersDone")), (signal) => Effect.sync(signal.close))
        : undefined
      const result = yield* subscribe({
        ...(publishersDone === undefined ? {} : { publishersDone: publishersDone.said }),
        region: { name: o.region, coherence: o.coherence },
        topic: o.topic,
        from: o.from === "earliest" || o.from === "latest" ? o.from : Number(o.from),
        ...(o.auditPublishers > 0 ? { audit: { publishers: o.auditPublishers, perPublisher: o.auditMessages } } : {}),
        ...Option.match(o.limit, { onNone: () => ({}), onSome: (limit) => ({ limit }) }),
        idleTimeoutMs: o.idleTimeoutMs,
        reportEveryMs: 250,
        print: o.auditPublishers === 0
      })
      if (result !== undefined && !result.passed) return yield* Effect.fail(new Error("audit failed"))
    }).pipe(Effect.scoped)
).pipe(Command.withDescription("Read a topic's total order from the region (prints messages, or audits stamped ones)"))

/** The cluster shape `run` and `bench` share; `bytes` defaults differ. */
const clusterFlags = (defaultBytes: string) => ({
  bytes: bytesOption("bytes", defaultBytes),
  messageBytes: int("message-bytes", 1024),
  brokers: int("brokers", 4),
  order: Options.choice("order", ["0", "2", "4", "5"]).pipe(Options.withDefault("5" as const)),
  ack: Options.choice("ack", ["0", "1", "2"]).pipe(Options.withDefault("1" as const)),
  batchBytes: bytesOption("batch-bytes", "64KiB"),
  window: int("window", 64)
})

type ValueOf<T> = T extends Options.Options<infer A> ? A : never
type ClusterFlags = { [K in keyof ReturnType<typeof clusterFlags>]: ValueOf<ReturnType<typeof clusterFlags>[K]> }

const clusterShape = (o: ClusterFlags) => ({
  totalBytes: o.bytes,
  messageBytes: o.messageBytes,
  brokers: o.brokers,
  order: Number(o.order) as 0 | 2 | 4 | 5,
  ackLevel: Number(o.ack) as 0 | 1 | 2,
  batchBytes: o.batchBytes,
  window: o.window
})

const runCommand = Command.make(
  "run",
  {
    ...clusterFlags("1GiB"),
    json: Options.boolean("json").pipe(Options.withDescription("print the summary as one JSON line")),
    killBroker: Options.integer("kill-broker").pipe(Options.optional, Options.withDescription("(testing) SIGKILL this broker halfway"))
  },
  (o) =>
    run({
      ...clusterShape(o),
      output: o.json ? "json" : "human",
      ...Option.match(o.killBroker, { onNone: () => ({}), onSome: (index) => ({ killBroker: { index, atFraction: 0.3 } }) })
    }).pipe(Effect.asVoid)
).pipe(Command.withDescription("Run a whole cluster on a fresh region: head, brokers, a publisher and an auditing subscriber"))

const benchCommand = Command.make(
  "bench",
  {
    ...clusterFlags("256MiB"),
    type: Options.choice("type", ["publish", "e2e", "latency", "rtt"]).pipe(
      Options.withDefault("e2e" as const),
      Options.withDescription(
        "publish (publish → ACK), e2e (with an auditing subscriber), latency (at --rate-mbps), rtt (closed loop, one message at a time, next to a TCP ping-pong)"
      )
    ),
    rateMbps: Options.float("rate-mbps").pipe(Options.withDefault(50)),
    samples: Options.integer("samples").pipe(Options.withDefault(2_000), Options.withDescription("rtt: round trips measured")),
    json: Options.boolean("json").pipe(Options.withDescription("only the JSON line"))
  },
  (o) =>
    o.type === "rtt"
      ? rtt({ brokers: o.brokers, messageBytes: o.messageBytes, order: clusterShape(o).order, samples: o.samples, json: o.json }).pipe(Effect.asVoid)
      : bench({
        ...clusterShape(o),
        type: o.type,
        rateMBps: o.rateMbps,
        json: o.json
      }).pipe(Effect.asVoid)
).pipe(Command.withDescription("Measure a local cluster's throughput and ACK latency next to the loopback TCP bound"))

const createTopicCommand = Command.make(
  "create-topic",
  { region, coherence, topics: topicSpec },
  (o) => createTopic({ name: o.region, coherence: o.coherence }, o.topics)
).pipe(Command.withDescription("Create topics through the running head's coordinator (--topic name:order:ack …)"))

const regionsCommand = Command.make(
  "regions",
  {
    remove: Options.text("remove").pipe(Options.optional, Options.withDescription("remove this region (refused while a live process uses it; its data is lost)")),
    prune: Options.boolean("prune").pipe(Options.withDescription("remove every orphaned `cxlog run` region (its run gone, nothing using it)")),
    json: Options.boolean("json").pipe(Options.withDescription("print JSON"))
  },
  (o) => regions({ ...Option.match(o.remove, { onNone: () => ({}), onSome: (remove) => ({ remove }) }), prune: o.prune, json: o.json })
).pipe(Command.withDescription("List the cxlog regions in /dev/shm (size, owner, whether it runs); --remove NAME, --prune"))

const loopbackSendCommand = Command.make(
  "loopback-send",
  { args: Args.integer().pipe(Args.repeated) },
  ({ args }) => loopbackSend(args[0] ?? 0, args[1] ?? 0, args[2] ?? 65536)
).pipe(Command.withDescription("internal: the sending side of the loopback TCP reference"))

const loopbackEchoCommand = Command.make("loopback-echo", {}, () => loopbackEcho).pipe(
  Command.withDescription("internal: the echo side of the TCP ping-pong reference")
)

const selfcheckCommand = Command.make(
  "selfcheck",
  { peer: Options.text("peer").pipe(Options.optional, Options.withDescription("internal: run as the attaching peer")) },
  ({ peer }) => Option.match(peer, { onNone: () => selfCheck(cliPath), onSome: selfCheckPeer })
).pipe(Command.withDescription("Create a region, attach it from a second process, exchange a value and doorbell wakes"))

const cxlog = Command.make("cxlog").pipe(
  Command.withSubcommands([runCommand, benchCommand, headCommand, brokerCommand, publishCommand, subscribeCommand, createTopicCommand, regionsCommand, selfcheckCommand, loopbackSendCommand, loopbackEchoCommand])
)

const cli = Command.run(cxlog, { name: "cxlog", version: "0.1.0" })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)

