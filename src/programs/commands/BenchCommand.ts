/**
 * `cxlog bench`: a local cluster's throughput and ACK latency next to the loopback TCP bound;
 * also the round-trip (`rtt`) and mirror benches, and the hidden loopback roles they start.
 */
import { Effect, Either } from "effect"
import { BENCH_PEERS, type BenchPeer } from "../bench/peers/PeerNames.js"
import { STAMP_BYTES } from "../bench/peers/PeerReadBack.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { clusterFlags, clusterObserveFlags, clusterShape } from "./ClusterFlags.js"

/** `--peers redis,nats`: reference systems by name, comma-separated, each once (`none`: only cxlog). */
const parsePeers = (text: string): Either.Either<ReadonlyArray<BenchPeer>, string> => {
  const names = [...new Set(text.split(",").map((n) => n.trim()).filter((n) => n !== "" && n !== "none"))]
  const unknown = names.filter((n) => !(BENCH_PEERS as ReadonlyArray<string>).includes(n))
  return unknown.length > 0
    ? Either.left(`${unknown.join(", ")}: the peers are ${BENCH_PEERS.join(", ")}`)
    : Either.right(names as Array<BenchPeer>)
}

export const benchCommand = Cli.command({
  name: "bench",
  summary: "Measure a local cluster's throughput and ACK latency next to the loopback TCP bound",
  flags: {
    ...clusterFlags("256MiB"),
    type: Cli.choice("type", [
      "publish",
      "e2e",
      "latency",
      "rtt",
      "mirror",
      "topics",
      "channel",
      "service",
      "supervisor",
      "group"
    ], {
      default: "e2e",
      env: "CXLOG_BENCH_TYPE",
      description:
        "publish (publish → ACK), e2e (with an auditing subscriber), latency (at --rate-mbps), rtt (one message at a time, next to a TCP ping-pong), " +
        "mirror (cxlog mirror into a 3-node JetStream cluster next to publishing to it directly; docs/mirror.md), " +
        "topics (--topics topics created, written, audited, deleted and created again in a region of at most 1 GiB, and one client's MB/s over --ratio-topics topics ÷ into one; docs/topics.md), " +
        "channel (a channel by name between two processes, one way, next to process.send and a Unix socket in the same run: latency one value at a time, and 64 B values/s; docs/ipc.md), " +
        "service (a service call by name between two processes, next to a process.send round trip; docs/ipc.md), " +
        "supervisor (a supervised child serving by name SIGKILLed --kills times: the kill to its replacement serving again, next to its first start; docs/ipc.md), " +
        "group (--members processes of a consumer group sharing --messages messages, each worked on and acked once, audited; with --peers the same pool on Redis Streams and JetStream; docs/consumers.md)"
    }),
    members: Cli.integer("members", {
      default: 4,
      min: 1,
      env: "CXLOG_BENCH_MEMBERS",
      description: "group: member processes of every system's group"
    }),
    messages: Cli.integer("messages", {
      default: 50_000,
      min: 1,
      env: "CXLOG_BENCH_MESSAGES",
      description: "group: messages the members share (each --message-bytes)"
    }),
    byKey: Cli.toggle("by-key", {
      description: "group: cxlog's group keeps each key with one member (1 000 keys; the peers have no such mode)"
    }),
    killMember: Cli.toggle("kill-member", {
      description:
        "group: SIGKILL a member --kills times at random points and start it again; redeliveredWithinMs (the kill to the first delivery elsewhere of what it held) and lost"
    }),
    kills: Cli.integer("kills", {
      default: 10,
      min: 1,
      env: "CXLOG_BENCH_KILLS",
      description:
        "group --kill-member: how many times a member is SIGKILLed; supervisor: how many times the supervised child is"
    }),
    topics: Cli.integer("topics", {
      default: 10_000,
      min: 1,
      env: "CXLOG_BENCH_TOPICS",
      description: "topics: how many 64 KiB topics to create, write, audit, delete and create again"
    }),
    ratioTopics: Cli.integer("ratio-topics", {
      default: 1_000,
      min: 1,
      env: "CXLOG_BENCH_RATIO_TOPICS",
      description: "topics: how many topics one client's 1 KiB messages are spread over, next to one topic"
    }),
    channelValues: Cli.integer("channel-values", {
      // A run of 100 000 lasts about 40 ms and reads low, both ends' code still warming.
      default: 2_000_000,
      min: 1,
      env: "CXLOG_BENCH_CHANNEL_VALUES",
      description: "channel: 64 B values per throughput run"
    }),
    mirrorMessages: Cli.integer("mirror-messages", {
      default: 20_000,
      min: 1,
      env: "CXLOG_BENCH_MIRROR_MESSAGES",
      description: "mirror: messages of each measured step"
    }),
    mirrorRateMbps: Cli.float("mirror-rate-mbps", {
      default: 5,
      env: "CXLOG_BENCH_MIRROR_RATE_MBPS",
      description: "mirror: the steady load its lag is measured under, MB/s"
    }),
    rateMbps: Cli.float("rate-mbps", {
      default: 50,
      env: "CXLOG_RATE_MBPS",
      description: "latency: the offered load in MB/s"
    }),
    samples: Cli.integer("samples", {
      default: 2_000,
      min: 1,
      env: "CXLOG_SAMPLES",
      description: "rtt: round trips measured; channel: one-way values measured per transport"
    }),
    peers: Cli.custom("peers", "redis|nats|none", parsePeers, {
      default: [],
      shown: "none",
      env: "CXLOG_BENCH_PEERS",
      description:
        "also run these reference systems (comma-separated: redis,nats) on servers the bench starts on loopback: publish, e2e, latency the same workload, taking turns with cxlog " +
        "(twice each; publish and e2e MB/s, ACK p50/p99 per message from its publish call, CPU s/GiB of server and client; each consumer in its own process), checked to be the same " +
        "messages, warm-up and storage (memory up to --ack 1, disk at --ack 2); rtt in the same interleaved loop. redis: Debian's redis-server with ioredis; nats: Debian's nats-server"
    }),
    json: Cli.toggle("json", { description: "print only the JSON line" }),
    tls: Cli.toggle("tls", {
      env: "CXLOG_BENCH_TLS",
      description:
        "after a plain warm-up, run plain, with TLS + authentication (a throwaway CA) twice, plain; ratio = mean secured MB/s ÷ mean plain MB/s"
    }),
    ...clusterObserveFlags
  },
  examples: [
    "cxlog bench",
    "cxlog bench --type publish --bytes 1GiB --broker-count 2",
    "cxlog bench --peers redis,nats",
    "cxlog bench --type rtt --samples 5000",
    "cxlog bench --type rtt --local --peers redis",
    "cxlog bench --type topics --topics 10000 --json",
    "cxlog bench --type channel --json",
    "cxlog bench --type supervisor --kills 10 --json",
    "cxlog bench --type group --members 4 --local --peers redis,nats",
    "cxlog bench --type group --members 4 --local --by-key --kill-member"
  ],
  run: (o) => {
    const type = o.type
    return o.peers.length > 0 && (type === "mirror" || o.tls)
      ? failUsage(`--peers is not measured with ${type === "mirror" ? "--type mirror" : "--tls"}`)
      : o.peers.length > 0 && type === "channel"
      ? failUsage("--peers is not measured with --type channel")
      : type === "group"
      ? benchGroupOf(o)
      : type === "mirror"
      ? benchWith(() => import("../bench/MirrorBench.js"), (m) =>
        m.benchMirror({
          messages: o.mirrorMessages,
          messageBytes: o.messageBytes,
          rateMBps: o.mirrorRateMbps,
          json: o.json
        }))
      : type === "channel"
      ? benchWith(
        () => import("../bench/ChannelBench.js"),
        (m) => m.channelBench({ samples: o.samples, values: o.channelValues, json: o.json })
      )
      : type === "topics"
      ? benchWith(() => import("../bench/TopicsBench.js"), (m) =>
        m.benchTopics({
          topics: o.topics,
          ratioTopics: o.ratioTopics,
          ratioBytes: o.bytes,
          rounds: 3,
          json: o.json,
          local: o.local
        }))
      : type === "supervisor"
      ? benchWith(
        () => import("../bench/SupervisorBench.js"),
        (m) => m.benchSupervisor({ kills: o.kills, json: o.json })
      )
      : type === "service"
      ? benchWith(
        () => import("../bench/ServiceBench.js"),
        (m) => m.benchService({ samples: o.samples, messageBytes: o.messageBytes, json: o.json })
      )
      : type === "rtt"
      ? benchWith(() => import("../bench/Rtt.js"), (m) =>
        m.rtt({
          brokers: o.brokerCount,
          messageBytes: o.messageBytes,
          order: clusterShape(o).order,
          samples: o.samples,
          json: o.json,
          peers: o.peers,
          local: o.local
        }))
      : Effect.gen(function*() {
        const { bench } = yield* Cli.load(() => import("../bench/Bench.js"))
        const { withLogFormat } = yield* Cli.load(() => import("../roles/Observe.js"))
        yield* bench({
          ...clusterShape(o),
          type,
          rateMBps: o.rateMbps,
          json: o.json,
          tls: o.tls,
          metricsPort: o.metricsPort,
          remoteSubscribers: o.remoteSubscribers,
          peers: o.peers,
          ...(o.report === undefined ? {} : { report: o.report })
        }).pipe(withLogFormat(o.logFormat))
      })
  }
})

