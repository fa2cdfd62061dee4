/**
 * `cxlog bench --type mirror` (docs/mirror.md, "Figures"): a 3-node JetStream cluster of its
 * own on loopback, a head and a broker on a fresh region, and in one run:
 *
 * 1. direct: this process publishes `messages` messages of `messageBytes` to the stream through
 *    the mirror's own publishing path (same client, window, headers, ids and fence), with no
 *    region behind it; the stream is then purged (it keeps its sequence);
 * 2. `cxlog publish --count` fills the region (its head and broker compile their paths here);
 * 3. `cxlog mirror` copies that backlog into the stream: mirrorMBps, over direct: mirrorRatio;
 * 4. the region's publish rate without a mirror, the cluster now as warm as in step 5;
 * 5. the region's publish rate while the mirror runs beside it (started, caught up and reporting
 *    `mirroring` first: what is measured is a running mirror, not a booting process):
 *    publishRatio over step 4, and the cores the mirror and the JetStream servers used meanwhile
 *    (mirrorSideCores, of which the mirror's own mirrorCores; regionCores: what the region's
 *    publishing used alone in step 4, all of `cores`);
 * 5b. the reference: the mirror stopped, the region's publish rate beside plain CPU loads in as many
 *    processes (the mirror and each server) using the cores the mirror's side used in step 5:
 *    loadRatio over step 4, what any neighbour of that size costs the region on this machine;
 *    then beside one load the size of the mirror process's own cores (mirrorLoadRatio): what the
 *    mirror alone would cost where the JetStream servers run on hosts of their own;
 * 6. lag: the mirror started again and caught up, 4 s of messages published at a steady
 *    `--mirror-rate-mbps` (5) while the mirror runs; each message's lag is its stored time in JetStream less its publish timestamp: p50, p99;
 * 7. audit: the stream read back holds every offset once, in order, with the region's payloads.
 *
 * Rates are payload bytes over the span between the first and last message's stored times in
 * JetStream (steps 1, 3) or the publisher's own elapsed time (4, 5): no start-up in either.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Console, Effect } from "effect"
import { spawn } from "node:child_process"
import { availableParallelism } from "node:os"
import { defaultLogConfig, topicMemoryFor } from "../../layers/log/Layout.js"
import { openTarget } from "../../layers/mirror/JetStreamTarget.js"
import { awaitWindow, drained, hasRoom, inFlight, makeWindow, publishOne } from "../../layers/mirror/MirrorWindow.js"
import { LOG_LAYOUT_SETTINGS } from "../../services/log/LogSettings.js"
import {
  DEFAULT_MIRROR_IN_FLIGHT,
  defaultMirrorSubject,
  MirrorHeaders,
  type MirrorOptions
} from "../../services/mirror/Mirror.js"
import type { SubscriberMessage } from "../../services/net/Subscriber.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { asEnvironment } from "../../Settings.js"
import { percentile } from "../report/Percentiles.js"
import { table } from "../report/Table.js"
import { MirrorEvents } from "../roles/RoleEvents.js"
import { type RoleProcess, spawnRole, startHeadAndBrokers, stopChild, stopWithParent } from "../run/Cluster.js"
import { benchRegion } from "./BenchRegion.js"
import {
  auditStream,
  awaitStreamLast,
  failed,
  readStream,
  storedRate,
  STREAM,
  streamState,
  TOPIC
} from "./MirrorBenchStream.js"
import { type NatsCluster, startNatsCluster } from "./peers/NatsCluster.js"
import { PeerFailed } from "./peers/PeerServer.js"

export interface MirrorBenchOptions {
  readonly messages: number
  readonly messageBytes: number
  /** The steady load of the lag step, MB/s (for `LAG_SECONDS`). */
  readonly rateMBps: number
  readonly maxInFlight?: number
  readonly json: boolean
}

/** How long the lag step's steady load lasts. */
const LAG_SECONDS = 4
const round2 = (n: number) => Math.round(n * 100) / 100

