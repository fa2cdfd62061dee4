/**
 * docs/configuration.md's table is the configuration: every `CXLOG_*` name the sources use is
 * in it, and every variable in it is wired. Each one is set, alone, to a value of its kind;
 * `cxlog config` (which resolves flag variables through the commands' own flag definitions
 * and the others through the `Config` each layer reads) must then report it from the
 * environment with a changed value. The test suite's own variables must be read by the suite.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Either, Exit, Layer, Option } from "effect"
import { spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { serverOptionsConfig } from "../../src/layers/control/CoordinatorServer.js"
import { CADENCE_MS } from "../../src/layers/region/Cadence.js"
import { regionConfig, validate } from "../../src/layers/RegionLayout.js"
import { createRegion } from "../../src/layers/Roles.js"
import { loadAddon } from "../../src/native/Native.js"
import { SETTINGS_TABLES } from "../../src/programs/admin/Configuration.js"
import { describeFailure } from "../../src/programs/cli/CliFailure.js"
import { resolveFlag } from "../../src/programs/cli/CliKit.js"
import { headCommand } from "../../src/programs/commands/HeadCommand.js"
import { SETTINGS_READ_OUTSIDE_CONFIG } from "../../src/programs/ProgramSettings.js"
import { sequencerOptionsConfig } from "../../src/services/log/Sequencer.js"
import { RETIRED_VARIABLES, setButEmptyProblem } from "../../src/Settings.js"
import { cli } from "../helpers/CliRoles.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

interface Row {
  readonly variable: string
  readonly readBy: string
}

/** The table's rows: `| \`CXLOG_X\` | flag | default | read by | meaning |`. */
const tableRows = (): ReadonlyArray<Row> =>
  readFileSync(join(root, "docs", "configuration.md"), "utf8")
    .split("\n")
    .filter((line) => /^\| `CXLOG_[A-Z0-9_]+` \|/.test(line))
    .map((line) => {
      const cells = line.split("|").map((c) => c.trim())
      return { variable: cells[1]!.replaceAll("`", ""), readBy: cells[4]! }
    })

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

/** `CXLOG_*` names in the TypeScript under `dirs` (a prefix such as `CXLOG_LOG_*` is not a name). */
const namesIn = (dirs: ReadonlyArray<string>, except: string = ""): Set<string> =>
  new Set(
    dirs.flatMap((dir) => sourceFiles(join(root, dir)))
      .filter((file) => file !== except)
      .flatMap((file) => [...readFileSync(file, "utf8").matchAll(/CXLOG_[A-Z0-9_]+\b/g)].map((m) => m[0]))
      .filter((name) => !name.endsWith("_"))
  )

interface Resolved {
  readonly variable: string
  readonly value: string
  readonly source: string
  readonly usedBy: ReadonlyArray<string>
  readonly kind: string
}

/** `cxlog config --json` in an environment without any CXLOG_* variable but `extra`: its exit code and output. */
const configWith = (extra: Record<string, string>) =>
  Effect.async<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resume) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CXLOG_")))
    const child = spawn(process.execPath, [cli, "config", "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...env, ...extra }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()))
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.on("exit", (code) => resume(Effect.succeed({ code, stdout, stderr })))
  })

/** What `cxlog config --json` resolves with `extra` set; a refusal fails, naming the variables and the line. */
const resolvedWith = (extra: Record<string, string>) =>
  Effect.flatMap(configWith(extra), ({ code, stderr, stdout }) =>
    code === 0
      ? Effect.try(() => JSON.parse(stdout) as ReadonlyArray<Resolved>)
      : Effect.fail(new Error(`cxlog config ${JSON.stringify(extra)}: exit ${code}: ${stderr}`)))

/** The region layout the head would create from `env` alone, read in process as the head reads it. */
const layoutFrom = (env: Record<string, string>) =>
  Effect.withConfigProvider(regionConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))

