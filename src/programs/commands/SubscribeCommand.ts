/**
 * `cxlog subscribe`: a topic's messages in their total order, over TCP or from the region in place;
 * as a role of `cxlog run`, the auditing subscriber (hidden flags).
 */
import { Effect } from "effect"
import { parseAddresses } from "../../layers/net/BrokerAddress.js"
import { InvalidTopicPattern, parseSelection } from "../../services/log/TopicPattern.js"
import { PUBLISHER_SETTINGS } from "../../services/net/NetSettings.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { observed, observeFlags } from "../roles/Observe.js"
import { exitWithParent, parentEvent } from "../roles/Report.js"
import {
  clientSecurityFlags,
  coherence,
  orderChoices,
  orderModeOf,
  parseFrom,
  parseTime,
  readerBrokers,
  region,
  topic
} from "./SharedFlags.js"

export const subscribeCommand = Cli.command({
  name: "subscribe",
  summary: "Print a topic's messages in their total order, over TCP from any broker or from the region in place",
  details:
    "With --brokers it reads over TCP (from anywhere); without, it maps the region (on its host). It prints one " +
    "message per line until stopped, or exactly --limit messages. It holds no retention unless it reads as a named " +
    "--consumer, which resumes where it committed and commits what it printed (a message printed after the last commit " +
    "is printed again by the next member).",
  flags: {
    region,
    coherence,
    topics: Cli.repeated(
      topic(
        "a topic to read, or a pattern of topics (orders.*: * stands for one dot-separated token, > for the rest); " +
          "repeat for several: each line then starts with its topic"
      )
    ),
    brokers: readerBrokers("read over TCP from the first of these brokers that takes the subscription"),
    consumer: Cli.optionalText("consumer", {
      placeholder: "NAME",
      shown: "anonymous",
      env: "CXLOG_CONSUMER",
      description:
        "read as this named consumer of the topic (≤ 24 bytes): one member at a time, resuming at its committed offset"
    }),
    format: Cli.choice("format", ["text", "json"], {
      default: "text",
      env: "CXLOG_SUBSCRIBE_FORMAT",
      description: "text: offset TAB payload; json: one object per line with offset and payload (base64 when not UTF-8)"
    }),
    ...clientSecurityFlags,
    from: Cli.custom<number | "earliest" | "latest" | undefined>("from", "earliest|latest|OFFSET", parseFrom, {
      default: undefined,
      shown: "earliest",
      description: "where to start: the oldest message held, the end, or a message offset"
    }),
    fromTime: Cli.custom<number | undefined>("from-time", "TIME", parseTime, {
      default: undefined,
      shown: "none",
      description:
        "start at the first message stamped at or after this time, in place of --from: an ISO time (2026-11-25T06:00:00Z) or an age (90s, 15m, 2h, 1d: that long ago)"
    }),
    limit: Cli.optionalInteger("limit", { min: 1, shown: "no limit", description: "stop after this many messages" }),
    idleTimeoutMs: Cli.millis("idle-timeout-ms", {
      default: 30_000,
      env: "CXLOG_SUBSCRIBE_IDLE_MS",
      description: "with --limit: give up after this long without a new message"
    }),
    auditPublishers: Cli.integer("audit-publishers", {
      default: 0,
      hidden: true,
      description: "audit stamped messages of this many publishers"
    }),
    auditMessages: Cli.integer("audit-messages", {
      default: 0,
      hidden: true,
      description: "messages each audited publisher sends"
    }),
    auditOrder: Cli.choice("audit-order", orderChoices, {
      default: "5",
      hidden: true,
      description: "the audited topic's order mode (whether publish order is checked)"
    }),
    untilPublishersDone: Cli.toggle("until-publishers-done", {
      hidden: true,
      description: "read to the log's end as of the orchestrator's publishersDone message"
    }),
    ...observeFlags
  },
  examples: [
    "cxlog subscribe --topic events",
    "cxlog subscribe --topic 'orders.*' --topic audit --format json",
    "cxlog subscribe --brokers 10.0.0.5:7400 --topic events --from 1000 --limit 10 --format json",
    "cxlog subscribe --topic events --from-time 15m",
    "cxlog subscribe --brokers 127.0.0.1:7400 --topic events --consumer billing"
  ],
  run: (o) =>
    Effect.gen(function*() {
      exitWithParent()
      const { clientSecurity } = yield* Cli.load(() => import("../admin/Users.js"))
      // No --topic: the one the settings name (CXLOG_TOPIC, else events).
      const topics = o.topics.length === 0 ? [PUBLISHER_SETTINGS.settings.topic.default] : o.topics
      if (o.auditPublishers === 0) {
        const security = yield* clientSecurity(o)
        const remote = o.brokers === undefined ? undefined : { brokers: parseAddresses(o.brokers), ...security }
        const { printTopic } = yield* Cli.load(() => import("../roles/PrintTopics.js"))
        const { untilOutputCloses } = yield* Cli.load(() => import("../cli/ClosedOutput.js"))
        if (o.from !== undefined && o.fromTime !== undefined) {
          return yield* failUsage("cxlog subscribe: --from and --from-time both say where to start: give one")
        }
        // A pattern no topic name can match is the command line's mistake, said before any region or broker is.
        const selection = parseSelection(topics)
        if (selection instanceof InvalidTopicPattern) return yield* failUsage(`cxlog subscribe: ${selection.message}`)
        yield* untilOutputCloses(printTopic({
          topics,
          ...(o.from === undefined ? {} : { from: o.from }),
          ...(o.fromTime === undefined ? {} : { fromTime: o.fromTime }),
          region: { name: o.region, coherence: o.coherence },
          ...(remote === undefined ? {} : { remote }),
          ...(o.consumer === undefined ? {} : { consumer: o.consumer }),
          ...(o.limit === undefined ? {} : { limit: o.limit }),
          idleTimeoutMs: o.idleTimeoutMs,
          format: o.format
        }))
        return
      }
      const publishersDone = o.untilPublishersDone
        ? yield* Effect.acquireRelease(Effect.sync(() => parentEvent("publishersDone")), (signal) =>
          Effect.sync(signal.close))
        : undefined
      if (o.brokers !== undefined) {
        // `run --remote-subscribers`: audit over TCP, as the local user (the region's secret file).
        const security = yield* clientSecurity(o)
        const { remoteAudit } = yield* Cli.load(() =>
          import("../run/RemoteAudit.js")
        )
        const audited = yield* remoteAudit({
          remote: { brokers: parseAddresses(o.brokers), ...security },
          topic: topics[0]!,
          publishers: o.auditPublishers,
          perPublisher: o.auditMessages,
          order: orderModeOf(o.auditOrder),
          publishersDone: publishersDone?.said ?? (() => false),
          idleTimeoutMs: o.idleTimeoutMs,
          reportEveryMs: 250,
          ...(o.consumer === undefined ? {} : { consumer: o.consumer })
        })
        if (!audited.passed) return yield* Effect.fail(new Error("audit failed"))
        return
      }
      const { subscribe } = yield* Cli.load(() => import("../roles/Subscribe.js"))
      const result = yield* subscribe({
        ...(publishersDone === undefined ? {} : { publishersDone: publishersDone.said }),
        region: { name: o.region, coherence: o.coherence },
        topic: topics[0]!,
        from: o.from ?? "earliest",
        ...(o.auditPublishers > 0
          ? {
            audit: { publishers: o.auditPublishers, perPublisher: o.auditMessages, order: orderModeOf(o.auditOrder) }
          }
          : {}),
        ...(o.limit === undefined ? {} : { limit: o.limit }),
        idleTimeoutMs: o.idleTimeoutMs,
        reportEveryMs: 250,
        print: o.auditPublishers === 0
      })
      if (result !== undefined && !result.passed) return yield* Effect.fail(new Error("audit failed"))
    }).pipe(Effect.scoped, observed("subscriber", o))
})
