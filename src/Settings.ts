/**
 * The kernel of cxlog's settings. A setting is declared once, in its domain's table (a
 * `…Settings.ts` file: `services/log/LogSettings.ts`, `services/net/NetSettings.ts`, …), with
 * its `CXLOG_*` variable, what its values look like, its default and its description. From
 * that one declaration come the layer's `Config` (described, so `Config` errors name it), the
 * CLI flag where a command has one (programs/cli/CliFlags.ts `fromSetting`) and its row in
 * `cxlog config`. The environment itself is read here and in the tables only.
 */
import { Config, ConfigError, ConfigProvider, Effect, Either } from "effect"
import { MAX_PORT, MAX_TIMER_MS, type Read, readChoice, readWholeNumber, SET_BUT_EMPTY } from "./SettingText.js"

const asEither = <A>(read: Read<A>): Either.Either<A, string> =>
  "value" in read ? Either.right(read.value) : Either.left(read.problem)

/** Why `text` is not a valid value, as a phrase naming it (Left), or the value. */
export type Parse<A> = (text: string) => Either.Either<A, string>

export interface Setting<A> {
  /** The environment variable, `CXLOG_…`. */
  readonly env: string
  readonly description: string
  /** What a value looks like in help and in `cxlog config` (`SIZE`, `N`, `MS`, `a|b`); "" for a switch. */
  readonly placeholder: string
  readonly default: A
  /** The default as help and the docs show it; undefined when there is none. */
  readonly shownDefault: string | undefined
  readonly parse: Parse<A>
  /** A switch: an empty value reads as off, where for any other setting it is a mistake. */
  readonly switch: boolean
}

export const wholeNumber = (min: number, max?: number): Parse<number> => (text) =>
  asEither(readWholeNumber(text, min, max))

export const decimal = (min: number, max = Number.POSITIVE_INFINITY): Parse<number> => (text) => {
  const n = text.trim() === "" ? Number.NaN : Number(text)
  if (!Number.isFinite(n)) return Either.left(`${text} is not a number`)
  if (n < min) return Either.left(`${text} is below ${min}`)
  return n > max ? Either.left(`${text} is above ${max}`) : Either.right(n)
}

/** Any text but a blank one (a variable expanded to nothing, a stray `''`): `what` says what to give instead. */
export const nonBlank = (what: string): Parse<string> => (text) =>
  text.trim() === "" ? Either.left(`the value is empty: give ${what}`) : Either.right(text)

/** An address to listen on: a blank one is no default, as Node would take it: every interface. */
export const address = nonBlank("an address, as 127.0.0.1, or 0.0.0.0 for every interface")

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4
}

/** "64KiB", "1GiB", "1TiB", "4096" → bytes (binary units; KB and K mean KiB too); a fraction of a unit rounds to the byte, a fraction of a byte is refused. */
export const parseSize: Parse<number> = (text) => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  const scale = match === null ? undefined : SIZE_UNITS[match[2]!.toLowerCase()]
  if (match === null || scale === undefined) {
    return Either.left(`${text} is not a size: use 64KiB, 1GiB, … or a number of bytes`)
  }
  const value = Number(match[1])
  // A fraction of a unit is rounded to the byte (1.2MiB); a fraction of a byte is no size.
  if (scale === 1 && !Number.isInteger(value)) {
    return Either.left(`${text} is not a size: a number of bytes is a whole number`)
  }
  const bytes = Math.round(value * scale)
  if (!Number.isSafeInteger(bytes)) {
    return Either.left(`${text} is not a size: it is past any memory or disk (2^53 bytes)`)
  }
  return bytes < 1 ? Either.left(`${text} is not a size: it must be at least 1 byte`) : Either.right(bytes)
}

/** The sizes a setting takes: from `min` to `max` bytes, a multiple of `multipleOf`. */
export interface SizeBounds {
  readonly min: number
  readonly max: number
  readonly multipleOf: number
}

