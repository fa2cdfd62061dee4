/**
 * `cxlog bench`: a shared-log throughput harness over a real local cluster (the same
 * processes as `cxlog run`), next to the loopback TCP bound — one Node process streaming the
 * same bytes to another over 127.0.0.1 — measured in the same run. `ratio` = cluster
 * throughput over loopback throughput; `cpuRatio` = the cluster's CPU seconds per GiB over the
 * loopback stream's (sender + receiver).
 *
 * Test types: `publish` (publish → ACK, no subscriber), `e2e` (an auditing subscriber reads
 * the whole total order), `latency` (ACK latency at a fixed offered load). With `peers`, Redis
 * Streams and NATS JetStream run the same workload, taking turns with cxlog (BenchPeers.ts).
 */
import { Console, Effect } from "effect"
import { benchTls } from "../admin/Users.js"
import { table } from "../report/Table.js"
import { type ClusterShape, shapeFigures } from "../run/ClusterShape.js"
import { checkRun, run } from "../run/Run.js"
import { byRoleGroup, type RunSummary } from "../run/RunSummary.js"
import { comparePeers, type PeerComparison, peersJson, peersTable, startPeers } from "./BenchPeers.js"
import { type LoopbackFigures, measureLoopback } from "./Loopback.js"
import type { BenchPeer } from "./peers/PeerNames.js"
import { benchStalledReader } from "./StalledReaderBench.js"

export interface BenchOptions extends ClusterShape {
  readonly type: "publish" | "e2e" | "latency"
  /** Offered load for `latency`, MB/s. */
  readonly rateMBps: number
  readonly json: boolean
  /** Metrics ports for the run's roles (see `RunOptions.metricsPort`); 0 = none. */
  readonly metricsPort?: number
  /** Write the run's HTML report here. */
  readonly report?: string
  /** e2e: also this many subscribers reading over TCP from the brokers, each auditing the whole order (`remoteSubscriberMBps`: the slowest). */
  readonly remoteSubscribers?: number
  /** Run the cluster without and with TLS and authentication (plain, secured, secured, plain); `ratio` is secured MB/s over plain MB/s. */
  readonly tls?: boolean
  /** Reference systems run beside cxlog, taking turns with it (BenchPeers.ts). */
  readonly peers?: ReadonlyArray<BenchPeer>
}

/**
 * `bench --tls`: the same cluster run four times in one process, with `--insecure` brokers (no
 * authentication, plain TCP) and with TLS (a throwaway CA) and authentication (the head's
 * credential file, the local user's secret), in the order plain, secured, secured, plain: each
 * configuration's runs straddle the other's in time, so load that drifts during the bench (a
 * shared machine) weighs on both alike, after a warm-up run that is not counted. Each figure
 * is the mean of a configuration's two runs; `runs` lists every run. The cost of security in
 * throughput.
 */
const SECURED_ORDER = ["plain", "secured", "secured", "plain"] as const
/**
 * A bench process's first run is slower than its later ones (measured: 0.5–0.65× with four
 * plain runs in a row), whichever configuration it is: a short plain run first, not counted.
 */
const WARMUP_BYTES = 256 * 2 ** 20

