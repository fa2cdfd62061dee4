/**
 * `cxlog bench --peers`: the reference systems run beside cxlog in the same bench. Redis and
 * NATS (Debian's redis-server and nats-server, installed here where missing) are started on
 * loopback ports the bench chose and stopped with the bench; a missing server is one line
 * naming the package. The peers' workload (PeerLoad.ts) is also run on a stand-in client in
 * this process, to show its read-back audit catches what it names.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { isPidAlive } from "../../src/layers/region/ProcessInfo.js"
import { comparePeers, differences, PeerMismatch } from "../../src/programs/bench/BenchPeers.js"
import { natsLoad } from "../../src/programs/bench/peers/NatsLoad.js"
import { type PeerClient, runPeerLoad, type StorageKind } from "../../src/programs/bench/peers/PeerLoad.js"
import { makeReadBack } from "../../src/programs/bench/peers/PeerReadBack.js"
import { redisLoad } from "../../src/programs/bench/peers/RedisLoad.js"
import { redisPeer } from "../../src/programs/bench/peers/RedisPeer.js"
import type { RunSummary } from "../../src/programs/run/RunSummary.js"
import { runCli } from "../helpers/CliRoles.js"
import { ensureDebianBinary } from "../helpers/DebianPackages.js"

const redis = ensureDebianBinary("redis-server", "redis-server")
const skip = "skip" in redis ? redis.skip : undefined
const nats = ensureDebianBinary("nats-server", "nats-server")
if ("path" in nats) process.env["CXLOG_NATS_SERVER"] = nats.path
const skipNats = "skip" in nats ? nats.skip : undefined
const skipBoth = skip ?? skipNats
const skipped = (reason: string | undefined) => (reason === undefined ? "" : ` (skipped: ${reason})`)

interface PeerJson {
  readonly messages: number
  readonly messageBytes: number
  readonly warmupMessages: number
  readonly storage: { readonly kind: string; readonly detail: string }
  readonly throughputMBps: number
  readonly publishMBps: number
  readonly e2eMBps?: number
  readonly ackLatencyP50Us: number
  readonly ackLatencyP99Us: number
  readonly cpuSecondsPerGiB: { readonly server: number; readonly client: number; readonly total: number }
  readonly auditPassed?: boolean
  readonly consumerPid?: number
}

interface BenchJson {
  readonly messages: number
  readonly messageBytes: number
  readonly warmupBytes: number
  readonly publishMBps: number
  readonly e2eMBps?: number
  readonly likeForLike: {
    readonly messages: number
    readonly messageBytes: number
    readonly warmupMessages: number
    readonly storage: string
    readonly checked: boolean
  }
  readonly peers: Record<string, PeerJson>
  readonly vsPeers: Record<string, { readonly publish: number; readonly e2e?: number }>
}

/** The bench's JSON line (its last), with each peer's figures present, positive, and its workload cxlog's. */
const peersOf = (stdout: string) => {
  const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as BenchJson
  expect(Object.keys(result.peers)).toEqual(["redis", "nats"])
  const warmupMessages = result.warmupBytes / result.messageBytes
  expect(result.likeForLike).toMatchObject({
    messages: result.messages,
    messageBytes: result.messageBytes,
    warmupMessages,
    storage: "memory",
    checked: true
  })
  for (const peer of ["redis", "nats"]) {
    const figures = result.peers[peer]!
    expect([figures.messages, figures.messageBytes, figures.warmupMessages, figures.storage.kind], peer).toEqual([
      result.messages,
      result.messageBytes,
      warmupMessages,
      "memory"
    ])
    expect(figures.publishMBps, peer).toBeGreaterThan(0)
    expect(figures.ackLatencyP50Us, peer).toBeGreaterThan(0)
    expect(figures.ackLatencyP99Us, peer).toBeGreaterThanOrEqual(figures.ackLatencyP50Us)
    expect(figures.cpuSecondsPerGiB.client, peer).toBeGreaterThan(0)
    expect(figures.cpuSecondsPerGiB.server, peer).toBeGreaterThanOrEqual(0)
    expect(figures.cpuSecondsPerGiB.total, peer).toBeGreaterThan(0)
    expect(result.vsPeers[peer]!.publish, peer).toBeCloseTo(result.publishMBps / figures.publishMBps, 1)
  }
  return { result, peers: result.peers }
}

