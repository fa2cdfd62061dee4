/**
 * `cxlog`'s flags on @effect/cli. Each flag is declared once (CliFlags.ts) with its meaning, its
 * default and its `CXLOG_*` variable; that declaration makes the @effect/cli option (the variable
 * through Options.withFallbackConfig, default and variable in its help) and the row `cxlog config`
 * prints, so help, parsing, the environment fallback and `cxlog config` cannot disagree.
 * A flag's value is parsed there so that a mistake is one line naming the flag or variable.
 */
import { Args, CliConfig, Command as CliCommand, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Config, Console, Effect, Either, Option } from "effect"
import { envConfigProvider, processEnvironment } from "../../Settings.js"
import { SET_BUT_EMPTY } from "../../SettingText.js"
import { flagWordLine, stripAnsi, UsageError, validationLine } from "./CliFailure.js"
import type { Flag } from "./CliFlags.js"

export * from "./CliFlags.js"

/**
 * The first repeated flag of `spec` given a blank value in `words` (`--topic ''`, `--topic=`,
 * `--topic ' '`), as its mistake. @effect/cli drops an empty value of a repeated option and trims
 * the others, so such a flag read as not given: `cxlog subscribe --topic ''` read the default topic.
 */
const blankRepeatedValue = (spec: Pick<Command<unknown>, "flags">, words: ReadonlyArray<string>) => {
  for (const flag of Object.values(spec.flags).filter((f) => f.repeated)) {
    for (const [at, word] of words.entries()) {
      const value = word === `--${flag.name}`
        ? words[at + 1]
        : word.startsWith(`--${flag.name}=`)
        ? word.slice(flag.name.length + 3)
        : undefined
      if (value !== undefined && value.trim() === "") {
        return `--${flag.name}: the value is empty: give a ${flag.placeholder}`
      }
    }
  }
  return undefined
}

type AnyFlag = Flag<any>

/** Where a flag's value came from. */
export type Source = "flag" | "env" | "default"

/**
 * The value of `flag` without the command line: its variable in `env`, else its default. A
 * variable set to "" is refused, but for a switch, where "" reads as off.
 */
export const resolveFlag = (
  prefix: string,
  flag: AnyFlag,
  env: Record<string, string | undefined>
): Either.Either<{ readonly value: unknown; readonly source: Source }, UsageError> => {
  const fromEnv = flag.env === undefined ? undefined : env[flag.env]
  if (fromEnv === undefined) return Either.right({ value: flag.default, source: "default" })
  if (fromEnv === "" && !flag.switch) {
    const fallback = flag.shownDefault === undefined ? "" : ` (${flag.shownDefault})`
    return Either.left(
      new UsageError({
        message:
          `${prefix}: ${flag.env}: ${SET_BUT_EMPTY}: give a ${flag.placeholder}, or unset it for the default${fallback}`
      })
    )
  }
  return Either.match(flag.parse(fromEnv), {
    onLeft: (why) => Either.left(new UsageError({ message: `${prefix}: ${flag.env}=${fromEnv}: ${why}` })),
    onRight: (value) => Either.right({ value, source: "env" as const })
  })
}

/** A value read from a flag's variable, told apart from one given on the command line. */
class FromEnv {
  constructor(readonly text: string) {}
}

const mistake = (line: string) => ValidationError.invalidValue(HelpDoc.p(line))