/** A size (`parseSize`) within `bounds`, or why not, naming them. */
export const boundedSize = (bounds: SizeBounds): Parse<number> => (text) =>
  Either.flatMap(parseSize(text), (bytes) =>
    bytes < bounds.min || bytes > bounds.max
      ? Either.left(`${text} is not from ${showSize(bounds.min)} to ${showSize(bounds.max)}`)
      : bytes % bounds.multipleOf !== 0
      ? Either.left(`${text} is not a multiple of ${bounds.multipleOf} bytes`)
      : Either.right(bytes))

/** A size as the docs write it, and as a size flag reads it back: `16MiB`, `64KiB`, else bytes (`491376B`). */
export const showSize = (bytes: number): string =>
  bytes % 1024 ** 3 === 0
    ? `${bytes / 1024 ** 3}GiB`
    : bytes % 1024 ** 2 === 0
    ? `${bytes / 1024 ** 2}MiB`
    : bytes % 1024 === 0
    ? `${bytes / 1024}KiB`
    : `${bytes}B`

export const parseSwitch: Parse<boolean> = (t) => {
  const v = t.toLowerCase()
  if (["true", "1", "yes", "on"].includes(v)) return Either.right(true)
  if (["false", "0", "no", "off", ""].includes(v)) return Either.right(false)
  return Either.left(`${t} is not true or false`)
}

export const parseChoice = <const C extends string>(values: ReadonlyArray<C>): Parse<C> => (t) =>
  asEither(readChoice(t, values))

interface Declared {
  readonly env: string
  readonly description: string
  readonly placeholder?: string
}

const declare = <A>(
  spec: Declared,
  placeholder: string,
  parse: Parse<A>,
  defaultValue: A,
  shown: string | undefined
): Setting<A> => ({
  env: spec.env,
  description: spec.description,
  placeholder: spec.placeholder ?? placeholder,
  default: defaultValue,
  shownDefault: shown,
  parse,
  switch: false
})

/** The constructors a settings table declares its settings with. */
export const setting = {
  integer: (spec: Declared & { readonly default: number; readonly min?: number; readonly max?: number }) =>
    declare(spec, "N", wholeNumber(spec.min ?? 0, spec.max), spec.default, `${spec.default}`),
  /** A TCP port, 0 to 65535. */
  port: (spec: Declared & { readonly default: number }) =>
    declare(spec, "PORT", wholeNumber(0, MAX_PORT), spec.default, `${spec.default}`),
  optionalInteger: (spec: Declared & { readonly min?: number; readonly max?: number; readonly shown?: string }) =>
    declare<number | undefined>(spec, "N", wholeNumber(spec.min ?? 0, spec.max), undefined, spec.shown),
  /**
   * Milliseconds, a whole number: at most `MAX_TIMER_MS` unless `max` says otherwise (a span only
   * compared with clocks, never armed as a Node timer, which past it would fire after 1 ms).
   */
  millis: (spec: Declared & { readonly default: number; readonly min?: number; readonly max?: number }) =>
    declare(spec, "MS", wholeNumber(spec.min ?? 0, spec.max ?? MAX_TIMER_MS), spec.default, `${spec.default}`),
  optionalMillis: (spec: Declared & { readonly min?: number; readonly max?: number; readonly shown?: string }) =>
    declare<number | undefined>(
      spec,
      "MS",
      wholeNumber(spec.min ?? 0, spec.max ?? MAX_TIMER_MS),
      undefined,
      spec.shown
    ),
  /** Milliseconds that may be fractional (a linger of 0.5 ms), armed as a Node timer: at most `MAX_TIMER_MS`. */
  fractionalMillis: (spec: Declared & { readonly default: number }) =>
    declare(spec, "MS", decimal(0, MAX_TIMER_MS), spec.default, `${spec.default}`),
  /** A byte size given as `64KiB`, `1GiB` or a number of bytes; `bounds`: what the region's layout takes of it (a ring's bytes). */
  size: (spec: Declared & { readonly default: number; readonly bounds?: SizeBounds }) =>
    declare(
      spec,
      "SIZE",
      spec.bounds === undefined ? parseSize : boundedSize(spec.bounds),
      spec.default,
      showSize(spec.default)
    ),
  optionalSize: (spec: Declared & { readonly shown?: string }) =>
    declare<number | undefined>(spec, "SIZE", parseSize, undefined, spec.shown),
  choice: <const C extends string>(spec: Declared & { readonly values: ReadonlyArray<C>; readonly default: C }) =>
    declare(spec, spec.values.join("|"), parseChoice(spec.values), spec.default, spec.default),
  text: (spec: Declared & { readonly default: string }) =>
    declare(spec, "TEXT", Either.right, spec.default, spec.default),
  /** An address to listen on (`address`: never blank). */
  address: (spec: Declared & { readonly default: string }) =>
    declare(spec, "ADDRESS", address, spec.default, spec.default),
  optionalText: (spec: Declared & { readonly shown?: string }) =>
    declare<string | undefined>(spec, "TEXT", Either.right, undefined, spec.shown),
  /** On or off: `true`/`false`, `1`/`0`; empty reads as off. */
  toggle: (spec: Declared): Setting<boolean> => ({ ...declare(spec, "", parseSwitch, false, "off"), switch: true }),
  /** Any value `parse` takes, with its default shown as `shown`. */
  custom: <A>(
    spec: Declared & {
      readonly placeholder: string
      readonly parse: Parse<A>
      readonly default: A
      readonly shown: string | undefined
    }
  ) => declare(spec, spec.placeholder, spec.parse, spec.default, spec.shown)
}

