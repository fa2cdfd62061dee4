/**
 * The small command-line kit behind `cxlog`. Each flag is declared once with its meaning, its
 * default and its `CXLOG_*` variable, so help, parsing, the environment fallback and
 * `cxlog config` cannot disagree. A mistake on the command line is a `UsageError`: one line,
 * exit code 2. (@effect/cli could neither hide internal subcommands, show a flag's variable
 * nor keep its errors to one line, hence this.)
 */
import { Cause, ConfigError, Data, Effect, Either, Option } from "effect"

/** A mistake in the arguments or in a `CXLOG_*` variable: one line, exit code 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** Why `text` is not a valid value, as a phrase naming it (Left), or the value. */
type Parse<A> = (text: string) => Either.Either<A, string>

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
  readonly hidden: boolean
}

interface Common {
  readonly description: string
  readonly env?: string
  readonly hidden?: boolean
}

const make = <A>(name: string, placeholder: string, parse: Parse<A>, options: Common, defaultValue: A, shown: string | undefined): Flag<A> => ({
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

const wholeNumber = (min: number): Parse<number> => (text) => {
  if (!/^-?\d+$/.test(text.trim())) return Either.left(`${text} is not a whole number`)
  const n = Number(text)
  return n < min ? Either.left(`${text} is below ${min}`) : Either.right(n)
}

const decimal = (min: number): Parse<number> => (text) => {
  const n = text.trim() === "" ? Number.NaN : Number(text)
  if (!Number.isFinite(n)) return Either.left(`${text} is not a number`)
  return n < min ? Either.left(`${text} is below ${min}`) : Either.right(n)
}

const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 }

/** "64KiB", "1GiB", "4096" → bytes (binary units; KB and K mean KiB too). */
export const parseSize: Parse<number> = (text) => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  const scale = match === null ? undefined : SIZE_UNITS[match[2]!.toLowerCase()]
  if (match === null || scale === undefined) return Either.left(`${text} is not a size: use 64KiB, 1GiB, … or a number of bytes`)
  const bytes = Math.round(Number(match[1]) * scale)
  return bytes < 1 ? Either.left(`${text} is not a size: it must be at least 1 byte`) : Either.right(bytes)
}

export const integer = (name: string, options: Common & { readonly default: number; readonly min?: number; readonly placeholder?: string }) =>
  make(name, options.placeholder ?? "N", wholeNumber(options.min ?? 0), options, options.default, `${options.default}`)

export const optionalInteger = (name: string, options: Common & { readonly min?: number; readonly placeholder?: string; readonly shown?: string }) =>
  make<number | undefined>(name, options.placeholder ?? "N", wholeNumber(options.min ?? 0), options, undefined, options.shown)

export const float = (name: string, options: Common & { readonly default: number; readonly min?: number; readonly placeholder?: string }) =>
  make(name, options.placeholder ?? "X", decimal(options.min ?? 0), options, options.default, `${options.default}`)

export const optionalFloat = (name: string, options: Common & { readonly min?: number; readonly placeholder?: string; readonly shown?: string }) =>
  make<number | undefined>(name, options.placeholder ?? "X", decimal(options.min ?? 0), options, undefined, options.shown)

/** A byte size given as `64KiB`, `1GiB` or a number; `default` is written the same way. */
export const size = (name: string, options: Common & { readonly default: string }) =>
  make(name, "SIZE", parseSize, options, Either.getOrThrow(parseSize(options.default)), options.default)

export const text = (
  name: string,
  options: Common & { readonly default: string; readonly placeholder?: string; readonly check?: (text: string) => string | undefined }
) =>
  make(name, options.placeholder ?? "TEXT", (t) => {
    const problem = options.check?.(t)
    return problem === undefined ? Either.right(t) : Either.left(problem)
  }, options, options.default, options.default)