const benchSecured = (options: BenchOptions) =>
  Effect.gen(function*() {
    const shape = runShape(options)
    const tls = yield* benchTls
    yield* run({ ...shape, totalBytes: Math.min(shape.totalBytes, WARMUP_BYTES), env: { CXLOG_INSECURE: "true" } })
    const runs: Array<{ readonly config: (typeof SECURED_ORDER)[number]; readonly summary: RunSummary }> = []
    for (const config of SECURED_ORDER) {
      runs.push({
        config,
        summary: yield* run({ ...shape, env: config === "plain" ? { CXLOG_INSECURE: "true" } : tls.env })
      })
    }
    const round = (n: number, places: number) => Math.round(n * 10 ** places) / 10 ** places
    /** The mean of a figure over one configuration's runs. */
    const mean = (config: (typeof SECURED_ORDER)[number], figure: (s: RunSummary) => number, places = 1) => {
      const of = runs.filter((r) => r.config === config).map((r) => figure(r.summary))
      return round(of.reduce((a, b) => a + b, 0) / of.length, places)
    }
    const cpuOf = (config: (typeof SECURED_ORDER)[number]) => ({
      head: mean(config, (s) => s.cpuSecondsPerGiB.head, 2),
      brokers: mean(config, (s) => s.cpuSecondsPerGiB.brokers, 2),
      publisher: mean(config, (s) => s.cpuSecondsPerGiB.publisher, 2),
      subscriber: mean(config, (s) => s.cpuSecondsPerGiB.subscriber, 2),
      total: mean(config, (s) => s.cpuSecondsPerGiB.total, 2)
    })
    const plainMBps = mean("plain", (s) => s.throughputMBps)
    const securedMBps = mean("secured", (s) => s.throughputMBps)
    const ratio = round(securedMBps / plainMBps, 3)
    const plainCpu = cpuOf("plain")
    const securedCpu = cpuOf("secured")
    const audited = (config: (typeof SECURED_ORDER)[number]) => {
      const passed = runs.filter((r) => r.config === config).map((r) => r.summary.auditPassed)
      return passed.includes(null) ? {} : { auditPassed: passed.every((p) => p === true) }
    }
    const result = {
      bench: "cxlog-tls",
      type: options.type,
      messages: runs[0]!.summary.messages,
      messageBytes: options.messageBytes,
      totalBytes: runs[0]!.summary.bytes,
      brokers: options.brokers,
      plainMBps,
      securedMBps,
      plainAckLatencyP50Us: mean("plain", (s) => s.ackLatencyP50Us, 0),
      securedAckLatencyP50Us: mean("secured", (s) => s.ackLatencyP50Us, 0),
      plainCpuSecondsPerGiB: plainCpu.total,
      securedCpuSecondsPerGiB: securedCpu.total,
      // Per role (head, brokers, publisher, subscriber): where security's CPU goes.
      plainCpu,
      securedCpu,
      runs: runs.map(({ config, summary }) => ({
        config,
        mBps: summary.throughputMBps,
        cpuSecondsPerGiB: summary.cpuSecondsPerGiB.total
      })),
      plain: audited("plain"),
      secured: audited("secured"),
      ratio
    }
    if (!options.json) {
      yield* Console.log(
        table(
          ["cxlog bench --tls (mean of 2 runs each)", "MB/s", "ACK p50 µs", "ACK p99 µs", "CPU s/GiB", "vs plain"],
          [
            [
              "TLS + authentication",
              securedMBps,
              result.securedAckLatencyP50Us,
              mean("secured", (s) => s.ackLatencyP99Us, 0),
              securedCpu.total,
              ratio
            ],
            [
              "plain TCP, no authentication (reference)",
              plainMBps,
              result.plainAckLatencyP50Us,
              mean("plain", (s) => s.ackLatencyP99Us, 0),
              plainCpu.total,
              1
            ]
          ]
        )
      )
    }
    yield* Console.log(JSON.stringify(result))
    return result
  }).pipe(Effect.scoped)

/** The run a bench measures: its sizes and shape, silent, with an auditing subscriber for e2e. */
const runShape = (options: BenchOptions) => ({
  totalBytes: options.totalBytes,
  ...shapeFigures(options),
  ...(options.warmupBytes === undefined ? {} : { warmupBytes: options.warmupBytes }),
  output: "silent" as const,
  subscriber: options.type === "e2e",
  ...(options.type === "e2e" && options.remoteSubscribers !== undefined
    ? { remoteSubscribers: options.remoteSubscribers }
    : {}),
  ...(options.type === "latency" ? { offeredMBps: options.rateMBps } : {})
})

/**
 * Per batch, by role: CPU µs (all threads), of it the main threads' µs (their JavaScript; the rest
 * is V8's compiler and GC threads), and the main threads' wakes.
 */
const perBatch = (summary: RunSummary) => {
  const batches = Math.max(1, summary.batches)
  const cpuMicros = (secondsPerGiB: number) => Math.round((secondsPerGiB * (summary.bytes / 2 ** 30) * 1e6) / batches)
  const threads = summary.mainThreads
  return {
    cpuMicrosPerBatch: byRoleGroup((group) => cpuMicros(summary.cpuSecondsPerGiB[group])),
    mainThreadMicrosPerBatch: byRoleGroup((group) => Math.round((threads[group].seconds * 1e6) / batches)),
    wakesPerBatch: byRoleGroup((group) => Math.round((threads[group].wakes / batches) * 100) / 100)
  }
}

