/**
 * Redis Streams as a bench reference: Debian's `redis-server` started on a loopback port with
 * no persistence (the figures compare memory against memory), and `ioredis`, an optional
 * dependency loaded only when a bench asks for the peer. A message is one `XADD` entry with
 * one field holding the payload; its acknowledgement is the reply carrying the entry's id.
 */
import { Effect, type Scope } from "effect"
import type { Redis as RedisClient } from "ioredis"
import { errorText, findBinary, PeerFailed, type PeerProcess, PeerUnavailable, startPeerServer } from "./PeerServer.js"

export const REDIS = "redis"

/** The `redis-server` a bench starts as `CXLOG_REDIS_SERVER` names it (unset: Debian's, else on PATH). */
export const redisServerSetting = (): string | undefined => process.env["CXLOG_REDIS_SERVER"]

/** A reply taking longer than this fails the bench rather than hang it. */
const COMMAND_TIMEOUT_MS = 10_000

export interface RedisServer {
  readonly server: PeerProcess
  /** A client connected and answering (a PING), disconnected when the scope closes. */
  readonly connect: Effect.Effect<RedisClient, PeerFailed, Scope.Scope>
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

/** A Redis server of its own, stopped when the scope closes, and how to connect clients to it. */
export const startRedis: Effect.Effect<RedisServer, PeerUnavailable | PeerFailed, Scope.Scope> = Effect.gen(function*() {
  const override = redisServerSetting()
  const binary = findBinary("redis-server", "/usr/bin/redis-server", override)
  if (binary === undefined) {
    return yield* new PeerUnavailable({ peer: REDIS, missing: override ?? "redis-server", install: "apt-get install redis-server (Debian's package), or CXLOG_REDIS_SERVER=PATH" })
  }
  const { Redis } = yield* loadClient
  const server = yield* startPeerServer(REDIS, binary, (port) => [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"
  ])
  const connect = Effect.gen(function*() {
    const client: RedisClient = yield* Effect.acquireRelease(
      Effect.sync(() => new Redis({ host: "127.0.0.1", port: server.port, commandTimeout: COMMAND_TIMEOUT_MS, maxRetriesPerRequest: 1, lazyConnect: false })),
      (c) => Effect.sync(() => c.disconnect())
    )
    yield* redisCall("PING", () => client.ping())
    return client
  })
  return { server, connect }
})

/** A Redis server of its own and a connected client; both end with the scope. */
export const redisPeer: Effect.Effect<RedisPeer, PeerUnavailable | PeerFailed, Scope.Scope> = Effect.gen(function*() {
  const { server, connect } = yield* startRedis
  const client = yield* connect
  const stream = `cxlog-bench-${process.pid}`
  const append = (payload: Buffer) => redisCall("XADD", () => client.xadd(stream, "*", "m", payload)).pipe(Effect.asVoid)
  // Answering XADD before anything is measured.
  yield* append(Buffer.alloc(1))
  yield* redisCall("DEL", () => client.del(stream))
  return { server, append }
})