/** Step 1: the mirror's publishing path with no region behind it. */
const publishDirect = (servers: ReadonlyArray<string>, options: Required<MirrorBenchOptions>) =>
  Effect.gen(function*() {
    const mirrorOptions: MirrorOptions = {
      topic: "direct",
      regionId: "direct",
      servers,
      stream: STREAM,
      subject: defaultMirrorSubject(TOPIC),
      replicas: 3,
      consumer: "direct",
      from: 0,
      maxInFlight: options.maxInFlight,
      requestTimeoutMs: 10_000,
      retryForMs: 0
    }
    // The direct step writes a stream of its own, as no topic: generation 0.
    const target = yield* openTarget(mirrorOptions, 0)
    const payload = new Uint8Array(options.messageBytes).fill(0x61)
    const message = {
      offset: 0,
      timestamp: 0,
      flags: 0,
      key: undefined,
      headers: undefined,
      payload,
      bytes: payload,
      valueOffset: 0,
      valueLength: payload.length
    }
    const w = makeWindow(options.maxInFlight, (yield* target.end).sequence, 0, undefined, () => {})
    for (let i = 0; i < options.messages; i++) {
      if (inFlight(w) >= w.capacity) yield* awaitWindow(w, hasRoom)
      if (w.failure !== undefined) {
        return yield* new PeerFailed({ peer: "nats", detail: `direct publishing: ${w.failure}` })
      }
      message.offset = i
      message.timestamp = Date.now()
      publishOne(w, target, message as unknown as SubscriberMessage)
    }
    while (!drained(w)) yield* awaitWindow(w, drained)
    if (w.failure !== undefined) {
      return yield* new PeerFailed({ peer: "nats", detail: `direct publishing: ${w.failure}` })
    }
    return w.baseSequence + 1
  }).pipe(Effect.scoped)

/** Steps 2, 4 and 5: `cxlog publish --count`, its MB/s by its own clock, and the cores it and `roles` (head, broker) used meanwhile. */
const publishRegion = (
  env: Record<string, string>,
  port: number,
  count: number,
  messageBytes: number,
  rateMBps?: number,
  roles: ReadonlyArray<RoleProcess> = []
) =>
  Effect.gen(function*() {
    const rolesCpu = () => roles.reduce((sum, role) => sum + (role.cpuSeconds() ?? 0), 0)
    const cpuBefore = rolesCpu()
    const startedAt = performance.now()
    const publisher = yield* spawnRole("publisher", [
      "publish",
      "--brokers",
      `127.0.0.1:${port}`,
      "--topic",
      TOPIC,
      "--count",
      `${count}`,
      "--message-bytes",
      `${messageBytes}`,
      ...(rateMBps === undefined ? [] : ["--rate-mbps", `${rateMBps}`])
    ], env)
    const done = yield* publisher.event("done", 600_000)
    const cores = (rolesCpu() - cpuBefore + (publisher.cpuSeconds() ?? 0)) / ((performance.now() - startedAt) / 1000)
    return { mBps: (count * messageBytes) / 1e6 / ((done["elapsedMs"] as number) / 1000), cores }
  }).pipe(Effect.scoped)

/**
 * Plain CPU loads using `cores` between them in `processes` child processes (each busy 1 ms, then
 * idle as long as its share leaves), until the scope closes or this process dies: a neighbour of
 * a measured size.
 */
const cpuLoad = (cores: number, processes: number) =>
  Effect.forEach(
    Array.from({ length: processes }, () => Math.min(0.95, Math.max(0.01, cores / processes))),
    (share) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const idleMs = 1 / share - 1
          const code =
            `const tick = () => { const end = performance.now() + 1; while (performance.now() < end); setTimeout(tick, ${idleMs}) }; tick()`
          return spawn(process.execPath, ["-e", code], { stdio: "ignore" })
        }),
        stopChild
      ).pipe(Effect.tap(stopWithParent))
  )

/** The bench's clusters, and what every step runs with. */
interface MirrorBenchCluster {
  readonly options: Required<MirrorBenchOptions>
  readonly nats: NatsCluster
  /** The region's settings, for every cxlog process of the bench. */
  readonly env: Record<string, string>
  /** The broker's port. */
  readonly port: number
  /** The region's head and broker. */
  readonly regionRoles: ReadonlyArray<RoleProcess>
  /** The bench's own connection to the JetStream cluster. */
  readonly nc: NatsConnection
}

