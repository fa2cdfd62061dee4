/** `cxlog head`: creates the region (or attaches it, or stands by) and runs its coordinator and sequencer. */
import { Effect } from "effect"
import { resolve } from "node:path"
import { DURABLE_SETTINGS, parseDataDir, SEQUENCER_SETTINGS } from "../../services/log/LogSettings.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { DEFAULT_STANDBY_CHECK_MS } from "../roles/HeadDefaults.js"
import { metricsOnceHead, observed, observeFlags } from "../roles/Observe.js"
import { exitWithParent } from "../roles/Report.js"
import { coherence, credentials, region } from "./SharedFlags.js"
import {
  diskRetentionFlags,
  retentionFlags,
  topics,
  topicShapeFlags,
  unusedDiskRetention,
  withDiskRetention,
  withShapeFlags
} from "./TopicFlags.js"

/**
 * `--recover DIR` beside a flag it would silently override: the recovered head persists in DIR
 * (not in another --data-dir or CXLOG_DATA_DIR, which brokers reading old offsets would then be
 * given), makes a new region (not --attach's existing one) and runs at once (not --standby's wait).
 */
const recoverConflict = (
  o: {
    readonly recover: string | undefined
    readonly dataDir: string | undefined
    readonly attach: boolean
    readonly standby: boolean
  }
): string | undefined => {
  if (o.recover === undefined) return undefined
  if (o.dataDir !== undefined && resolve(o.dataDir) !== resolve(o.recover)) {
    return `--recover ${o.recover} persists the recovered log in ${o.recover}, and --data-dir (CXLOG_DATA_DIR) names another directory, ${o.dataDir}: give one of them`
  }
  if (o.attach) {
    return "--recover makes a new region from the data directory; --attach takes over an existing one (and recovers a missing one with --data-dir): give one of them"
  }
  if (o.standby) return "--standby waits for a region to take over and recovers nothing: give --recover or --standby"
  return undefined
}

export const headCommand = Cli.command({
  name: "head",
  summary: "Create the region and run its coordinator and sequencer",
  details: "The head creates the region (sized by the CXLOG_LOG_* and ring variables, see cxlog config), owns " +
    "process slot 0, writes the topic table and orders every topic's batches. It runs until stopped (Ctrl-C); " +
    "without --keep the region is removed when it stops.",
  flags: {
    region,
    coherence,
    topics,
    ...topicShapeFlags,
    ...retentionFlags,
    ...diskRetentionFlags,
    keep: Cli.fromSetting("keep", REGION_SETTINGS.settings.keep, {
      description: "leave the region in /dev/shm when the head stops"
    }),
    credentials,
    attach: Cli.toggle("attach", {
      env: "CXLOG_ATTACH",
      description: "take over an existing region whose head is gone, keeping its data (the region stays on exit); " +
        "if the region is gone and --data-dir is given, recover it from there as --recover does"
    }),
    holdTimeoutMs: Cli.fromSetting("hold-timeout-ms", SEQUENCER_SETTINGS.settings.holdTimeoutMs),
    sessionIdleMs: Cli.fromSetting("session-idle-ms", SEQUENCER_SETTINGS.settings.sessionIdleMs),
    sessionGapIdleMs: Cli.fromSetting("session-gap-idle-ms", SEQUENCER_SETTINGS.settings.sessionGapIdleMs),
    leaseMs: Cli.fromSetting("sequencer-lease-ms", SEQUENCER_SETTINGS.settings.leaseMs),
    standby: Cli.toggle("standby", {
      env: "CXLOG_STANDBY",
      description: "attach to a running region and take over its sequencer and coordinator when its head's lease lapses"
    }),
    standbyCheckMs: Cli.millis("standby-check-ms", {
      default: DEFAULT_STANDBY_CHECK_MS,
      min: 1,
      env: "CXLOG_STANDBY_CHECK_MS",
      description: "--standby: how often to look at the head's lease"
    }),
    dataDir: Cli.fromSetting("data-dir", DURABLE_SETTINGS.settings.dataDir, {
      shown: "none: memory only (no topic may have replication factor 2)"
    }),
    recover: Cli.custom("recover", "DIR", parseDataDir, {
      default: undefined,
      shown: "none",
      description:
        "create the region and rebuild every topic the data directory DIR recorded (and any --topic), in the recorded order, " +
        "with its named consumers at their committed offsets; then persist there"
    }),
    ...observeFlags,
    metricsPort: {
      ...observeFlags.metricsPort,
      description: `${observeFlags.metricsPort.description}; a --standby head serves it once it has taken over`
    }
  },
  examples: [
    "cxlog head --topic events",
    "cxlog head --region orders --topic orders:5:1 --topic audit:2:0 --keep",
    "cxlog head --attach            # carry on with a region whose head died",
    "cxlog head --standby           # a second head: takes over when the first dies or hangs"
  ],
  run: (o) =>
    Effect.gen(function*() {
      exitWithParent()
      const conflict = recoverConflict(o)
      if (conflict !== undefined) return yield* failUsage(conflict)
      // Recovered topics keep the retention their data directory recorded: these apply to --topic alone.
      const unused = unusedDiskRetention(o.topics, o)
      if (unused !== undefined) return yield* failUsage(`cxlog head: ${unused}`)
      const { regionConfig } = yield* Cli.load(() => import("../../layers/RegionLayout.js"))
      const { requireDataDir } = yield* Cli.load(() => import("../../layers/log/durable/DurableTier.js"))
      const { headCredentials } = yield* Cli.load(() => import("../admin/Users.js"))
      const { head } = yield* Cli.load(() => import("../roles/Head.js"))
      const config = yield* regionConfig
      const topics = withShapeFlags(withDiskRetention(o.topics, o), o)
      // Before the region exists: the head would refuse these topics only once it had made it.
      yield* requireDataDir(topics, o.recover ?? o.dataDir)
      // A standby uses what its head made (creating them too could race it).
      if (!o.standby) yield* headCredentials(o.region, o.credentials, o.keep || o.attach)
      // A standby serves the head's metrics once it is the head: until then the head holds the port.
      const whenHead = o.standby && o.metricsPort > 0 ? yield* metricsOnceHead("head", o.metricsPort) : undefined
      yield* head({
        region: { name: o.region, coherence: o.coherence },
        config,
        topics,
        keep: o.keep,
        attach: o.attach,
        standby: o.standby,
        checkEveryMs: o.standbyCheckMs,
        sequencer: {
          holdTimeoutMs: o.holdTimeoutMs,
          sessionIdleMs: o.sessionIdleMs,
          ...(o.sessionGapIdleMs === undefined ? {} : { sessionGapIdleMs: o.sessionGapIdleMs }),
          leaseMs: o.leaseMs
        },
        reportEveryMs: 250,
        ...(whenHead === undefined ? {} : { whenHead }),
        ...(o.recover !== undefined
          ? { dataDir: o.recover, recover: true }
          : o.dataDir === undefined
          ? {}
          : { dataDir: o.dataDir })
      })
    }).pipe(Effect.scoped, observed("head", o.standby ? { ...o, metricsPort: 0 } : o))
})