/** Prints the bench's table (unless `json`) and its JSON line last; a run it cannot do fails before it measures anything. */
export const bench = (options: BenchOptions) =>
  Effect.zipRight(
    checkRun(runShape(options)),
    options.tls === true
      ? Effect.asVoid(benchSecured(options))
      : options.type === "latency" && options.discard !== undefined
      ? Effect.asVoid(benchStalledReader(options, runShape(options)))
      : Effect.asVoid(benchPlain(options))
  )

/** What a plain bench measured: the cluster's run, the loopback bound, the run without remote subscribers (before), the peers' turns. */
interface PlainMeasured {
  readonly summary: RunSummary
  readonly loopback: LoopbackFigures
  readonly withoutRemote: RunSummary | undefined
  readonly compared: PeerComparison | undefined
}

const round2 = (n: number) => Math.round(n * 100) / 100

/** The run's figures beside the loopback stream's. */
const overLoopback = (summary: RunSummary, loopback: LoopbackFigures) => {
  // The cluster's CPU per GiB over what the loopback stream's two processes spent on the same bytes (lower is better).
  const loopbackCpu = loopback.cpuSecondsPerGiB
  const cpuRatio = loopbackCpu === undefined || loopbackCpu <= 0
    ? undefined
    : round2(summary.cpuSecondsPerGiB.total / loopbackCpu)
  return { loopbackMBps: loopback.mBps, ratio: summary.throughputMBps / loopback.mBps, loopbackCpu, cpuRatio }
}

/** The plain bench's JSON line. */
const plainResult = (options: BenchOptions, { compared, loopback, summary, withoutRemote }: PlainMeasured) => {
  const { cpuRatio, loopbackCpu, loopbackMBps, ratio } = overLoopback(summary, loopback)
  return {
    bench: "cxlog",
    type: options.type,
    messages: summary.messages,
    messageBytes: options.messageBytes,
    totalBytes: summary.bytes,
    // Published first and not measured: the figures are a warm cluster's (0: a cold one, the default).
    warmupBytes: summary.warmupMessages * options.messageBytes,
    brokers: options.brokers,
    publisher: options.local === true ? "local" : "tcp",
    order: options.order,
    ackLevel: options.ackLevel,
    batchBytes: options.batchBytes,
    window: options.window,
    adaptiveWindow: options.fixedWindow !== true,
    // Where the adaptive window settled: the batches in flight the brokers took without a queue.
    windowAtEnd: summary.publisherWindow,
    // At a fixed offered load a batch carries a few messages: CPU per batch is what the log's path costs per round.
    ...(options.type === "latency"
      ? {
        offeredMBps: options.rateMBps,
        batches: summary.batches,
        ...perBatch(summary)
      }
      : {}),
    throughputMBps: summary.throughputMBps,
    publishMBps: summary.publishMBps,
    ...(summary.e2eMBps === null ? {} : { e2eMBps: summary.e2eMBps }),
    loopbackMBps: Math.round(loopbackMBps * 10) / 10,
    ackLatencyP50Us: summary.ackLatencyP50Us,
    ackLatencyP99Us: summary.ackLatencyP99Us,
    // Only an e2e run has a subscriber; without one there is no audit to report.
    ...(summary.auditPassed === null
      ? {}
      : {
        auditPassed: summary.auditPassed,
        received: summary.received,
        lost: summary.lost,
        notDelivered: summary.notDelivered,
        duplicated: summary.duplicated
      }),
    ...(summary.remoteSubscriberMBps === null
      ? {}
      : {
        remoteSubscribers: summary.remoteSubscribers.length,
        remoteSubscriberMBps: summary.remoteSubscriberMBps,
        remoteSubscriberVsLoopback: round2(summary.remoteSubscriberMBps / loopbackMBps)
      }),
    ...(withoutRemote === undefined
      ? {}
      : {
        publishMBpsWithoutRemote: withoutRemote.throughputMBps,
        remotePublishRatio: round2(summary.throughputMBps / withoutRemote.throughputMBps),
        // What serving the remote subscribers costs each role, per GiB: compare with cpuSecondsPerGiB.
        cpuSecondsPerGiBWithoutRemote: withoutRemote.cpuSecondsPerGiB
      }),
    cpuSecondsPerGiB: summary.cpuSecondsPerGiB,
    // ACK 2: the durable tier's group commit (docs/durability.md).
    ...(summary.durable === null
      ? {}
      : {
        fsyncs: summary.durable.fsyncs,
        bytesPerFsync: summary.durable.bytesPerFsync,
        dataDirFilesystem: summary.durable.filesystem
      }),
    ...(loopbackCpu === undefined ? {} : { loopbackCpuSecondsPerGiB: round2(loopbackCpu) }),
    ...(cpuRatio === undefined ? {} : { cpuRatio }),
    ...(compared === undefined ? {} : peersJson(compared)),
    ratio: Math.round(ratio * 1000) / 1000
  }
}

