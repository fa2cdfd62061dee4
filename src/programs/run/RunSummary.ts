/**
 * The summary of a `cxlog run` (RunSummary): its figures from the plan, the progress record and
 * the roles' last events; printed as lines or one JSON line, and written as an HTML report.
 */
import { Console, Effect } from "effect"
import type { makeTimeline } from "../report/HtmlReport.js"
import { writeReport } from "../report/HtmlReport.js"
import { auditFigures, type AuditResult } from "./Audit.js"
import { RoleFailed, type RoleProcess } from "./Cluster.js"
import { shapeFigures } from "./ClusterShape.js"
import type { RunRoles } from "./RunCluster.js"
import type { RunOutcome } from "./RunOutcome.js"
import type { RunOptions, RunPlan } from "./RunPlan.js"
import type { RunProgress } from "./RunProgress.js"

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
  /** The publisher was local (`--local`): it appended into the region itself, through no broker. */
  readonly local: boolean
  readonly order: number
  readonly ackLevel: number
  readonly elapsedMs: number
  /** Payload MB/s from the first publish to the last ACK (`publishMBps`, under its older name). */
  readonly throughputMBps: number
  /** Payload MB/s from the first publish to the last ACK. */
  readonly publishMBps: number
  /**
   * Payload MB/s from the first publish to the moment the subscriber (its own process) had read
   * every message once; null without a subscriber.
   */
  readonly e2eMBps: number | null
  /** Each message's, from its publish call to its ACK. */
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
  /** The publisher's send window as it finished, in batches: where the adaptive window settled, or `--window` with `--fixed-window`. */
  readonly publisherWindow: number
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
  /**
   * Over the same span, the roles' main threads (their JavaScript; the rest of their CPU is V8's
   * compiler and GC threads and libuv's): CPU seconds, and how many times they woke.
   */
  readonly mainThreads: RoleGroups<{ readonly seconds: number; readonly wakes: number }>
}

/** A figure for the head (and standbys), the brokers, the publisher, and every process of the run. */
export interface RoleGroups<A> {
  readonly head: A
  readonly brokers: A
  readonly publisher: A
  readonly total: A
}