/** A valid value of `kind` that differs from `baseline`. */
const probeValue = (kind: string, baseline: string): string => {
  if (kind === "") return baseline === "true" ? "false" : "true"
  if (/^[a-z0-9-]+(\|[a-z0-9-]+)+$/.test(kind)) return kind.split("|").find((choice) => choice !== baseline)!
  if (kind === "SIZE") return "3MiB"
  if (kind === "AGE") return "7d"
  // Milliseconds past every bound's minimum (a heartbeat's stale bound is at least 1000).
  if (kind === "MS") return "7777"
  if (["N", "PORT", "BYTES", "X"].includes(kind)) return "777"
  if (kind.startsWith("HOST:PORT")) return "10.0.0.9:7777"
  if (kind.startsWith("nats://")) return "nats://10.0.0.9:7777"
  if (kind === "ADDRESS") return "10.0.0.9"
  if (kind.startsWith("NAME[")) return "probe:2:0"
  return "cxlog-config-probe"
}

/** Whether the settings table that declares `variable` (if one does) takes `value`. */
const settingTakes = (variable: string, value: string): boolean =>
  SETTINGS_TABLES.flatMap((table) => Object.values(table.settings))
    .filter((setting) => setting.env === variable)
    .every((setting) => Either.isRight(setting.parse(value)))

/**
 * A value of `variable` that differs from `baseline` and that its setting and the head's layout
 * check take, as `cxlog config` asks them: a value of its kind may be out of its range (777
 * application rings, 777 directory entries, 777 writer slots a channel), its default doubled or
 * halved is not.
 */
const acceptedProbe = (variable: string, kind: string, baseline: string) =>
  Effect.gen(function*() {
    const candidates = [probeValue(kind, baseline), `${Number(baseline) * 2}`, `${Number(baseline) / 2}`]
    for (const value of candidates) {
      if (
        settingTakes(variable, value) &&
        Exit.isSuccess(yield* Effect.exit(Effect.flatMap(layoutFrom({ [variable]: value }), validate)))
      ) return value
    }
    return candidates[0]!
  })

describe("the configuration table", () => {
  it("names every CXLOG_ variable the sources use, once", () => {
    const documented = tableRows().map((r) => r.variable)
    expect(new Set(documented).size).toBe(documented.length)
    const used = namesIn(["src", "bench", "test"], fileURLToPath(import.meta.url))
    const retired = Object.keys(RETIRED_VARIABLES)
    expect([...used].filter((name) => !documented.includes(name) && !retired.includes(name)).sort()).toEqual([])
    // A retired variable is not in the table, but the page says it is refused and what replaced it.
    const page = readFileSync(join(root, "docs", "configuration.md"), "utf8")
    for (const name of retired) {
      expect(documented).not.toContain(name)
      expect(page).toContain(`\`${name}\``)
    }
  })

  it.effect(
    "every variable in it has an effect: cxlog config reports it from the environment, changed",
    () =>
      Effect.gen(function*() {
        const rows = tableRows()
        expect(rows.length).toBeGreaterThan(60)
        const baseline = yield* resolvedWith({})
        const suiteReads = namesIn(["test"], fileURLToPath(import.meta.url))
        const unwired: Array<string> = []
        const probes: Array<
          { readonly variable: string; readonly value: string; readonly before: ReadonlyArray<Resolved> }
        > = []
        for (const row of rows) {
          if (row.readBy.includes("test suite")) {
            if (!suiteReads.has(row.variable)) unwired.push(`${row.variable}: the test suite does not read it`)
            continue
          }
          const before = baseline.filter((r) => r.variable === row.variable)
          if (before.length === 0) unwired.push(`${row.variable}: cxlog config does not know it`)
          else {
            const value = yield* acceptedProbe(row.variable, before[0]!.kind, before[0]!.value)
            probes.push({ variable: row.variable, value, before })
          }
        }
        /** What of `probe` did not change with its variable set (next to the others in `env`). */
        const stillSame = (probe: (typeof probes)[number], resolved: ReadonlyArray<Resolved>) => {
          const after = resolved.filter((r) => r.variable === probe.variable)
          return probe.before.flatMap((was) => {
            const now = after.find((r) => r.usedBy.join() === was.usedBy.join()) ??
              after.find((r) => r.usedBy.some((u) => was.usedBy.includes(u)))
            return now === undefined || now.source !== "env" || now.value === was.value
              ? [
                `${probe.variable}=${probe.value}: ${was.usedBy.join(", ")} still ${now?.value ?? "absent"} (${
                  now?.source ?? "—"
                })`
              ]
              : []
          })
        }
        // Eight variables per `cxlog config` (one process each costs most of a second on a busy machine); a group
        // that fails, or in which one seems unwired, is checked one variable at a time, alone.
        const groups = Array.from({ length: Math.ceil(probes.length / 8) }, (_, i) => probes.slice(8 * i, 8 * i + 8))
        yield* Effect.forEach(groups, (group) =>
          Effect.gen(function*() {
            const together = yield* Effect.either(
              resolvedWith(Object.fromEntries(group.map((p) => [p.variable, p.value])))
            )
            for (const probe of group) {
              if (together._tag === "Right" && stillSame(probe, together.right).length === 0) continue
              unwired.push(...stillSame(probe, yield* resolvedWith({ [probe.variable]: probe.value })))
            }
          }), { concurrency: 2 })
        expect(unwired).toEqual([])
      }),
    120_000
  )
})