/** The region's settings for a run of `total` messages of `messageBytes`. */
const regionEnv = (region: string, total: number, messageBytes: number) => {
  // The region holds the whole run (the audit reads it all back), so publishers never wait for the mirror's hold.
  const blogBytes = 2 ** Math.ceil(Math.log2(total * (messageBytes + 64) * 1.25))
  return {
    [REGION_SETTINGS.settings.name.env]: region,
    ...asEnvironment(LOG_LAYOUT_SETTINGS.settings, {
      maxBrokers: 1,
      goiSlots: 262144,
      topicWriters: 1,
      topicMemoryBytes: topicMemoryFor(
        { ...defaultLogConfig, maxBrokers: 1, goiSlots: 262144 },
        Math.max(blogBytes, 16 << 20)
      )
    })
  }
}

/** `cxlog mirror` of the topic into the stream, with the bench's window. */
const mirrorArgsOf = ({ nats, options }: MirrorBenchCluster) => [
  "mirror",
  "--topic",
  TOPIC,
  "--to",
  nats.urls.join(","),
  "--stream",
  STREAM,
  "--max-in-flight",
  `${options.maxInFlight}`
]

/** Step 1: direct publishing's MB/s; then the stream purged, and its last sequence (the mirror's first is the next). */
const measureDirect = ({ nats, nc, options }: MirrorBenchCluster) =>
  Effect.gen(function*() {
    const directFirst = yield* publishDirect(nats.urls, options)
    const directMBps = yield* storedRate(nc, directFirst, options.messages, options.messageBytes)
    const purged = yield* Effect.tryPromise({
      try: async () => (await jetstreamManager(nc)).streams.purge(STREAM),
      catch: failed("purging")
    })
    const base = (yield* streamState(nc)).last_seq
    if (!purged.success) return yield* new PeerFailed({ peer: "nats", detail: "the stream was not purged" })
    return { directMBps, base }
  })

/** Steps 2 and 3: the region filled, and the mirror's MB/s copying that backlog into the stream after `base`. */
const measureBacklog = (cluster: MirrorBenchCluster, base: number) =>
  Effect.gen(function*() {
    const { env, nc, options, port } = cluster
    yield* publishRegion(env, port, options.messages, options.messageBytes)
    const mirrorArgs = mirrorArgsOf(cluster)
    const backlog = yield* spawnRole("mirror", [...mirrorArgs, "--until", `${options.messages}`], env)
    yield* awaitStreamLast(nc, options.messages, backlog)
    return yield* storedRate(nc, base + 1, options.messages, options.messageBytes)
  })

/**
 * Steps 4 and 5: the region's publishing alone (MB/s, cores), then beside a running mirror
 * (MB/s, and the cores the mirror's side used meanwhile); the mirror stopped once it caught up.
 */
const measureWithMirror = (cluster: MirrorBenchCluster) =>
  Effect.gen(function*() {
    const { env, nats, nc, options, port, regionRoles } = cluster
    const { mBps: regionMBps, cores: regionCores } = yield* publishRegion(
      env,
      port,
      options.messages,
      options.messageBytes,
      undefined,
      regionRoles
    )
    const mirror = yield* spawnRole("mirror", mirrorArgsOf(cluster), env, MirrorEvents)
    yield* mirror.event("mirroring", 60_000)
    yield* awaitStreamLast(nc, 2 * options.messages, mirror)
    // What the mirror's side (the mirror and the JetStream servers) takes of the machine while the region publishes beside it.
    const mirrorCpu = () => mirror.cpuSeconds() ?? 0
    const mirrorSideCpu = () => mirrorCpu() + nats.nodes.reduce((sum, node) => sum + (node.cpuSeconds() ?? 0), 0)
    const [cpuBefore, mirrorCpuBefore] = [mirrorSideCpu(), mirrorCpu()]
    const startedAt = performance.now()
    const { mBps: withMirrorMBps } = yield* publishRegion(env, port, options.messages, options.messageBytes)
    const seconds = (performance.now() - startedAt) / 1000
    const [mirrorSideCores, mirrorCores] = [
      (mirrorSideCpu() - cpuBefore) / seconds,
      (mirrorCpu() - mirrorCpuBefore) / seconds
    ]
    yield* awaitStreamLast(nc, 3 * options.messages, mirror)
    yield* stopChild(mirror.child)
    return { regionMBps, regionCores, withMirrorMBps, mirrorSideCores, mirrorCores }
  })

