/** `cxlog serve`: a whole local server (a head, N brokers, optionally a standby head) in one command. */
import { Effect } from "effect"
import { availableParallelism } from "node:os"
import { DURABLE_SETTINGS } from "../../services/log/LogSettings.js"
import type { TopicSpec } from "../../services/log/Topics.js"
import { BROKER_SETTINGS } from "../../services/net/NetSettings.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { metricsPortFlag } from "../roles/Observe.js"
import type { ServeOptions } from "../serve/Serve.js"
import { brokerCount, region } from "./SharedFlags.js"
import { topics } from "./TopicFlags.js"

/** Brokers by default: one per core, at most 4 (what one host's publishers keep busy; more is `--broker-count`). */
const defaultBrokerCount = (): number => Math.max(1, Math.min(4, availableParallelism()))

/** The command line of a serve with `options`, for `--detach` to start it with (`topicArg`: Serve.ts's). */
const serveArgs = (options: ServeOptions, topicArg: (topic: TopicSpec) => string): ReadonlyArray<string> => [
  "--region",
  options.region,
  "--host",
  options.host,
  "--port",
  `${options.port}`,
  "--broker-count",
  `${options.brokers}`,
  ...options.topics.flatMap((t) => ["--topic", topicArg(t)]),
  ...(options.standby ? ["--standby"] : []),
  ...(options.dataDir === undefined ? [] : ["--data-dir", options.dataDir]),
  "--metrics-port",
  `${options.metricsPort}`
]

/** The topic serve creates when given none: `events`, with a copy on disk (ACK 2 on disk) when given a data directory. */
const defaultTopic = (dataDir: string | undefined): TopicSpec =>
  dataDir === undefined
    ? { name: "events", order: 5, ackLevel: 1, replicationFactor: 1 }
    : { name: "events", order: 5, ackLevel: 2, replicationFactor: 2 }

export const serveCommand = Cli.command({
  name: "serve",
  summary: "Run a whole local server: a head and brokers, each its own process, until Ctrl-C",
  details: "Starts a head (coordinator + sequencer) on a new region, optionally a standby head, then the brokers on " +
    "--port, --port+1, …, and prints how to connect: the brokers' addresses, the region, the secret and credential " +
    "files, and a publish, a subscribe and a code line. Every role's output comes in one stream, each line behind its " +
    "role's name. Ctrl-C (or SIGTERM) stops the brokers, then the head, and removes the region (a --data-dir stays). " +
    "A role that dies is reported and the rest are stopped (exit 1); with --standby the standby takes over a dead head.",
  flags: {
    region,
    host: Cli.fromSetting("host", BROKER_SETTINGS.settings.host, {
      description:
        "address the brokers listen on; beyond loopback only with TLS (CXLOG_TLS_CERT and CXLOG_TLS_KEY) or CXLOG_INSECURE=true in serve's environment, which its brokers read (docs/security.md)"
    }),
    port: Cli.fromSetting("port", BROKER_SETTINGS.settings.port, {
      description: "broker 0's TCP port; broker i listens on PORT+i (0: each on any free port)"
    }),
    brokerCount: {
      ...brokerCount,
      default: defaultBrokerCount(),
      shownDefault: `one per core, at most 4 (here ${defaultBrokerCount()})`
    },
    topics: {
      ...topics,
      shownDefault: "events (events:5:2:2 with --data-dir)",
      description:
        "a topic the head creates at start, NAME[:ORDER[:ACK[:RF]]] as cxlog head takes it (orders:5:1); repeat for more"
    },
    standby: Cli.toggle("standby", {
      description: "also run a standby head, which takes over when the head dies (docs/operations.md)"
    }),
    dataDir: Cli.fromSetting("data-dir", DURABLE_SETTINGS.settings.dataDir, {
      shown: "none: memory only",
      description:
        "the durable tier, given to the heads and brokers: rf 2 topics are persisted here and ACK 2 means on disk (docs/durability.md); left in place on exit"
    }),
    metricsPort: {
      ...metricsPortFlag,
      description: "give every role a Prometheus endpoint: the head on PORT, broker i on PORT+1+i (0: none)"
    },
    json: Cli.toggle("json", {
      description:
        "print one JSON object per line: the roles' lines as log events, and starting, ready (how to connect), exited, stopping, stopped"
    }),
    detach: Cli.toggle("detach", {
      description:
        "run the server in the background: return once it is ready, having said how to connect; its output goes to a log file in this user's private directory"
    }),
    stop: Cli.toggle("stop", {
      description:
        "stop the serve of --region (one started with --detach, or in another terminal) as Ctrl-C would, and wait until it has"
    })
  },
  examples: [
    "cxlog serve",
    "cxlog serve --broker-count 2 --port 7500 --topic orders:5:1 --topic audit:2:0",
    "cxlog serve --standby --data-dir /var/lib/cxlog   # ACK 2 on disk; a second head takes over",
    "cxlog serve --json | jq -c 'select(.event == \"ready\")'",
    "cxlog serve --detach && echo hello | cxlog publish --topic events && cxlog serve --stop"
  ],
  run: (o) => {
    const options: ServeOptions = {
      region: o.region,
      host: o.host,
      port: o.port,
      brokers: o.brokerCount,
      topics: o.topics.length === 0 ? [defaultTopic(o.dataDir)] : o.topics,
      standby: o.standby,
      dataDir: o.dataDir,
      metricsPort: o.metricsPort,
      json: o.json
    }
    if (o.stop && o.detach) {
      return failUsage(
        "cxlog serve: --stop and --detach: give one (--stop stops the serve of --region; --detach starts one)"
      )
    }
    return Effect.gen(function*() {
      const { requireServeConfig, serve, topicArg } = yield* Cli.load(() => import("../serve/Serve.js"))
      const { detach, stop } = yield* Cli.load(() => import("../serve/ServeDetach.js"))
      if (o.stop) return yield* stop(o.region)
      if (!o.detach) {
        const { untilOutputCloses } = yield* Cli.load(() => import("../cli/ClosedOutput.js"))
        return yield* untilOutputCloses(serve(options))
      }
      // A mistake in the flags or the environment is this command's own (exit 2), not a detached serve's failure.
      yield* requireServeConfig(options)
      return yield* detach(serveArgs(options, topicArg), o.region, o.json)
    })
  }
})
