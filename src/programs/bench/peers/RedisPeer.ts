/**
 * Redis Streams as a bench reference: Debian's `redis-server` started on a loopback port with
 * the storage the bench's ACK level asks for — in memory (no RDB, no AOF) for ACK 0 and 1, or an
 * append-only file fsynced before each reply (`appendfsync always`) for ACK 2 — and `ioredis`,
 * an optional dependency loaded only when a bench asks for the peer. A message is one `XADD`
 * entry with one field holding the payload; its acknowledgement is the reply carrying the entry's id.
 */
import { Effect, type Scope } from "effect"
import type { Redis as RedisClient } from "ioredis"
import { mkdtempSync, rmSync } from "node:fs"
import { join } from "node:path"
import { readSetting } from "../../../Settings.js"
import { PEER_SETTINGS } from "../../ProgramSettings.js"
import type { PeerStorage, StorageKind } from "./PeerLoad.js"
import {
  errorText,
  findBinary,
  peerDataParent,
  PeerFailed,
  type PeerProcess,
  PeerUnavailable,
  startPeerServer
} from "./PeerServer.js"

export const REDIS = "redis"

/** The `redis-server` a bench starts as `CXLOG_REDIS_SERVER` names it (unset: Debian's, else on PATH). */
export const redisServerSetting = (): string | undefined => readSetting(PEER_SETTINGS.settings.redisServer)

/** A reply taking longer than this fails the bench rather than hang it. */
const COMMAND_TIMEOUT_MS = 10_000

export interface RedisServer {
  readonly server: PeerProcess
  /** A client connected and answering (a PING), disconnected when the scope closes. */
  readonly connect: Effect.Effect<RedisClient, PeerFailed, Scope.Scope>
  /** What the server keeps its streams in, as its own configuration says. */
  readonly storage: Effect.Effect<PeerStorage, PeerFailed>
}

export interface RedisPeer {
  readonly server: PeerProcess
  /** One `XADD` of `payload` to the bench's stream, resumed by its reply (a closed loop's round trip). */
  readonly append: (payload: Buffer) => Effect.Effect<void, PeerFailed>
}

/** A Redis command's promise as an Effect; its failure names the command. */
export const redisCall = <A>(command: string, call: () => Promise<A>): Effect.Effect<A, PeerFailed> =>
  Effect.tryPromise({
    try: call,
    catch: (error) => new PeerFailed({ peer: REDIS, detail: `${command} failed: ${errorText(error)}` })
  })

const loadClient = Effect.tryPromise({
  try: () => import("ioredis"),
  catch: () => new PeerUnavailable({ peer: REDIS, missing: "the ioredis package", install: "npm install ioredis" })
})

/** A client of the server on `port` (127.0.0.1), answering a PING; disconnected when the scope closes. */
export const connectRedis = (port: number): Effect.Effect<RedisClient, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const { Redis } = yield* loadClient
    const client: RedisClient = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Redis({
          host: "127.0.0.1",
          port,
          commandTimeout: COMMAND_TIMEOUT_MS,
          maxRetriesPerRequest: 1,
          lazyConnect: false
        })
      ),
      (c) => Effect.sync(() => c.disconnect())
    )
    yield* redisCall("PING", () => client.ping())
    return client
  })

/** The server's persistence options for `storage`; `dir` holds its append-only file. */
const persistence = (storage: StorageKind, dir: string) =>
  storage === "memory"
    ? ["--save", "", "--appendonly", "no"]
    : ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir]

/** What `CONFIG GET` says the server keeps its data in. */
const storageOf = (client: RedisClient): Effect.Effect<PeerStorage, PeerFailed> =>
  Effect.gen(function*() {
    const get = (name: string) =>
      Effect.map(redisCall(`CONFIG GET ${name}`, () => client.config("GET", name) as Promise<Array<string>>), (reply) =>
        reply[1] ?? "")
    const appendonly = yield* get("appendonly")
    const appendfsync = yield* get("appendfsync")
    const save = yield* get("save")
    if (appendonly === "yes" && appendfsync === "always") {
      return { kind: "disk", detail: "AOF, appendfsync always (fsynced before each reply)" } as const
    }
    if (appendonly === "yes") {
      return { kind: "memory", detail: `AOF, appendfsync ${appendfsync} (not on disk at the reply)` } as const
    }
    return { kind: "memory", detail: save === "" ? "no persistence" : `RDB snapshots (save ${save})` } as const
  })

/** A Redis server of its own with `storage`, stopped (and its files removed) when the scope closes, and how to connect clients to it. */
export const startRedis = (
  storage: StorageKind
): Effect.Effect<RedisServer, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const override = redisServerSetting()
    const binary = findBinary("redis-server", "/usr/bin/redis-server", override)
    if (binary === undefined) {
      return yield* new PeerUnavailable({
        peer: REDIS,
        missing: override ?? "redis-server",
        install: "apt-get install redis-server (Debian's package), or CXLOG_REDIS_SERVER=PATH"
      })
    }
    yield* loadClient
    const parent = yield* peerDataParent
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(parent, "cxlog-redis-"))),
      (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
    )
    const server = yield* startPeerServer(REDIS, binary, (port) => [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      ...persistence(storage, dir),
      "--protected-mode",
      "yes"
    ])
    const connect = Effect.catchTag(connectRedis(server.port), "PeerUnavailable", (e) =>
      Effect.fail(new PeerFailed({ peer: REDIS, detail: e.message })))
    return { server, connect, storage: Effect.scoped(Effect.flatMap(connect, storageOf)) }
  })

/** A Redis server of its own (in memory, as cxlog's rtt is ACK 1) and a connected client; both end with the scope. */
export const redisPeer: Effect.Effect<RedisPeer, PeerUnavailable | PeerFailed, Scope.Scope> = Effect.gen(function*() {
  const { server, connect } = yield* startRedis("memory")
  const client = yield* connect
  const stream = `cxlog-bench-${process.pid}`
  const append = (payload: Buffer) =>
    redisCall("XADD", () => client.xadd(stream, "*", "m", payload)).pipe(Effect.asVoid)
  // Answering XADD before anything is measured.
  yield* append(Buffer.alloc(1))
  yield* redisCall("DEL", () => client.del(stream))
  return { server, append }
})
