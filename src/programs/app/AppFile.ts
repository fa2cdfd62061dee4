/**
 * The file `cxlog app start` runs: which programs, how many of each, and their restart policy
 * (docs/ipc.md, "An app file"). Decoded with a Schema; a file that does not decode is one typed
 * error naming the field, so the command fails before it starts anything.
 */
import { Data, Effect, Either, ParseResult, Schema } from "effect"
import { type Stats, statSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { dirname, resolve } from "node:path"
import { GROUP_ALL, GROUP_BROKERS } from "../../services/control/Coordinator.js"
import { type ChildSpec, RestartPolicy } from "../../services/ipc/Supervisor.js"

const Count = Schema.Int.pipe(Schema.between(1, 1024))
const Millis = Schema.Int.pipe(Schema.nonNegative())

/** One entry of `processes`: a Supervisor child spec, with paths relative to the file. */
export const AppProcess = Schema.Struct({
  name: Schema.String.pipe(Schema.minLength(1)),
  /** A Node script, relative to the app file's directory. */
  script: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /** Any executable (found on PATH). */
  command: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  args: Schema.optional(Schema.Array(Schema.String)),
  count: Schema.optional(Count),
  restart: Schema.optional(RestartPolicy),
  backoffMs: Schema.optional(Millis),
  maxBackoffMs: Schema.optional(Millis),
  restartLimit: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  restartWindowMs: Schema.optional(Schema.Int.pipe(Schema.positive())),
  env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  /** Where it runs, relative to the app file's directory (that directory by default). */
  cwd: Schema.optional(Schema.String)
}).pipe(
  Schema.filter((p) =>
    (p.script === undefined) === (p.command === undefined)
      ? { path: ["script"], message: "give one of script and command" }
      : undefined
  )
)

/** A draining shutdown: the process group its fence is over (the app's and its supervisor's, for that fence only). */
export const AppDrain = Schema.Struct({
  // Not a group the coordinator derives from every member (`all`, `brokers`): the head would be waited for too.
  group: Schema.String.pipe(
    Schema.minLength(1),
    Schema.maxLength(200),
    Schema.filter((g) =>
      ![GROUP_ALL, GROUP_BROKERS].includes(g) || `${g} is every member's group: name one of the app's own`
    )
  )
})

export const AppFile = Schema.Struct({
  /** The region the children attach (CXLOG_REGION in their environment); else this process's. */
  region: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /** With it, the shutdown drains: the supervisor joins the region as a member and fences over `group`. */
  drain: Schema.optional(AppDrain),
  processes: Schema.Array(AppProcess).pipe(Schema.minItems(1))
}).pipe(
  Schema.filter((app) => {
    const seen = new Set<string>()
    for (const [i, p] of app.processes.entries()) {
      if (seen.has(p.name)) return { path: ["processes", i, "name"], message: `${p.name} is named twice` }
      seen.add(p.name)
    }
    return undefined
  })
)
export type AppFile = typeof AppFile.Type

/** The app file could not be read or does not decode: `field` is where (`processes.1.restart`). */
export class AppFileInvalid extends Data.TaggedError("AppFileInvalid")<{
  readonly file: string
  readonly field: string
  readonly reason: string
}> {
  override get message() {
    return `${this.file}: ${this.field === "" ? "" : `${this.field}: `}${this.reason}`
  }
}

/** The first field that does not decode, with every reason given for it (a union's members each give one). */
const firstIssue = (file: string, error: ParseResult.ParseError) => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const field = (issues[0]?.path ?? []).map(String).join(".")
  const reasons = issues.filter((i) => i.path.map(String).join(".") === field).map((i) => i.message)
  const actual = /, actual (.*)$/.exec(reasons[0] ?? "")?.[1]
  const expected = reasons.map((r) => /^Expected (.*), actual (.*)$/.exec(r)).filter((m) => m?.[2] === actual)
  const reason = actual !== undefined && expected.length === reasons.length && reasons.length > 1
    ? `Expected ${expected.map((m) => m![1]).filter((e) => e !== "undefined").join(" | ")}, actual ${actual}`
    : reasons[0] ?? error.message
  return new AppFileInvalid({ file, field, reason })
}

/** Decodes an app file's text (named `file` in errors). */
export const decodeAppFile = (file: string, text: string): Effect.Effect<AppFile, AppFileInvalid> =>
  Effect.gen(function*() {
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (e) => new AppFileInvalid({ file, field: "", reason: `not JSON: ${(e as Error).message}` })
    })
    return yield* Either.match(Schema.decodeUnknownEither(AppFile, { onExcessProperty: "error" })(json), {
      onLeft: (error) => Effect.fail(firstIssue(file, error)),
      onRight: Effect.succeed
    })
  })

/**
 * The first script of `app` (found at `path`) that is no file, or working directory that is no
 * directory: refused before anything starts, where Node would start, print its module-not-found
 * stack and exit 1 as if the script had failed, and a spawn in a missing directory fails as
 * `spawn /usr/bin/node ENOENT`, blaming a program that is there.
 */
const missingPath = (path: string, app: AppFile): AppFileInvalid | undefined => {
  const base = dirname(resolve(path))
  const missing = (field: string, relative: string | undefined, is: (stats: Stats) => boolean, reason: string) => {
    if (relative === undefined) return undefined
    const target = resolve(base, relative)
    const stats = statSync(target, { throwIfNoEntry: false })
    return stats !== undefined && is(stats)
      ? undefined
      : new AppFileInvalid({ file: path, field, reason: `${reason} ${target}` })
  }
  for (const [i, p] of app.processes.entries()) {
    const problem = missing(`processes.${i}.script`, p.script, (s) => s.isFile(), "no file") ??
      missing(`processes.${i}.cwd`, p.cwd, (s) => s.isDirectory(), "no directory")
    if (problem !== undefined) return problem
  }
  return undefined
}

/** Reads and decodes the app file at `path`, whose scripts and working directories must be there. */
export const loadAppFile = (path: string): Effect.Effect<AppFile, AppFileInvalid> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (e) => new AppFileInvalid({ file: path, field: "", reason: `cannot read it: ${(e as Error).message}` })
  }).pipe(
    Effect.flatMap((text) => decodeAppFile(path, text)),
    Effect.filterOrFail((app) => missingPath(path, app) === undefined, (app) => missingPath(path, app)!)
  )

/**
 * The Supervisor specs of an app file found at `path`: scripts and working directories taken
 * relative to the file's directory, and the file's region, if it names one, in each child's environment.
 */
export const childSpecsOf = (path: string, app: AppFile): ReadonlyArray<ChildSpec> => {
  const base = dirname(resolve(path))
  return app.processes.map((p) => ({
    ...p,
    ...(p.script === undefined ? {} : { script: resolve(base, p.script) }),
    cwd: resolve(base, p.cwd ?? "."),
    ...(app.region === undefined ? {} : { env: { ...p.env, CXLOG_REGION: app.region } })
  }))
}
