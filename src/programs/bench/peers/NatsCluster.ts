/**
 * NATS JetStream on loopback, for the mirror's tests, its bench and the peers a bench measures
 * against: one `nats-server`, or a cluster of three whose routes join on loopback ports. Each
 * server gets a config file and a JetStream store under one temporary directory; servers are
 * stopped by pid and the directory removed when the scope closes. A node can be SIGKILLed and
 * started again on the same ports with the same store, as a crashed server restarts.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, Either, ExecutionStrategy, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { readSetting } from "../../../Settings.js"
import { PEER_SETTINGS } from "../../ProgramSettings.js"
import {
  errorText,
  findBinary,
  freePorts,
  PeerFailed,
  type PeerProcess,
  PeerUnavailable,
  startPeerServer
} from "./PeerServer.js"

export const NATS = "nats"

/** How long a fresh cluster may take to elect its JetStream meta leader. */
const JETSTREAM_READY_MS = 30_000

export interface NatsNode {
  readonly name: string
  /** Its client port on 127.0.0.1, kept across restarts. */
  readonly port: number
  readonly url: string
  readonly configFile: string
  /** The running server's pid; undefined while it is stopped. */
  readonly pid: () => number | undefined
  /** The running server's CPU seconds so far; undefined while it is stopped. */
  readonly cpuSeconds: () => number | undefined
  /** SIGKILL, as a crash: resumes once the process has exited. */
  readonly kill: Effect.Effect<void>
  /**
   * SIGTERM, as an operator's shutdown (SIGKILL past the peer's bound): the server writes out what
   * it acknowledged first, which a kill may lose where it does not fsync each write (before 2.10).
   */
  readonly stop: Effect.Effect<void>
  /** Starts it again (same ports, config and store); resumes once it accepts connections. */
  readonly start: Effect.Effect<void, PeerFailed>
}

export interface NatsCluster {
  readonly nodes: ReadonlyArray<NatsNode>
  /** Every node's `nats://127.0.0.1:PORT`, for a client's server list. */
  readonly urls: ReadonlyArray<string>
  readonly directory: string
  /** Its servers fsync each write (`NatsClusterOptions.syncAlways`, where the server can). */
  readonly syncAlways: boolean
}

/** `nats-server`: CXLOG_NATS_SERVER if set, where Debian puts it, or on PATH. */
export const natsServerBinary: Effect.Effect<string, PeerUnavailable> = Effect.suspend(() => {
  const override = readSetting(PEER_SETTINGS.settings.natsServer)
  const binary = findBinary("nats-server", "/usr/sbin/nats-server", override)
  return binary === undefined
    ? Effect.fail(
      new PeerUnavailable({
        peer: NATS,
        missing: override ?? "nats-server",
        install: "apt-get install nats-server (Debian's package), or CXLOG_NATS_SERVER=PATH"
      })
    )
    : Effect.succeed(binary)
})

/**
 * One server's config: JetStream with its own store; in a cluster, a route to every other
 * node's cluster port (a node lists all, itself included, as the NATS docs do).
 */
export const natsConfig = (
  node: { readonly name: string; readonly port: number; readonly storeDir: string; readonly clusterPort?: number },
  routes: ReadonlyArray<number>,
  syncAlways = false
): string =>
  [
    `server_name: ${node.name}`,
    `listen: 127.0.0.1:${node.port}`,
    `jetstream { store_dir: "${node.storeDir}"${syncAlways ? ", sync_interval: always" : ""} }`,
    ...(node.clusterPort === undefined ? [] : [
      `cluster {`,
      `  name: cxlog`,
      `  listen: 127.0.0.1:${node.clusterPort}`,
      `  routes: [${routes.map((p) => `nats-route://127.0.0.1:${p}`).join(", ")}]`,
      `}`
    ]),
    ""
  ].join("\n")

/** Waits until JetStream answers on `urls` (a cluster: once its meta leader is elected). */
export const awaitJetStream = (
  urls: ReadonlyArray<string>,
  timeoutMs = JETSTREAM_READY_MS
): Effect.Effect<void, PeerFailed> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    let last = ""
    while (Date.now() < deadline) {
      const ready = yield* Effect.promise(async () => {
        const nc = await connect({ servers: [...urls], timeout: 1_000 }).catch((e: unknown) => e as Error)
        if (nc instanceof Error) return nc.message
        try {
          const jsm = await jetstreamManager(nc, { timeout: 1_000 })
          await jsm.getAccountInfo()
          return true
        } catch (error) {
          return errorText(error)
        } finally {
          await nc.close().catch(() => undefined)
        }
      })
      if (ready === true) return
      last = ready
      yield* Effect.sleep(200)
    }
    return yield* new PeerFailed({
      peer: NATS,
      detail: `JetStream did not answer within ${timeoutMs} ms on ${urls.join(",")}: ${last}`
    })
  })

