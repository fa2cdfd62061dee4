/** `cxlog mirror`: carries a topic's total order into a NATS JetStream stream (the role: roles/Mirror.ts). */
import { Effect, Either } from "effect"
import { parseAddresses } from "../../layers/net/BrokerAddress.js"
import { DEFAULT_MIRROR_IN_FLIGHT, defaultMirrorSubject } from "../../services/mirror/Mirror.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { observed, observeFlags } from "../roles/Observe.js"
import { exitWithParent } from "../roles/Report.js"
import { clientSecurityFlags, coherence, parseAge, parseFrom, readerBrokers, region, topic } from "./SharedFlags.js"

const parseServers = (t: string): Either.Either<ReadonlyArray<string>, string> => {
  const servers = t.split(",").map((s) => s.trim()).filter((s) => s !== "")
  const bad = servers.find((s) => !/^(nats:\/\/)?[^\s/:]+:\d+$/.test(s))
  return servers.length === 0 || bad !== undefined
    ? Either.left(`${bad ?? t} is not nats://HOST:PORT`)
    : Either.right(servers)
}

export const mirrorCommand = Cli.command({
  name: "mirror",
  summary: "Mirror a topic's total order into a NATS JetStream stream, exactly once (docs/mirror.md)",
  details:
    "Each message becomes one stream message (Nats-Msg-Id REGION/TOPIC/GENERATION/OFFSET, Cxlog-Offset, Cxlog-Timestamp, " +
    "Cxlog-Key, Cxlog-Headers), appended in offset order with the stream's expected last sequence. It resumes after " +
    "the stream's last message, holds retention in the region as a named consumer, and retries while JetStream is " +
    "unreachable (mirror-unavailable in metrics and `cxlog topics`).",
  flags: {
    region,
    coherence,
    topic: topic("the topic to mirror"),
    to: Cli.custom("to", "nats://HOST:PORT,…", parseServers, {
      default: ["nats://127.0.0.1:4222"],
      shown: "nats://127.0.0.1:4222",
      env: "CXLOG_MIRROR_TO",
      description: "the JetStream servers (any of a cluster's; the client fails over among them)"
    }),
    stream: Cli.optionalText("stream", {
      placeholder: "NAME",
      shown: "cxlog-TOPIC",
      env: "CXLOG_MIRROR_STREAM",
      description: "the stream (created when missing)"
    }),
    subject: Cli.optionalText("subject", {
      placeholder: "SUBJECT",
      shown: "cxlog.TOPIC",
      env: "CXLOG_MIRROR_SUBJECT",
      description: "the subject messages are published to"
    }),
    replicas: Cli.integer("replicas", {
      default: 3,
      min: 1,
      env: "CXLOG_MIRROR_REPLICAS",
      description: "replicas of a stream the mirror creates (1 for a single server)"
    }),
    consumer: Cli.optionalText("consumer", {
      placeholder: "NAME",
      shown: "mirror-STREAM (shortened with a hash past 24 bytes)",
      env: "CXLOG_MIRROR_CONSUMER",
      description:
        "the named consumer the mirror reads as (≤ 24 bytes): it holds retention until a message is in the stream"
    }),
    from: Cli.custom("from", "earliest|latest|OFFSET", parseFrom, {
      default: "earliest",
      shown: "earliest",
      description: "where an empty stream starts (a non-empty one resumes after its last message)"
    }),
    until: Cli.optionalInteger("until", {
      min: 0,
      placeholder: "OFFSET",
      shown: "run until stopped",
      description: "exit once every offset below this is in the stream"
    }),
    maxInFlight: Cli.integer("max-in-flight", {
      default: DEFAULT_MIRROR_IN_FLIGHT,
      min: 1,
      env: "CXLOG_MIRROR_IN_FLIGHT",
      description: "messages published and not yet acknowledged by JetStream, at most"
    }),
    requestTimeoutMs: Cli.millis("request-timeout-ms", {
      default: 5_000,
      min: 100,
      env: "CXLOG_MIRROR_TIMEOUT_MS",
      description: "how long one publish or stream request may take before the mirror resumes from the stream's end"
    }),
    retryFor: Cli.custom("retry-for", "AGE", parseAge, {
      default: 15 * 60_000,
      shown: "15m",
      env: "CXLOG_MIRROR_RETRY_FOR",
      description: "how long JetStream may stay unreachable before the mirror exits (mirror-unavailable meanwhile)"
    }),
    brokers: readerBrokers("read the topic over TCP from these brokers (with --region-id)"),
    regionId: Cli.optionalText("region-id", {
      placeholder: "ID",
      shown: "the region's own, read in place",
      env: "CXLOG_MIRROR_REGION_ID",
      description:
        "with --brokers: the region's id (its createdAtMs, `cxlog regions --json`), part of every Nats-Msg-Id"
    }),
    ...clientSecurityFlags,
    ...observeFlags
  },
  examples: [
    "cxlog mirror --topic events --to nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 --stream EVENTS",
    "cxlog mirror --topic events --to nats://127.0.0.1:4222 --replicas 1 --metrics-port 9410",
    "cxlog mirror --brokers 10.0.0.5:7400 --region-id 1763923436116 --topic events --to nats://10.0.1.9:4222"
  ],
  run: (o) =>
    Effect.gen(function*() {
      exitWithParent()
      if ((o.brokers === undefined) !== (o.regionId === undefined)) {
        return yield* failUsage(
          "--brokers and --region-id go together: a mirror reading over TCP names the region it reads (cxlog regions --json: createdAtMs)"
        )
      }
      const { clientSecurity } = yield* Cli.load(() => import("../admin/Users.js"))
      const { defaultConsumerName, defaultStreamName, mirror } = yield* Cli.load(() => import("../roles/Mirror.js"))
      const stream = o.stream ?? defaultStreamName(o.topic)
      const remote = o.brokers === undefined || o.regionId === undefined
        ? undefined
        : { subscriber: { brokers: parseAddresses(o.brokers), ...(yield* clientSecurity(o)) }, regionId: o.regionId }
      yield* mirror({
        region: { name: o.region, coherence: o.coherence },
        ...(remote === undefined ? {} : { remote }),
        topic: o.topic,
        servers: o.to,
        stream,
        subject: o.subject ?? defaultMirrorSubject(o.topic),
        replicas: o.replicas,
        consumer: o.consumer ?? defaultConsumerName(stream),
        from: o.from,
        maxInFlight: o.maxInFlight,
        requestTimeoutMs: o.requestTimeoutMs,
        retryForMs: o.retryFor,
        ...(o.until === undefined ? {} : { until: o.until })
      })
    }).pipe(observed("mirror", o))
})
