/**
 * A reference server a bench measures cxlog against (Redis, NATS), started by the bench on a
 * loopback port it chose and stopped by pid when the scope closes. A missing binary or client
 * package is `PeerUnavailable`: one line naming what to install, never a stack trace.
 */
import { Data, Effect, type Scope } from "effect"
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { connect, createServer } from "node:net"
import { tmpdir } from "node:os"
import { DURABLE_SETTINGS } from "../../../services/log/LogSettings.js"
import { processEnvironment, settingConfig } from "../../../Settings.js"
import { processCpuSeconds, stopChild, stopWithParent } from "../../run/Cluster.js"

/** A peer's server binary or its Node client is not installed here. */
export class PeerUnavailable extends Data.TaggedError("PeerUnavailable")<
  { readonly peer: string; readonly missing: string; readonly install: string }
> {
  override get message() {
    return `${this.peer}: ${this.missing} not found; install it with: ${this.install}`
  }
}

/** A peer's server did not start, or stopped answering. */
export class PeerFailed extends Data.TaggedError("PeerFailed")<{ readonly peer: string; readonly detail: string }> {
  override get message() {
    return `${this.peer}: ${this.detail}`
  }
}

/** What a client library's failure says. */
export const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** Where a peer keeps its files: where cxlog's run puts its data directory (CXLOG_DATA_DIR, else the OS's temporary directory), so both are on one filesystem. */
export const peerDataParent: Effect.Effect<string> = settingConfig(DURABLE_SETTINGS.settings.dataDir).pipe(
  Effect.map((dir) => dir ?? tmpdir()),
  Effect.orElseSucceed(() => tmpdir())
)

/** How long a server may take to accept its first connection. */
const START_TIMEOUT_MS = 15_000
const POLL_MS = 25

/** The binary `override` names (`CXLOG_REDIS_SERVER`, …) if set, else where Debian puts it, else where PATH finds it. */
export const findBinary = (name: string, debianPath: string, override: string | undefined): string | undefined => {
  if (override !== undefined && override !== "") return existsSync(override) ? override : undefined
  if (existsSync(debianPath)) return debianPath
  for (const dir of (processEnvironment()["PATH"] ?? "").split(":")) {
    if (dir !== "" && existsSync(`${dir}/${name}`)) return `${dir}/${name}`
  }
  return undefined
}

/** A free TCP port on 127.0.0.1 (the kernel's pick, released for the server to bind). */
export const freePort: Effect.Effect<number, PeerFailed> = Effect.async((resume) => {
  const probe = createServer()
  probe.once("error", (error) => resume(Effect.fail(new PeerFailed({ peer: "port", detail: error.message }))))
  probe.listen(0, "127.0.0.1", () => {
    const { port } = probe.address() as { port: number }
    probe.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * `count` free ports, each different: the kernel may hand a port it just released out again, and
 * two servers given one port leave one of them unbound while a check of that port is answered by
 * the other (a JetStream cluster of two nodes where three were meant: no stream of three replicas
 * is ever placed).
 */
export const freePorts = (
  count: number,
  pick: Effect.Effect<number, PeerFailed> = freePort
): Effect.Effect<ReadonlyArray<number>, PeerFailed> =>
  Effect.gen(function*() {
    const ports = new Set<number>()
    for (let picks = 0; ports.size < count; picks++) {
      if (picks >= count + DISTINCT_PORT_REPICKS) {
        return yield* new PeerFailed({ peer: "port", detail: `no ${count} different free ports in ${picks} picks` })
      }
      ports.add(yield* pick)
    }
    return [...ports]
  })

/** Picks beyond `count` that `freePorts` makes before it gives up. */
const DISTINCT_PORT_REPICKS = 50

/** Whether something accepts connections on the port now. */
const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

export interface PeerProcess {
  readonly pid: number
  readonly port: number
  /** The server's CPU seconds so far (/proc), undefined once it is gone or where /proc is not. */
  readonly cpuSeconds: () => number | undefined
}

/**
 * Starts `binary args(port)` and resumes once it accepts connections on that port (a free one,
 * or `fixedPort`: a server started again where its clients look for it); the server is stopped
 * (SIGTERM, then SIGKILL) when the scope closes, or when this process dies first. Its output is kept for the error when it exits early.
 */
export const startPeerServer = (
  peer: string,
  binary: string,
  args: (port: number) => ReadonlyArray<string>,
  fixedPort?: number
): Effect.Effect<PeerProcess, PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const port = fixedPort ?? (yield* freePort)
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(binary, args(port), { stdio: ["ignore", "pipe", "pipe"] })),
      stopChild
    )
    yield* stopWithParent(child)
    let output = ""
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2_000))
    child.stdout?.on("data", keep)
    child.stderr?.on("data", keep)
    const pid = child.pid
    if (pid === undefined) return yield* new PeerFailed({ peer, detail: `${binary} did not start` })
    const deadline = Date.now() + START_TIMEOUT_MS
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        return yield* new PeerFailed({
          peer,
          detail: `${binary} exited (${child.exitCode ?? child.signalCode}): ${
            output.trim().split("\n").slice(-3).join(" / ")
          }`
        })
      }
      if (yield* Effect.promise(() => accepts(port))) break
      if (Date.now() > deadline) {
        return yield* new PeerFailed({
          peer,
          detail: `${binary} accepted no connection on port ${port} within ${START_TIMEOUT_MS} ms`
        })
      }
      yield* Effect.sleep(POLL_MS)
    }
    return { pid, port, cpuSeconds: () => processCpuSeconds(pid) }
  })