/** `flag` as an @effect/cli option; `prefix` (`cxlog run`) begins its one-line mistakes. */
export const toOptions = <A>(prefix: string, flag: Flag<A>): Options.Options<A> => {
  const facts = [
    flag.shownDefault === undefined ? undefined : `default ${flag.shownDefault}`,
    flag.env === undefined ? undefined : `env ${flag.env}`
  ].filter((f) => f !== undefined).join(", ")
  const described = <B>(option: Options.Options<B>) => {
    const named = Options.withDescription(
      flag.placeholder === "" ? option : Options.withPseudoName(option, flag.placeholder),
      flag.description
    )
    return facts === "" ? named : Options.withDescription(named, `[${facts}]`)
  }
  const given = (texts: ReadonlyArray<string>): Effect.Effect<A, ValidationError.ValidationError> =>
    Either.match(
      flag.repeated ? Either.all(texts.map(flag.parse)).pipe(Either.map((v) => v.flat() as A)) : flag.parse(texts[0]!),
      {
        onLeft: (why) => Effect.fail(mistake(`${prefix}: --${flag.name}: ${why}`)),
        onRight: Effect.succeed
      }
    )
  const fromEnv = (value: A | FromEnv): Effect.Effect<A, ValidationError.ValidationError> =>
    !(value instanceof FromEnv) ?
      Effect.succeed(value) :
      Either.match(resolveFlag(prefix, flag, { [flag.env!]: value.text }), {
        onLeft: (error) => Effect.fail(mistake(error.message)),
        onRight: (resolved) => Effect.succeed(resolved.value as A)
      })
  const withEnv = <B>(option: Options.Options<B>): Options.Options<B | FromEnv> =>
    flag.env === undefined
      ? option
      : Options.withFallbackConfig(option, Config.map(Config.string(flag.env), (t) => new FromEnv(t)))
  if (flag.switch) {
    return Options.mapEffect(withEnv(described(Options.boolean(flag.name) as Options.Options<A>)), fromEnv)
  }
  const single = described(Options.text(flag.name))
  // None given is missing, so the variable (withFallbackConfig), then the default, apply.
  const fromFlag = flag.repeated
    ? Options.mapEffect(
      Options.repeated(single),
      (texts) => texts.length === 0 ? Effect.fail(ValidationError.missingValue(HelpDoc.empty)) : given(texts)
    )
    : Options.mapEffect(single, (t) => given([t]))
  return Options.mapEffect(
    Options.optional(withEnv(fromFlag)),
    Option.match({ onNone: () => Effect.succeed(flag.default), onSome: fromEnv })
  )
}

type Values<F extends Record<string, AnyFlag>> = { readonly [K in keyof F]: F[K] extends Flag<infer A> ? A : never }

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

/**
 * A module of a command's implementation, evaluated when the command runs. Every start of cxlog
 * evaluates the command table (help, parsing and `cxlog config` read all of it), so the table's
 * files import flags and settings only, and each command's `run` reaches what it does through
 * `import()`: the bundle keeps such a module, and whatever only it imports, unevaluated until then.
 */
export const load = <M>(module: () => Promise<M>): Effect.Effect<M> => Effect.promise(module)

/** Colour only for a terminal, and never when `NO_COLOR` is set (no-color.org). */
export const useColor = (stream: NodeJS.WriteStream, env: Record<string, string | undefined>): boolean =>
  stream.isTTY === true && (env["NO_COLOR"] === undefined || env["NO_COLOR"] === "")

export interface App<R> {
  readonly name: string
  readonly version: string
  /** One line: what the program is. */
  readonly about: string
  readonly commands: ReadonlyArray<Command<R>>
  /** Flags every command takes (help lists them once, in the overview). */
  readonly globals: ReadonlyArray<AnyFlag>
  readonly footer: string
}

/** A command's help text before its flags: its summary, details and examples. */
const commandDoc = <R>(spec: Command<R>) =>
  HelpDoc.blocks([
    HelpDoc.p(spec.summary),
    ...(spec.details?.split("\n\n").map((p) => HelpDoc.p(p)) ?? []),
    ...(spec.examples.length === 0 ? [] : [HelpDoc.h1("EXAMPLES"), ...spec.examples.map((e) => HelpDoc.p(`  ${e}`))])
  ])

/**
 * `spec` as an @effect/cli command. Its hidden flags are left out unless `internal` (the tree
 * for roles cxlog starts itself); left out, they keep their default. The command runs with
 * `console`, the one the program was given (the parsing phase has its own, see runApp).
 */
const toCommand = <R>(app: App<R>, spec: Command<R>, internal: boolean, console: Console.Console) => {
  const prefix = `${app.name} ${spec.name}`
  const shown = Object.entries(spec.flags).filter(([, f]) => internal || !f.hidden)
  const defaults = Object.fromEntries(Object.entries(spec.flags).map(([k, f]) => [k, f.default]))
  return CliCommand.make(
    spec.name,
    {
      flags: shown.length === 0
        ? Options.map(Options.none, () => ({}))
        : Options.all(Object.fromEntries(shown.map(([k, f]) => [k, toOptions(prefix, f)]))),
      args: spec.positional === undefined ? Args.none : Args.repeated(Args.text({ name: spec.positional }))
    },
    ({ args, flags }) => {
      const words: ReadonlyArray<string> = args ?? []
      // The parser takes an unknown flag of a command with positional words for one of them, and a
      // known one when it took that flag already (a value follows) or found no value after it (last).
      const at = words.findIndex((word) => word.startsWith("--"))
      if (at >= 0) {
        const repeated = () => at < words.length - 1
        return Effect.fail(new UsageError({ message: flagWordLine(prefix, words[at]!, spec, repeated) }))
      }
      return Effect.asVoid(spec.run({ ...defaults, ...flags }, words)).pipe(
        Effect.withConsole(console),
        Effect.withConfigProvider(envConfigProvider(processEnvironment()))
      )
    }
  ).pipe(CliCommand.withDescription(commandDoc(spec)))
}

