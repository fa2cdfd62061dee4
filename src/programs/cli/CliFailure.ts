/**
 * A failed `cxlog` command as one line and an exit code: 2 for a mistake in the arguments or in
 * the configuration, 1 for a failure at runtime. @effect/cli reports a command line it cannot
 * take as a ValidationError holding a help document; it becomes one line here, with the
 * command or flag probably meant.
 */
import { AutoCorrect, CliConfig, HelpDoc, ValidationError } from "@effect/cli"
import { Cause, ConfigError, Data, Effect, Option } from "effect"

/** A mistake in the arguments or in a `CXLOG_*` variable: one line, exit code 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** A usage mistake found by a command itself (a combination of flags no single flag shows). */
export const failUsage = (message: string) => Effect.fail(new UsageError({ message }))

/** Terminal styling codes, for output that is not a terminal's. */
// eslint-disable-next-line no-control-regex -- the escape character is what an ANSI code starts with
export const stripAnsi = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, "")

/** The closest of `candidates` to `word`, if it is close enough to be a typo or a shortening of it. */
export const suggest = (word: string, candidates: ReadonlyArray<string>): string | undefined => {
  let best: { name: string; d: number } | undefined
  for (const name of candidates) {
    const d = (name.startsWith(word) && word.length >= 2) || (word.length >= 5 && name.startsWith(word.slice(0, -1)))
      ? 0
      : AutoCorrect.levensteinDistance(word, name, CliConfig.defaultConfig)
    if (d <= Math.max(2, Math.floor(name.length / 3)) && (best === undefined || d < best.d)) best = { name, d }
  }
  return best?.name
}

/** What a failure line needs to know of the commands: their names and their flags. */
export interface CommandShape {
  readonly name: string
  readonly hidden: boolean
  readonly flags: Record<string, { readonly name: string; readonly placeholder: string; readonly hidden: boolean }>
}

/**
 * @effect/cli's account of a command line it refused, as one line. Flag values cxlog parses
 * itself already fail with their line (it starts with the program's name); the rest are
 * words the parser did not take: an unknown command or flag, a flag without its value.
 */
export const validationLine = (
  error: ValidationError.ValidationError,
  program: string,
  words: ReadonlyArray<string>,
  commands: ReadonlyArray<CommandShape>
): string => {
  const said = stripAnsi(HelpDoc.toAnsiText(error.error)).split("\n").map((l) => l.trim()).find((l) => l !== "") ??
    error._tag
  if (said.startsWith(`${program} `) || said.startsWith(`${program}:`)) return said
  const [first = ""] = words
  const command = commands.find((c) => c.name === first)
  if (command === undefined) {
    if (first.startsWith("-")) {
      return `${program}: a command comes first, then its flags: ${program} COMMAND [flags] (see ${program} --help)`
    }
    const near = suggest(first, commands.filter((c) => !c.hidden).map((c) => c.name))
    return `${program}: unknown command ${first}${
      near === undefined ? "" : ` (did you mean ${near}?)`
    }; see ${program} --help`
  }
  const prefix = `${program} ${command.name}`
  const word = /unknown argument: '(.*)'$/.exec(said)?.[1]
  if (word === undefined) return `${prefix}: ${said}`
  if (!word.startsWith("--")) {
    return `${prefix}: unexpected argument ${word} (flags start with --; see ${prefix} --help)`
  }
  return flagWordLine(
    prefix,
    word,
    command,
    (name) => words.filter((w) => w === `--${name}` || w.startsWith(`--${name}=`)).length > 1
  )
}

/**
 * A `--word` the parser left over, as one line: an unknown flag (with the one probably meant), a
 * known one given twice (`repeated`), or one last without its value. A command taking positional
 * words gets an unknown flag among them, so it asks here too.
 */
export const flagWordLine = (
  prefix: string,
  word: string,
  command: Pick<CommandShape, "flags">,
  repeated: (name: string) => boolean
): string => {
  const name = word.slice(2).split("=")[0]!
  const visible = Object.values(command.flags).filter((f) => !f.hidden)
  const flag = visible.find((f) => f.name === name)
  if (flag === undefined) {
    const near = suggest(name, visible.map((f) => f.name))
    return `${prefix}: unknown flag --${name}${
      near === undefined ? "" : ` (did you mean --${near}?)`
    }; see ${prefix} --help`
  }
  // A known flag left over: given a second time, or last without its value.
  return repeated(name)
    ? `${prefix}: --${name} is given twice`
    : `${prefix}: --${name} needs a value (${flag.placeholder})`
}

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
const CONFIGURATION_ERRORS = new Set([
  "AppFileInvalid",
  "DataDirRequired",
  "InvalidGroupSpec",
  "InvalidObjectName",
  "InvalidPublisherOptions",
  "InvalidRun",
  "InvalidTopicSpec",
  "ListenHostUnknown",
  "LogConfigInvalid",
  "MessageTooLarge",
  "RegionLayoutInvalid",
  "ServeHostUnsecured",
  "ServePortsOverlap",
  "SessionGapIdleTooShort"
])

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
  return `${typeof tagged._tag === "string" ? tagged._tag : "error"}${
    fields.length > 0 ? ` (${fields.join(", ")})` : ""
  }`
}

/** One line for a failed command, and its exit code: 2 for a usage or configuration mistake, else 1. */
export const describeFailure = (
  cause: Cause.Cause<unknown>,
  prefix: string
): { readonly line: string; readonly exitCode: 1 | 2 } => {
  const failure = Cause.failureOption(cause)
  const error = Option.isSome(failure) ? failure.value : Cause.squash(cause)
  // A usage line says which command refused it, as every other failure does; most already
  // name their command (or the variable or flag at fault under it), the rest (a check several
  // commands share) get it here.
  if (error instanceof UsageError) {
    return { line: /^cxlog[ :]/.test(error.message) ? error.message : `${prefix}: ${error.message}`, exitCode: 2 }
  }
  const usageMistake = ConfigError.isConfigError(error) ||
    CONFIGURATION_ERRORS.has((error as { readonly _tag?: string } | null)?._tag ?? "")
  return { line: `${prefix}: ${describe(error)}`, exitCode: usageMistake ? 2 : 1 }
}
