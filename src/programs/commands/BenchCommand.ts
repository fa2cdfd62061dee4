/**
 * `cxlog bench`: a local cluster's throughput and ACK latency next to the loopback TCP bound;
 * also the round-trip (`rtt`) and mirror benches, and the hidden loopback roles they start.
 */
import { Effect, Either } from "effect"
import { bench } from "../Bench.js"
import { failUsage } from "../CliFailure.js"
import * as Cli from "../CliKit.js"
import { loopbackSend } from "../Loopback.js"
import { benchMirror } from "../MirrorBench.js"
import { withLogFormat } from "../Observe.js"
import { REDIS } from "../peers/RedisPeer.js"
import { loopbackEcho, rtt, type RttPeer } from "../Rtt.js"
import { clusterFlags, clusterObserveFlags, clusterShape } from "./ClusterFlags.js"

/** `--peers redis`: reference systems by name, comma-separated (`none`: only cxlog). */
const parsePeers = (text: string): Either.Either<ReadonlyArray<RttPeer>, string> => {
  const names = text.split(",").map((n) => n.trim()).filter((n) => n !== "" && n !== "none")
  const unknown = names.filter((n) => n !== REDIS)
  return unknown.length > 0 ? Either.left(`${unknown.join(", ")}: the peers are redis`) : Either.right(names as Array<RttPeer>)
}

export const benchCommand = Cli.command({
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
  examples: ["cxlog bench", "cxlog bench --type publish --bytes 1GiB --broker-count 2", "cxlog bench --type rtt --samples 5000", "cxlog bench --type rtt --local --peers redis"],
  run: (o) =>
    o.type !== "rtt" && o.peers.length > 0
      ? failUsage(`--peers is measured with --type rtt so far, not ${o.type}`)
      : o.type === "mirror"
      ? benchMirror({ messages: o.mirrorMessages, messageBytes: o.messageBytes, rateMBps: o.mirrorRateMbps, json: o.json }).pipe(Effect.asVoid)
      : o.type === "rtt"
      ? rtt({ brokers: o.brokerCount, messageBytes: o.messageBytes, order: clusterShape(o).order, samples: o.samples, json: o.json, peers: o.peers, local: o.local }).pipe(Effect.asVoid)
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

export const loopbackSendCommand = Cli.command({
  name: "loopback-send",
  summary: "internal: the sending side of the loopback TCP reference",
  hidden: true,
  positional: "PORT BYTES CHUNK",
  flags: {},
  run: (_, args) => loopbackSend(Number(args[0] ?? 0), Number(args[1] ?? 0), Number(args[2] ?? 65536))
})

export const loopbackEchoCommand = Cli.command({
  name: "loopback-echo",
  summary: "internal: the echo side of the TCP ping-pong reference",
  hidden: true,
  flags: {},
  run: () => loopbackEcho
})