/** The setting's variable, required (a library layer that has no default where the CLI has one: the brokers to publish to). */
export const requiredSettingConfig = <A>(s: Setting<A>): Config.Config<A> =>
  Config.string(s.env).pipe(
    Config.mapOrFail((text) =>
      Either.mapLeft(
        text === "" && !s.switch
          ? Either.left(`${SET_BUT_EMPTY}: give it a value, or unset it for the default`)
          : s.parse(text),
        (why) => ConfigError.InvalidData([], why)
      )
    ),
    Config.withDescription(s.description)
  )

/** The setting as a described `Config`: its variable parsed as the table says, else its default. */
export const settingConfig = <A>(s: Setting<A>): Config.Config<A> =>
  requiredSettingConfig(s).pipe(Config.withDefault(s.default))

type ValuesOf<T extends Record<string, Setting<any>>> = {
  readonly [K in keyof T]: T[K] extends Setting<infer A> ? A : never
}

/** A table's settings as one `Config` of their values. */
export const settingsConfig = <T extends Record<string, Setting<any>>>(table: T): Config.Config<ValuesOf<T>> =>
  Config.all(
    Object.fromEntries(Object.entries(table).map(([k, s]) => [k, settingConfig(s)]))
  ) as unknown as Config.Config<ValuesOf<T>>

/** A table's defaults, as a record of values (a domain's `default…Config`). */
export const defaultsOf = <T extends Record<string, Setting<any>>>(table: T): ValuesOf<T> =>
  Object.fromEntries(Object.entries(table).map(([k, s]) => [k, s.default])) as ValuesOf<T>

/** Values for a table's settings as the environment a child process reads them from. */
export const asEnvironment = <T extends Record<string, Setting<any>>>(
  table: T,
  values: { readonly [K in keyof T]?: string | number | boolean }
): Record<string, string> => Object.fromEntries(Object.entries(values).map(([k, v]) => [table[k]!.env, `${v}`]))

/**
 * Variables cxlog once read and reads no more, with what took their place: one left set in a
 * shell would otherwise be ignored in silence, and the region sized other than its user thinks.
 */
export const RETIRED_VARIABLES: Readonly<Record<string, string>> = {
  CXLOG_LOG_MAX_TOPICS:
    "topics take their memory from the region's heap as they are created: size the heap with CXLOG_HEAP_BYTES",
  CXLOG_LOG_BLOG_BYTES:
    "a topic's Blogs share its memory: give it with cxlog topics create --memory, or set CXLOG_TOPIC_MEMORY for the head that creates the region (every topic's default there)"
}