/** The command list: what `cxlog` and `cxlog --help` print. */
const overview = <R>(app: App<R>) => {
  const visible = app.commands.filter((c) => !c.hidden)
  const width = Math.max(...visible.map((c) => c.name.length)) + 2
  return HelpDoc.blocks([
    HelpDoc.p(`${app.name}: ${app.about}`),
    HelpDoc.h1("USAGE"),
    HelpDoc.p(`$ ${app.name} COMMAND [flags]`),
    HelpDoc.p(`$ ${app.name} COMMAND --help`),
    HelpDoc.h1("COMMANDS"),
    HelpDoc.p(visible.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n")),
    HelpDoc.h1("GLOBAL FLAGS"),
    Options.getHelp(Options.all(app.globals.map((f) => toOptions(app.name, f)))),
    HelpDoc.p(app.footer)
  ])
}

/** @effect/cli's generic paragraphs: every flag here already says what it takes and where it comes from. */
const GENERIC_PARAGRAPHS =
  /\n[ \t]*\n[ \t]*(A user-defined piece of text\.|This setting is optional\.|This option can be set from environment variables\.)[ \t]*(?=\n|$)/g

/** Help as printed: without @effect/cli's generic paragraphs, usage lines naming the program, colour only when wanted. */
const tidyHelp = (text: string, program: string, color: boolean) => {
  const plain = color ? text : stripAnsi(text)
  return plain.replace(GENERIC_PARAGRAPHS, "").replace(/^\$ (?!\S*cxlog)/gm, `$ ${program} `)
}

/**
 * Runs `words` (the arguments after the program's name) through @effect/cli. Roles other cxlog
 * processes start (hidden commands, hidden flags) are parsed by a second tree that has them,
 * chosen when the words name one, so help never lists them. While @effect/cli parses, its
 * console prints help without colour unless `color`, and drops its own multi-line account of
 * a refused command line: that fails as a one-line UsageError instead.
 */
export const runApp = <R>(app: App<R>, words: ReadonlyArray<string>, color: boolean) =>
  Effect.consoleWith((console) => {
    const parsing: Console.Console = {
      ...console,
      log: (...args) => console.log(...args.map((a) => (typeof a === "string" ? tidyHelp(a, app.name, color) : a))),
      error: () => Effect.void
    }
    const argv = words[0] === "help" ? [...words.slice(1), "--help"] : words
    const named = app.commands.find((c) => c.name === argv[0])
    // Without a command, help is the command list (@effect/cli's own would spell out every command's flags).
    if (named === undefined && (argv.length === 0 || argv.includes("--help") || argv.includes("-h"))) {
      return argv.length > 1 && words[0] === "help"
        ? Effect.fail(
          new UsageError({
            message: validationLine(ValidationError.commandMismatch(HelpDoc.empty), app.name, argv, app.commands)
          })
        )
        : Effect.withConsole(Console.log(HelpDoc.toAnsiText(overview(app))), parsing)
    }
    const blank = named === undefined ? undefined : blankRepeatedValue(named, argv.slice(1))
    if (blank !== undefined) return Effect.fail(new UsageError({ message: `${app.name} ${argv[0]}: ${blank}` }))
    const internal = named !== undefined &&
      (named.hidden ||
        Object.values(named.flags).some((f) =>
          f.hidden && argv.some((w) => w === `--${f.name}` || w.startsWith(`--${f.name}=`))
        ))
    const children = app.commands.filter((c) => internal || !c.hidden).map((c) => toCommand(app, c, internal, console))
    const root = CliCommand.make(app.name).pipe(
      CliCommand.withSubcommands(children as [typeof children[0], ...typeof children])
    )
    return CliCommand.run(root, { name: app.name, version: app.version })([process.argv0, app.name, ...argv]).pipe(
      Effect.catchIf(
        ValidationError.isValidationError,
        (error) => Effect.fail(new UsageError({ message: validationLine(error, app.name, argv, app.commands) }))
      ),
      Effect.withConsole(parsing),
      Effect.provide(CliConfig.layer({ showBuiltIns: false }))
    )
  })
