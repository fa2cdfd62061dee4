/**
 * `cxlog bench --peers redis,nats` for publish, e2e and latency: the same workload on Redis
 * Streams and NATS JetStream (peers/PeerLoad.ts) beside cxlog's run, in one bench, measured
 * like for like: the same messages and sizes and warm-up, the same clock points (ACK latency
 * per message from its publish call; MB/s from the first publish to the last ACK and, e2e, to
 * the last message read by a consumer in its own process), storage matching cxlog's ACK level —
 * and checked: a peer whose server stored another count, whose messages had another size, whose
 * warm-up differed or whose storage does not match fails the bench (`PeerMismatch`).
 *
 * Each peer's server is started before any cluster (a missing one fails the bench in one line)
 * on a loopback port the bench chose; the systems take turns ROUNDS times (cxlog, redis, nats,
 * cxlog, …), so load that drifts on a shared machine weighs on all alike, and each figure is
 * the mean of a system's rounds. cxlog's CPU is split as the peers' is: server (head and
 * brokers) and client (publisher and subscribers).
 */
import { Data, Effect, type Scope } from "effect"
import { table } from "../report/Table.js"
import { byRoleGroup, type RunSummary } from "../run/RunSummary.js"
import {
  payloadBytesOf,
  type PeerClient,
  type PeerCpu,
  type PeerFigures,
  type PeerWorkload,
  runPeerLoad,
  storageForAckLevel,
  type StorageKind
} from "./peers/PeerLoad.js"
import type { BenchPeer } from "./peers/PeerNames.js"
import type { PeerFailed, PeerUnavailable } from "./peers/PeerServer.js"
import { PEER_SPECS } from "./peers/PeerSpecs.js"

/** Turns each system takes: twice, so no system has only the first (coldest) or the last turn. */
const ROUNDS = 2

/** A peer ran another workload than cxlog's, or kept it elsewhere: its figures would not compare. */
export class PeerMismatch
  extends Data.TaggedError("PeerMismatch")<{ readonly peer: string; readonly differences: ReadonlyArray<string> }>
{
  override get message() {
    return `${this.peer} did not run cxlog's workload (${
      this.differences.join("; ")
    }): its figures would not compare, so the bench stops`
  }
}

/** What every system must have run, as cxlog ran it. */
export interface BenchWorkload {
  readonly type: PeerWorkload["type"]
  readonly messages: number
  /** Payload bytes of each message. */
  readonly messageBytes: number
  readonly warmupMessages: number
  readonly storage: StorageKind
}

/** cxlog's run as the workload the peers must match. */
export const workloadOf = (type: PeerWorkload["type"], summary: RunSummary): BenchWorkload => ({
  type,
  messages: summary.messages,
  messageBytes: payloadBytesOf(summary.messageBytes),
  warmupMessages: summary.warmupMessages,
  storage: storageForAckLevel(summary.ackLevel)
})

/** How a peer's run differs from cxlog's workload (empty: like for like). */
export const differences = (cxlog: BenchWorkload, figures: PeerFigures): ReadonlyArray<string> => [
  ...(figures.messages === cxlog.messages
    ? []
    : [`its server stored ${figures.messages} messages, cxlog published ${cxlog.messages}`]),
  ...(figures.messageBytes === cxlog.messageBytes
    ? []
    : [`its messages had ${figures.messageBytes} bytes, cxlog's ${cxlog.messageBytes}`]),
  ...(figures.warmupMessages === cxlog.warmupMessages
    ? []
    : [`its warm-up stored ${figures.warmupMessages} messages, cxlog's was ${cxlog.warmupMessages}`]),
  ...(figures.storage.kind === cxlog.storage
    ? []
    : [
      `it kept them in ${figures.storage.kind} (${figures.storage.detail}), cxlog's ACK level means ${cxlog.storage}`
    ]),
  ...(cxlog.type !== "e2e" || (figures.consumerPid !== undefined && figures.consumerPid !== process.pid)
    ? []
    : ["its consumer did not run in a process of its own"])
]

export interface PeerComparison {
  /** cxlog's run, its figures the mean of its rounds. */
  readonly summary: RunSummary
  readonly workload: BenchWorkload
  readonly cxlogRunsMBps: ReadonlyArray<number>
  readonly peers: ReadonlyArray<
    {
      readonly peer: string
      readonly window: number
      readonly figures: PeerFigures
      readonly runsMBps: ReadonlyArray<number>
    }
  >
}

export interface StartedPeer {
  readonly peer: BenchPeer
  readonly client: PeerClient
}

