/**
 * `cxlog config`: every `CXLOG_*` variable with the value cxlog resolves for it here and where
 * that came from. Flag variables resolve through the very flag definitions the commands parse
 * with; the others through the `Config` each layer reads, so what this prints is what runs.
 */
import { Console, Effect, Either, Option } from "effect"
import { serverOptionsConfig } from "../../layers/control/Coordinator.js"
import { logConfig } from "../../layers/log/Layout.js"
import { controlConfig } from "../../layers/RegionLayout.js"
import { regionOptionsConfig } from "../../layers/region/CxlMemory.js"
import { addonPath } from "../../native/Native.js"
import { cliEntry } from "../../PackageRoot.js"
import { headLostMsConfig } from "../../services/log/HeadWatch.js"
import { table } from "../report/Table.js"
import { type Command, type Flag, resolveFlag, type Source } from "../cli/CliKit.js"
import { profileArgs } from "../run/Cluster.js"
import { metricsHost } from "../roles/Observe.js"
import { redisServerSetting } from "../bench/peers/RedisPeer.js"
import { mirrorStatusDirectory } from "../../layers/mirror/MirrorStatusFile.js"

/** A variable without a flag: who reads it, what its values look like, and how to read it as they do. */
interface Setting {
  readonly env: string
  readonly usedBy: string
  readonly kind: string
  readonly read: Effect.Effect<unknown, unknown>
}

const field = <A, K extends keyof A>(config: Effect.Effect<A, unknown>, key: K) => Effect.map(config, (c) => c[key])

const settings: ReadonlyArray<Setting> = [
  ...([
    ["CXLOG_MAX_PROCESSES", "maxProcesses"],
    ["CXLOG_REQUEST_RING_BYTES", "requestRingBytes"],
    ["CXLOG_BROADCAST_RING_BYTES", "broadcastRingBytes"],
    ["CXLOG_APP_RINGS", "appRings"],
    ["CXLOG_APP_RING_BYTES", "appRingBytes"],
    ["CXLOG_APP_RING_READERS", "appRingReaders"]
  ] as const).map(([env, key]) => ({ env, usedBy: "head (region layout)", kind: "N", read: field(controlConfig, key) })),
  ...([
    ["CXLOG_LOG_MAX_TOPICS", "maxTopics"],
    ["CXLOG_LOG_MAX_BROKERS", "maxBrokers"],
    ["CXLOG_LOG_PBR_SLOTS", "pbrSlots"],
    ["CXLOG_LOG_BLOG_BYTES", "blogBytes"],
    ["CXLOG_LOG_GOI_SLOTS", "goiSlots"],
    ["CXLOG_LOG_SESSION_SLOTS", "sessionSlots"],
    ["CXLOG_LOG_SUBSCRIBER_SLOTS", "subscriberSlots"],
    ["CXLOG_LOG_LISTENER_SLOTS", "listenerSlots"],
    ["CXLOG_LOG_MAX_BATCH_BYTES", "maxBatchBytes"]
  ] as const).map(([env, key]) => ({ env, usedBy: "head (region layout)", kind: "N", read: field(logConfig, key) })),
  { env: "CXLOG_BARRIER_ON_DEATH", usedBy: "head (coordinator)", kind: "drop|fail", read: field(serverOptionsConfig, "onParticipantDeath") },
  { env: "CXLOG_HEARTBEAT_STALE_MS", usedBy: "head (coordinator)", kind: "MS", read: field(serverOptionsConfig, "heartbeatStaleMs") },
  { env: "CXLOG_DEBUG_BARRIERS", usedBy: "head (coordinator)", kind: "", read: field(serverOptionsConfig, "debugBarriers") },
  { env: "CXLOG_HEAD_LOST_MS", usedBy: "broker, subscribe", kind: "MS", read: headLostMsConfig },
  { env: "CXLOG_METRICS_HOST", usedBy: "roles with --metrics-port", kind: "ADDRESS", read: metricsHost },
  { env: "CXLOG_REGION_BYTES", usedBy: "library (CxlMemory.layerConfig)", kind: "N", read: field(regionOptionsConfig, "size") },
  { env: "CXLOG_REGION_MODE", usedBy: "library (CxlMemory.layerConfig)", kind: "create|attach|create-or-attach", read: field(regionOptionsConfig, "mode") },
  { env: "CXLOG_NATIVE_PATH", usedBy: "every process (the addon)", kind: "PATH", read: Effect.sync(addonPath) },
  { env: "CXLOG_BUILD_FROM_SOURCE", usedBy: "npm's install step (scripts/install-addon.mjs)", kind: "true|false", read: Effect.sync(() => process.env["CXLOG_BUILD_FROM_SOURCE"] ?? "false") },
  { env: "CXLOG_CODE_CACHE", usedBy: "every process (the launcher, dist/cxlog.mjs)", kind: "on|off|write|report", read: Effect.sync(() => process.env["CXLOG_CODE_CACHE"] ?? "on") },
  { env: "CXLOG_CLI", usedBy: "run, bench (the roles' entry)", kind: "PATH", read: Effect.sync(cliEntry) },
  { env: "CXLOG_REDIS_SERVER", usedBy: "bench --peers redis", kind: "PATH", read: Effect.sync(() => redisServerSetting() ?? "/usr/bin/redis-server, else on PATH") },
  { env: "CXLOG_NATS_SERVER", usedBy: "mirror tests, bench --type mirror, bench --peers nats", kind: "PATH", read: Effect.sync(() => process.env["CXLOG_NATS_SERVER"] ?? "/usr/sbin/nats-server, else on PATH") },
  { env: "CXLOG_MIRROR_STATUS_DIR", usedBy: "mirror, topics (mirror status files)", kind: "PATH", read: Effect.sync(mirrorStatusDirectory) },
  { env: "CXLOG_PROFILE_DIR", usedBy: "run, bench (V8 profiles of the roles)", kind: "PATH", read: Effect.sync(() => profileArgs().join(" ")) }
]

