/**
 * A head's data directory, looked at before any region is made: it must be a directory this user
 * can write (else the durable tier would fail only once running, every ACK 2 refused while the
 * head reports ready), and what it already records decides whether a plain start recovers from it
 * (a restart on the same directory: `cxlog serve --data-dir` stopped and started again).
 */
import { Data, Effect } from "effect"
import { existsSync } from "node:fs"
import { mkdir, rm, stat, writeFile } from "node:fs/promises"
import { join, resolve, sep } from "node:path"
import { recordedTopics } from "../../layers/log/durable/DurableTopicState.js"
import * as SegmentsLayers from "../../layers/log/durable/Segments.js"

export class DataDirUnusable extends Data.TaggedError("DataDirUnusable")<{
  readonly dataDir: string
  readonly reason: string
}> {
  override get message() {
    return `the data directory ${this.dataDir} cannot be used: ${this.reason} (give --data-dir / CXLOG_DATA_DIR a directory this user can create and write)`
  }
}

/**
 * Makes each missing directory of `dir` in turn. Not `mkdir`'s `recursive`: under a file system
 * that refuses new entries with ENOENT (/proc) Node's retries it for ever.
 */
const makeDirectories = async (dir: string) => {
  let path: string = sep
  for (const part of resolve(dir).split(sep).filter((p) => p !== "")) {
    path = join(path, part)
    try {
      await mkdir(path, { mode: 0o700 })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    }
  }
  if (!(await stat(path)).isDirectory()) throw new Error(`${path} is a file, not a directory`)
}

/** Makes `dataDir` when missing and writes a file in it (then removes it), else DataDirUnusable naming why. */
export const requireWritableDataDir = (dataDir: string): Effect.Effect<void, DataDirUnusable> =>
  Effect.tryPromise({
    try: async () => {
      await makeDirectories(dataDir)
      const probe = join(dataDir, `.cxlog-probe-${process.pid}`)
      await writeFile(probe, "")
      await rm(probe)
    },
    catch: (e) => new DataDirUnusable({ dataDir, reason: e instanceof Error ? e.message : String(e) })
  })

/** The topics `dataDir` records a stream of (none for a new directory). */
export const topicsRecordedIn = (dataDir: string): Effect.Effect<ReadonlyArray<string>, DataDirUnusable> =>
  recordedTopics.pipe(
    Effect.provide(SegmentsLayers.layer({ directory: dataDir })),
    Effect.mapError((e) => new DataDirUnusable({ dataDir, reason: e.message }))
  )

/** `--recover DIR` of a directory that does not exist, or that records no topic to rebuild. */
export class NothingToRecover extends Data.TaggedError("NothingToRecover")<{
  readonly dataDir: string
  readonly reason: "missing" | "empty"
}> {
  override get message() {
    return `nothing to recover: the data directory ${this.dataDir} ${
      this.reason === "missing" ? "does not exist" : "records no topic"
    } (--recover takes the data directory of a head before; to start a new log there, drop --recover)`
  }
}

/**
 * `--recover DIR` of a directory that does not exist, or that records no topic while no --topic
 * is given (a typo, another host's path, a directory made empty): made there or started on it, it
 * would start an empty region as if the log had never been.
 */
export const requireRecoverable = (
  options: {
    readonly recover?: boolean
    readonly dataDir?: string | undefined
    readonly topics: ReadonlyArray<unknown>
  }
): Effect.Effect<void, NothingToRecover | DataDirUnusable> => {
  const { dataDir } = options
  if (options.recover !== true || dataDir === undefined) return Effect.void
  if (!existsSync(dataDir)) return Effect.fail(new NothingToRecover({ dataDir, reason: "missing" }))
  if (options.topics.length > 0) return Effect.void
  return Effect.flatMap(
    topicsRecordedIn(dataDir),
    (recorded) => recorded.length === 0 ? Effect.fail(new NothingToRecover({ dataDir, reason: "empty" })) : Effect.void
  )
}
