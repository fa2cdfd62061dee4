/**
 * `cxlog bench --peers redis,nats` for publish, e2e and latency: the same workload on Redis
 * Streams and NATS JetStream (peers/PeerLoad.ts) beside cxlog's run, in one bench. Each peer's
 * server is started before any cluster (a missing one fails the bench in one line) on a
 * loopback port the bench chose; the systems take turns ROUNDS times (cxlog, redis, nats,
 * cxlog, …), so load that drifts on a shared machine weighs on all alike, and each figure is
 * the mean of a system's rounds. cxlog's CPU is split as the peers' is: server (head and
 * brokers) and client (publisher and subscribers).
 */
import { Effect, type Scope } from "effect"
import { table } from "../Table.js"
import { NATS } from "./peers/NatsCluster.js"
import { natsLoad } from "./peers/NatsLoad.js"
import { type PeerClient, type PeerCpu, type PeerFigures, type PeerWorkload, runPeerLoad } from "./peers/PeerLoad.js"
import type { PeerFailed, PeerUnavailable } from "./peers/PeerServer.js"
import { redisLoad } from "./peers/RedisLoad.js"
import { REDIS } from "./peers/RedisPeer.js"
import { byRoleGroup, type RunSummary } from "./RunSummary.js"

/** The reference systems `--peers` may name. */
export const BENCH_PEERS = [REDIS, NATS] as const
export type BenchPeer = (typeof BENCH_PEERS)[number]

/** Turns each system takes: twice, so no system has only the first (coldest) or the last turn. */
const ROUNDS = 2

const LABELS: Record<BenchPeer, (window: number) => string> = {
  redis: (window) => `Redis Streams: pipelined XADD, ≤ ${window} in flight (ioredis), no persistence`,
  nats: (window) => `NATS JetStream: js.publish, ≤ ${window} PubAcks in flight, file storage`
}

export interface PeerComparison {
  /** cxlog's run, its figures the mean of its rounds. */
  readonly summary: RunSummary
  readonly cxlogRunsMBps: ReadonlyArray<number>
  readonly peers: ReadonlyArray<{ readonly peer: BenchPeer; readonly window: number; readonly figures: PeerFigures; readonly runsMBps: ReadonlyArray<number> }>
}

export interface StartedPeer {
  readonly peer: BenchPeer
  readonly client: PeerClient
}

/** Each peer's server and client, started before anything is measured; stopped when the scope closes. */
export const startPeers = (peers: ReadonlyArray<BenchPeer>): Effect.Effect<ReadonlyArray<StartedPeer>, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.forEach(peers, (peer) => Effect.map(peer === REDIS ? redisLoad : natsLoad, (client) => ({ peer, client })))

const round = (n: number, places: number) => Math.round(n * 10 ** places) / 10 ** places
const mean = (values: ReadonlyArray<number>, places: number) => round(values.reduce((a, b) => a + b, 0) / values.length, places)

/** cxlog's runs as one: the mean of each figure the bench reports (the audit passed in every run, or the run failed). */
const meanSummary = (runs: ReadonlyArray<RunSummary>): RunSummary => {
  const of = (figure: (s: RunSummary) => number, places: number) => mean(runs.map(figure), places)
  const cpu = runs[0]!.cpuSecondsPerGiB
  return {
    ...runs[0]!,
    batches: of((s) => s.batches, 0),
    elapsedMs: of((s) => s.elapsedMs, 0),
    throughputMBps: of((s) => s.throughputMBps, 1),
    ackLatencyP50Us: of((s) => s.ackLatencyP50Us, 0),
    ackLatencyP99Us: of((s) => s.ackLatencyP99Us, 0),
    cpuSecondsPerGiB: Object.fromEntries(Object.keys(cpu).map((role) => [role, of((s) => s.cpuSecondsPerGiB[role as keyof typeof cpu], 2)])) as RunSummary["cpuSecondsPerGiB"],
    mainThreads: byRoleGroup((group) => ({ seconds: of((s) => s.mainThreads[group].seconds, 3), wakes: of((s) => s.mainThreads[group].wakes, 0) }))
  }
}

