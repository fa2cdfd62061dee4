/**
 * `cxlog mirror`: a role that carries a topic's total order into a NATS JetStream stream,
 * exactly once (docs/mirror.md). It reads the region in place (on its host), or over TCP from
 * brokers with `--brokers` (then `--region-id` names the region, as `cxlog regions` shows it).
 */
import { Effect, Either, Layer } from "effect"
import { createHash } from "node:crypto"
import { CONSUMER_NAME_BYTES } from "../../layers/log/Records.js"
import * as MirrorLayers from "../../layers/mirror/Mirror.js"
import { parseAddresses } from "../../layers/net/ClientConnection.js"
import * as SubscriberLayers from "../../layers/net/Subscriber.js"
import { layerRemote, type RemoteSubscriberOptions } from "../../layers/net/SubscriberRemote.js"
import { regionId } from "../../layers/region/Superblock.js"
import { attachRegion, processSlot, reader, type RegionAccess } from "../../layers/Roles.js"
import {
  DEFAULT_MIRROR_IN_FLIGHT,
  defaultMirrorSubject,
  Mirror,
  type MirrorOptions,
  type MirrorState
} from "../../services/mirror/Mirror.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { clientSecurity } from "../admin/Users.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import {
  clientSecurityFlags,
  coherence,
  parseAge,
  parseFrom,
  readerBrokers,
  region,
  topic
} from "../commands/SharedFlags.js"
import { observed, observeFlags } from "./Observe.js"
import { exitWithParent, report, reportFailure } from "./Report.js"

export type MirrorRunOptions = Omit<MirrorOptions, "regionId"> & {
  readonly region: RegionAccess
  /** Read over TCP from brokers; the region's id must then be given. */
  readonly remote?: { readonly subscriber: RemoteSubscriberOptions; readonly regionId: string }
}

/** A stream name JetStream takes (no `.`, `*`, `>` or spaces), from the topic's name. */
export const defaultStreamName = (topic: string): string => `cxlog-${topic.replace(/[.*> ]/g, "_")}`

/**
 * The named consumer a mirror into `stream` reads as: `mirror-STREAM`, or, when that is longer than
 * a consumer name may be, the stream's first 8 characters and a hash of its whole name.
 */
export const defaultConsumerName = (stream: string): string => {
  const name = `mirror-${stream}`
  if (Buffer.byteLength(name) <= CONSUMER_NAME_BYTES) return name
  return `mirror-${stream.slice(0, 8)}-${createHash("sha256").update(stream).digest("hex").slice(0, 8)}`
}

/** Logs each change of state, with what the mirror says about it. */
const stateLogger = () => {
  let last: MirrorState | undefined
  return (status: Parameters<NonNullable<MirrorOptions["onStatus"]>>[0]) => {
    if (status.state === last) return
    last = status.state
    const where = `mirror ${status.topic} → ${status.stream} (${status.servers.join(",")})`
    const line = status.state === "mirroring"
      ? `${where}: mirroring from offset ${status.mirrored} (stream sequence ${status.streamSequence})`
      : `${where}: ${status.state} at offset ${status.mirrored}${
        status.detail === undefined ? "" : `: ${status.detail}`
      }`
    process.stderr.write(`${line}\n`)
    // An orchestrator (the bench) starts its measured load once the mirror runs, not while it boots.
    if (status.state === "mirroring") report({ event: "mirroring", offset: status.mirrored })
  }
}

/** Runs the mirror over the region (its id from the superblock) or over brokers. */
export const mirror = (options: MirrorRunOptions) => {
  const log = stateLogger()
  const runWith = (id: string) =>
    Effect.flatMap(Mirror, (service) =>
      service.run({
        ...options,
        regionId: id,
        onStatus: (status) => {
          log(status)
          options.onStatus?.(status)
        }
      }))
  const running = options.remote === undefined
    ? Effect.flatMap(CxlMemory, (memory) => runWith(regionId(memory))).pipe(
      Effect.provide(
        MirrorLayers.layer.pipe(
          Layer.provideMerge(SubscriberLayers.layer),
          Layer.provideMerge(
            reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion(options.region)))
          )
        )
      )
    )
    : runWith(options.remote.regionId).pipe(
      Effect.provide(MirrorLayers.layer.pipe(Layer.provide(layerRemote(options.remote.subscriber))))
    )
  return running.pipe(Effect.tapError((error) => Effect.sync(() => reportFailure(error))))
}

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
  details: "Each message becomes one stream message (Nats-Msg-Id REGION/TOPIC/OFFSET, Cxlog-Offset, Cxlog-Timestamp, " +
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
    requestTimeoutMs: Cli.integer("request-timeout-ms", {
      default: 5_000,
      min: 100,
      placeholder: "MS",
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