/** Clusters started anew (fresh ports) when a port picked for one was taken before its server bound it. */
const PORT_ATTEMPTS = 3

/**
 * `size` servers (1, or 3 for a cluster) with JetStream, each in its own config and store under a
 * temporary directory. Ports are the kernel's free picks, released for the servers to bind (a
 * cluster's routes name them all up front): one another process took meanwhile fails its server
 * with "address already in use", and the cluster is started again on new ones.
 */
export const startNatsCluster = (
  size: number,
  options: NatsClusterOptions = {}
): Effect.Effect<NatsCluster, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const parent = yield* Effect.scope
    for (let attempt = 1;; attempt++) {
      const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
      const started = yield* startOnce(size, options).pipe(Scope.extend(scope), Effect.either)
      if (Either.isRight(started)) return started.right
      yield* Scope.close(scope, Exit.void)
      const error = started.left
      if (
        attempt >= PORT_ATTEMPTS || error._tag !== "PeerFailed" ||
        // A client port another process holds is known as such; a cluster port only by the server's words.
        (error.portTaken === undefined && !/address already in use/.test(error.detail))
      ) return yield* Effect.fail(error)
    }
  })

const startOnce = (
  size: number,
  options: NatsClusterOptions
): Effect.Effect<NatsCluster, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const binary = yield* natsServerBinary
    const syncAlways = options.syncAlways === true && syncsAlways(binary)
    const directory = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(options.parentDir ?? tmpdir(), "cxlog-nats-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    // Client ports, then cluster ports: every one different (`freePorts`).
    const ports = yield* freePorts(size > 1 ? 2 * size : size)
    const specs = []
    for (let i = 1; i <= size; i++) {
      specs.push({
        name: `n${i}`,
        port: ports[i - 1]!,
        storeDir: join(directory, `n${i}`),
        ...(size > 1 ? { clusterPort: ports[size + i - 1]! } : {})
      })
    }
    const routes = specs.flatMap((s) => (s.clusterPort === undefined ? [] : [s.clusterPort]))
    const nodes = yield* Effect.forEach(specs, (spec) =>
      Effect.gen(function*() {
        const configFile = join(directory, `${spec.name}.conf`)
        writeFileSync(configFile, natsConfig(spec, routes, syncAlways))
        let running: { readonly scope: Scope.CloseableScope; readonly server: PeerProcess } | undefined
        const stop = Effect.suspend(() => {
          const current = running
          running = undefined
          return current === undefined ? Effect.void : Scope.close(current.scope, Exit.void)
        })
        yield* Effect.addFinalizer(() => stop)
        const start = Effect.gen(function*() {
          if (running !== undefined) return
          const scope = yield* Scope.make()
          const server = yield* startPeerServer(NATS, binary, () => ["-c", configFile], spec.port).pipe(
            Scope.extend(scope),
            Effect.tapError(() => Scope.close(scope, Exit.void))
          )
          running = { scope, server }
        })
        const kill = Effect.suspend(() => {
          if (running !== undefined) process.kill(running.server.pid, "SIGKILL")
          return stop
        })
        yield* start
        return {
          name: spec.name,
          port: spec.port,
          url: `nats://127.0.0.1:${spec.port}`,
          configFile,
          pid: () => running?.server.pid,
          cpuSeconds: () => running?.server.cpuSeconds(),
          kill,
          stop,
          start
        } satisfies NatsNode
      }))
    const urls = nodes.map((n) => n.url)
    yield* awaitJetStream(urls)
    return { nodes, urls, directory, syncAlways }
  })

export interface NatsClusterOptions {
  /** Ask the servers to fsync each write (`sync_interval: always`) where they can: nats-server 2.10 and later. */
  readonly syncAlways?: boolean
  /** Where the stores' temporary directory goes (default the OS's). */
  readonly parentDir?: string
}

/** Whether this nats-server takes `sync_interval: always` (2.10 on; 2.9 fsyncs on a fixed 2-minute interval). */
const syncsAlways = (binary: string): boolean => {
  const version = /v(\d+)\.(\d+)/.exec(spawnSync(binary, ["--version"], { encoding: "utf8" }).stdout ?? "")
  return version !== null && (Number(version[1]) > 2 || (Number(version[1]) === 2 && Number(version[2]) >= 10))
}
