/** `cxlog publish`: stdin lines, or stamped test messages, published to a topic through the brokers. */
import { Effect, Either } from "effect"
import { parseAddresses } from "../../layers/net/BrokerAddress.js"
import { PUBLISHER_SETTINGS } from "../../services/net/NetSettings.js"
import * as Cli from "../cli/CliKit.js"
import { observed, observeFlags } from "../roles/Observe.js"
import { exitWithParent } from "../roles/Report.js"
import {
  ack,
  batchBytes,
  brokerList,
  clientSecurityFlags,
  fixedWindow,
  maxBatchBytes,
  messageBytes,
  region,
  window
} from "./SharedFlags.js"

/** The brokers a publisher spreads its batches over. */
const brokers: Cli.Flag<string> = {
  ...Cli.fromSetting("brokers", PUBLISHER_SETTINGS.settings.brokers),
  parse: brokerList
}

const parseHeader = (t: string): Either.Either<readonly [string, string], string> => {
  const at = t.indexOf("=")
  return at < 1
    ? Either.left(`${t} is not a header: use NAME=VALUE`)
    : Either.right([t.slice(0, at), t.slice(at + 1)] as const)
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

export const publishCommand = Cli.command({
  name: "publish",
  summary: "Publish stdin lines (or --count test messages) to a topic through the brokers",
  details:
    "Each stdin line is one message: its bytes as they are, up to the newline (a CRLF ends a line too; nothing is decoded). With --count it publishes stamped test messages a subscriber can " +
    "audit. It exits once every message is acknowledged at the --ack level, or with an error naming the first " +
    "line that could not be published.",
  flags: {
    brokers,
    topic: Cli.fromSetting("topic", PUBLISHER_SETTINGS.settings.topic),
    count: Cli.optionalInteger("count", {
      min: 0,
      shown: "stdin lines",
      description: "publish this many stamped test messages instead of stdin"
    }),
    warmupCount: Cli.integer("warmup-count", {
      default: 0,
      min: 0,
      hidden: true,
      description:
        "with --count: this many stamped messages first, all acknowledged, not in the figures (run/bench --warmup)"
    }),
    messageBytes,
    batchBytes,
    maxBatchBytes,
    lingerMs: Cli.fromSetting("linger-ms", PUBLISHER_SETTINGS.settings.lingerMs),
    window,
    fixedWindow,
    ack,
    clientId: Cli.fromSetting("client-id", PUBLISHER_SETTINGS.settings.clientId),
    spread: Cli.fromSetting("spread", PUBLISHER_SETTINGS.settings.spread),
    connectTimeoutMs: Cli.millis("connect-timeout-ms", {
      default: 5_000,
      min: 1,
      env: "CXLOG_CONNECT_TIMEOUT_MS",
      description: "give up when no broker accepts a connection within this long"
    }),
    flushTimeoutMs: Cli.millis("flush-timeout-ms", {
      default: 120_000,
      env: "CXLOG_FLUSH_TIMEOUT_MS",
      description: "at the end, wait this long at most for the last ACKs"
    }),
    rateMbps: Cli.optionalFloat("rate-mbps", {
      shown: "as fast as possible",
      env: "CXLOG_RATE_MBPS",
      description: "offered load in MB/s (with --count)"
    }),
    key: Cli.optionalText("key", {
      blankAllowed: true,
      placeholder: "KEY",
      shown: "none",
      description: "the key every message carries (UTF-8; \"\" is the empty key)"
    }),
    header: messageHeader,
    publisherIndex: Cli.integer("publisher-index", {
      default: 0,
      hidden: true,
      description: "which stamp stream (audit runs)"
    }),
    reportAcks: Cli.toggle("report-acks", {
      hidden: true,
      description: "tell the orchestrator each acknowledgement as it comes (an acked event: the batch's message range)"
    }),
    region,
    local: Cli.toggle("local", {
      env: "CXLOG_PUBLISH_LOCAL",
      description:
        "publish from this host into the region itself (--region), through no broker: a local publisher takes a broker slot of its own"
    }),
    ...clientSecurityFlags,
    ...observeFlags
  },
  examples: [
    "seq 1 5 | cxlog publish --brokers 127.0.0.1:7400,127.0.0.1:7401 --topic events",
    "cxlog publish --topic events --count 100000 --message-bytes 256 --ack 2",
    "cxlog publish --local --topic events --count 100000",
    "echo '{\"total\": 12}' | cxlog publish --topic orders --key order-17 --header source=web --header trace=ab12"
  ],
  run: (o) =>
    Effect.gen(function*() {
      exitWithParent()
      const { clientSecurity } = yield* Cli.load(() => import("../admin/Users.js"))
      const { publish } = yield* Cli.load(() => import("../roles/Publish.js"))
      const security = yield* clientSecurity(o)
      yield* publish({
        publisher: {
          ...security,
          brokers: parseAddresses(o.brokers),
          topic: o.topic,
          ackLevel: Number(o.ack) as 0 | 1 | 2,
          batchBytes: o.batchBytes,
          maxBatchBytes: o.maxBatchBytes,
          lingerMs: o.lingerMs,
          maxInFlightBatches: o.window,
          adaptiveWindow: !o.fixedWindow,
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
        ...(o.local ? { local: { name: o.region } } : {}),
        ...(o.reportAcks ? { reportAcks: true } : {}),
        ...(o.key === undefined && o.header.length === 0 ? {} : {
          message: {
            ...(o.key === undefined ? {} : { key: o.key }),
            ...(o.header.length === 0 ? {} : { headers: o.header })
          }
        })
      })
    }).pipe(observed("publisher", o))
})
