/**
 * `cxlog run` (= `npm start`): a whole cluster on the embedded default. A head and N broker
 * processes on a fresh region under /dev/shm, a publisher process publishing stamped
 * messages over TCP and a subscriber process auditing the total order; a live progress line
 * and a summary (throughput, ACK latency, audit).
 */
import { Config, Console, Data, Deferred, Effect, Fiber, Schedule } from "effect"
import { defaultLogConfig } from "../layers/log/Layout.js"
import { regionConfig, validate as validateRegion } from "../layers/RegionLayout.js"
import { auditFigures, type AuditResult } from "./Audit.js"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { envConfigProvider } from "./CliKit.js"
import { makeCpuMeter, regionGuard, RoleFailed, type RoleProcess, spawnRole, startHeadAndBrokers, whileAlive } from "./Cluster.js"
import { announceTargets } from "./Dashboard.js"
import { dataDirFilesystem } from "./DataDirFilesystem.js"
import { makeTimeline, writeReport } from "./HtmlReport.js"
import { stampedRefusal } from "./Publish.js"
import { pruneRunRegions, runRegionName } from "./Regions.js"

/** The cluster a run starts and the load its publisher offers; `cxlog bench` shares it. */
export interface ClusterShape {
  readonly totalBytes: number
  readonly messageBytes: number
  readonly brokers: number
  readonly order: 0 | 2 | 4 | 5
  readonly ackLevel: 0 | 1 | 2
  readonly batchBytes: number
  /** The publisher's in-flight window, in batches. */
  readonly window: number
  /**
   * Published first, through the same publisher, connections and subscriber, and not measured:
   * the figures are then those of a warm cluster (V8 has compiled the hot paths of every role).
   */
  readonly warmupBytes?: number
}

export interface RunOptions extends ClusterShape {
  /** human: progress line and summary; json: the summary as one JSON line; silent: nothing (for `cxlog bench`). */
  readonly output: "human" | "json" | "silent"
  /** More environment for every role (`bench --tls`: the TLS files and security switches). */
  readonly env?: Record<string, string>
  /** Run an auditing subscriber (end-to-end); without one the run measures publish → ACK only. */
  readonly subscriber?: boolean
  /**
   * Also run this many subscriber processes reading over TCP from the brokers (each starting
   * at a different broker, round-robin), each auditing the whole total order (RemoteAudit.ts).
   */
  readonly remoteSubscribers?: number
  /** Offered load: the publisher paces itself to this many MB/s (latency tests); unset = as fast as the window allows. */
  readonly offeredMBps?: number
  /**
   * Kill this broker (index) with SIGKILL once this fraction of the messages is acked (tests).
   * Without `offeredMBps` the publisher is then paced to take about 2 s, so the kill, decided
   * on the publisher's progress reports (4 a second), lands mid-run however fast the cluster is.
   */
  readonly killBroker?: { readonly index: number; readonly atFraction: number }
  /**
   * Run `standbys` standby heads and SIGKILL the active head once this fraction of the
   * messages is acked (paced like `killBroker`); the summary gives `takeoverMs`.
   */
  readonly killHead?: { readonly standbys: number; readonly atFraction: number }
  /** Metrics ports: the head serves on this one, broker i on +1+i, the publisher and subscriber next; 0 = none. */
  readonly metricsPort?: number
  /** Write an HTML report of the run here (`extra` joins its configuration table: a bench's loopback figure). */
  readonly report?: { readonly path: string; readonly title: string; readonly extra?: Record<string, unknown> }
}