describe("a region layout variable out of range", () => {
  // Each parses as its kind (a whole number, a size) but is outside what a region can be laid out with.
  const outOfRange: Record<string, string> = {
    CXLOG_MAX_PROCESSES: "1",
    CXLOG_REQUEST_RING_BYTES: "100",
    CXLOG_BROADCAST_RING_BYTES: "4100",
    CXLOG_APP_RINGS: "999",
    CXLOG_APP_RING_BYTES: "1KiB",
    CXLOG_APP_RING_READERS: "0",
    CXLOG_DIRECTORY_ENTRIES: "100",
    CXLOG_DIRECTORY_HOLDERS: "5000",
    CXLOG_HEAP_BYTES: "1000"
  }

  it.effect("is refused naming its variable and the value it was given", () =>
    Effect.gen(function*() {
      for (const [variable, value] of Object.entries(outOfRange)) {
        const config = yield* layoutFrom({ [variable]: value })
        const refused = yield* Effect.flip(validate(config))
        expect(refused._tag).toBe("RegionLayoutInvalid")
        expect(refused.message, variable).toContain(`(${variable})`)
      }
    }))

  it.effect(
    "stops cxlog config as it stops the head: the head's own check's line, exit 2, nothing printed",
    () =>
      Effect.gen(function*() {
        const logOutOfRange = { CXLOG_LOG_PBR_SLOTS: "100", CXLOG_LOG_MAX_BROKERS: "65", CXLOG_LOG_GOI_SLOTS: "16" }
        yield* Effect.forEach(Object.entries({ ...outOfRange, ...logOutOfRange }), ([variable, value]) =>
          Effect.gen(function*() {
            const refused = yield* Effect.flip(Effect.flatMap(layoutFrom({ [variable]: value }), validate))
            const { code, stderr, stdout } = yield* configWith({ [variable]: value })
            expect({ code, stdout, stderr: stderr.trim() }, variable).toEqual({
              code: 2,
              stdout: "",
              stderr: describeFailure(Cause.fail(refused), "cxlog config").line
            })
            expect(stderr, variable).toContain(`(${variable})`)
          }), { concurrency: 2 })
      }),
    120_000
  )

  it.effect("is refused as such before the region is sized, even when that size could not be mapped", () =>
    Effect.gen(function*() {
      // 2^27 holder lines make a region of 8 GiB, past what Node.js 20 maps; the holders' bound, not the size, is the mistake.
      const config = yield* layoutFrom({ CXLOG_DIRECTORY_HOLDERS: `${2 ** 27}` })
      const exit = yield* Effect.exit(Layer.build(createRegion({ name: `cxlog-config-${process.pid}` }, config)))
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("(CXLOG_DIRECTORY_HOLDERS) must be in [1, 4096]")
    }).pipe(Effect.scoped))
})

describe("CXLOG_HEARTBEAT_STALE_MS", () => {
  const staleBound = (value: string) =>
    Effect.withConfigProvider(
      serverOptionsConfig,
      ConfigProvider.fromMap(new Map([["CXLOG_HEARTBEAT_STALE_MS", value]]))
    )

  it.effect("below two heartbeats (one each 500 ms) is refused naming the variable and its bound", () =>
    Effect.gen(function*() {
      // At 0 or 500 the head would drop live members between two of their beats.
      const twoBeats = 2 * CADENCE_MS
      for (const value of ["0", `${CADENCE_MS}`, `${twoBeats - 1}`]) {
        const refused = String(yield* Effect.flip(staleBound(value)))
        expect(refused).toContain("CXLOG_HEARTBEAT_STALE_MS")
        expect(refused).toContain(`${value} is below ${twoBeats}`)
      }
      expect((yield* staleBound(`${twoBeats}`)).heartbeatStaleMs).toBe(twoBeats)
    }))
})

