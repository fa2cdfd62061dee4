/**
 * Redis Streams as a bench reference: Debian's `redis-server` started on a loopback port with
 * no persistence (the figures compare memory against memory), and `ioredis`, an optional
 * dependency loaded only when a bench asks for the peer. A message is one `XADD` entry with
 * one field holding the payload; its acknowledgement is the reply carrying the entry's id.
 */
import { Effect, type Scope } from "effect"
import type { Redis as RedisClient } from "ioredis"
import { findBinary, PeerFailed, type PeerProcess, PeerUnavailable, startPeerServer } from "./PeerServer.js"

export const REDIS = "redis"

/** The `redis-server` a bench starts as `CXLOG_REDIS_SERVER` names it (unset: Debian's, else on PATH). */
export const redisServerSetting = (): string | undefined => process.env["CXLOG_REDIS_SERVER"]

/** A reply taking longer than this fails the bench rather than hang it. */
const COMMAND_TIMEOUT_MS = 10_000

export interface RedisPeer {
  readonly server: PeerProcess
  /** One `XADD` of `payload` to the bench's stream, resumed by its reply (a closed loop's round trip). */
  readonly append: (payload: Buffer) => Effect.Effect<void, PeerFailed>
}

const loadClient = Effect.tryPromise({
  try: () => import("ioredis"),
  catch: () => new PeerUnavailable({ peer: REDIS, missing: "the ioredis package", install: "npm install ioredis" })
})

/** A Redis server of its own and a connected client; both end with the scope. */
export const redisPeer: Effect.Effect<RedisPeer, PeerUnavailable | PeerFailed, Scope.Scope> = Effect.gen(function*() {
  const override = redisServerSetting()
  const binary = findBinary("redis-server", "/usr/bin/redis-server", override)
  if (binary === undefined) {
    return yield* new PeerUnavailable({ peer: REDIS, missing: override ?? "redis-server", install: "apt-get install redis-server (Debian's package), or CXLOG_REDIS_SERVER=PATH" })
  }
  const { Redis } = yield* loadClient
  const server = yield* startPeerServer(REDIS, binary, (port) => [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"
  ])
  const client: RedisClient = yield* Effect.acquireRelease(
    Effect.sync(() => new Redis({ host: "127.0.0.1", port: server.port, commandTimeout: COMMAND_TIMEOUT_MS, maxRetriesPerRequest: 1, lazyConnect: false })),
    (c) => Effect.sync(() => c.disconnect())
  )
  const stream = `cxlog-bench-${process.pid}`
  const append = (payload: Buffer) =>
    Effect.tryPromise({
      try: () => client.xadd(stream, "*", "m", payload),
      catch: (error) => new PeerFailed({ peer: REDIS, detail: `XADD failed: ${error instanceof Error ? error.message : String(error)}` })
    }).pipe(Effect.asVoid)
  // Connected and answering before anything is measured.
  yield* append(Buffer.alloc(1))
  yield* Effect.tryPromise({
    try: () => client.del(stream),
    catch: (error) => new PeerFailed({ peer: REDIS, detail: `DEL failed: ${String(error)}` })
  })
  return { server, append }
})