/** Runs `go` over the bench module that `module` loads, when its type is the one asked for. */
const benchWith = <M, E, R>(module: () => Promise<M>, go: (m: M) => Effect.Effect<unknown, E, R>) =>
  Effect.asVoid(Effect.flatMap(Cli.load(module), go))

/** `--type group`: members local (`--local`, mapping the region) or through a broker; kills are cxlog's alone, and local. */
const benchGroupOf = (o: {
  readonly local: boolean
  readonly peers: ReadonlyArray<BenchPeer>
  readonly killMember: boolean
  readonly kills: number
  readonly members: number
  readonly messages: number
  readonly messageBytes: number
  readonly byKey: boolean
  readonly json: boolean
}) =>
  o.killMember && !o.local
    ? failUsage("--kill-member kills local members: add --local")
    : o.killMember && o.peers.length > 0
    ? failUsage("--kill-member measures cxlog's group alone: drop --peers")
    : benchWith(() => import("../bench/groups/GroupBench.js"), (m) =>
      m.benchGroup({
        members: o.members,
        messages: o.messages,
        // Each message carries its 4-byte stamp (its index).
        messageBytes: Math.max(o.messageBytes, STAMP_BYTES),
        byKey: o.byKey,
        remote: !o.local,
        peers: o.peers,
        kills: o.killMember ? o.kills : 0,
        json: o.json
      }))