export const optionalText = (name: string, options: Common & { readonly placeholder?: string; readonly shown?: string }) =>
  make<string | undefined>(name, options.placeholder ?? "TEXT", Either.right, options, undefined, options.shown)

/** A value parsed by `parse` (Left: why not), with a default shown as `shown`. */
export const custom = <A>(name: string, placeholder: string, parse: Parse<A>, options: Common & { readonly default: A; readonly shown: string }) =>
  make(name, placeholder, parse, options, options.default, options.shown)

export const choice = <const C extends string>(name: string, values: ReadonlyArray<C>, options: Common & { readonly default: C }) =>
  make(
    name,
    values.join("|"),
    (t) => (values as ReadonlyArray<string>).includes(t) ? Either.right(t as C) : Either.left(`${t} is not one of ${values.join(", ")}`),
    options,
    options.default,
    options.default
  )

/** A switch: `--json` (or `--json=false`); its variable takes true/false, 1/0. */
export const toggle = (name: string, options: Common): Flag<boolean> => ({
  ...make(name, "", (t) => {
    const v = t.toLowerCase()
    if (["true", "1", "yes", "on"].includes(v)) return Either.right(true)
    if (["false", "0", "no", "off", ""].includes(v)) return Either.right(false)
    return Either.left(`${t} is not true or false`)
  }, options, false, "off"),
  switch: true
})

/** A flag given any number of times; its variable holds the values separated by commas. */
export const repeated = <A>(flag: Flag<A>): Flag<ReadonlyArray<A>> => ({
  ...flag,
  default: [],
  shownDefault: "none",
  repeated: true,
  parse: (t) => Either.all(t.split(",").filter((s) => s !== "").map(flag.parse))
})

// ---------------------------------------------------------------------------------------------

type AnyFlag = Flag<any>
type Values<F extends Record<string, AnyFlag>> = { readonly [K in keyof F]: F[K] extends Flag<infer A> ? A : never }

/** Where a flag's value came from. */
export type Source = "flag" | "env" | "default"

export interface Command<R> {
  readonly name: string
  /** One line for the command list. */
  readonly summary: string
  /** More paragraphs for the command's own help. */
  readonly details: string | undefined
  readonly flags: Record<string, AnyFlag>
  readonly examples: ReadonlyArray<string>
  /** Internal roles other cxlog processes start: callable, never listed. */
  readonly hidden: boolean
  /** Positional arguments, when the command takes any (help text). */
  readonly positional: string | undefined
  readonly run: (values: Record<string, unknown>, args: ReadonlyArray<string>) => Effect.Effect<unknown, unknown, R>
}

export const command = <F extends Record<string, AnyFlag>, R>(spec: {
  readonly name: string
  readonly summary: string
  readonly details?: string
  readonly flags: F
  readonly examples?: ReadonlyArray<string>
  readonly hidden?: boolean
  readonly positional?: string
  readonly run: (values: Values<F>, args: ReadonlyArray<string>) => Effect.Effect<unknown, unknown, R>
}): Command<R> => ({
  name: spec.name,
  summary: spec.summary,
  details: spec.details,
  flags: spec.flags,
  examples: spec.examples ?? [],
  hidden: spec.hidden ?? false,
  positional: spec.positional,
  run: spec.run as Command<R>["run"]
})

/** What the command line asked for. */
export type Invocation<R> =
  | { readonly _tag: "Help"; readonly command: Command<R> | undefined }
  | { readonly _tag: "Version" }
  | {
    readonly _tag: "Run"
    readonly command: Command<R>
    readonly values: Record<string, unknown>
    readonly sources: Record<string, Source>
    readonly args: ReadonlyArray<string>
  }

/** Edit distance, for "did you mean". */
const distance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/** The closest of `candidates` to `word`, if it is close enough to be a typo of it. */
export const suggest = (word: string, candidates: ReadonlyArray<string>): string | undefined => {
  let best: { name: string; d: number } | undefined
  for (const name of candidates) {
    const d = (name.startsWith(word) && word.length >= 2) || (word.length >= 5 && name.startsWith(word.slice(0, -1))) ? 0 : distance(word, name)
    if (d <= Math.max(2, Math.floor(name.length / 3)) && (best === undefined || d < best.d)) best = { name, d }
  }
  return best?.name
}

