/**
 * `cxlog`'s flags, each declared once: its name, what its value looks like, its meaning, its
 * `CXLOG_*` variable and its default, with the parse that turns a word into its value (a mistake
 * is one line naming why). CliKit.ts makes them @effect/cli options and commands.
 */
import { Either } from "effect"
import {
  decimal,
  nonBlank,
  type Parse,
  parseChoice,
  parseSize,
  parseSwitch,
  type Setting,
  wholeNumber
} from "../../Settings.js"
import { MAX_PORT, MAX_TIMER_MS } from "../../SettingText.js"

export interface Flag<A> {
  readonly name: string
  /** What the value looks like in help (`SIZE`, `N`, `HOST:PORT,…`); "" for a switch. */
  readonly placeholder: string
  readonly description: string
  readonly env: string | undefined
  readonly default: A
  /** The default as help shows it; undefined when there is none. */
  readonly shownDefault: string | undefined
  readonly parse: Parse<A>
  readonly switch: boolean
  readonly repeated: boolean
  /** Only for the roles other cxlog processes start: accepted, never in help. */
  readonly hidden: boolean
}

interface Common {
  readonly description: string
  readonly env?: string
  readonly hidden?: boolean
}

const make = <A>(
  name: string,
  placeholder: string,
  parse: Parse<A>,
  options: Common,
  defaultValue: A,
  shown: string | undefined
): Flag<A> => ({
  name,
  placeholder,
  description: options.description,
  env: options.env,
  default: defaultValue,
  shownDefault: shown,
  parse,
  switch: false,
  repeated: false,
  hidden: options.hidden ?? false
})

/** The flag of a setting its domain's table declares (its variable, default and description come from there). */
export const fromSetting = <A>(
  name: string,
  declared: Setting<A>,
  options: { readonly hidden?: boolean; readonly description?: string; readonly shown?: string } = {}
): Flag<A> => ({
  name,
  placeholder: declared.placeholder,
  description: options.description ?? declared.description,
  env: declared.env,
  default: declared.default,
  shownDefault: options.shown ?? declared.shownDefault,
  parse: declared.parse,
  switch: declared.switch,
  repeated: false,
  hidden: options.hidden ?? false
})

export const integer = (
  name: string,
  options: Common & {
    readonly default: number
    readonly min?: number
    readonly max?: number
    readonly placeholder?: string
  }
) =>
  make(
    name,
    options.placeholder ?? "N",
    wholeNumber(options.min ?? 0, options.max),
    options,
    options.default,
    `${options.default}`
  )

/**
 * Milliseconds, a whole number up to `MAX_TIMER_MS`: each is waited on by a timer, and Node fires
 * one past that after 1 ms (a check every millisecond, a timeout that ends at once).
 */
export const millis = (name: string, options: Common & { readonly default: number; readonly min?: number }) =>
  make(name, "MS", wholeNumber(options.min ?? 0, MAX_TIMER_MS), options, options.default, `${options.default}`)

export const optionalMillis = (
  name: string,
  options: Common & { readonly min?: number; readonly shown?: string }
) =>
  make<number | undefined>(name, "MS", wholeNumber(options.min ?? 0, MAX_TIMER_MS), options, undefined, options.shown)

/** A TCP port, 0 to 65535. */
export const port = (name: string, options: Common & { readonly default: number }) =>
  make(name, "PORT", wholeNumber(0, MAX_PORT), options, options.default, `${options.default}`)

export const optionalInteger = (
  name: string,
  options: Common & { readonly min?: number; readonly placeholder?: string; readonly shown?: string }
) =>
  make<number | undefined>(
    name,
    options.placeholder ?? "N",
    wholeNumber(options.min ?? 0),
    options,
    undefined,
    options.shown
  )

export const float = (
  name: string,
  options: Common & { readonly default: number; readonly min?: number; readonly placeholder?: string }
) => make(name, options.placeholder ?? "X", decimal(options.min ?? 0), options, options.default, `${options.default}`)

export const optionalFloat = (
  name: string,
  options: Common & { readonly min?: number; readonly placeholder?: string; readonly shown?: string }
) =>
  make<number | undefined>(
    name,
    options.placeholder ?? "X",
    decimal(options.min ?? 0),
    options,
    undefined,
    options.shown
  )

/** A byte size given as `64KiB`, `1GiB` or a number; `default` is written the same way. */
export const size = (name: string, options: Common & { readonly default: string }) =>
  make(name, "SIZE", parseSize, options, Either.getOrThrow(parseSize(options.default)), options.default)

export const text = (
  name: string,
  options: Common & {
    readonly default: string
    readonly placeholder?: string
    readonly check?: (text: string) => string | undefined
  }
) =>
  make(
    name,
    options.placeholder ?? "TEXT",
    (t) => {
      const problem = options.check?.(t)
      return problem === undefined ? Either.right(t) : Either.left(problem)
    },
    options,
    options.default,
    options.default
  )

/**
 * Text that may be left out. A blank value is refused as a usage mistake — an empty name, file,
 * directory or command would otherwise reach the command as given (a file named "", the working
 * directory, a region "" that is not there) — unless the flag's description gives "" a meaning.
 */
export const optionalText = (
  name: string,
  options: Common & {
    readonly placeholder?: string
    readonly shown?: string
    /** "" is a value of its own here (a user's rights: none; an empty key), as the description says. */
    readonly blankAllowed?: boolean
  }
) => {
  const placeholder = options.placeholder ?? "TEXT"
  const parse: Parse<string | undefined> = options.blankAllowed === true ? Either.right : nonBlank(`a ${placeholder}`)
  return make<string | undefined>(name, placeholder, parse, options, undefined, options.shown)
}

/** A value parsed by `parse` (Left: why not), with a default shown as `shown`. */
export const custom = <A>(
  name: string,
  placeholder: string,
  parse: Parse<A>,
  options: Common & { readonly default: A; readonly shown: string }
) => make(name, placeholder, parse, options, options.default, options.shown)

export const choice = <const C extends string>(
  name: string,
  values: ReadonlyArray<C>,
  options: Common & { readonly default: C }
) =>
  make(
    name,
    values.join("|"),
    parseChoice(values),
    options,
    options.default,
    options.default
  )

/** A switch: `--json` (or `--json=false`); its variable takes true/false, 1/0. */
export const toggle = (name: string, options: Common): Flag<boolean> => ({
  ...make(name, "", parseSwitch, options, false, "off"),
  switch: true
})

/**
 * A flag given any number of times; its variable holds the values separated by commas. A value
 * holding none (`--topic ,`) is refused: taken as no value at all, it left the flag to its default.
 */
export const repeated = <A>(flag: Flag<A>): Flag<ReadonlyArray<A>> => ({
  ...flag,
  default: [],
  shownDefault: "none",
  repeated: true,
  parse: (t) => {
    const values = t.split(",").filter((s) => s !== "")
    return values.length === 0
      ? Either.left(`${JSON.stringify(t)} gives no ${flag.placeholder}`)
      : Either.all(values.map(flag.parse))
  }
})