export interface ResolvedVariable {
  readonly variable: string
  readonly value: unknown
  readonly source: Source
  readonly usedBy: ReadonlyArray<string>
  /** What its values look like: `N`, `MS`, `SIZE`, `a|b`, "" for a switch, `PATH`, … */
  readonly kind: string
}

/** Every variable's resolved value: one row per distinct (variable, value), naming its users. */
export const resolveAll = <R>(commands: ReadonlyArray<Command<R>>, globals: ReadonlyArray<Flag<unknown>>, env: Record<string, string | undefined>) =>
  Effect.gen(function*() {
    const rows: Array<{ variable: string; value: unknown; source: Source; usedBy: Array<string>; kind: string }> = []
    const add = (variable: string, value: unknown, source: Source, user: string, kind: string) => {
      const same = rows.find((r) => r.variable === variable && JSON.stringify(r.value) === JSON.stringify(value))
      if (same === undefined) rows.push({ variable, value, source, usedBy: [user], kind })
      else if (!same.usedBy.includes(user)) same.usedBy.push(user)
    }
    const flagUsers = [...commands.map((cmd) => ({ name: cmd.name, flags: Object.values(cmd.flags) })), { name: "every command", flags: globals }]
    for (const { name, flags } of flagUsers) {
      for (const flag of flags) {
        if (flag.env === undefined) continue
        const resolved = resolveFlag(`cxlog ${name}`, flag, env)
        if (Either.isLeft(resolved)) return yield* resolved.left
        add(flag.env, resolved.right.value, resolved.right.source, `${name} --${flag.name}`, flag.placeholder)
      }
    }
    for (const setting of settings) {
      const value = yield* setting.read
      add(setting.env, value, env[setting.env] === undefined ? "default" : "env", setting.usedBy, setting.kind)
    }
    return rows.sort((a, b) => a.variable.localeCompare(b.variable)) as ReadonlyArray<ResolvedVariable>
  })

/** A value as text: an unset optional (undefined, None, "") is "—". */
const show = (value: unknown): string => {
  if (Option.isOption(value)) return Option.match(value, { onNone: () => "—", onSome: show })
  if (value === undefined || value === "") return "—"
  return typeof value === "string" ? value : JSON.stringify(value)
}

export const configuration = <R>(commands: ReadonlyArray<Command<R>>, globals: ReadonlyArray<Flag<unknown>>, json: boolean) =>
  Effect.flatMap(resolveAll(commands, globals, process.env), (rows) =>
    json
      ? Console.log(JSON.stringify(rows.map((r) => ({ ...r, value: show(r.value) }))))
      : Console.log(table(["variable", "value", "from", "used by"], rows.map((r) => [r.variable, show(r.value), r.source, r.usedBy.join(", ")]))))