/** Step 5b: the region's MB/s beside plain loads the size of the mirror's side, then of the mirror process alone. */
const measureBesideLoads = (
  { env, nats, options, port }: MirrorBenchCluster,
  mirrorSideCores: number,
  mirrorCores: number
) =>
  Effect.gen(function*() {
    const besideLoad = (cores: number, processes: number) =>
      Effect.scoped(
        Effect.zipRight(cpuLoad(cores, processes), publishRegion(env, port, options.messages, options.messageBytes))
      )
    const { mBps: besideLoadMBps } = yield* besideLoad(mirrorSideCores, 1 + nats.nodes.length)
    const { mBps: besideMirrorLoadMBps } = yield* besideLoad(mirrorCores, 1)
    return { besideLoadMBps, besideMirrorLoadMBps }
  })

/** Step 6's load: the mirror started again and caught up, then `lagMessages` published at the lag step's rate and mirrored. */
const publishLagLoad = (cluster: MirrorBenchCluster, lagMessages: number, total: number) =>
  Effect.gen(function*() {
    const { env, nc, options, port } = cluster
    const resumed = yield* spawnRole("mirror", mirrorArgsOf(cluster), env, MirrorEvents)
    yield* awaitStreamLast(nc, 5 * options.messages, resumed)
    yield* publishRegion(env, port, lagMessages, options.messageBytes, options.rateMBps)
    yield* awaitStreamLast(nc, total, resumed)
  })

/** Steps 6 and 7 from the stream read back after `base`: the lag step's lags (ms, sorted), and the audit against `region`. */
const readBack = ({ nc }: MirrorBenchCluster, region: string, base: number, total: number, lagMessages: number) =>
  Effect.gen(function*() {
    // The first message's id says the region and the topic's generation the mirror wrote under.
    const [regionId = "", , generation = ""] = (yield* Effect.tryPromise({
      try: async () =>
        (await (await jetstreamManager(nc)).streams.getMessage(STREAM, { seq: base + 1 }))?.header.get(
          MirrorHeaders.msgId
        ) ?? "",
      catch: failed("reading the first message")
    })).split("/")
    const stream = yield* readStream(nc, total)
    const lags = Float64Array.from(stream.slice(total - lagMessages), (m) => m.stored - m.timestamp).sort()
    const audit = yield* auditStream(region, regionId, Number(generation), stream, total)
    return { lags, audit }
  })

/** What the steps measured, in their order. */
interface MirrorFigures {
  readonly directMBps: number
  readonly mirrorMBps: number
  readonly regionMBps: number
  readonly regionCores: number
  readonly withMirrorMBps: number
  readonly mirrorSideCores: number
  readonly mirrorCores: number
  readonly besideLoadMBps: number
  readonly besideMirrorLoadMBps: number
  /** The lag step's lags, ms, sorted. */
  readonly lags: Float64Array
  readonly audit: { readonly passed: boolean; readonly detail: string }
}