/** The plain bench's table: the run, its remote subscribers, the run without them, the loopback reference. */
const plainTable = (options: BenchOptions, { loopback, summary, withoutRemote }: PlainMeasured): string => {
  const { cpuRatio, loopbackCpu, loopbackMBps, ratio } = overLoopback(summary, loopback)
  return table(["cxlog bench", "MB/s", "ACK p50 µs", "ACK p99 µs", "CPU s/GiB", "vs loopback", "CPU vs loopback"], [
    [
      `${options.type}: ${summary.messages} × ${options.messageBytes} B${
        summary.warmupMessages === 0 ? "" : ` after ${summary.warmupMessages} warm-up`
      }, order ${options.order}, ack ${options.ackLevel}${
        summary.durable === null ? "" : ` (data directory on ${summary.durable.filesystem})`
      }, ${
        options.local === true
          ? `a local publisher (${options.brokers} brokers idle)`
          : `${options.brokers} brokers`
      }`,
      summary.throughputMBps,
      summary.ackLatencyP50Us,
      summary.ackLatencyP99Us,
      summary.cpuSecondsPerGiB.total,
      ratio,
      cpuRatio ?? ""
    ],
    ...(summary.remoteSubscriberMBps === null
      ? []
      : [[
        `${summary.remoteSubscribers.length} remote subscriber(s) over TCP, slowest read; audit ${
          summary.auditPassed === true ? "passed" : "FAILED"
        }`,
        summary.remoteSubscriberMBps,
        "",
        "",
        "",
        round2(summary.remoteSubscriberMBps / loopbackMBps),
        ""
      ]]),
    ...(withoutRemote === undefined
      ? []
      : [[
        "the same run without remote subscribers (before)",
        withoutRemote.throughputMBps,
        withoutRemote.ackLatencyP50Us,
        withoutRemote.ackLatencyP99Us,
        withoutRemote.cpuSecondsPerGiB.total,
        round2(withoutRemote.throughputMBps / loopbackMBps),
        ""
      ]]),
    [
      "loopback TCP, one stream (reference)",
      loopbackMBps,
      "",
      "",
      loopbackCpu === undefined ? "" : round2(loopbackCpu),
      1,
      1
    ]
  ])
}

const benchPlain = (options: BenchOptions) =>
  Effect.gen(function*() {
    // The peers' servers first: a missing one fails the bench before anything is measured.
    const peers = yield* startPeers(options.peers ?? [], options.ackLevel)
    const loopback = yield* measureLoopback(options.totalBytes, options.batchBytes)
    const loopbackMBps = loopback.mBps
    // With remote subscribers, the same run without them first: what serving them costs the publishers, in one run.
    const remotes = options.type === "e2e" ? options.remoteSubscribers ?? 0 : 0
    const withoutRemote = remotes === 0 ? undefined : yield* run({ ...runShape(options), remoteSubscribers: 0 })
    const measure = run({
      ...runShape(options),
      ...(options.metricsPort === undefined ? {} : { metricsPort: options.metricsPort }),
      ...(options.report === undefined
        ? {}
        : {
          report: {
            path: options.report,
            title: `cxlog bench ${options.type}`,
            extra: { bench: options.type, loopbackMBps: Math.round(loopbackMBps * 10) / 10 }
          }
        })
    })
    const compared = peers.length === 0
      ? undefined
      : yield* comparePeers(peers, { type: options.type, rateMBps: options.rateMBps }, measure)
    const summary = compared?.summary ?? (yield* measure)
    const measured = { summary, loopback, withoutRemote, compared }
    const result = plainResult(options, measured)
    if (!options.json) {
      yield* Console.log(plainTable(options, measured))
      if (compared !== undefined) yield* Console.log(`\n${peersTable(compared)}`)
    }
    yield* Console.log(JSON.stringify(result))
    return result
  }).pipe(Effect.scoped)
