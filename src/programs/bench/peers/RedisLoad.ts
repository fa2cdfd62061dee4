/**
 * Redis Streams as a bench peer's `PeerClient`: messages sent as a pipeline of `XADD`s (one
 * write for all the window has room for, as ioredis users batch), each acknowledged by its
 * own reply — replies on one connection come back in order — and read back by `XREAD BLOCK`
 * in a consumer process of its own (`redisReader`). Storage as the ACK level asks (RedisPeer.ts).
 */
import { Effect, type Scope } from "effect"
import { spawnPeerConsumer } from "./PeerConsumerProcess.js"
import type { PeerClient, PeerReader, StorageKind } from "./PeerLoad.js"
import { errorText, PeerFailed, type PeerUnavailable } from "./PeerServer.js"
import { connectRedis, REDIS, redisCall, startRedis } from "./RedisPeer.js"

/**
 * XADDs awaiting their reply, at most. 128 to 1 024 gave the same MB/s (64 MiB publish: the
 * client's CPU is the bound) while ACK latency grew with the window.
 */
const REDIS_WINDOW = 256
/** Entries per XREAD, and how long one blocks waiting for more (the reader then asks again). */
const READ_COUNT = 1_000
const READ_BLOCK_MS = 1_000

const STREAM = `cxlog-bench-peer-${process.pid}`

/** A Redis server of its own keeping its streams in `storage`, and a publishing client; both end with the scope. */
export const redisLoad = (storage: StorageKind): Effect.Effect<PeerClient, PeerUnavailable | PeerFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const server = yield* startRedis(storage)
    const publisher = yield* server.connect
    return {
      peer: REDIS,
      window: REDIS_WINDOW,
      serverCpuSeconds: server.server.cpuSeconds,
      storage: server.storage,
      reset: Effect.asVoid(redisCall("DEL", () => publisher.del(STREAM))),
      stored: redisCall("XLEN", () => publisher.xlen(STREAM)),
      send: (first, payloads, replies) => {
        let next = first
        // Called per reply, in order: the n-th reply is message first + n's.
        const replied = (
          error?: Error | null
        ) => (error ? replies.failed(`XADD failed: ${error.message}`) : replies.acked(next++))
        const pipeline = publisher.pipeline()
        for (const payload of payloads) pipeline.xadd(STREAM, "*", "m", payload, replied)
        pipeline.exec().catch((error: unknown) => replies.failed(`the XADD pipeline failed: ${errorText(error)}`))
      },
      startConsumer: (messages, payloadBytes) =>
        spawnPeerConsumer(REDIS, String(server.server.port), STREAM, messages, payloadBytes)
    } satisfies PeerClient
  })

/**
 * The consumer process's reader: `stream` on the server at `port`, from its start, each entry's
 * payload to `received` in the stream's order; reading once this resumes, stopped when the scope closes.
 */
export const redisReader = (port: number, stream: string): PeerReader => (received, failed) =>
  Effect.gen(function*() {
    const reader = yield* Effect.catchTag(connectRedis(port), "PeerUnavailable", (e) =>
      Effect.fail(new PeerFailed({ peer: REDIS, detail: e.message })))
    let stopped = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => (stopped = true))
    )
    const readAll = async () => {
      let last = "0-0"
      while (!stopped) {
        const reply = await reader.xreadBuffer("COUNT", READ_COUNT, "BLOCK", READ_BLOCK_MS, "STREAMS", stream, last)
        if (reply === null || stopped) continue
        for (const [, entries] of reply) {
          for (const [, fields] of entries) received(fields[1]!)
          last = entries.at(-1)![0].toString()
        }
      }
    }
    readAll().catch((error: unknown) => stopped || failed(`XREAD failed: ${errorText(error)}`))
  })