/**
 * A client with no server: each batch is stored and acknowledged on the next turn, and handed
 * to an in-process consumer as `deliver` passes it on (in order, or with a flaw). `consumerPid`
 * says which process the consumer claims to run in (this one: it is not a process of its own).
 */
const standIn = (
  deliver: (first: number, payloads: ReadonlyArray<Buffer>) => ReadonlyArray<Uint8Array>,
  { consumerPid = process.pid, kept = (sent: number) => sent, storage = "memory" as StorageKind } = {}
): PeerClient => {
  let received: ((payload: Uint8Array) => void) | undefined
  let sent = 0
  return {
    peer: "stand-in",
    window: 16,
    serverCpuSeconds: () => 0,
    storage: Effect.succeed({ kind: storage, detail: "a stand-in" }),
    reset: Effect.sync(() => (sent = 0)),
    stored: Effect.sync(() => kept(sent)),
    send: (first, payloads, replies) =>
      setImmediate(() => {
        sent += payloads.length
        for (let i = 0; i < payloads.length; i++) replies.acked(first + i)
        for (const payload of deliver(first, payloads)) received?.(payload)
      }),
    startConsumer: (messages, payloadBytes) =>
      Effect.sync(() => {
        const readBack = makeReadBack(messages, payloadBytes)
        received = readBack.received
        return { pid: consumerPid, done: Effect.sync(() => ({ ...readBack.result(), cpuSeconds: 0 })) }
      })
  }
}
const e2eLoad = { type: "e2e", messages: 200, messageBytes: 64, rateMBps: 0, warmupMessages: 0 } as const

/** A cxlog run's summary as the peers compare with it: `messages` of `messageBytes` after `warmupMessages`, at `ackLevel`. */
const cxlogRun = (
  fields: Pick<RunSummary, "messages" | "messageBytes" | "warmupMessages" | "ackLevel">
): RunSummary => ({
  ...fields,
  region: "stand-in",
  reclaimedRegions: [],
  warmupMs: null,
  batches: 1,
  bytes: fields.messages * fields.messageBytes,
  brokers: 1,
  local: false,
  order: 5,
  elapsedMs: 1,
  throughputMBps: 1,
  publishMBps: 1,
  e2eMBps: 1,
  ackLatencyP50Us: 1,
  ackLatencyP99Us: 1,
  received: null,
  lost: null,
  notDelivered: null,
  duplicated: null,
  outOfOrder: null,
  crcMismatches: null,
  resends: 0,
  publisherWindow: 1,
  killedBroker: null,
  takeoverMs: null,
  takeoverEpoch: null,
  auditPassed: true,
  remoteSubscribers: [],
  remoteSubscriberMBps: null,
  endToEnd: true,
  durable: null,
  cpuSecondsPerGiB: { head: 0, brokers: 0, publisher: 0, subscriber: 0, remoteSubscribers: 0, total: 0 },
  mainThreads: {
    head: { seconds: 0, wakes: 0 },
    brokers: { seconds: 0, wakes: 0 },
    publisher: { seconds: 0, wakes: 0 },
    total: { seconds: 0, wakes: 0 }
  }
})

/** comparePeers over one stand-in peer: its comparison, or the PeerMismatch that stopped it. */
const compareWith = (client: PeerClient, cxlog: RunSummary) =>
  comparePeers([{ peer: "stand-in", client }], { type: "e2e", rateMBps: 0 }, Effect.succeed(cxlog)).pipe(Effect.either)