export interface RunSummary {
  readonly region: string
  /** Orphaned regions of earlier runs (their run gone, nothing using them) this run removed first. */
  readonly reclaimedRegions: ReadonlyArray<string>
  readonly messages: number
  /** Messages published before those measured (`warmupBytes`); the audit covers them too. */
  readonly warmupMessages: number
  /** How long the warm-up took, to its last ACK (null without one). */
  readonly warmupMs: number | null
  /** Batches the publisher sealed (resends not counted again). */
  readonly batches: number
  readonly bytes: number
  readonly messageBytes: number
  readonly brokers: number
  readonly order: number
  readonly ackLevel: number
  readonly elapsedMs: number
  readonly throughputMBps: number
  readonly ackLatencyP50Us: number
  readonly ackLatencyP99Us: number
  /**
   * The audit's figures (null without a subscriber): `received` is what the subscriber read
   * (duplicates included; `messages` is what was published); a missing message is `lost` if
   * the subscriber read to the end of the log, else `notDelivered` (see Audit.ts).
   */
  readonly received: number | null
  readonly lost: number | null
  readonly notDelivered: number | null
  readonly duplicated: number | null
  /** Messages out of publish order: a failure in order mode 5 only, the one that promises that order. */
  readonly outOfOrder: number | null
  readonly crcMismatches: number | null
  readonly resends: number
  /** The broker SIGKILLed mid-run (`--kill-broker`), if it was. */
  readonly killedBroker: number | null
  /**
   * `--kill-head`: from the SIGKILL of the active head to the first GOI entry written by the
   * standby that took over (null without `--kill-head`).
   */
  readonly takeoverMs: number | null
  /** `--kill-head`: the epoch of the head that took over (the killed one's + 1). */
  readonly takeoverEpoch: number | null
  /** Null when no subscriber audited the run; with remote subscribers, whether every audit (local and remote) passed. */
  readonly auditPassed: boolean | null
  /**
   * `remoteSubscribers`: each remote subscriber's audit and read throughput (payload MB/s from
   * its first batch to the end of its audit); `remoteSubscriberMBps` is the slowest one's (null without).
   */
  readonly remoteSubscribers: ReadonlyArray<AuditResult & { readonly mBps: number }>
  readonly remoteSubscriberMBps: number | null
  /** Whether a subscriber read (and audited) the whole run. */
  readonly endToEnd: boolean
  /**
   * ACK 2 runs (topic RF 2, the head's durable tier): the head's fdatasyncs, the bytes each
   * covered on average and the data directory's filesystem (`tmpfs`: no disk behind them); null otherwise.
   */
  readonly durable: { readonly fsyncs: number; readonly bytesPerFsync: number; readonly filesystem: string } | null
  /**
   * CPU seconds (user + system) per GiB published, by role, from the publisher's start to
   * each role's end of the run (process start-up excluded); 0 where /proc is unavailable.
   */
  readonly cpuSecondsPerGiB: {
    readonly head: number
    readonly brokers: number
    readonly publisher: number
    readonly subscriber: number
    /** All remote subscriber processes together (0 without them). */
    readonly remoteSubscribers: number
    readonly total: number
  }
}