/** Each peer's server (with the storage cxlog's `ackLevel` means) and client, started before anything is measured; stopped when the scope closes. */
export const startPeers = (
  peers: ReadonlyArray<BenchPeer>,
  ackLevel: number
): Effect.Effect<ReadonlyArray<StartedPeer>, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.forEach(
    peers,
    (peer) => Effect.map(PEER_SPECS[peer].load(storageForAckLevel(ackLevel)), (client) => ({ peer, client }))
  )

const round = (n: number, places: number) => Math.round(n * 10 ** places) / 10 ** places
const mean = (values: ReadonlyArray<number>, places: number) =>
  round(values.reduce((a, b) => a + b, 0) / values.length, places)

/** cxlog's runs as one: the mean of each figure the bench reports (the audit passed in every run, or the run failed). */
const meanSummary = (runs: ReadonlyArray<RunSummary>): RunSummary => {
  const of = (figure: (s: RunSummary) => number, places: number) => mean(runs.map(figure), places)
  const cpu = runs[0]!.cpuSecondsPerGiB
  return {
    ...runs[0]!,
    batches: of((s) => s.batches, 0),
    elapsedMs: of((s) => s.elapsedMs, 0),
    throughputMBps: of((s) => s.throughputMBps, 1),
    publishMBps: of((s) => s.publishMBps, 1),
    e2eMBps: runs[0]!.e2eMBps === null ? null : of((s) => s.e2eMBps ?? 0, 1),
    ackLatencyP50Us: of((s) => s.ackLatencyP50Us, 0),
    ackLatencyP99Us: of((s) => s.ackLatencyP99Us, 0),
    cpuSecondsPerGiB: Object.fromEntries(
      Object.keys(cpu).map((role) => [role, of((s) => s.cpuSecondsPerGiB[role as keyof typeof cpu], 2)])
    ) as RunSummary["cpuSecondsPerGiB"],
    mainThreads: byRoleGroup((group) => ({
      seconds: of((s) => s.mainThreads[group].seconds, 3),
      wakes: of((s) => s.mainThreads[group].wakes, 0)
    }))
  }
}

/** A peer's rounds as one: what ran (checked equal in every round), the means of what was measured. */
const meanFigures = (runs: ReadonlyArray<PeerFigures>): PeerFigures => {
  const of = (figure: (f: PeerFigures) => number, places: number) => mean(runs.map(figure), places)
  const first = runs[0]!
  const audits = runs.flatMap((r) => (r.auditPassed === undefined ? [] : [r.auditPassed]))
  return {
    messages: first.messages,
    messageBytes: first.messageBytes,
    warmupMessages: first.warmupMessages,
    storage: first.storage,
    throughputMBps: of((f) => f.throughputMBps, 1),
    publishMBps: of((f) => f.publishMBps, 1),
    ackLatencyP50Us: of((f) => f.ackLatencyP50Us, 0),
    ackLatencyP99Us: of((f) => f.ackLatencyP99Us, 0),
    cpuSecondsPerGiB: {
      server: of((f) => f.cpuSecondsPerGiB.server, 2),
      client: of((f) => f.cpuSecondsPerGiB.client, 2),
      total: of((f) => f.cpuSecondsPerGiB.total, 2)
    },
    ...(audits.length === 0
      ? {}
      : { auditPassed: audits.every((passed) => passed), e2eMBps: of((f) => f.e2eMBps ?? 0, 1) }),
    ...(first.consumerPid === undefined ? {} : { consumerPid: first.consumerPid })
  }
}

/**
 * cxlog's run (`runCxlog`) and each peer's in turn, ROUNDS times; the peers run cxlog's workload
 * (its messages, their size, its warm-up) and every run of theirs is checked to have done so.
 */
export const comparePeers = <E, R>(
  peers: ReadonlyArray<{ readonly peer: string; readonly client: PeerClient }>,
  load: Pick<PeerWorkload, "type" | "rateMBps">,
  runCxlog: Effect.Effect<RunSummary, E, R>
): Effect.Effect<PeerComparison, E | PeerFailed | PeerMismatch, R> =>
  Effect.gen(function*() {
    const cxlogRuns: Array<RunSummary> = []
    const peerRuns = peers.map(() => [] as Array<PeerFigures>)
    for (let r = 0; r < ROUNDS; r++) {
      const cxlog = yield* runCxlog
      cxlogRuns.push(cxlog)
      const workload = {
        ...load,
        messages: cxlog.messages,
        messageBytes: cxlog.messageBytes,
        warmupMessages: cxlog.warmupMessages
      }
      const expected = workloadOf(load.type, cxlog)
      for (let p = 0; p < peers.length; p++) {
        const figures = yield* runPeerLoad(peers[p]!.client, workload)
        const found = differences(expected, figures)
        if (found.length > 0) return yield* new PeerMismatch({ peer: peers[p]!.peer, differences: found })
        peerRuns[p]!.push(figures)
      }
    }
    const summary = meanSummary(cxlogRuns)
    return {
      summary,
      workload: workloadOf(load.type, summary),
      cxlogRunsMBps: cxlogRuns.map((s) => s.e2eMBps ?? s.publishMBps),
      peers: peers.map(({ client, peer }, p) => ({
        peer,
        window: client.window,
        figures: meanFigures(peerRuns[p]!),
        runsMBps: peerRuns[p]!.map((f) => f.e2eMBps ?? f.publishMBps)
      }))
    }
  })