describe("CXLOG_HOLD_TIMEOUT_MS and CXLOG_SESSION_IDLE_MS", () => {
  // At 0 the sequencer would fence a session at its first gap, or release every session at each sweep.
  const variables = ["CXLOG_HOLD_TIMEOUT_MS", "CXLOG_SESSION_IDLE_MS"]
  const sequencerOptions = (env: Record<string, string>) =>
    Effect.withConfigProvider(sequencerOptionsConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect("at 0 are refused naming the variable and its minimum, 1, where a layer reads them", () =>
    Effect.gen(function*() {
      for (const variable of variables) {
        const refused = yield* Effect.flip(sequencerOptions({ [variable]: "0" }))
        expect(refused, variable).toMatchObject({ _op: "InvalidData", path: [variable] })
        expect(String(refused), variable).toContain("0 is below 1")
      }
      expect(yield* sequencerOptions({ CXLOG_HOLD_TIMEOUT_MS: "1", CXLOG_SESSION_IDLE_MS: "1" })).toMatchObject({
        holdTimeoutMs: 1,
        sessionIdleMs: 1
      })
    }))

  it("cxlog head --help says what configuration.md says of them: a gap held past the hold timeout fences the session", () => {
    const page = readFileSync(join(root, "docs", "configuration.md"), "utf8").split("\n")
    const { holdTimeoutMs, sessionIdleMs } = headCommand.flags
    for (const flag of [holdTimeoutMs, sessionIdleMs]) {
      const row = page.find((line) => line.startsWith(`| \`${flag.env}\` |`))
      const meaning = row?.split(" | ")[4]
      // The help's words, less the minimum it states in its own way, begin the row's.
      expect(meaning?.startsWith(flag.description.replace(/ \(at least 1\)$/, "")), flag.env).toBe(true)
    }
    // What the order engine does at the timeout (OrderEngine.expire): nothing is skipped past the gap.
    expect(holdTimeoutMs.description).toContain("before fencing the session: its held batches are dropped")
  })

  it("at 0 are refused naming the variable and its minimum, 1, where cxlog head reads them (its flags)", () => {
    const { holdTimeoutMs, sessionIdleMs } = headCommand.flags
    for (const flag of [holdTimeoutMs, sessionIdleMs]) {
      const refused = resolveFlag("cxlog head", flag, { [flag.env!]: "0" })
      expect(Either.getLeft(refused).pipe(Option.map((e) => e.message)), flag.env).toEqual(
        Option.some(`cxlog head: ${flag.env}=0: 0 is below 1`)
      )
    }
  })
})

describe("a setting read outside Config, set but empty", () => {
  const empty = "set but empty: give it a value, or unset it for the default"

  it("is refused before a command starts, naming its variable", () => {
    const names = SETTINGS_READ_OUTSIDE_CONFIG.map((s) => s.env)
    expect(names).toEqual([
      "CXLOG_NATIVE_PATH",
      "CXLOG_CLI",
      "CXLOG_PROFILE_DIR",
      "CXLOG_REDIS_SERVER",
      "CXLOG_NATS_SERVER",
      "CXLOG_MIRROR_STATUS_DIR"
    ])
    for (const name of names) {
      expect(setButEmptyProblem(SETTINGS_READ_OUTSIDE_CONFIG, { [name]: "" })).toBe(`${name}: ${empty}`)
    }
    expect(setButEmptyProblem(SETTINGS_READ_OUTSIDE_CONFIG, { CXLOG_CLI: "/opt/cxlog.mjs" })).toBeUndefined()
  })

  it.effect("CXLOG_NATIVE_PATH: the addon's loader fails with NativeUnavailable naming it", () =>
    Effect.gen(function*() {
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const before = process.env["CXLOG_NATIVE_PATH"]
          process.env["CXLOG_NATIVE_PATH"] = ""
          return before
        }),
        (before) =>
          Effect.sync(() => {
            if (before === undefined) delete process.env["CXLOG_NATIVE_PATH"]
            else process.env["CXLOG_NATIVE_PATH"] = before
          })
      )
      const refused = yield* Effect.flip(loadAddon())
      expect(refused._tag).toBe("NativeUnavailable")
      expect(refused.message).toContain(`CXLOG_NATIVE_PATH: ${empty}`)
    }).pipe(Effect.scoped))
})