/** A fresh data directory for an ACK 2 run (under CXLOG_DATA_DIR, else the OS's temporary directory), removed with the run's scope. */
const runDataDir = Effect.acquireRelease(
  Effect.flatMap(Config.string("CXLOG_DATA_DIR").pipe(Config.withDefault(tmpdir())), (parent) => Effect.sync(() => mkdtempSync(join(parent, "cxlog-run-data-")))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/**
 * The heads' durable-tier reports (`durable` events: fsyncs and bytes so far, each process its
 * own): `next` waits for one after the call and sums every head's latest, so a head that took
 * over (counting from 0) adds to what the one before it reported.
 */
const durableReports = (heads: ReadonlyArray<RoleProcess>) => {
  const latest = new Map<RoleProcess, { readonly fsyncs: number; readonly bytes: number }>()
  let waiter: (() => void) | undefined
  for (const head of heads) {
    head.on((e) => {
      if (e.event !== "durable") return
      latest.set(head, { fsyncs: e["fsyncs"] as number, bytes: e["bytes"] as number })
      const w = waiter
      waiter = undefined
      w?.()
    })
  }
  const total = () => {
    let fsyncs = 0
    let bytes = 0
    for (const figures of latest.values()) {
      fsyncs += figures.fsyncs
      bytes += figures.bytes
    }
    return { fsyncs, bytes }
  }
  return {
    next: (timeoutMs: number) =>
      Effect.async<{ fsyncs: number; bytes: number }, RoleFailed>((resume) => {
        const timer = setTimeout(() => {
          waiter = undefined
          resume(Effect.fail(new RoleFailed({ role: heads.length > 1 ? "heads" : heads[0]!.role, reason: `no durable-tier report within ${timeoutMs} ms`, stderr: "" })))
        }, timeoutMs)
        waiter = () => {
          clearTimeout(timer)
          resume(Effect.succeed(total()))
        }
        return Effect.sync(() => {
          clearTimeout(timer)
          waiter = undefined
        })
      })
  }
}

/** How long a run with a broker or head to kill is paced to take (see `RunOptions.killBroker`). */
const KILL_RUN_SECONDS = 2
/** How long a run waits after killing its head for a standby's first GOI entry before it fails. */
const TAKEOVER_BOUND_MS = 10_000

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`

const perGiB = <K extends string>(bytes: number, seconds: Record<K, number>): Record<K, number> => {
  const out = {} as Record<K, number>
  for (const key of Object.keys(seconds) as Array<K>) out[key] = Math.round((seconds[key] / (bytes / 2 ** 30)) * 100) / 100
  return out
}

/** Region sizing for the run: one topic, `brokers` broker slots, blogs large enough to absorb bursts. */
export const logEnv = (options: Pick<ClusterShape, "brokers" | "batchBytes">): Record<string, string> => ({
  CXLOG_LOG_MAX_TOPICS: "1",
  CXLOG_LOG_MAX_BROKERS: `${Math.max(options.brokers, 1)}`,
  CXLOG_LOG_BLOG_BYTES: `${32 << 20}`,
  CXLOG_LOG_PBR_SLOTS: `${Math.max(defaultLogConfig.pbrSlots, 2048)}`,
  CXLOG_LOG_MAX_BATCH_BYTES: `${Math.max(options.batchBytes, 1 << 20)}`
})

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
      return yield* new InvalidRun({ reason: `--kill-broker ${kill}: the run starts ${numbered} (--broker-count ${options.brokers})` })
    }
    if (options.totalBytes < options.messageBytes) {
      return yield* new InvalidRun({ reason: `--bytes ${options.totalBytes} holds no whole ${options.messageBytes}-byte message (--message-bytes)` })
    }
    const refused = stampedRefusal({
      publisher: { brokers: [{ host: "127.0.0.1", port: 0 }], topic: "run", batchBytes: options.batchBytes, maxInFlightBatches: options.window, ackLevel: options.ackLevel },
      messageBytes: options.messageBytes
    })
    if (refused !== undefined) return yield* refused
    const headEnv = { ...process.env, ...logEnv(options), ...options.env }
    yield* validateRegion(yield* Effect.withConfigProvider(regionConfig, envConfigProvider(headEnv)))
  })

export const run = (options: RunOptions) =>
  Effect.gen(function*() {
    yield* checkRun(options)
    const region = runRegionName(process.pid)
    const reclaimed = yield* pruneRunRegions
    const messages = Math.floor(options.totalBytes / options.messageBytes)
    const bytes = messages * options.messageBytes
    const warmup = Math.floor((options.warmupBytes ?? 0) / options.messageBytes)
    /** What the subscribers audit: the warm-up's messages, then the measured ones. */
    const auditMessages = `${warmup + messages}`
    // ACK 2: the topic keeps a copy on disk, in a fresh directory (under CXLOG_DATA_DIR if set) removed after the run.
    const dataDir = options.ackLevel === 2 ? yield* runDataDir : undefined
    const filesystem = dataDir === undefined ? undefined : yield* dataDirFilesystem(dataDir)
    // No role serves metrics unless given its own port below (CXLOG_METRICS_PORT in our environment is not theirs).
    const env = { ...logEnv(options), CXLOG_REGION: region, CXLOG_METRICS_PORT: "0", ...options.env, ...(dataDir === undefined ? {} : { CXLOG_DATA_DIR: dataDir }) }
    const killing = options.killBroker !== undefined || options.killHead !== undefined
    const offeredMBps = options.offeredMBps ?? (killing ? bytes / 1e6 / KILL_RUN_SECONDS : undefined)
    yield* regionGuard(region)
    const human = options.output === "human"
    const interactive = process.stdout.isTTY === true && human
    const say = (line: string) => (human ? Console.log(line) : Effect.void)

    if (reclaimed.length > 0) {
      yield* say(`reclaimed ${reclaimed.length} orphaned run region(s) of earlier runs: ${reclaimed.map((r) => `${r.name} (${mib(r.bytes)})`).join(", ")}`)
    }
    yield* say(
      `cxlog run: ${mib(bytes)} of ${options.messageBytes}-byte messages${warmup === 0 ? "" : ` after a warm-up of ${mib(warmup * options.messageBytes)}`}, order ${options.order}, ack ${options.ackLevel}, ${options.brokers} brokers, region /dev/shm/${region}`
    )
    const metricsBase = options.metricsPort ?? 0
    const metricsEnv = (index: number) => ({ CXLOG_METRICS_PORT: metricsBase > 0 ? `${metricsBase + index}` : "0" })
    if (metricsBase > 0) {
      const at = (index: number) => `127.0.0.1:${metricsBase + index}`
      const names = ["head", ...Array.from({ length: options.brokers }, (_, i) => `broker ${i}`), "publisher", ...(options.subscriber !== false ? ["subscriber"] : [])]
      yield* say(`metrics: ${names.map((name, i) => `${name} http://${at(i)}/metrics`).join(", ")}`)
      yield* say(`watch: cxlog dashboard (or --targets ${names.map((_, i) => at(i)).join(",")})`)
      yield* announceTargets(names.map((_, i) => at(i)))
    }
    const { brokers, head, ports } = yield* startHeadAndBrokers(
      `run:${options.order}:${options.ackLevel}${dataDir === undefined ? "" : ":2"}`,
      options.brokers,
      env,
      metricsEnv
    )
    const standbys = yield* Effect.forEach(
      Array.from({ length: options.killHead?.standbys ?? 0 }, (_, i) => i),
      (i) => spawnRole(`standby head ${i}`, ["head", "--standby"], env)
    )
    yield* Effect.forEach(standbys, (s) => s.event("standby", 20_000)).pipe(whileAlive([head, ...brokers], "the standby heads to start"))
    const durable = durableReports([head, ...standbys])
    // With standbys, the active head is whichever said ready last (one may take over early from a
    // head stalled past its lease on a loaded machine), and no single head is essential.
    let activeHead = head
    for (const standby of standbys) standby.on((e) => e.event === "ready" && (activeHead = standby))
    const heads = standbys.length === 0 ? [head] : []
    const withSubscriber = options.subscriber !== false
    const subscriber = withSubscriber
      ? yield* spawnRole(
        "subscriber",
        ["subscribe", "--topic", "run", "--audit-publishers", "1", "--audit-messages", auditMessages, "--audit-order", `${options.order}`, "--idle-timeout-ms", "30000", "--until-publishers-done"],
        { ...env, ...metricsEnv(options.brokers + 2) }
      )
      : undefined
    if (subscriber !== undefined) yield* subscriber.event("subscribed", 20_000).pipe(whileAlive([...heads, ...brokers], "the subscriber to subscribe"))
    // Remote subscribers: each a named consumer (its commits hold retention, so it reads everything while the
    // publishers wait for it, as a durable reader would), each trying the brokers from its own first one.
    const remotes = yield* Effect.forEach(Array.from({ length: options.remoteSubscribers ?? 0 }, (_, i) => i), (i) =>
      spawnRole(`remote subscriber ${i}`, [
        "subscribe",
        "--brokers",
        ports.map((_, j) => `127.0.0.1:${ports[(i + j) % ports.length]}`).join(","),
        "--topic",
        "run",
        "--audit-publishers",
        "1",
        "--audit-messages",
        auditMessages,
        "--audit-order",
        `${options.order}`,
        "--idle-timeout-ms",
        "30000",
        "--until-publishers-done",
        "--consumer",
        `run-remote-${i}`
      ], env))
    yield* Effect.forEach(remotes, (r) => r.event("subscribed", 20_000)).pipe(whileAlive([...heads, ...brokers], "the remote subscribers to subscribe"))
    const publisher = yield* spawnRole("publisher", [
      "publish",
      "--brokers",
      ports.map((p) => `127.0.0.1:${p}`).join(","),
      "--topic",
      "run",
      "--count",
      `${messages}`,
      "--message-bytes",
      `${options.messageBytes}`,
      "--batch-bytes",
      `${options.batchBytes}`,
      "--window",
      `${options.window}`,
      "--ack",
      `${options.ackLevel}`,
      ...(warmup === 0 ? [] : ["--warmup-count", `${warmup}`]),
      ...(offeredMBps === undefined ? [] : ["--rate-mbps", `${offeredMBps}`])
    ], { ...env, ...metricsEnv(options.brokers + 1) })
    const timeline = options.report === undefined
      ? undefined
      : yield* makeTimeline([head, ...brokers, publisher, ...(subscriber === undefined ? [] : [subscriber])])

    // elapsedMs is the publisher's own clock, the one the summary's MB/s divides by.
    const progress = { acked: 0, ordered: 0, read: 0, elapsedMs: 0 }
    /** A count of the whole log as one of the measured messages (the warm-up's come first). */
    const measured = (count: number | undefined, otherwise: number) => (count === undefined ? otherwise : Math.max(0, count - warmup))
    /** How long the warm-up took, once the publisher says it is done (`warm`). */
    let warmupMs: number | null = null
    publisher.on((e) => {
      if (e.event === "warm") warmupMs = Math.round(e["elapsedMs"] as number)
    })
    const cpu = makeCpuMeter([head, ...standbys, ...brokers, publisher, ...(subscriber === undefined ? [] : [subscriber]), ...remotes])
    for (const r of remotes) r.on((e) => e.event === "done" && cpu.stop(r))
    publisher.on((e) => {
      if (e.event === "progress") cpu.start()
      else if (e.event === "done") cpu.stop(publisher)
    })
    subscriber?.on((e) => {
      if (e.event === "done") cpu.stop(subscriber)
    })
    publisher.on((e) => {
      if (e.event === "progress") {
        progress.acked = (e["ackedMessages"] as number) ?? progress.acked
        progress.elapsedMs = (e["elapsedMs"] as number) ?? progress.elapsedMs
      }
    })
    for (const h of [head, ...standbys]) {
      h.on((e) => {
        if (e.event === "ordered") progress.ordered = measured((e["ordered"] as Record<string, number>)["run"], progress.ordered)
      })
    }
    subscriber?.on((e) => {
      if (e.event === "progress") progress.read = measured(e["messages"] as number | undefined, progress.read)
    })
    const kill = options.killBroker
    let killedBroker: number | null = null
    if (kill !== undefined) {
      publisher.on((e) => {
        const victim = brokers[kill.index]
        if (e.event === "progress" && killedBroker === null && progress.acked >= messages * kill.atFraction && victim !== undefined) {
          killedBroker = kill.index
          victim.kill("SIGKILL")
        }
      })
    }
    // --kill-head: the kill, then the standby that took over says when it wrote its first GOI entry.
    const killHead = options.killHead
    const headKilledAt = yield* Deferred.make<number>()
    const takeover = yield* Deferred.make<{ readonly atMs: number; readonly epoch: number }>()
    if (killHead !== undefined) {
      let killedAtMs = 0
      let victim = head
      publisher.on((e) => {
        if (e.event === "progress" && killedAtMs === 0 && progress.acked >= messages * killHead.atFraction) {
          killedAtMs = Date.now()
          victim = activeHead
          victim.kill("SIGKILL")
          Deferred.unsafeDone(headKilledAt, Effect.succeed(killedAtMs))
        }
      })
      for (const standby of standbys) {
        let epoch = 0
        standby.on((e) => {
          if (e.event === "ready") epoch = e["epoch"] as number
          else if (e.event === "firstOrdered" && killedAtMs > 0 && standby !== victim) {
            Deferred.unsafeDone(takeover, Effect.succeed({ atMs: e["atMs"] as number, epoch }))
          }
        })
      }
    }
    /** Fails the run when no standby took over within the bound after the kill (never, without one). */
    const takenOver = Effect.flatMap(Deferred.await(headKilledAt), () =>
      Deferred.await(takeover).pipe(
        Effect.timeoutFail({
          duration: TAKEOVER_BOUND_MS,
          onTimeout: () => new RoleFailed({ role: "standby heads", reason: `no standby head ordered a batch within ${TAKEOVER_BOUND_MS} ms of the head's SIGKILL`, stderr: "" })
        }),
        Effect.zipRight(Effect.never)
      ))
    const line = () => {
      if (!withSubscriber) progress.read = 0
      const seconds = progress.elapsedMs / 1000
      const pct = (n: number) => `${((100 * Math.min(n, messages)) / messages).toFixed(0).padStart(3)}%`
      return `${(progress.acked * options.messageBytes / 1e6 / Math.max(seconds, 1e-3)).toFixed(0).padStart(5)} MB/s  acked ${pct(progress.acked)}  ordered ${pct(progress.ordered)}  read ${pct(progress.read)}  ${seconds.toFixed(1)} s`
    }
    // On a terminal the live line is rewritten in place, without its newline: a run that stops
    // before its summary (a role failed, Ctrl-C) ends it, or the failure's line would go onto it.
    let liveLineOpen = false
    yield* Effect.addFinalizer(() => Effect.sync(() => liveLineOpen && process.stdout.write("\n")))
    const ticker = yield* Effect.sync(() => {
      if (!interactive) return
      process.stdout.write(`\r${line()}`)
      liveLineOpen = true
    }).pipe(
      Effect.zipRight(!human || interactive ? Effect.void : Effect.suspend(() => Console.log(line()))),
      Effect.repeat(Schedule.spaced(interactive ? "250 millis" : "2 seconds")),
      Effect.delay("250 millis"),
      Effect.fork
    )
    // Any role dying before it is done fails the run at once, naming it, what the run waited for, and its last output.
    const essential = [...heads, ...brokers.filter((_, i) => i !== kill?.index)]
    // A subscriber gone before the publishers are done failed (out of retention, say): the run fails now, naming it.
    const readers = [...(subscriber === undefined ? [] : [subscriber]), ...remotes]
    const published = yield* publisher.event("done", 3_600_000).pipe(whileAlive([...essential, ...readers], "the publisher to finish"), Effect.raceFirst(takenOver))
    // Every ACK 2 came after its fdatasync: the head's next report counts them all.
    const durableFigures = dataDir === undefined ? null : yield* durable.next(5_000)
    // Everything is acked: the subscriber now reads to the log's end, duplicates after the last distinct message included.
    for (const s of readers) if (s.child.connected) s.child.send({ event: "publishersDone" })
    const audited = subscriber === undefined ? undefined : yield* subscriber.event("done", 3_600_000).pipe(whileAlive(essential, "the subscriber's audit"))
    // A remote subscriber that fell out of retention fails (LogOutOfRange) and so fails the run, naming it.
    const remoteAudits = yield* Effect.forEach(remotes, (r) =>
      r.event("done", 3_600_000).pipe(
        whileAlive(essential, `${r.role}'s audit`),
        Effect.map((e) => ({
          ...(e["audit"] as AuditResult),
          mBps: Math.round(((e["bytes"] as number) / 1e6 / Math.max((e["elapsedMs"] as number) / 1000, 1e-3)) * 10) / 10
        }))
      ))
    cpu.stopAll()
    yield* Fiber.interrupt(ticker)
    // The last line is the summary's own numbers: every message acked (else the publisher failed), what the subscriber read, in the publisher's time.
    progress.acked = messages
    progress.elapsedMs = published["elapsedMs"] as number
    if (audited !== undefined) progress.read = measured(audited["messages"] as number, progress.read)
    progress.ordered = Math.max(progress.ordered, progress.read, options.ackLevel >= 1 ? messages : 0)
    if (interactive) {
      process.stdout.write(`\r${line()}\n`)
      liveLineOpen = false
    }
    else yield* say(line())

    const audit = audited === undefined ? undefined : audited["audit"] as AuditResult
    const killedAt = yield* Deferred.poll(headKilledAt).pipe(Effect.flatMap((o) => (o._tag === "Some" ? o.value : Effect.succeed(undefined))))
    const tookOver = yield* Deferred.poll(takeover).pipe(Effect.flatMap((o) => (o._tag === "Some" ? o.value : Effect.succeed(undefined))))
    const elapsedMs = published["elapsedMs"] as number
    const summary: RunSummary = {
      region,
      reclaimedRegions: reclaimed.map((r) => r.name),
      messages,
      warmupMessages: warmup,
      warmupMs,
      bytes,
      messageBytes: options.messageBytes,
      brokers: options.brokers,
      order: options.order,
      ackLevel: options.ackLevel,
      elapsedMs: Math.round(elapsedMs),
      throughputMBps: Math.round((bytes / 1e6 / (elapsedMs / 1000)) * 10) / 10,
      ackLatencyP50Us: Math.round(published["ackLatencyP50Us"] as number),
      ackLatencyP99Us: Math.round(published["ackLatencyP99Us"] as number),
      received: audit?.received ?? null,
      lost: audit?.lost ?? null,
      notDelivered: audit?.notDelivered ?? null,
      duplicated: audit?.duplicated ?? null,
      outOfOrder: audit?.outOfOrder ?? null,
      crcMismatches: audit?.crcMismatches ?? null,
      resends: published["resends"] as number,
      batches: published["batches"] as number,
      killedBroker,
      takeoverMs: killedAt === undefined || tookOver === undefined ? null : Math.max(0, tookOver.atMs - killedAt),
      takeoverEpoch: tookOver?.epoch ?? null,
      endToEnd: withSubscriber,
      durable: durableFigures === null || filesystem === undefined
        ? null
        : { fsyncs: durableFigures.fsyncs, bytesPerFsync: Math.round(durableFigures.bytes / Math.max(durableFigures.fsyncs, 1)), filesystem },
      auditPassed: audit === undefined ? null : audit.passed && remoteAudits.every((r) => r.passed),
      remoteSubscribers: remoteAudits,
      remoteSubscriberMBps: remoteAudits.length === 0 ? null : Math.min(...remoteAudits.map((r) => r.mBps)),
      cpuSecondsPerGiB: perGiB(bytes, {
        head: cpu.seconds((r) => r === head || standbys.includes(r)),
        brokers: cpu.seconds((r) => brokers.includes(r)),
        publisher: cpu.seconds((r) => r === publisher),
        subscriber: cpu.seconds((r) => r === subscriber),
        remoteSubscribers: cpu.seconds((r) => remotes.includes(r)),
        total: cpu.seconds(() => true)
      })
    }
    if (options.output === "json") {
      yield* Console.log(JSON.stringify(summary))
    } else if (human) {
      yield* Console.log(
        [
          "",
          ...(warmupMs === null ? [] : [`warm-up: ${warmup} messages (${mib(warmup * options.messageBytes)}) in ${(warmupMs / 1000).toFixed(2)} s, not measured`]),
          `published ${summary.messages} messages (${mib(bytes)}) in ${(elapsedMs / 1000).toFixed(2)} s: ${summary.throughputMBps} MB/s`,
          `ACK latency (seal → ack): p50 ${summary.ackLatencyP50Us} µs, p99 ${summary.ackLatencyP99Us} µs; resends ${summary.resends}`,
          ...(summary.durable === null ? [] : [`durable tier (ACK 2 = on disk): ${summary.durable.fsyncs} fdatasyncs, ${summary.durable.bytesPerFsync} bytes each on average, data directory on ${summary.durable.filesystem}`]),
          ...(summary.takeoverMs === null ? [] : [`head SIGKILLed mid-run: a standby took over (epoch ${summary.takeoverEpoch}) and ordered its first batch ${summary.takeoverMs} ms after the kill`]),
          `CPU seconds per GiB: head ${summary.cpuSecondsPerGiB.head}, brokers ${summary.cpuSecondsPerGiB.brokers}, publisher ${summary.cpuSecondsPerGiB.publisher}, subscriber ${summary.cpuSecondsPerGiB.subscriber}${remoteAudits.length === 0 ? "" : `, remote subscribers ${summary.cpuSecondsPerGiB.remoteSubscribers}`}; total ${summary.cpuSecondsPerGiB.total}`,
          audit === undefined
            ? "no subscriber (publish → ACK only)"
            : `subscriber audit: received ${audit.received} of ${audit.expected}; ${auditFigures(audit)} — ${
              audit.passed ? "PASSED" : "FAILED"
            }`,
          ...remoteAudits.map((r, i) =>
            `remote subscriber ${i} audit (over TCP, ${r.mBps} MB/s): received ${r.received} of ${r.expected}; ${auditFigures(r)} — ${
              r.passed ? "PASSED" : "FAILED"
            }`
          )
        ].join("\n")
      )
    }
    if (options.report !== undefined && timeline !== undefined) {
      yield* writeReport(options.report.path, {
        title: options.report.title,
        rows: timeline.rows({ published: progress.acked, ordered: progress.ordered, read: progress.read }),
        messageBytes: options.messageBytes,
        ackLatencyQuantilesUs: (published["ackLatencyQuantilesUs"] as ReadonlyArray<number> | undefined) ?? [],
        configuration: {
          region,
          messages,
          messageBytes: options.messageBytes,
          brokers: options.brokers,
          order: options.order,
          ackLevel: options.ackLevel,
          batchBytes: options.batchBytes,
          window: options.window,
          offeredMBps: offeredMBps ?? "as fast as the window allows",
          subscriber: withSubscriber,
          ...(kill === undefined ? {} : { killBroker: kill.index }),
          ...options.report.extra
        },
        summary: { ...summary },
        audit: audit === undefined ? undefined : { ...audit }
      })
      yield* say(`report: ${options.report.path}`)
    }
    if (audit !== undefined && !audit.passed) return yield* new RoleFailed({ role: "subscriber", reason: "the audit failed", stderr: "" })
    const failedRemote = remoteAudits.findIndex((r) => !r.passed)
    if (failedRemote >= 0) return yield* new RoleFailed({ role: `remote subscriber ${failedRemote}`, reason: "the audit failed", stderr: "" })
    return summary
  }).pipe(Effect.scoped)
