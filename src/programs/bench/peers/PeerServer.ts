/**
 * A reference server a bench measures cxlog against (Redis, NATS), started by the bench on a
 * loopback port it chose and stopped by pid when the scope closes. A missing binary or client
 * package is `PeerUnavailable`: one line naming what to install, never a stack trace.
 */
import { Data, Effect, ExecutionStrategy, Exit, Scope } from "effect"
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { connect, createServer } from "node:net"
import { tmpdir } from "node:os"
import { DURABLE_SETTINGS } from "../../../services/log/LogSettings.js"
import { processEnvironment, settingConfig } from "../../../Settings.js"
import { processCpuSeconds, stopChild, stopWithParent } from "../../run/Cluster.js"
import { listensOn } from "./PortOwner.js"

/** A peer's server binary or its Node client is not installed here. */
export class PeerUnavailable extends Data.TaggedError("PeerUnavailable")<
  { readonly peer: string; readonly missing: string; readonly install: string }
> {
  override get message() {
    return `${this.peer}: ${this.missing} not found; install it with: ${this.install}`
  }
}

/** A peer's server did not start, or stopped answering. */
export class PeerFailed extends Data.TaggedError("PeerFailed")<{
  readonly peer: string
  readonly detail: string
  /** The port its server could not listen on because another process held it (a start on new ports may succeed). */
  readonly portTaken?: number
}> {
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
/** How long an exited server's pipes may take to hand over what it wrote last. */
const OUTPUT_DRAIN_MS = 1_000

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
export const accepts = (port: number): Promise<boolean> =>
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

/** A server that exited while another process held its port (it could not bind it). */
class PortTaken {
  constructor(readonly port: number, readonly output: string) {}
}

/** Ports `startPeerServer` tries when the one it picked is taken before its server binds it. */
const PORT_ATTEMPTS = 3

const lastLines = (output: string) => output.trim().split("\n").slice(-3).join(" / ")

/**
 * `binary args(port)` on `port`, resumed once it is the process listening there and that port
 * accepts a connection: an answer from another process's listener (the port taken between its
 * pick and the server's bind) is not the server's. `PortTaken` when it exited meanwhile with
 * the port held by another process.
 */
const startOn = (
  peer: string,
  binary: string,
  args: (port: number) => ReadonlyArray<string>,
  port: number
): Effect.Effect<PeerProcess | PortTaken, PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
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
        // Its last words (why it exited) may still be in its pipes.
        yield* Effect.async<void>((resume) => {
          if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) return resume(Effect.void)
          const bound = setTimeout(() => resume(Effect.void), OUTPUT_DRAIN_MS)
          child.once("close", () => {
            clearTimeout(bound)
            resume(Effect.void)
          })
        })
        if (yield* Effect.promise(() => accepts(port))) return new PortTaken(port, output)
        return yield* new PeerFailed({
          peer,
          detail: `${binary} exited (${child.exitCode ?? child.signalCode}): ${lastLines(output)}`
        })
      }
      // Undefined where /proc cannot tell: then an answer on the port is taken as the server's.
      const owned = listensOn(pid, port)
      const answered = yield* Effect.promise(() => accepts(port))
      if (answered && owned !== false) return { pid, port, cpuSeconds: () => processCpuSeconds(pid) }
      if (Date.now() > deadline) {
        return yield* new PeerFailed({
          peer,
          detail: `${binary} accepted no connection on port ${port} within ${START_TIMEOUT_MS} ms${
            answered ? " (another process listens on it)" : ""
          }`
        })
      }
      yield* Effect.sleep(POLL_MS)
    }
  })

/**
 * Starts `binary args(port)` and resumes once it listens on that port and accepts connections
 * there: on a free port (`pick`'s; another if that one is taken before the server binds it), or
 * on `fixedPort` (a server started again where its clients look for it). The server is stopped
 * (SIGTERM, then SIGKILL) when the scope closes, or when this process dies first. Its output is
 * kept for the error when it exits early.
 */
export const startPeerServer = (
  peer: string,
  binary: string,
  args: (port: number) => ReadonlyArray<string>,
  fixedPort?: number,
  pick: Effect.Effect<number, PeerFailed> = freePort
): Effect.Effect<PeerProcess, PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const parent = yield* Effect.scope
    for (let attempt = 1;; attempt++) {
      // Each try in a scope of its own: a try whose port was taken leaves nothing (its exited
      // server, the watcher that would stop it) behind it.
      const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
      const started = yield* startOn(peer, binary, args, fixedPort ?? (yield* pick)).pipe(
        Scope.extend(scope),
        Effect.tapError(() => Scope.close(scope, Exit.void))
      )
      if (!(started instanceof PortTaken)) return started
      yield* Scope.close(scope, Exit.void)
      if (fixedPort !== undefined || attempt >= PORT_ATTEMPTS) {
        return yield* new PeerFailed({
          peer,
          portTaken: started.port,
          detail: `${binary} could not listen on port ${started.port}: another process listens on it${
            fixedPort === undefined ? ` (the last of ${attempt} ports tried)` : ""
          }: ${lastLines(started.output)}`
        })
      }
    }
  })
