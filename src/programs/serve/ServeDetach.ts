/**
 * `cxlog serve --detach` and `cxlog serve --stop`: the server in the background, for a script
 * (a README block, CI, an app's tests) that goes on once the server is ready and stops it at its
 * end. `--detach` starts `cxlog serve` in a session of its own with its output in a log file of
 * this user's private directory, waits until it says it is ready (or why it cannot be), prints
 * how to connect, and returns, leaving it running. `--stop` finds the serve whose head serves the
 * region (the head's parent process) and stops it as Ctrl-C would, returning once it is gone.
 */
import { Data, Deferred, Duration, Effect } from "effect"
import { fork } from "node:child_process"
import { closeSync, existsSync, openSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { authDirectory } from "../../layers/net/Auth.js"
import { fileStem } from "../../layers/net/AuthRegionFiles.js"
import { isPidAlive, procStat } from "../../layers/region/ProcessInfo.js"
import { inspectRegion, SHM_DIR } from "../admin/Regions.js"
import { cliEntry } from "../ProgramSettings.js"
import { readyBanner, readyEvent, type ServeReady } from "./ServeBanner.js"

/** Where a detached serve of `region` writes its one stream (appended to, run after run). */
export const serveLogPath = (region: string): string => join(authDirectory(), `${fileStem(region)}.serve.log`)

/** How long `--detach` waits for the server to be ready: each of its roles has 60 s. */
const DETACH_READY_MS = 180_000

/** How long `--stop` waits for serve to stop its roles and end (each role has 3 s before SIGKILL). */
const STOP_MS = 60_000

/** A detached serve did not get ready: what it said, and where the rest of what it printed is. */
export class ServeDetachFailed extends Data.TaggedError("ServeDetachFailed")<{
  readonly reason: string
  readonly logFile: string
}> {
  override get message() {
    return `${this.reason} (its log: ${this.logFile})`
  }
}

/** `cxlog serve --stop` found nothing to stop, or a head serve did not start. */
export class ServeNotRunning extends Data.TaggedError("ServeNotRunning")<{
  readonly region: string
  /** The head serving the region, when there is one that no serve started. */
  readonly headPid?: number
  /** The region is there, and no live head serves it (its head and serve are gone). */
  readonly orphaned?: boolean
}> {
  override get message() {
    return this.orphaned === true
      ? `no cxlog serve runs region ${this.region}: the region is there but no head serves it (\`cxlog regions\` says what ` +
        `it holds; \`cxlog regions --remove ${this.region}\` discards it, \`cxlog head --region ${this.region}\` says how to carry on with it)`
      : this.headPid === undefined
      ? `no cxlog serve runs region ${this.region}: there is no such region in ${SHM_DIR} (cxlog regions lists them; --region / CXLOG_REGION names another)`
      : `region ${this.region} is served by a head (pid ${this.headPid}) that cxlog serve did not start: stop it with \`kill ${this.headPid}\``
  }
}

/** `cxlog serve` did not end within `STOP_MS` of its SIGTERM. */
export class ServeStopTimeout
  extends Data.TaggedError("ServeStopTimeout")<{ readonly pid: number; readonly waitedMs: number }>
{
  override get message() {
    return `cxlog serve (pid ${this.pid}) still runs ${this.waitedMs} ms after its SIGTERM: \`kill -9 ${this.pid}\` ends it (its roles then stop themselves)`
  }
}

/** What a serve started with an IPC channel says (Serve.ts reports `ready`; the CLI `failed`). */
type Said = { readonly event: "ready"; readonly ready: ServeReady } | {
  readonly event: "failed"
  readonly error: { readonly message: string }
}

/**
 * Starts `cxlog serve <args>` in the background and resolves with what it said once ready:
 * printed as the banner, with how to stop it. Fails with ServeDetachFailed naming why it is not
 * (its own error, its exit, or no word within DETACH_READY_MS, after which it is stopped).
 */
export const detach = (args: ReadonlyArray<string>, region: string, json: boolean) =>
  Effect.gen(function*() {
    const logFile = serveLogPath(region)
    const log = openSync(logFile, "a", 0o600)
    const child = yield* Effect.sync(() =>
      fork(cliEntry(), ["serve", ...args], { detached: true, stdio: ["ignore", log, log, "ipc"] })
    ).pipe(Effect.ensuring(Effect.sync(() => closeSync(log))))
    const outcome = yield* Deferred.make<ServeReady, string>()
    child.on("message", (sent) => {
      const message = sent as Said
      if (message.event === "ready") Deferred.unsafeDone(outcome, Effect.succeed(message.ready))
      // The CLI's line for its failure, less the `cxlog serve: ` this process's own line begins with.
      if (message.event === "failed") {
        Deferred.unsafeDone(outcome, Effect.fail(message.error.message.replace(/^cxlog serve: /, "")))
      }
    })
    child.on("exit", (code, signal) =>
      Deferred.unsafeDone(
        outcome,
        Effect.fail(`cxlog serve exited with ${signal ?? `code ${code}`} before it was ready`)
      ))
    const ready = yield* Deferred.await(outcome).pipe(
      Effect.timeoutFail({
        duration: Duration.millis(DETACH_READY_MS),
        onTimeout: () => `cxlog serve was not ready within ${DETACH_READY_MS} ms; stopped it`
      }),
      Effect.tapError(() => Effect.sync(() => child.kill("SIGTERM"))),
      Effect.mapError((reason) => new ServeDetachFailed({ reason, logFile }))
    )
    // It runs on alone: nothing of it holds this process.
    child.disconnect()
    child.unref()
    const stopping = `cxlog serve --stop${region === "cxlog" ? "" : ` --region ${region}`}`
    process.stdout.write(
      json
        ? `${JSON.stringify({ event: "ready", ...readyEvent(ready), pid: child.pid, logFile, stop: stopping })}\n`
        : readyBanner(
          ready,
          `cxlog serve runs in the background (pid ${child.pid}), its log in ${logFile}; \`${stopping}\` stops it.`
        )
    )
  })

/** The `cxlog serve` process whose head serves `region` (the head's parent), or ServeNotRunning. */
const serveOf = (region: string) =>
  Effect.gen(function*() {
    const info = yield* inspectRegion(region)
    if (info === undefined) return yield* new ServeNotRunning({ region })
    if (!info.owner.alive) return yield* new ServeNotRunning({ region, orphaned: true })
    const parent = procStat(info.owner.pid)?.parentPid ?? 0
    const command = existsSync(`/proc/${parent}/cmdline`)
      ? readFileSync(`/proc/${parent}/cmdline`, "utf8").split("\0")
      : []
    if (!command.includes("serve")) return yield* new ServeNotRunning({ region, headPid: info.owner.pid })
    return parent
  })

/** Stops the serve of `region` as Ctrl-C would (SIGTERM), returning once it has ended. */
export const stop = (region: string) =>
  Effect.gen(function*() {
    const pid = yield* serveOf(region)
    process.kill(pid, "SIGTERM")
    const started = Date.now()
    while (isPidAlive(pid)) {
      if (Date.now() - started > STOP_MS) return yield* new ServeStopTimeout({ pid, waitedMs: STOP_MS })
      yield* Effect.sleep("50 millis")
    }
    process.stdout.write(`cxlog serve (pid ${pid}) of region ${region} stopped\n`)
  })