const usage = (message: string) => Either.left(new UsageError({ message }))

/** The value of `flag` from what was given, else its variable in `env`, else its default. */
export const resolveFlag = (
  prefix: string,
  flag: AnyFlag,
  given: ReadonlyArray<string>,
  env: Record<string, string | undefined>
): Either.Either<{ readonly value: unknown; readonly source: Source }, UsageError> => {
  if (given.length > 0) {
    const parsed = flag.repeated ? Either.all(given.map(flag.parse)).pipe(Either.map((v) => v.flat())) : flag.parse(given[0]!)
    return Either.match(parsed, {
      onLeft: (why) => usage(`${prefix}: --${flag.name}: ${why}`),
      onRight: (value) => Either.right({ value, source: "flag" as const })
    })
  }
  const fromEnv = flag.env === undefined ? undefined : env[flag.env]
  if (fromEnv !== undefined && fromEnv !== "") {
    return Either.match(flag.parse(fromEnv), {
      onLeft: (why) => usage(`${prefix}: ${flag.env}=${fromEnv}: ${why}`),
      onRight: (value) => Either.right({ value, source: "env" as const })
    })
  }
  return Either.right({ value: flag.default, source: "default" })
}

/** Parses `argv` (the words after `cxlog`) against `commands`. */
export const parse = <R>(
  program: string,
  commands: ReadonlyArray<Command<R>>,
  argv: ReadonlyArray<string>,
  env: Record<string, string | undefined>
): Either.Either<Invocation<R>, UsageError> => {
  const [first, ...rest] = argv
  if (first === undefined || first === "--help" || first === "-h") return Either.right({ _tag: "Help", command: undefined })
  if (first === "--version" || first === "-V") return Either.right({ _tag: "Version" })
  const find = (name: string) => commands.find((c) => c.name === name)
  if (first === "help") {
    const named = rest[0] === undefined ? undefined : find(rest[0])
    if (rest[0] !== undefined && named === undefined) return unknownCommand(program, commands, rest[0])
    return Either.right({ _tag: "Help", command: named })
  }
  if (first.startsWith("-")) return usage(`${program}: a command comes first, then its flags: ${program} COMMAND [flags] (see ${program} --help)`)
  const cmd = find(first)
  if (cmd === undefined) return unknownCommand(program, commands, first)
  const prefix = `${program} ${cmd.name}`
  const byName = new Map(Object.values(cmd.flags).map((f) => [f.name, f]))
  const given = new Map<string, Array<string>>()
  const args: Array<string> = []
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i]!
    if (word === "--help" || word === "-h") return Either.right({ _tag: "Help", command: cmd })
    if (!word.startsWith("--") || word === "--") {
      if (cmd.positional === undefined) return usage(`${prefix}: unexpected argument ${word} (flags start with --; see ${prefix} --help)`)
      args.push(word)
      continue
    }
    const eq = word.indexOf("=")
    const name = word.slice(2, eq < 0 ? undefined : eq)
    const flag = byName.get(name)
    if (flag === undefined) {
      const near = suggest(name, [...byName.values()].filter((f) => !f.hidden).map((f) => f.name))
      return usage(`${prefix}: unknown flag --${name}${near === undefined ? "" : ` (did you mean --${near}?)`}; see ${prefix} --help`)
    }
    let value: string
    if (eq >= 0) value = word.slice(eq + 1)
    else if (flag.switch) value = "true"
    else {
      const next = rest[i + 1]
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        return usage(`${prefix}: --${name} needs a value (${flag.placeholder})`)
      }
      value = next
      i++
    }
    const previous = given.get(name) ?? []
    if (previous.length > 0 && !flag.repeated) return usage(`${prefix}: --${name} is given twice`)
    given.set(name, [...previous, value])
  }
  const values: Record<string, unknown> = {}
  const sources: Record<string, Source> = {}
  for (const [key, flag] of Object.entries(cmd.flags)) {
    const resolved = resolveFlag(prefix, flag, given.get(flag.name) ?? [], env)
    if (Either.isLeft(resolved)) return Either.left(resolved.left)
    values[key] = resolved.right.value
    sources[key] = resolved.right.source
  }
  return Either.right({ _tag: "Run", command: cmd, values, sources, args })
}