/** Why the environment names a retired variable (undefined when it does not). */
export const retiredVariableProblem = (env: Readonly<Record<string, string | undefined>>): string | undefined => {
  const set = Object.keys(RETIRED_VARIABLES).filter((name) => env[name] !== undefined)
  return set.length === 0
    ? undefined
    : set.map((name) => `${name} is no longer read: ${RETIRED_VARIABLES[name]}; unset it`).join("; ")
}

/** A settings table with who reads it, for `cxlog config`. */
export interface SettingsTable {
  /** Who reads these variables, for `cxlog config` (`head (region layout)`). */
  readonly usedBy: string
  readonly settings: Record<string, Setting<any>>
}

/**
 * The process's environment. Settings are read through `Config` (whose provider reads it) or,
 * before Effect runs, through `readSetting`; a child process inherits this.
 */
export const processEnvironment = (): Readonly<Record<string, string | undefined>> => process.env

/**
 * The setting's value now, outside Effect (the addon's loader, the launcher's helpers): unset,
 * empty or invalid gives the default. Empty is a mistake all the same: the CLI refuses it before
 * a command starts (`setButEmptyProblem`), the addon's loader when it looks for the addon.
 */
export const readSetting = <A>(s: Setting<A>, env: Readonly<Record<string, string | undefined>> = process.env): A => {
  const text = env[s.env]
  if (text === undefined || text === "") return s.default
  return Either.getOrElse(s.parse(text), () => s.default)
}

/** Whether `env` sets `s`'s variable to "": a mistake, except for a switch, where it reads as off. */
const isSetButEmpty = (
  s: Setting<unknown>,
  env: Readonly<Record<string, string | undefined>> = process.env
): boolean => !s.switch && env[s.env] === ""

/** Why `env` sets one of `settings` (read outside `Config`, which would refuse it) to "", naming its variable; undefined when none is. */
export const setButEmptyProblem = (
  settings: ReadonlyArray<Setting<unknown>>,
  env: Readonly<Record<string, string | undefined>>
): string | undefined => {
  const empty = settings.find((s) => isSetButEmpty(s, env))
  return empty === undefined
    ? undefined
    : `${empty.env}: ${SET_BUT_EMPTY}: give it a value, or unset it for the default`
}

/** Sets a variable for this process and the children it starts (the log format a role chose). */
export const exportSetting = (declared: { readonly env: string | undefined }, value: string): void => {
  if (declared.env !== undefined) process.env[declared.env] = value
}

/** `$XDG_RUNTIME_DIR` when set and not empty: where this user's private files (credentials, mirror status) go. */
export const xdgRuntimeDir = (): string | undefined => {
  const runtime = process.env["XDG_RUNTIME_DIR"]
  return runtime === undefined || runtime === "" ? undefined : runtime
}

/**
 * `Config`'s view of `env` for what a command reads without a flag (the region's sizes, the
 * coordinator's settings, …): as ConfigProvider.fromEnv, but a variable set to "" is invalid
 * data, where fromEnv reads it as 0 (Config.integer), "" (Config.string) or a default.
 */
export const envConfigProvider = (
  env: Readonly<Record<string, string | undefined>> = process.env
): ConfigProvider.ConfigProvider => {
  const set = Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined)
  const plain = ConfigProvider.fromMap(new Map(set), { pathDelim: "_", seqDelim: "," }).flattened
  return ConfigProvider.fromFlat(ConfigProvider.makeFlat({
    load: (path, primitive, split) =>
      env[path.join("_")] === ""
        ? Effect.fail(
          ConfigError.InvalidData([...path], `${SET_BUT_EMPTY}: give it a value, or unset it for the default`)
        )
        : plain.load(path, primitive, split),
    enumerateChildren: plain.enumerateChildren,
    patch: plain.patch
  }))
}