export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`

const perGiB = <K extends string>(bytes: number, seconds: Record<K, number>): Record<K, number> => {
  const out = {} as Record<K, number>
  for (const key of Object.keys(seconds) as Array<K>) {
    out[key] = Math.round((seconds[key] / (bytes / 2 ** 30)) * 100) / 100
  }
  return out
}

/** A figure per role group, `of` each. */
export const byRoleGroup = <A>(of: (group: keyof RoleGroups<A>) => A): RoleGroups<A> => ({
  head: of("head"),
  brokers: of("brokers"),
  publisher: of("publisher"),
  total: of("total")
})

/** The run's figures; `takeover` from `takeoverFigures`. */
export const summarize = (
  plan: RunPlan,
  { brokers, head, publisher, remotes, standbys, subscriber }: RunRoles,
  progress: RunProgress,
  { audited, durable, published, remoteAudits }: RunOutcome,
  takeover: { readonly takeoverMs: number | null; readonly takeoverEpoch: number | null }
): RunSummary => {
  const { options } = plan
  const audit = audited?.audit
  const elapsedMs = published.elapsedMs
  const cpu = progress.cpu
  const mBps = (ms: number) => Math.round((plan.bytes / 1e6 / (ms / 1000)) * 10) / 10
  const completeAtMs = audited?.completeAtMs
  const is: RoleGroups<(role: RoleProcess) => boolean> = {
    head: (r) => r === head || standbys.some((s) => s === r),
    brokers: (r) => brokers.some((b) => b === r),
    publisher: (r) => r === publisher,
    total: () => true
  }
  return {
    region: plan.region,
    reclaimedRegions: plan.reclaimed.map((r) => r.name),
    messages: plan.messages,
    warmupMessages: plan.warmup,
    warmupMs: progress.warmupMs,
    bytes: plan.bytes,
    messageBytes: options.messageBytes,
    brokers: options.brokers,
    local: options.local === true,
    order: options.order,
    ackLevel: options.ackLevel,
    elapsedMs: Math.round(elapsedMs),
    throughputMBps: mBps(elapsedMs),
    publishMBps: mBps(elapsedMs),
    e2eMBps: completeAtMs === undefined ? null : mBps(completeAtMs - published.startedAtMs),
    ackLatencyP50Us: Math.round(published.ackLatencyP50Us),
    ackLatencyP99Us: Math.round(published.ackLatencyP99Us),
    received: audit?.received ?? null,
    lost: audit?.lost ?? null,
    notDelivered: audit?.notDelivered ?? null,
    duplicated: audit?.duplicated ?? null,
    outOfOrder: audit?.outOfOrder ?? null,
    crcMismatches: audit?.crcMismatches ?? null,
    resends: published.resends,
    publisherWindow: published.window,
    batches: published.batches,
    killedBroker: progress.killedBroker,
    takeoverMs: takeover.takeoverMs,
    takeoverEpoch: takeover.takeoverEpoch,
    endToEnd: plan.withSubscriber,
    durable: durable === null || plan.filesystem === undefined
      ? null
      : {
        fsyncs: durable.fsyncs,
        bytesPerFsync: Math.round(durable.bytes / Math.max(durable.fsyncs, 1)),
        filesystem: plan.filesystem
      },
    auditPassed: audit === undefined ? null : audit.passed && remoteAudits.every((r) => r.passed),
    remoteSubscribers: remoteAudits,
    remoteSubscriberMBps: remoteAudits.length === 0 ? null : Math.min(...remoteAudits.map((r) => r.mBps)),
    cpuSecondsPerGiB: perGiB(plan.bytes, {
      head: cpu.seconds(is.head),
      brokers: cpu.seconds(is.brokers),
      publisher: cpu.seconds(is.publisher),
      subscriber: cpu.seconds((r) => r === subscriber),
      remoteSubscribers: cpu.seconds((r) => remotes.some((s) => s === r)),
      total: cpu.seconds(is.total)
    }),
    mainThreads: byRoleGroup((group) => ({
      seconds: Math.round(cpu.mainSeconds(is[group]) * 100) / 100,
      wakes: cpu.wakes(is[group])
    }))
  }
}

/** The summary as `--json` prints it (one line), or as lines for a human; nothing when silent. */
export const printSummary = ({ human, options }: RunPlan, summary: RunSummary, { audited, published }: RunOutcome) => {
  if (options.output === "json") return Console.log(JSON.stringify(summary))
  if (!human) return Effect.void
  const audit = audited?.audit
  const { cpuSecondsPerGiB: cpu, remoteSubscribers: remoteAudits, warmupMessages: warmup, warmupMs } = summary
  return Console.log(
    [
      "",
      ...(warmupMs === null
        ? []
        : [
          `warm-up: ${warmup} messages (${mib(warmup * options.messageBytes)}) in ${
            (warmupMs / 1000).toFixed(2)
          } s, not measured`
        ]),
      `published ${summary.messages} messages (${mib(summary.bytes)}) in ${
        (published.elapsedMs / 1000).toFixed(2)
      } s: ${summary.throughputMBps} MB/s${
        summary.e2eMBps === null ? "" : `; read by the subscriber: ${summary.e2eMBps} MB/s end to end`
      }`,
      `ACK latency (publish call → ack, per message): p50 ${summary.ackLatencyP50Us} µs, p99 ${summary.ackLatencyP99Us} µs; resends ${summary.resends}; send window ${summary.publisherWindow} batches${
        options.fixedWindow === true ? " (fixed)" : ` (adaptive, at most ${options.window})`
      }`,
      ...(summary.durable === null
        ? []
        : [
          `durable tier (ACK 2 = on disk): ${summary.durable.fsyncs} fdatasyncs, ${summary.durable.bytesPerFsync} bytes each on average, data directory on ${summary.durable.filesystem}`
        ]),
      ...(summary.takeoverMs === null
        ? []
        : [
          `head SIGKILLed mid-run: a standby took over (epoch ${summary.takeoverEpoch}) and ordered its first batch ${summary.takeoverMs} ms after the kill`
        ]),
      `CPU seconds per GiB: head ${cpu.head}, brokers ${cpu.brokers}, publisher ${cpu.publisher}, subscriber ${cpu.subscriber}${
        remoteAudits.length === 0 ? "" : `, remote subscribers ${cpu.remoteSubscribers}`
      }; total ${cpu.total}`,
      audit === undefined
        ? "no subscriber (publish → ACK only)"
        : `subscriber audit: received ${audit.received} of ${audit.expected}; ${auditFigures(audit)} — ${
          audit.passed ? "PASSED" : "FAILED"
        }`,
      ...remoteAudits.map((r, i) =>
        `remote subscriber ${i} audit (over TCP, ${r.mBps} MB/s): received ${r.received} of ${r.expected}; ${
          auditFigures(r)
        } — ${r.passed ? "PASSED" : "FAILED"}`
      )
    ].join("\n")
  )
}

/** `--report`: the run as an HTML page (its timeline, ACK latencies, configuration, summary and audit). */
export const writeRunReport = (
  plan: RunPlan,
  report: NonNullable<RunOptions["report"]>,
  summary: RunSummary,
  progress: RunProgress,
  { audited, published }: RunOutcome,
  timeline: Effect.Effect.Success<ReturnType<typeof makeTimeline>>
) =>
  Effect.gen(function*() {
    const { options } = plan
    const audit = audited?.audit
    yield* writeReport(report.path, {
      title: report.title,
      rows: timeline.rows({ published: progress.acked, ordered: progress.ordered, read: progress.read }),
      messageBytes: options.messageBytes,
      ackLatencyQuantilesUs: published.ackLatencyQuantilesUs,
      configuration: {
        region: plan.region,
        messages: plan.messages,
        ...shapeFigures(options),
        offeredMBps: plan.offeredMBps ?? "as fast as the window allows",
        subscriber: plan.withSubscriber,
        ...(options.killBroker === undefined ? {} : { killBroker: options.killBroker.index }),
        ...report.extra
      },
      summary: { ...summary },
      audit: audit === undefined ? undefined : { ...audit }
    })
    yield* plan.say(`report: ${report.path}`)
  })

/** The summary, once every audit passed; else the first that did not, as the run's failure. */
export const requireAudits = (summary: RunSummary, audit: AuditResult | undefined) => {
  if (audit !== undefined && !audit.passed) {
    return Effect.fail(new RoleFailed({ role: "subscriber", reason: "the audit failed", stderr: "" }))
  }
  const failedRemote = summary.remoteSubscribers.findIndex((r) => !r.passed)
  if (failedRemote >= 0) {
    return Effect.fail(
      new RoleFailed({ role: `remote subscriber ${failedRemote}`, reason: "the audit failed", stderr: "" })
    )
  }
  return Effect.succeed(summary)
}