const meanFigures = (runs: ReadonlyArray<PeerFigures>): PeerFigures => {
  const of = (figure: (f: PeerFigures) => number, places: number) => mean(runs.map(figure), places)
  const audits = runs.flatMap((r) => (r.auditPassed === undefined ? [] : [r.auditPassed]))
  return {
    throughputMBps: of((f) => f.throughputMBps, 1),
    ackLatencyP50Us: of((f) => f.ackLatencyP50Us, 0),
    ackLatencyP99Us: of((f) => f.ackLatencyP99Us, 0),
    cpuSecondsPerGiB: { server: of((f) => f.cpuSecondsPerGiB.server, 2), client: of((f) => f.cpuSecondsPerGiB.client, 2), total: of((f) => f.cpuSecondsPerGiB.total, 2) },
    ...(audits.length === 0 ? {} : { auditPassed: audits.every((passed) => passed), publishedMBps: of((f) => f.publishedMBps ?? 0, 1) })
  }
}

/**
 * cxlog's run (`runCxlog`) and each peer's in turn, ROUNDS times; the peers' messages are as many
 * and as large as cxlog's, after as many unmeasured (cxlog's `--warmup`).
 */
export const comparePeers = <E, R>(
  peers: ReadonlyArray<StartedPeer>,
  load: Pick<PeerWorkload, "type" | "rateMBps">,
  runCxlog: Effect.Effect<RunSummary, E, R>
): Effect.Effect<PeerComparison, E | PeerFailed, R> =>
  Effect.gen(function*() {
    const cxlogRuns: Array<RunSummary> = []
    const peerRuns = peers.map(() => [] as Array<PeerFigures>)
    for (let r = 0; r < ROUNDS; r++) {
      const cxlog = yield* runCxlog
      cxlogRuns.push(cxlog)
      const workload = { ...load, messages: cxlog.messages, messageBytes: cxlog.messageBytes, warmupMessages: cxlog.warmupMessages }
      for (let p = 0; p < peers.length; p++) peerRuns[p]!.push(yield* runPeerLoad(peers[p]!.client, workload))
    }
    return {
      summary: meanSummary(cxlogRuns),
      cxlogRunsMBps: cxlogRuns.map((s) => s.throughputMBps),
      peers: peers.map(({ client, peer }, p) => ({ peer, window: client.window, figures: meanFigures(peerRuns[p]!), runsMBps: peerRuns[p]!.map((f) => f.throughputMBps) }))
    }
  })

/** cxlog's CPU split as the peers' is: server (head, brokers), client (publisher, subscribers). */
const cxlogCpu = (summary: RunSummary): PeerCpu => {
  const { brokers, head, publisher, remoteSubscribers, subscriber, total } = summary.cpuSecondsPerGiB
  return { server: round(head + brokers, 2), client: round(publisher + subscriber + remoteSubscribers, 2), total }
}

/** The bench JSON's peers: each one's figures (mean of its rounds) and cxlog's MB/s over each one's. */
export const peersJson = (comparison: PeerComparison) => ({
  peerRounds: ROUNDS,
  cxlogRunsMBps: comparison.cxlogRunsMBps,
  peers: Object.fromEntries(comparison.peers.map(({ figures, peer, runsMBps, window }) => [peer, { ...figures, window, runsMBps }])),
  vsPeers: Object.fromEntries(comparison.peers.map(({ figures, peer }) => [peer, round(comparison.summary.throughputMBps / figures.throughputMBps, 2)]))
})

/** The side-by-side table: cxlog's row, then each peer's. */
export const peersTable = (type: PeerWorkload["type"], comparison: PeerComparison): string => {
  const { summary } = comparison
  const cpu = cxlogCpu(summary)
  return table([`${type}, ${summary.messages} × ${summary.messageBytes} B (mean of ${ROUNDS} turns each)`, "MB/s", "ACK p50 µs", "ACK p99 µs", "CPU s/GiB server", "client", "total", "cxlog ÷ this"], [
    [`cxlog, ${summary.local ? "a local publisher" : `${summary.brokers} brokers`}`, summary.throughputMBps, summary.ackLatencyP50Us, summary.ackLatencyP99Us, cpu.server, cpu.client, cpu.total, 1],
    ...comparison.peers.map(({ figures, peer, window }) => [
      `${LABELS[peer](window)}${figures.auditPassed === undefined ? "" : `; read back ${figures.auditPassed ? "once, in order" : "FAILED its audit"}`}`,
      figures.throughputMBps,
      figures.ackLatencyP50Us,
      figures.ackLatencyP99Us,
      figures.cpuSecondsPerGiB.server,
      figures.cpuSecondsPerGiB.client,
      figures.cpuSecondsPerGiB.total,
      round(summary.throughputMBps / figures.throughputMBps, 2)
    ])
  ])
}