describe("bench peers", () => {
  it.live("a missing redis-server fails the bench in one line naming the package, before any cluster starts", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* runCli(
        ["bench", "--type", "rtt", "--samples", "10", "--peers", "redis"],
        { CXLOG_REDIS_SERVER: "/nonexistent/redis-server" }
      )
      expect(code).toBe(1)
      expect(stdout).toBe("")
      const lines = stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(
        /redis: \/nonexistent\/redis-server not found; install it with: apt-get install redis-server/
      )
    }))

  it.live("a missing nats-server fails the bench in one line naming the package, before anything is measured", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* runCli(["bench", "--bytes", "1MiB", "--peers", "redis,nats"], {
        CXLOG_NATS_SERVER: "/nonexistent/nats-server"
      })
      expect(code).toBe(1)
      expect(stdout).toBe("")
      const lines = stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(
        /nats: \/nonexistent\/nats-server not found; install it with: apt-get install nats-server/
      )
    }))

  it.live("an unknown peer, or peers with a bench type that does not measure them, is a usage error", () =>
    Effect.gen(function*() {
      const unknown = yield* runCli(["bench", "--type", "rtt", "--peers", "kafka"])
      expect(unknown.code).toBe(2)
      expect(unknown.stderr).toMatch(/kafka: the peers are redis, nats/)
      const mirror = yield* runCli(["bench", "--type", "mirror", "--peers", "redis"])
      expect(mirror.code).toBe(2)
      expect(mirror.stderr).toMatch(/--peers is not measured with --type mirror/)
      const tls = yield* runCli(["bench", "--tls", "--peers", "nats"])
      expect(tls.code).toBe(2)
      expect(tls.stderr).toMatch(/--peers is not measured with --tls/)
    }))

  it.live("the peers' read-back audit passes for every message once, in order, and fails for one out of place or read twice", () =>
    Effect.gen(function*() {
      const inOrder = yield* runPeerLoad(standIn((_, payloads) => payloads), e2eLoad)
      expect(inOrder.auditPassed).toBe(true)
      expect(inOrder.throughputMBps).toBeGreaterThan(0)
      // Messages 0 and 1 swapped.
      const swapped = yield* runPeerLoad(
        standIn((first, p) => (first === 0 ? [p[1]!, p[0]!, ...p.slice(2)] : p)),
        e2eLoad
      )
      expect(swapped.auditPassed).toBe(false)
      // Message 5 twice: the read-back is as long as the run, the last message never read.
      const twice = yield* runPeerLoad(
        standIn((first, p) => (first === 0 ? [...p.slice(0, 6), p[5]!, ...p.slice(6)] : p)),
        e2eLoad
      )
      expect(twice.auditPassed).toBe(false)
    }))

  it.live("a peer's warm-up runs first on a stream then emptied, and only the run after it is measured", () =>
    Effect.gen(function*() {
      let resets = 0
      let sent = 0
      const base = standIn((_, payloads) => payloads)
      const counting: PeerClient = {
        ...base,
        reset: Effect.zipRight(base.reset, Effect.sync(() => resets++)),
        send: (first, payloads, replies) => {
          sent += payloads.length
          base.send(first, payloads, replies)
        }
      }
      // 1 000 × 1 000 B paced at 1 MB/s: 1 s unmeasured (a paced run cannot end before its last message is due), then 200.
      const started = Date.now()
      const figures = yield* runPeerLoad(counting, {
        type: "latency",
        messages: 200,
        messageBytes: 1_000,
        rateMBps: 1,
        warmupMessages: 1_000
      })
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_150)
      expect([sent, resets]).toEqual([1_200, 2])
      // What the server stored in each run: the warm-up's and the measured run's apart.
      expect([figures.warmupMessages, figures.messages, figures.messageBytes]).toEqual([1_000, 200, 1_000])
      const e2e = yield* runPeerLoad(counting, { ...e2eLoad, warmupMessages: 300 })
      expect([sent, resets, e2e.auditPassed, e2e.warmupMessages, e2e.messages]).toEqual([1_700, 4, true, 300, 200])
    }))

  it.live("the peers' offered load is paced: a latency run takes as long as its messages are due", () =>
    Effect.gen(function*() {
      // 400 × 1 000 B at 1 MB/s: 0.4 s.
      const started = Date.now()
      const paced = yield* runPeerLoad(standIn(() => []), {
        type: "latency",
        messages: 400,
        messageBytes: 1_000,
        rateMBps: 1,
        warmupMessages: 0
      })
      expect(Date.now() - started).toBeGreaterThanOrEqual(390)
      expect(paced.throughputMBps).toBeLessThanOrEqual(1.05)
    }))

  it.live.skipIf(skipBoth !== undefined)(
    `each peer's server and clients run the workload and are gone with the bench's scope${skipped(skipBoth)}`,
    () =>
      Effect.gen(function*() {
        const clients = yield* Effect.scoped(Effect.gen(function*() {
          const started = [yield* redisLoad("memory"), yield* natsLoad("memory")]
          for (const client of started) {
            const figures = yield* runPeerLoad(client, { ...e2eLoad, messages: 2_000, messageBytes: 1_024 })
            expect(figures.auditPassed, client.peer).toBe(true)
            // Read back by a consumer process of its own, gone with the run.
            expect(figures.consumerPid, client.peer).not.toBe(process.pid)
            expect(isPidAlive(figures.consumerPid!), client.peer).toBe(false)
            expect([figures.messages, figures.storage.kind], client.peer).toEqual([2_000, "memory"])
            expect(client.serverCpuSeconds(), client.peer).toBeGreaterThanOrEqual(0)
          }
          return started
        }))
        for (const client of clients) {
          expect(client.serverCpuSeconds(), `${client.peer}'s server after the scope`).toBeUndefined()
        }
      }),
    60_000
  )

  it.live.skipIf(skipBoth !== undefined)(
    `at ACK 2 each peer's server keeps its stream on disk, as its own configuration says${skipped(skipBoth)}`,
    () =>
      Effect.gen(function*() {
        const described = yield* Effect.scoped(Effect.gen(function*() {
          const clients = [yield* redisLoad("disk"), yield* natsLoad("disk")]
          const figures = yield* Effect.forEach(clients, (client) =>
            runPeerLoad(client, {
              type: "publish",
              messages: 100,
              messageBytes: 1_024,
              rateMBps: 0,
              warmupMessages: 0
            }))
          return figures.map((f) => [f.messages, f.storage.kind, f.storage.detail])
        }))
        expect(described[0]).toEqual([100, "disk", "AOF, appendfsync always (fsynced before each reply)"])
        expect(described[1]!.slice(0, 2)).toEqual([100, "disk"])
        expect(described[1]![2]).toMatch(/^file storage/)
      }),
    60_000
  )

  it.live.skipIf(skip !== undefined)(
    `a Redis server of the bench's own answers XADD and is gone with the bench${
      skip === undefined ? "" : ` (skipped: ${skip})`
    }`,
    () =>
      Effect.gen(function*() {
        const pid = yield* Effect.scoped(Effect.gen(function*() {
          const peer = yield* redisPeer
          for (let i = 0; i < 20; i++) yield* peer.append(Buffer.alloc(1024, 7))
          expect(isPidAlive(peer.server.pid)).toBe(true)
          expect(peer.server.cpuSeconds()).toBeGreaterThanOrEqual(0)
          return peer.server.pid
        }))
        expect(isPidAlive(pid)).toBe(false)
      })
  )

  it.live.skipIf(skip !== undefined)(
    "bench --type rtt --peers redis reports Redis's round trip beside cxlog's",
    () =>
      Effect.gen(function*() {
        const { code, stdout, stderr } = yield* runCli([
          "bench",
          "--type",
          "rtt",
          "--samples",
          "200",
          "--broker-count",
          "1",
          "--peers",
          "redis",
          "--json"
        ])
        expect(code, stderr).toBe(0)
        const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
          ackRttP50Us: number
          peers: { redis: { rttP50Us: number; rttP99Us: number } }
        }
        expect(result.ackRttP50Us).toBeGreaterThan(0)
        expect(result.peers.redis.rttP50Us).toBeGreaterThan(0)
        expect(result.peers.redis.rttP99Us).toBeGreaterThanOrEqual(result.peers.redis.rttP50Us)
      }),
    120_000
  )

  it.live.skipIf(skipNats !== undefined)(
    `bench --type rtt --peers nats reports JetStream's publish round trip beside cxlog's${skipped(skipNats)}`,
    () =>
      Effect.gen(function*() {
        const { code, stdout, stderr } = yield* runCli([
          "bench",
          "--type",
          "rtt",
          "--samples",
          "200",
          "--broker-count",
          "1",
          "--peers",
          "nats",
          "--json"
        ])
        expect(code, stderr).toBe(0)
        const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
          peers: { nats: { rttP50Us: number; rttP99Us: number } }
        }
        expect(result.peers.nats.rttP50Us).toBeGreaterThan(0)
        expect(result.peers.nats.rttP99Us).toBeGreaterThanOrEqual(result.peers.nats.rttP50Us)
      }),
    120_000
  )

  it.live.skipIf(skipBoth !== undefined)(
    `bench e2e --warmup --peers redis,nats: each peer's figures beside cxlog's after the same warm-up, both clocks, its read-back audited${
      skipped(skipBoth)
    }`,
    () =>
      Effect.gen(function*() {
        const { code, stdout, stderr } = yield* runCli([
          "bench",
          "--bytes",
          "2MiB",
          "--warmup",
          "1MiB",
          "--broker-count",
          "1",
          "--peers",
          "redis,nats"
        ])
        expect(code, stderr).toBe(0)
        expect(stdout).toMatch(/Redis Streams: pipelined XADD.*no persistence; read back once, in order/)
        expect(stdout).toMatch(/NATS JetStream: js.publish.*memory storage; read back once, in order/)
        expect(stdout).toMatch(
          /like for like \(checked\): every system 2048 messages of 1024 B after 1024 warm-up, kept in memory/
        )
        const { peers, result } = peersOf(stdout)
        expect(result.e2eMBps).toBeGreaterThan(0)
        for (const peer of ["redis", "nats"]) {
          expect(peers[peer]!.auditPassed, peer).toBe(true)
          expect(peers[peer]!.e2eMBps, peer).toBeGreaterThan(0)
          expect(result.vsPeers[peer]!.e2e, peer).toBeCloseTo(result.e2eMBps! / peers[peer]!.e2eMBps!, 1)
        }
        // Each consumer in a process of its own: two peers, two turns, none of them the bench's.
        expect(peers["redis"]!.consumerPid).not.toBe(peers["nats"]!.consumerPid)
      }),
    180_000
  )

  it.live("a peer that ran another workload than cxlog's, or kept it elsewhere, stops the bench naming each difference", () =>
    Effect.gen(function*() {
      const cxlog = cxlogRun({ messages: 200, messageBytes: 64, warmupMessages: 0, ackLevel: 1 })
      const ownProcess = { consumerPid: process.pid + 1 }
      // The same workload, stored in memory, read back in another process: compared.
      const same = yield* compareWith(standIn((_, p) => p, ownProcess), cxlog)
      expect(Either.isRight(same) && same.right.peers[0]!.figures.auditPassed).toBe(true)
      const mismatch = (
        outcome: typeof same
      ) => (Either.isLeft(outcome) && outcome.left instanceof PeerMismatch
        ? outcome.left.message
        : `compared: ${JSON.stringify(outcome)}`)
      // A server that lost a message of what it acknowledged.
      expect(mismatch(yield* compareWith(standIn((_, p) => p, { ...ownProcess, kept: (n) => n - 1 }), cxlog))).toMatch(
        /its server stored 199 messages, cxlog published 200/
      )
      // Messages read back a byte short.
      expect(mismatch(yield* compareWith(standIn((_, p) => p.map((m) => m.subarray(1)), ownProcess), cxlog))).toMatch(
        /its messages had 63 bytes, cxlog's 64/
      )
      // On disk while cxlog's ACK 1 is in memory, and the other way round.
      expect(mismatch(yield* compareWith(standIn((_, p) => p, { ...ownProcess, storage: "disk" }), cxlog))).toMatch(
        /it kept them in disk \(a stand-in\), cxlog's ACK level means memory/
      )
      expect(mismatch(yield* compareWith(standIn((_, p) => p, ownProcess), { ...cxlog, ackLevel: 2 }))).toMatch(
        /kept them in memory .* cxlog's ACK level means disk/
      )
      // A consumer in the bench's own process.
      expect(mismatch(yield* compareWith(standIn((_, p) => p), cxlog))).toMatch(
        /its consumer did not run in a process of its own/
      )
      // Another warm-up than cxlog's (what the server stored in it, not what was asked).
      const figures = yield* runPeerLoad(standIn((_, p) => p, ownProcess), { ...e2eLoad, warmupMessages: 50 })
      expect(
        differences({ type: "e2e", messages: 200, messageBytes: 64, warmupMessages: 100, storage: "memory" }, figures)
      ).toEqual([
        "its warm-up stored 50 messages, cxlog's was 100"
      ])
    }))

  it.live.skipIf(skipBoth !== undefined)(
    `bench latency --peers redis,nats: each peer at the offered load, its ACK latency and CPU${skipped(skipBoth)}`,
    () =>
      Effect.gen(function*() {
        const { code, stdout, stderr } = yield* runCli([
          "bench",
          "--type",
          "latency",
          "--rate-mbps",
          "5",
          "--bytes",
          "2MiB",
          "--broker-count",
          "1",
          "--peers",
          "redis,nats",
          "--json"
        ])
        expect(code, stderr).toBe(0)
        const { peers } = peersOf(stdout)
        for (const peer of ["redis", "nats"]) {
          expect(peers[peer]!.publishMBps, peer).toBeLessThanOrEqual(5.25)
          expect(peers[peer]!.auditPassed, peer).toBeUndefined()
        }
        // cxlog's CPU per batch, by role: of it, the main thread's, and its wakes (/proc per thread).
        type Groups = Record<"head" | "brokers" | "publisher" | "total", number>
        const cxlog = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
          batches: number
          cpuMicrosPerBatch: Groups
          mainThreadMicrosPerBatch: Groups
          wakesPerBatch: Groups
        }
        // A thread's and its process's CPU are each whole clock ticks (10 ms), rounded apart: up to two a process, over a short run's few hundred batches.
        const processes = { brokers: 1, publisher: 1, total: 3 }
        for (const group of ["brokers", "publisher", "total"] as const) {
          const tickSlack = (2 * 10_000 * processes[group]) / cxlog.batches
          expect(cxlog.mainThreadMicrosPerBatch[group], group).toBeGreaterThan(0)
          expect(cxlog.mainThreadMicrosPerBatch[group], group).toBeLessThanOrEqual(
            cxlog.cpuMicrosPerBatch[group] + tickSlack
          )
        }
        // The broker that takes the batches is woken for them (/proc counts its main thread's wakes).
        // How often is the bench's to say: on a busy host one wake takes several batches.
        expect(cxlog.wakesPerBatch.brokers).toBeGreaterThan(0)
        expect(cxlog.wakesPerBatch.publisher).toBeGreaterThan(0)
      }),
    180_000
  )
})