/** The bench's JSON line. */
const mirrorResult = (
  options: Required<MirrorBenchOptions>,
  lagMessages: number,
  {
    audit,
    besideLoadMBps,
    besideMirrorLoadMBps,
    directMBps,
    lags,
    mirrorCores,
    mirrorMBps,
    mirrorSideCores,
    regionCores,
    regionMBps,
    withMirrorMBps
  }: MirrorFigures
) => {
  const mirrorRatio = mirrorMBps / directMBps
  return {
    bench: "mirror",
    messages: options.messages,
    messageBytes: options.messageBytes,
    maxInFlight: options.maxInFlight,
    directMBps: round2(directMBps),
    mirrorMBps: round2(mirrorMBps),
    mirrorRatio: Math.round(mirrorRatio * 1000) / 1000,
    regionMBps: round2(regionMBps),
    regionWithMirrorMBps: round2(withMirrorMBps),
    publishRatio: Math.round((withMirrorMBps / regionMBps) * 1000) / 1000,
    // The reference for publishRatio: the region beside plain CPU loads of the mirror side's size.
    regionBesideLoadMBps: round2(besideLoadMBps),
    loadRatio: Math.round((besideLoadMBps / regionMBps) * 1000) / 1000,
    // Beside a load the size of the mirror process alone: its cost where JetStream runs on other hosts.
    regionBesideMirrorLoadMBps: round2(besideMirrorLoadMBps),
    mirrorLoadRatio: Math.round((besideMirrorLoadMBps / regionMBps) * 1000) / 1000,
    // Cores the region's publishing (publisher, broker, head) used alone, and the mirror and the JetStream servers beside it, of `cores`.
    regionCores: round2(regionCores),
    mirrorSideCores: round2(mirrorSideCores),
    // Of mirrorSideCores, the mirror process's own (the rest is the JetStream servers').
    mirrorCores: round2(mirrorCores),
    cores: availableParallelism(),
    lagRateMBps: options.rateMBps,
    lagMessages: lagMessages,
    lagP50Ms: round2(percentile(lags, 50)),
    lagP99Ms: round2(percentile(lags, 99)),
    auditPassed: audit.passed,
    audit: audit.detail,
    ratio: Math.round(mirrorRatio * 1000) / 1000
  }
}

/** The bench's table. */
const mirrorTable = (options: Required<MirrorBenchOptions>, result: ReturnType<typeof mirrorResult>): string =>
  table([
    "cxlog bench --type mirror",
    "MB/s",
    "vs direct",
    "region MB/s",
    "with mirror",
    "beside an equal load",
    "beside the mirror's size",
    `lag p99 @ ${options.rateMBps} MB/s`,
    "audit"
  ], [[
    `${options.messages} × ${options.messageBytes} B`,
    result.mirrorMBps,
    result.mirrorRatio,
    result.regionMBps,
    result.publishRatio,
    result.loadRatio,
    result.mirrorLoadRatio,
    `${result.lagP99Ms} ms`,
    result.audit
  ]])

export const benchMirror = (given: MirrorBenchOptions) =>
  Effect.gen(function*() {
    const options = { ...given, maxInFlight: given.maxInFlight ?? DEFAULT_MIRROR_IN_FLIGHT }
    const nats = yield* startNatsCluster(3)
    const region = yield* benchRegion("mirror")
    const lagMessages = Math.max(1_000, Math.round((options.rateMBps * 1e6 * LAG_SECONDS) / options.messageBytes))
    const total = 5 * options.messages + lagMessages
    const env = regionEnv(region, total, options.messageBytes)
    const { head, brokers, ports } = yield* startHeadAndBrokers(`${TOPIC}:5:1`, 1, env)
    const nc = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => connect({ servers: [...nats.urls], noAsyncTraces: true }),
        catch: failed("connecting")
      }),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )
    const cluster: MirrorBenchCluster = { options, nats, env, port: ports[0]!, regionRoles: [head, ...brokers], nc }

    const { base, directMBps } = yield* measureDirect(cluster)
    const mirrorMBps = yield* measureBacklog(cluster, base)
    const withMirror = yield* measureWithMirror(cluster)
    const besideLoads = yield* measureBesideLoads(cluster, withMirror.mirrorSideCores, withMirror.mirrorCores)
    yield* publishLagLoad(cluster, lagMessages, total)
    const { audit, lags } = yield* readBack(cluster, region, base, total, lagMessages)

    const result = mirrorResult(options, lagMessages, {
      directMBps,
      mirrorMBps,
      ...withMirror,
      ...besideLoads,
      lags,
      audit
    })
    if (!options.json) yield* Console.log(mirrorTable(options, result))
    yield* Console.log(JSON.stringify(result))
    return result
  }).pipe(Effect.scoped)