export const benchGroupMemberCommand = Cli.command({
  name: "bench-group-member",
  summary: "internal: a member of the group bench, in a process of its own",
  hidden: true,
  positional: "SYSTEM ADDRESS GROUP MESSAGES [RECORD_FILE]",
  flags: {},
  run: (_, args) =>
    Cli.load(() => import("../bench/groups/MemberMain.js")).pipe(
      Effect.flatMap((m) =>
        m.groupBenchMember(args[0] ?? "", args[1] ?? "", args[2] ?? "", Number(args[3] ?? 0), args[4] ?? "")
      )
    )
})

export const loopbackSendCommand = Cli.command({
  name: "loopback-send",
  summary: "internal: the sending side of the loopback TCP reference",
  hidden: true,
  positional: "PORT BYTES CHUNK",
  flags: {},
  run: (_, args) =>
    Cli.load(() => import("../bench/Loopback.js")).pipe(
      Effect.flatMap((m) => m.loopbackSend(Number(args[0] ?? 0), Number(args[1] ?? 0), Number(args[2] ?? 65536)))
    )
})

export const peerConsumeCommand = Cli.command({
  name: "peer-consume",
  summary: "internal: a bench peer's e2e consumer, in a process of its own",
  hidden: true,
  positional: "PEER ADDRESS STREAM MESSAGES PAYLOAD_BYTES",
  flags: {},
  run: (_, args) =>
    Cli.load(() => import("../bench/peers/PeerConsumerMain.js")).pipe(
      Effect.flatMap((m) =>
        m.peerConsume(args[0] ?? "", args[1] ?? "", args[2] ?? "", Number(args[3] ?? 0), Number(args[4] ?? 0))
      )
    )
})

export const serviceBenchServerCommand = Cli.command({
  name: "bench-service-server",
  summary: "internal: the serving side of the service bench (CXLOG_REGION names the region)",
  hidden: true,
  flags: {},
  run: () => Cli.load(() => import("../bench/ServiceBench.js")).pipe(Effect.flatMap((m) => m.serviceBenchServer))
})

export const loopbackEchoCommand = Cli.command({
  name: "loopback-echo",
  summary: "internal: the echo side of the TCP ping-pong reference",
  hidden: true,
  flags: {},
  run: () => Cli.load(() => import("../bench/Rtt.js")).pipe(Effect.flatMap((m) => m.loopbackEcho))
})

export const channelBenchPeerCommand = Cli.command({
  name: "channel-bench-peer",
  summary: "internal: the receiving process of the channel bench",
  hidden: true,
  positional: "CONFIG",
  flags: {},
  run: (_, args) =>
    Cli.load(() => import("../bench/ChannelBenchPeer.js")).pipe(
      Effect.flatMap((m) => m.channelBenchPeer(args[0] ?? "{}"))
    )
})