const unknownCommand = <R>(program: string, commands: ReadonlyArray<Command<R>>, word: string) => {
  const near = suggest(word, commands.filter((c) => !c.hidden).map((c) => c.name))
  return usage(`${program}: unknown command ${word}${near === undefined ? "" : ` (did you mean ${near}?)`}; see ${program} --help`)
}

// ---------------------------------------------------------------------------------------------

/** Colour only for a terminal, and never when `NO_COLOR` is set (no-color.org). */
export const useColor = (stream: NodeJS.WriteStream, env: Record<string, string | undefined>): boolean =>
  stream.isTTY === true && (env["NO_COLOR"] === undefined || env["NO_COLOR"] === "")

const WIDTH = 100

const wrap = (text: string, width: number): Array<string> => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line === "" ? word : `${line} ${word}`
  }
  if (line !== "") lines.push(line)
  return lines
}

const styler = (color: boolean) => ({
  bold: (s: string) => (color ? `\u001b[1m${s}\u001b[22m` : s),
  dim: (s: string) => (color ? `\u001b[2m${s}\u001b[22m` : s)
})

/** A flag's lines in help: name and value, meaning, then its default and variable. */
const flagHelp = (flag: AnyFlag, style: ReturnType<typeof styler>): Array<string> => {
  const head = `  --${flag.name}${flag.placeholder === "" ? "" : ` ${flag.placeholder}`}${flag.repeated ? " …" : ""}`
  const facts = [
    flag.shownDefault === undefined ? undefined : `default ${flag.shownDefault}`,
    flag.env === undefined ? undefined : `env ${flag.env}`
  ].filter((f) => f !== undefined).join(", ")
  return [
    style.bold(head),
    ...wrap(flag.description, WIDTH - 6).map((l) => `      ${l}`),
    ...(facts === "" ? [] : [`      ${style.dim(`[${facts}]`)}`])
  ]
}

export const commandHelp = <R>(program: string, cmd: Command<R>, color: boolean, globals: ReadonlyArray<AnyFlag>): string => {
  const style = styler(color)
  const flags = Object.values(cmd.flags).filter((f) => !f.hidden)
  return [
    `${style.bold(`${program} ${cmd.name}`)}: ${cmd.summary}`,
    ...(cmd.details === undefined ? [] : ["", ...cmd.details.split("\n\n").flatMap((p, i) => [...(i > 0 ? [""] : []), ...wrap(p, WIDTH)])]),
    "",
    style.bold("Usage"),
    `  ${program} ${cmd.name}${flags.length > 0 ? " [flags]" : ""}${cmd.positional === undefined ? "" : ` ${cmd.positional}`}`,
    ...(flags.length === 0 ? [] : ["", style.bold("Flags"), ...flags.flatMap((f) => flagHelp(f, style))]),
    "",
    style.bold("Global flags"),
    ...globals.flatMap((f) => flagHelp(f, style)),
    ...(cmd.examples.length === 0 ? [] : ["", style.bold("Examples"), ...cmd.examples.map((e) => `  ${e}`)]),
    ""
  ].join("\n")
}

