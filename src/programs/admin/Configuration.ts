/**
 * `cxlog config`: every `CXLOG_*` variable with the value cxlog resolves for it here and where
 * that came from. Flag variables resolve through the very flag definitions the commands parse
 * with; the others through the `Config` each layer reads, so what this prints is what runs.
 * A value the head would refuse stops it as it stops the head: a malformed one, and a region
 * layout out of range, through the head's own check (layers/RegionLayout.ts `validate`).
 */
import { Console, Effect, Either, Option } from "effect"
import { INSTALL_SETTINGS, NATIVE_SETTINGS } from "../../native/NativeSettings.js"
import { CONTROL_LAYOUT_SETTINGS, COORDINATOR_SETTINGS } from "../../services/control/ControlSettings.js"
import { GROUP_SETTINGS } from "../../services/groups/GroupSettings.js"
import { CHANNEL_SETTINGS } from "../../services/ipc/ChannelSettings.js"
import { DISCOVERY_SETTINGS } from "../../services/ipc/DiscoverySettings.js"
import { SERVICE_SETTINGS } from "../../services/ipc/ServiceSettings.js"
import { SUPERVISOR_SETTINGS } from "../../services/ipc/SupervisorSettings.js"
import {
  DURABLE_SETTINGS,
  HEAD_WATCH_SETTINGS,
  LOG_LAYOUT_SETTINGS,
  SEQUENCER_SETTINGS
} from "../../services/log/LogSettings.js"
import { MIRROR_SETTINGS } from "../../services/mirror/MirrorSettings.js"
import { BROKER_SETTINGS, PUBLISHER_SETTINGS } from "../../services/net/NetSettings.js"
import { DIRECTORY_LAYOUT_SETTINGS, REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { SUPERVISED_SETTINGS } from "../../services/region/SupervisedSettings.js"
import { envConfigProvider, processEnvironment, settingConfig, type SettingsTable } from "../../Settings.js"
import { type Command, type Flag, load, resolveFlag, type Source } from "../cli/CliKit.js"
import { LAUNCHER_SETTINGS, METRICS_SETTINGS, ORCHESTRATOR_SETTINGS, PEER_SETTINGS } from "../ProgramSettings.js"
import { table } from "../report/Table.js"

/** Every domain's settings table: each variable a layer or program reads without a flag of its own. */
export const SETTINGS_TABLES: ReadonlyArray<SettingsTable> = [
  NATIVE_SETTINGS,
  INSTALL_SETTINGS,
  REGION_SETTINGS,
  CONTROL_LAYOUT_SETTINGS,
  COORDINATOR_SETTINGS,
  LOG_LAYOUT_SETTINGS,
  DIRECTORY_LAYOUT_SETTINGS,
  SEQUENCER_SETTINGS,
  HEAD_WATCH_SETTINGS,
  DURABLE_SETTINGS,
  BROKER_SETTINGS,
  PUBLISHER_SETTINGS,
  GROUP_SETTINGS,
  CHANNEL_SETTINGS,
  SERVICE_SETTINGS,
  DISCOVERY_SETTINGS,
  SUPERVISOR_SETTINGS,
  SUPERVISED_SETTINGS,
  MIRROR_SETTINGS,
  METRICS_SETTINGS,
  ORCHESTRATOR_SETTINGS,
  PEER_SETTINGS,
  LAUNCHER_SETTINGS
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
export const resolveAll = <R>(
  commands: ReadonlyArray<Command<R>>,
  globals: ReadonlyArray<Flag<unknown>>,
  env: Record<string, string | undefined>
) =>
  Effect.gen(function*() {
    const rows: Array<{ variable: string; value: unknown; source: Source; usedBy: Array<string>; kind: string }> = []
    const add = (variable: string, value: unknown, source: Source, user: string, kind: string) => {
      const same = rows.find((r) => r.variable === variable && JSON.stringify(r.value) === JSON.stringify(value))
      if (same === undefined) rows.push({ variable, value, source, usedBy: [user], kind })
      else if (!same.usedBy.includes(user)) same.usedBy.push(user)
    }
    const flagUsers = [...commands.map((cmd) => ({ name: cmd.name, flags: Object.values(cmd.flags) })), {
      name: "every command",
      flags: globals
    }]
    for (const { name, flags } of flagUsers) {
      for (const flag of flags) {
        if (flag.env === undefined) continue
        // Refused as `cxlog config` refuses it: the variable names what is wrong, whichever command reads it.
        const resolved = resolveFlag("cxlog config", flag, env)
        if (Either.isLeft(resolved)) return yield* resolved.left
        add(flag.env, resolved.right.value, resolved.right.source, `${name} --${flag.name}`, flag.placeholder)
      }
    }
    const shownByFlags = new Set(rows.map((r) => r.variable))
    for (const table of SETTINGS_TABLES) {
      for (const declared of Object.values(table.settings)) {
        // A variable a command's flag reads is shown with that flag's value and users.
        if (shownByFlags.has(declared.env)) continue
        const value = yield* Effect.withConfigProvider(settingConfig(declared), envConfigProvider(env))
        add(
          declared.env,
          value ?? declared.shownDefault,
          env[declared.env] === undefined ? "default" : "env",
          table.usedBy,
          declared.placeholder
        )
      }
    }
    // Each layout variable parses alone; whether they lay out a region together is the head's own check, asked here.
    const { regionConfig, validate } = yield* load(() => import("../../layers/RegionLayout.js"))
    yield* Effect.flatMap(Effect.withConfigProvider(regionConfig, envConfigProvider(env)), validate)
    return rows.sort((a, b) => a.variable.localeCompare(b.variable)) as ReadonlyArray<ResolvedVariable>
  })

/** A value as text: an unset optional (undefined, None, "") is "—". */
const show = (value: unknown): string => {
  if (Option.isOption(value)) return Option.match(value, { onNone: () => "—", onSome: show })
  if (value === undefined || value === "") return "—"
  return typeof value === "string" ? value : JSON.stringify(value)
}

export const configuration = <R>(
  commands: ReadonlyArray<Command<R>>,
  globals: ReadonlyArray<Flag<unknown>>,
  json: boolean
) =>
  Effect.flatMap(resolveAll(commands, globals, processEnvironment()), (rows) =>
    json
      ? Console.log(JSON.stringify(rows.map((r) => ({ ...r, value: show(r.value) }))))
      : Console.log(
        table(
          ["variable", "value", "from", "used by"],
          rows.map((r) => [r.variable, show(r.value), r.source, r.usedBy.join(", ")])
        )
      ))