/** cxlog's CPU split as the peers' is: server (head, brokers), client (publisher, subscribers). */
const cxlogCpu = (summary: RunSummary): PeerCpu => {
  const { brokers, head, publisher, remoteSubscribers, subscriber, total } = summary.cpuSecondsPerGiB
  return { server: round(head + brokers, 2), client: round(publisher + subscriber + remoteSubscribers, 2), total }
}

/** cxlog's figure over a peer's, like with like (undefined where either lacks it). */
const over = (
  cxlog: number | null | undefined,
  peer: number | undefined
) => (cxlog == null || peer === undefined || peer <= 0 ? undefined : round(cxlog / peer, 2))

/** The bench JSON's peers: what every system ran (checked), each one's figures (mean of its rounds) and cxlog's over each one's, by clock. */
export const peersJson = (comparison: PeerComparison) => ({
  peerRounds: ROUNDS,
  likeForLike: { ...comparison.workload, ackLatencyFrom: "each message's publish call", checked: true },
  cxlogRunsMBps: comparison.cxlogRunsMBps,
  peers: Object.fromEntries(
    comparison.peers.map(({ figures, peer, runsMBps, window }) => [peer, { ...figures, window, runsMBps }])
  ),
  vsPeers: Object.fromEntries(comparison.peers.map(({ figures, peer }) => {
    const e2e = over(comparison.summary.e2eMBps, figures.e2eMBps)
    return [peer, {
      publish: over(comparison.summary.publishMBps, figures.publishMBps),
      ...(e2e === undefined ? {} : { e2e })
    }]
  }))
})

/** The side-by-side table: cxlog's row, then each peer's; under it, what was checked to be the same. */
export const peersTable = (comparison: PeerComparison): string => {
  const { summary, workload } = comparison
  const cpu = cxlogCpu(summary)
  const e2e = workload.type === "e2e"
  const ratio = (cxlog: number | null, peer: number | undefined) => over(cxlog, peer) ?? ""
  const rows = table(
    [
      `${workload.type}, ${workload.messages} × ${workload.messageBytes} B (mean of ${ROUNDS} turns each)`,
      "publish MB/s",
      ...(e2e ? ["e2e MB/s"] : []),
      "ACK p50 µs",
      "ACK p99 µs",
      "CPU s/GiB server",
      "client",
      "total",
      `cxlog ÷ this${e2e ? " (publish, e2e)" : ""}`
    ],
    [
      [
        `cxlog, ${summary.local ? "a local publisher" : `${summary.brokers} brokers`}, ${workload.storage}`,
        summary.publishMBps,
        ...(e2e ? [summary.e2eMBps ?? ""] : []),
        summary.ackLatencyP50Us,
        summary.ackLatencyP99Us,
        cpu.server,
        cpu.client,
        cpu.total,
        "1"
      ],
      ...comparison.peers.map(({ figures, peer, window }) => [
        `${PEER_SPECS[peer as BenchPeer]?.label(window, figures.storage) ?? peer}${
          figures.auditPassed === undefined
            ? ""
            : `; read back ${figures.auditPassed ? "once, in order" : "FAILED its audit"}`
        }`,
        figures.publishMBps,
        ...(e2e ? [figures.e2eMBps ?? ""] : []),
        figures.ackLatencyP50Us,
        figures.ackLatencyP99Us,
        figures.cpuSecondsPerGiB.server,
        figures.cpuSecondsPerGiB.client,
        figures.cpuSecondsPerGiB.total,
        e2e
          ? `${ratio(summary.publishMBps, figures.publishMBps)}, ${ratio(summary.e2eMBps, figures.e2eMBps)}`
          : `${ratio(summary.publishMBps, figures.publishMBps)}`
      ])
    ]
  )
  const checked =
    `like for like (checked): every system ${workload.messages} messages of ${workload.messageBytes} B after ${workload.warmupMessages} warm-up, ` +
    `kept ${
      workload.storage === "disk" ? "on disk" : "in memory"
    }; ACK latency from each message's publish call; publish MB/s to the last ACK${
      e2e ? ", e2e MB/s to the last message read by a consumer in its own process" : ""
    }`
  return `${rows}\n${checked}`
}