export const programHelp = <R>(
  program: string,
  about: string,
  commands: ReadonlyArray<Command<R>>,
  color: boolean,
  globals: ReadonlyArray<AnyFlag>,
  footer: string
): string => {
  const style = styler(color)
  const visible = commands.filter((c) => !c.hidden)
  const width = Math.max(...visible.map((c) => c.name.length)) + 2
  return [
    `${style.bold(program)}: ${about}`,
    "",
    style.bold("Usage"),
    `  ${program} COMMAND [flags]`,
    `  ${program} COMMAND --help`,
    "",
    style.bold("Commands"),
    ...visible.flatMap((c) => {
      const [firstLine = "", ...more] = wrap(c.summary, WIDTH - width - 4)
      return [`  ${style.bold(c.name.padEnd(width))}${firstLine}`, ...more.map((l) => `  ${" ".repeat(width)}${l}`)]
    }),
    "",
    style.bold("Global flags"),
    ...globals.flatMap((f) => flagHelp(f, style)),
    "",
    ...wrap(footer, WIDTH),
    ""
  ].join("\n")
}

/** A usage mistake found by a command itself (a combination of flags its parser cannot see). */
export const failUsage = (message: string) => Effect.fail(new UsageError({ message }))

// ---------------------------------------------------------------------------------------------

/**
 * A message as one line: its first line, or, when that introduces a list ("…:"), the list
 * joined after it.
 */
const firstLine = (text: string) => {
  const [first = "", ...rest] = text.split("\n").map((l) => l.trim()).filter((l) => l !== "")
  return first.endsWith(":") && rest.length > 0 ? `${first} ${rest.map((l) => l.replace(/^- /, "")).join("; ")}` : first
}

/** A configuration error in words: the variable, then why. */
const describeConfigError = (error: ConfigError.ConfigError): string => {
  switch (error._op) {
    case "And":
    case "Or":
      return describeConfigError(error.left)
    case "InvalidData":
    case "MissingData":
    case "SourceUnavailable":
    case "Unsupported":
      return error.path.length === 0 ? error.message : `${error.path.join(".")}: ${error.message}`
  }
}

/** Errors that mean the configuration given is wrong (exit 2, like a usage mistake). */
const CONFIGURATION_ERRORS = new Set(["LogConfigInvalid", "RegionLayoutInvalid"])

/** A failure's own words: its message, else its tag and its plain fields. */
const describe = (error: unknown): string => {
  if (typeof error !== "object" || error === null) return String(error)
  const tagged = error as { readonly _tag?: unknown; readonly message?: unknown; readonly error?: unknown }
  // Effect.try without a catch: the thrown error is what matters.
  if (tagged._tag === "UnknownException" && tagged.error !== undefined) return describe(tagged.error)
  if (ConfigError.isConfigError(error)) return describeConfigError(error)
  if (typeof tagged.message === "string" && tagged.message.trim() !== "") return firstLine(tagged.message)
  const fields = Object.entries(error)
    .filter(([k, v]) => k !== "_tag" && (typeof v === "string" || typeof v === "number" || typeof v === "boolean"))
    .map(([k, v]) => `${k} ${v}`)
  return `${typeof tagged._tag === "string" ? tagged._tag : "error"}${fields.length > 0 ? ` (${fields.join(", ")})` : ""}`
}

/** One line for a failed command, and its exit code: 2 for a usage or configuration mistake, else 1. */
export const describeFailure = (cause: Cause.Cause<unknown>, prefix: string): { readonly line: string; readonly exitCode: 1 | 2 } => {
  const failure = Cause.failureOption(cause)
  const error = Option.isSome(failure) ? failure.value : Cause.squash(cause)
  const usageMistake = error instanceof UsageError || ConfigError.isConfigError(error) ||
    CONFIGURATION_ERRORS.has((error as { readonly _tag?: string } | null)?._tag ?? "")
  if (error instanceof UsageError) return { line: error.message, exitCode: 2 }
  return { line: `${prefix}: ${describe(error)}`, exitCode: usageMistake ? 2 : 1 }
}
