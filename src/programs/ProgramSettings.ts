/**
 * The programs' own settings without a flag, declared once (src/Settings.ts): where metrics
 * endpoints listen, which CLI `cxlog run` forks its roles from, V8 profiles of the roles, and
 * the peers' servers a bench starts. Flags declare theirs in their command's file (commands/).
 */
import { existsSync } from "node:fs"
import { join } from "node:path"
import { NATIVE_SETTINGS } from "../native/NativeSettings.js"
import { packageRoot } from "../PackageRoot.js"
import { MIRROR_SETTINGS } from "../services/mirror/MirrorSettings.js"
import { readSetting, type Setting, setting, type SettingsTable } from "../Settings.js"
import { CODE_CACHE_SETTING, HEAP_GROWTH_SETTING } from "./cli/LauncherSettings.js"

export const METRICS_SETTINGS = {
  usedBy: "roles with --metrics-port",
  settings: {
    metricsHost: setting.address({
      env: "CXLOG_METRICS_HOST",
      default: "127.0.0.1",
      placeholder: "ADDRESS",
      description: "the address metrics endpoints listen on"
    })
  }
} as const satisfies SettingsTable

export const ORCHESTRATOR_SETTINGS = {
  usedBy: "run, bench (the roles' entry)",
  settings: {
    cli: setting.optionalText({
      env: "CXLOG_CLI",
      placeholder: "PATH",
      shown: "dist/cxlog.mjs",
      description: "the cxlog CLI role processes are forked from"
    }),
    profileDir: setting.optionalText({
      env: "CXLOG_PROFILE_DIR",
      placeholder: "PATH",
      shown: "none",
      description: "write a V8 CPU profile of every role process here"
    })
  }
} as const satisfies SettingsTable

export const PEER_SETTINGS = {
  usedBy: "bench --peers, bench --type mirror, mirror tests",
  settings: {
    redisServer: setting.optionalText({
      env: "CXLOG_REDIS_SERVER",
      placeholder: "PATH",
      shown: "/usr/bin/redis-server, else on PATH",
      description: "the redis-server a bench starts"
    }),
    natsServer: setting.optionalText({
      env: "CXLOG_NATS_SERVER",
      placeholder: "PATH",
      shown: "/usr/sbin/nats-server, else on PATH",
      description: "the nats-server a bench or a mirror test starts"
    })
  }
} as const satisfies SettingsTable

export const LAUNCHER_SETTINGS = {
  usedBy: "every process (the launcher, dist/cxlog.mjs)",
  settings: { codeCache: setting.choice(CODE_CACHE_SETTING), heapGrowth: setting.integer(HEAP_GROWTH_SETTING) }
} as const satisfies SettingsTable

/**
 * The settings read outside `Config` (`readSetting`, which takes "" for the default): the CLI
 * refuses any of them set but empty before a command starts, as `Config` refuses the others.
 */
export const SETTINGS_READ_OUTSIDE_CONFIG: ReadonlyArray<Setting<unknown>> = [
  NATIVE_SETTINGS.settings.nativePath,
  ORCHESTRATOR_SETTINGS.settings.cli,
  ORCHESTRATOR_SETTINGS.settings.profileDir,
  PEER_SETTINGS.settings.redisServer,
  PEER_SETTINGS.settings.natsServer,
  MIRROR_SETTINGS.settings.statusDir
]

/**
 * The `cxlog` CLI to fork role processes from: `CXLOG_CLI`, else the bundled CLI
 * (`dist/cxlog.mjs`, fastest to start), else the compiled one.
 */
export const cliEntry = (): string => {
  const override = readSetting(ORCHESTRATOR_SETTINGS.settings.cli)
  if (override !== undefined) return override
  const root = packageRoot()
  const bundle = join(root, "dist", "cxlog.mjs")
  return existsSync(bundle) ? bundle : join(root, "dist", "src", "programs", "cli.js")
}
