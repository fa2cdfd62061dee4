/**
 * `cxlog run` (= `npm start`): a whole cluster on the embedded default. A head and N broker
 * processes on a fresh region under /dev/shm, a publisher process publishing stamped
 * messages over TCP and a subscriber process auditing the total order; a live progress line
 * and a summary (throughput, ACK latency, audit).
 *
 * `run` checks the run and works out its plan (here), starts the cluster (RunCluster.ts),
 * follows it (RunProgress.ts; the kills of RunKills.ts), collects the roles' last events
 * (RunOutcome.ts) and sums them up (RunSummary.ts).
 */
import { Config, Console, Data, Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { defaultLogConfig, topicMemoryFor } from "../../layers/log/Layout.js"
import { regionConfig, validate as validateRegion } from "../../layers/RegionLayout.js"
import { LOG_LAYOUT_SETTINGS } from "../../services/log/LogSettings.js"
import { asEnvironment, envConfigProvider, processEnvironment } from "../../Settings.js"
import { pruneRunRegions } from "../admin/RegionPrune.js"
import { runRegionName } from "../admin/Regions.js"
import { announceTargets } from "../report/Dashboard.js"
import { makeTimeline } from "../report/HtmlReport.js"
import { DataDirUnusable, requireWritableDataDir } from "../roles/HeadDataDir.js"
import { stampedRefusal } from "../roles/Publish.js"
import { regionGuard } from "./Cluster.js"
import type { ClusterShape } from "./ClusterShape.js"
import { dataDirFilesystem } from "./DataDirFilesystem.js"
import { startCluster } from "./RunCluster.js"
import { killBrokerMidRun, killHeadMidRun, takeoverFigures } from "./RunKills.js"
import { awaitOutcome } from "./RunOutcome.js"
import type { RunOptions, RunPlan } from "./RunPlan.js"
import { endLiveLine, followProgress, startLiveLine } from "./RunProgress.js"
import { mib, printSummary, requireAudits, summarize, writeRunReport } from "./RunSummary.js"

/**
 * A fresh data directory for an ACK 2 run (under CXLOG_DATA_DIR, else the OS's temporary
 * directory), removed with the run's scope. CXLOG_DATA_DIR is made when missing and refused with
 * why when unusable, as the head treats its --data-dir.
 */
const runDataDir = Effect.acquireRelease(
  Effect.flatMap(
    Config.string("CXLOG_DATA_DIR").pipe(Config.withDefault(tmpdir())),
    (parent) =>
      Effect.zipRight(
        requireWritableDataDir(parent),
        Effect.try({
          try: () => mkdtempSync(join(parent, "cxlog-run-data-")),
          catch: (e) => new DataDirUnusable({ dataDir: parent, reason: e instanceof Error ? e.message : String(e) })
        })
      )
  ),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** How long a run with a broker or head to kill is paced to take (see `RunOptions.killBroker`). */
const KILL_RUN_SECONDS = 2

/** Region sizing for the run: `brokers` broker slots (and the local publisher's), its topic's Blogs large enough to absorb bursts (32 MiB at least). */
export const logEnv = (
  options: Pick<ClusterShape, "brokers" | "batchBytes" | "local"> & { readonly localPublishers?: number }
): Record<string, string> => {
  const shape = {
    ...defaultLogConfig,
    // A local publisher takes a broker slot of its own (`local`: one; `localPublishers`: that many).
    maxBrokers: Math.max(options.brokers, 1) + (options.localPublishers ?? (options.local === true ? 1 : 0)),
    pbrSlots: Math.max(defaultLogConfig.pbrSlots, 2048),
    maxBatchBytes: Math.max(options.batchBytes, 1 << 20)
  }
  return asEnvironment(LOG_LAYOUT_SETTINGS.settings, {
    maxBrokers: shape.maxBrokers,
    pbrSlots: shape.pbrSlots,
    maxBatchBytes: shape.maxBatchBytes,
    // Every broker (and local publisher) writes the run's topic: a lane each, of a 32 MiB Blog.
    topicWriters: shape.maxBrokers,
    topicMemoryBytes: topicMemoryFor(shape, 32 << 20)
  })
}

/** A run its flags describe but that cannot be done (exit 2, before any process starts). */
export class InvalidRun extends Data.TaggedError("InvalidRun")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/**
 * What a run can refuse before it starts anything, by the rules its roles would refuse it with
 * seconds later: a broker to kill that it does not start, a load of no whole message, messages
 * or batches its publisher would refuse, a region its head would refuse (from the variables
 * the head gets: the run's own sizing over this process's environment).
 */
export const checkRun = (options: RunOptions) =>
  Effect.gen(function*() {
    const kill = options.killBroker?.index
    if (kill !== undefined && kill >= options.brokers) {
      const numbered = options.brokers === 1 ? "broker 0 only" : `brokers 0 to ${options.brokers - 1}`
      return yield* new InvalidRun({
        reason: `--kill-broker ${kill}: the run starts ${numbered} (--broker-count ${options.brokers})`
      })
    }
    if (options.totalBytes < options.messageBytes) {
      return yield* new InvalidRun({
        reason: `--bytes ${options.totalBytes} holds no whole ${options.messageBytes}-byte message (--message-bytes)`
      })
    }
    const refused = stampedRefusal({
      publisher: {
        brokers: [{ host: "127.0.0.1", port: 0 }],
        topic: "run",
        batchBytes: options.batchBytes,
        maxInFlightBatches: options.window,
        ackLevel: options.ackLevel
      },
      messageBytes: options.messageBytes
    })
    if (refused !== undefined) return yield* refused
    const headEnv = { ...processEnvironment(), ...logEnv(options), ...options.env }
    yield* validateRegion(yield* Effect.withConfigProvider(regionConfig, envConfigProvider(headEnv)))
  })

/** The run's region (orphaned ones of earlier runs removed first), its counts, data directory and environment. */
const planRun = (options: RunOptions) =>
  Effect.gen(function*() {
    const region = runRegionName(process.pid)
    const reclaimed = yield* pruneRunRegions
    const messages = Math.floor(options.totalBytes / options.messageBytes)
    const bytes = messages * options.messageBytes
    const dataDir = options.ackLevel === 2 ? yield* runDataDir : undefined
    const filesystem = dataDir === undefined ? undefined : yield* dataDirFilesystem(dataDir)
    const killing = options.killBroker !== undefined || options.killHead !== undefined
    const human = options.output === "human"
    const plan: RunPlan = {
      options,
      region,
      reclaimed,
      messages,
      bytes,
      warmup: Math.floor((options.warmupBytes ?? 0) / options.messageBytes),
      dataDir,
      filesystem,
      // No role serves metrics unless given its own port (CXLOG_METRICS_PORT in our environment is not theirs).
      env: {
        ...logEnv(options),
        CXLOG_REGION: region,
        CXLOG_METRICS_PORT: "0",
        ...options.env,
        ...(dataDir === undefined ? {} : { CXLOG_DATA_DIR: dataDir })
      },
      offeredMBps: options.offeredMBps ?? (killing ? bytes / 1e6 / KILL_RUN_SECONDS : undefined),
      withSubscriber: options.subscriber !== false,
      human,
      interactive: process.stdout.isTTY === true && human,
      say: (line) => (human ? Console.log(line) : Effect.void)
    }
    return plan
  })

/** The run's first lines: regions reclaimed, what it runs, and where its roles serve metrics (announced to `cxlog dashboard`). */
const announceRun = (plan: RunPlan) =>
  Effect.gen(function*() {
    const { options } = plan
    if (plan.reclaimed.length > 0) {
      yield* plan.say(
        `reclaimed ${plan.reclaimed.length} orphaned run region(s) of earlier runs: ${
          plan.reclaimed.map((r) => `${r.name} (${mib(r.bytes)})`).join(", ")
        }`
      )
    }
    yield* plan.say(
      `cxlog run: ${mib(plan.bytes)} of ${options.messageBytes}-byte messages${
        plan.warmup === 0 ? "" : ` after a warm-up of ${mib(plan.warmup * options.messageBytes)}`
      }, order ${options.order}, ack ${options.ackLevel}, ${options.brokers} brokers, region /dev/shm/${plan.region}`
    )
    const metricsBase = options.metricsPort ?? 0
    if (metricsBase > 0) {
      const at = (index: number) => `127.0.0.1:${metricsBase + index}`
      const names = [
        "head",
        ...Array.from({ length: options.brokers }, (_, i) => `broker ${i}`),
        "publisher",
        ...(options.subscriber !== false ? ["subscriber"] : [])
      ]
      yield* plan.say(`metrics: ${names.map((name, i) => `${name} http://${at(i)}/metrics`).join(", ")}`)
      yield* plan.say(`watch: cxlog dashboard (or --targets ${names.map((_, i) => at(i)).join(",")})`)
      yield* announceTargets(names.map((_, i) => at(i)))
    }
  })

/** Checks the run (InvalidRun), then runs it to its summary; a role that fails or an audit that does not pass fails it (RoleFailed). */
export const run = (options: RunOptions) =>
  Effect.gen(function*() {
    yield* checkRun(options)
    const plan = yield* planRun(options)
    yield* regionGuard(plan.region)
    yield* announceRun(plan)
    const roles = yield* startCluster(plan)
    const { brokers, head, publisher, subscriber } = roles
    const timeline = options.report === undefined
      ? undefined
      : yield* makeTimeline([head, ...brokers, publisher, ...(subscriber === undefined ? [] : [subscriber])])
    const progress = followProgress(plan, roles)
    killBrokerMidRun(plan, roles, progress)
    const takeover = yield* killHeadMidRun(plan, roles, progress)
    const liveLine = yield* startLiveLine(plan, progress)
    const outcome = yield* awaitOutcome(plan, roles, takeover.takenOver)
    progress.cpu.stopAll()
    yield* endLiveLine(plan, progress, outcome, liveLine)
    const summary = summarize(plan, roles, progress, outcome, yield* takeoverFigures(takeover))
    yield* printSummary(plan, summary, outcome)
    if (options.report !== undefined && timeline !== undefined) {
      yield* writeRunReport(plan, options.report, summary, progress, outcome, timeline)
    }
    return yield* requireAudits(summary, outcome.audited?.audit)
  }).pipe(Effect.scoped)
