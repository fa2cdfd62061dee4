/**
 * `cxlog bench --type mirror` (docs/mirror.md, "Figures"): a 3-node JetStream cluster of its
 * own on loopback, a head and a broker on a fresh region, and in one run:
 *
 * 1. direct: this process publishes `messages` messages of `messageBytes` to the stream through
 *    the mirror's own publishing path (same client, window, headers, ids and fence), with no
 *    region behind it; the stream is then purged (it keeps its sequence);
 * 2. the region's publish rate without a mirror (`cxlog publish --count`);
 * 3. `cxlog mirror` copies that backlog into the stream: mirrorMBps, over direct: mirrorRatio;
 * 4. the region's publish rate while the mirror runs beside it: publishRatio over step 2, and the
 *    cores the mirror and the JetStream servers used meanwhile (mirrorSideCores; regionCores: what the
 *    region's publishing used alone in step 2, both of `cores`);
 * 5. lag: 4 s of messages published at a steady `--mirror-rate-mbps` (5) while the mirror runs; each
 *    message's lag is its stored time in JetStream less its publish timestamp: p50, p99;
 * 6. audit: the stream read back holds every offset once, in order, with the region's payloads.
 *
 * Rates are payload bytes over the span between the first and last message's stored times in
 * JetStream (steps 1, 3) or the publisher's own elapsed time (2, 4): no start-up in either.
 */
import { jetstream, type JsMsg, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Chunk, Console, Effect, Layer, Option, Stream } from "effect"
import { availableParallelism } from "node:os"
import { DEFAULT_MIRROR_IN_FLIGHT, defaultMirrorSubject, MirrorHeaders, mirrorMessageId, type MirrorOptions } from "../services/mirror/Mirror.js"
import type { SubscriberMessage } from "../services/net/Subscriber.js"
import { Subscriber } from "../services/net/Subscriber.js"
import * as SubscriberLayers from "../layers/net/Subscriber.js"
import { openTarget } from "../layers/mirror/JetStreamTarget.js"
import { type MirroredMessage, readMirrored } from "../layers/mirror/MirrorRecord.js"
import { awaitWindow, drained, hasRoom, inFlight, makeWindow, publishOne } from "../layers/mirror/MirrorWindow.js"
import { attachRegion, processSlot, reader } from "../layers/Roles.js"
import { percentile } from "../Percentiles.js"
import { table } from "../Table.js"
import { processCpuSeconds, type RoleProcess, spawnRole, startHeadAndBrokers } from "./Cluster.js"
import { startNatsCluster } from "./peers/NatsCluster.js"
import { PeerFailed } from "./peers/PeerServer.js"

export interface MirrorBenchOptions {
  readonly messages: number
  readonly messageBytes: number
  /** The steady load of the lag step, MB/s (for `LAG_SECONDS`). */
  readonly rateMBps: number
  readonly maxInFlight?: number
  readonly json: boolean
}

const TOPIC = "m"
const STREAM = "cxlog-bench"
/** How long the lag step's steady load lasts. */
const LAG_SECONDS = 4
const round2 = (n: number) => Math.round(n * 100) / 100

const failed = (detail: string) => (error: unknown) => new PeerFailed({ peer: "nats", detail: `${detail}: ${error instanceof Error ? error.message : String(error)}` })

/** Stored time (ms) of the stream's message `seq`. */
const storedAt = (nc: NatsConnection, seq: number) =>
  Effect.tryPromise({
    try: async () => {
      const m = await (await jetstreamManager(nc)).streams.getMessage(STREAM, { seq })
      if (m === null) throw new Error(`message ${seq} is not in the stream`)
      return m.time.getTime()
    },
    catch: failed(`reading message ${seq}`)
  })

/** MB/s of `count` messages of `bytes` stored between sequences `first` and `first + count − 1`. */
const storedRate = (nc: NatsConnection, first: number, count: number, bytes: number) =>
  Effect.gen(function*() {
    const from = yield* storedAt(nc, first)
    const to = yield* storedAt(nc, first + count - 1)
    return (count * bytes) / 1e6 / (Math.max(1, to - from) / 1000)
  })

const streamState = (nc: NatsConnection) => Effect.tryPromise({ try: async () => (await (await jetstreamManager(nc)).streams.info(STREAM)).state, catch: failed("stream info") })

const awaitStreamLast = (nc: NatsConnection, messages: number, mirror: RoleProcess) =>
  Effect.gen(function*() {
    for (;;) {
      const state = yield* streamState(nc)
      if (state.messages >= messages) return state
      // Its failure, with what it said.
      if (mirror.child.exitCode !== null) return yield* mirror.exited
      yield* Effect.sleep(50)
    }
  })

/** Step 1: the mirror's publishing path with no region behind it. */
const publishDirect = (servers: ReadonlyArray<string>, options: Required<MirrorBenchOptions>) =>
  Effect.gen(function*() {
    const mirrorOptions: MirrorOptions = {
      topic: "direct",
      regionId: "direct",
      servers,
      stream: STREAM,
      subject: defaultMirrorSubject(TOPIC),
      replicas: 3,
      consumer: "direct",
      from: 0,
      maxInFlight: options.maxInFlight,
      requestTimeoutMs: 10_000,
      retryForMs: 0
    }
    const target = yield* openTarget(mirrorOptions)
    const payload = new Uint8Array(options.messageBytes).fill(0x61)
    const message = { offset: 0, timestamp: 0, flags: 0, key: undefined, headers: undefined, payload, bytes: payload, valueOffset: 0, valueLength: payload.length }
    const w = makeWindow(options.maxInFlight, (yield* target.end).sequence, 0, undefined, () => {})
    for (let i = 0; i < options.messages; i++) {
      if (inFlight(w) >= w.capacity) yield* awaitWindow(w, hasRoom)
      if (w.failure !== undefined) return yield* new PeerFailed({ peer: "nats", detail: `direct publishing: ${w.failure}` })
      message.offset = i
      message.timestamp = Date.now()
      publishOne(w, target, message as unknown as SubscriberMessage)
    }
    while (!drained(w)) yield* awaitWindow(w, drained)
    if (w.failure !== undefined) return yield* new PeerFailed({ peer: "nats", detail: `direct publishing: ${w.failure}` })
    return w.baseSequence + 1
  }).pipe(Effect.scoped)

/** Steps 2 and 4: `cxlog publish --count`, its MB/s by its own clock, and the cores it and `roles` (head, broker) used meanwhile. */
const publishRegion = (env: Record<string, string>, port: number, count: number, messageBytes: number, rateMBps?: number, roles: ReadonlyArray<RoleProcess> = []) =>
  Effect.gen(function*() {
    const rolesCpu = () => roles.reduce((sum, role) => sum + (processCpuSeconds(role.pid) ?? 0), 0)
    const cpuBefore = rolesCpu()
    const startedAt = performance.now()
    const publisher = yield* spawnRole("publisher", [
      "publish", "--brokers", `127.0.0.1:${port}`, "--topic", TOPIC, "--count", `${count}`, "--message-bytes", `${messageBytes}`,
      ...(rateMBps === undefined ? [] : ["--rate-mbps", `${rateMBps}`])
    ], env)
    const done = yield* publisher.event("done", 600_000)
    const cores = (rolesCpu() - cpuBefore + (processCpuSeconds(publisher.pid) ?? 0)) / ((performance.now() - startedAt) / 1000)
    return { mBps: (count * messageBytes) / 1e6 / ((done["elapsedMs"] as number) / 1000), cores }
  }).pipe(Effect.scoped)

/** A message read back, with when JetStream stored it (ms since the epoch). */
type StoredMessage = MirroredMessage & { readonly stored: number }

/** The stream's first `count` messages, decoded. */
const readStream = (nc: NatsConnection, count: number) =>
  Effect.tryPromise({
    try: async () => {
      const out: Array<StoredMessage> = []
      const consumer = await jetstream(nc).consumers.get(STREAM)
      const messages = await consumer.consume({ max_messages: 2_000 })
      for await (const m of messages as AsyncIterable<JsMsg>) {
        out.push({ ...readMirrored(m), stored: m.info.timestampNanos / 1e6 })
        if (out.length === count) break
      }
      await messages.close()
      return out
    },
    catch: failed("reading the stream back")
  })

/** Step 6: offsets 0..count−1 once, in order, payloads equal to the region's. */
const auditStream = (region: string, regionId: string, stream: ReadonlyArray<MirroredMessage>, count: number) =>
  Effect.gen(function*() {
    if (stream.length !== count) return { passed: false, detail: `${stream.length} messages in the stream, ${count} expected` }
    const subscriber = yield* Subscriber
    const subscription = yield* subscriber.subscribe(TOPIC, { from: 0 })
    const pull = yield* Stream.toPull(subscription.batches)
    let at = 0
    while (at < count) {
      const batch = yield* pull.pipe(Effect.map(Chunk.unsafeHead), Effect.mapError((e) => (Option.isSome(e) ? e.value : new Error("the subscription ended"))))
      for (const m of batch) {
        if (at >= count) break
        const s = stream[at]!
        const same = s.offset === m.offset && m.offset === at && s.msgId === mirrorMessageId(regionId, TOPIC, at) && Buffer.from(s.payload).equals(Buffer.from(m.payload))
        if (!same) return { passed: false, detail: `offset ${at}: the stream has offset ${s.offset}, id ${s.msgId}, ${s.payload.length} bytes` }
        at++
      }
    }
    return { passed: true, detail: `${count} offsets once, in order, payloads equal` }
  }).pipe(
    Effect.scoped,
    Effect.provide(SubscriberLayers.layer.pipe(Layer.provide(reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion({ name: region }))))))
  )

export const benchMirror = (given: MirrorBenchOptions) =>
  Effect.gen(function*() {
    const options = { ...given, maxInFlight: given.maxInFlight ?? DEFAULT_MIRROR_IN_FLIGHT }
    const nats = yield* startNatsCluster(3)
    const region = `cxlog-bench-mirror-${process.pid}`
    const lagMessages = Math.max(1_000, Math.round((options.rateMBps * 1e6 * LAG_SECONDS) / options.messageBytes))
    const total = 2 * options.messages + lagMessages
    // The region holds the whole run (the audit reads it all back), so publishers never wait for the mirror's hold.
    const blogBytes = 2 ** Math.ceil(Math.log2(total * (options.messageBytes + 64) * 1.25))
    const env = { CXLOG_REGION: region, CXLOG_LOG_MAX_TOPICS: "1", CXLOG_LOG_MAX_BROKERS: "1", CXLOG_LOG_BLOG_BYTES: `${Math.max(blogBytes, 16 << 20)}`, CXLOG_LOG_GOI_SLOTS: "262144" }
    const { head, brokers, ports } = yield* startHeadAndBrokers(`${TOPIC}:5:1`, 1, env)
    const regionRoles = [head, ...brokers]
    const port = ports[0]!
    const nc = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => connect({ servers: [...nats.urls], noAsyncTraces: true }), catch: failed("connecting") }),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )

    const directFirst = yield* publishDirect(nats.urls, options)
    const directMBps = yield* storedRate(nc, directFirst, options.messages, options.messageBytes)
    const purged = yield* Effect.tryPromise({ try: async () => (await jetstreamManager(nc)).streams.purge(STREAM), catch: failed("purging") })
    const base = (yield* streamState(nc)).last_seq
    if (!purged.success) return yield* new PeerFailed({ peer: "nats", detail: "the stream was not purged" })

    const { mBps: regionMBps, cores: regionCores } = yield* publishRegion(env, port, options.messages, options.messageBytes, undefined, regionRoles)
    const mirrorArgs = ["mirror", "--topic", TOPIC, "--to", nats.urls.join(","), "--stream", STREAM, "--max-in-flight", `${options.maxInFlight}`]
    const backlog = yield* spawnRole("mirror", [...mirrorArgs, "--until", `${options.messages}`], env)
    yield* awaitStreamLast(nc, options.messages, backlog)
    const mirrorMBps = yield* storedRate(nc, base + 1, options.messages, options.messageBytes)

    const mirror = yield* spawnRole("mirror", mirrorArgs, env)
    // What the mirror's side (the mirror and the JetStream servers) takes of the machine while the region publishes beside it.
    const mirrorSideCpu = () => (processCpuSeconds(mirror.pid) ?? 0) + nats.nodes.reduce((sum, node) => sum + (node.cpuSeconds() ?? 0), 0)
    const cpuBefore = mirrorSideCpu()
    const startedAt = performance.now()
    const { mBps: withMirrorMBps } = yield* publishRegion(env, port, options.messages, options.messageBytes)
    const mirrorSideCores = (mirrorSideCpu() - cpuBefore) / ((performance.now() - startedAt) / 1000)
    yield* awaitStreamLast(nc, 2 * options.messages, mirror)
    yield* publishRegion(env, port, lagMessages, options.messageBytes, options.rateMBps)
    yield* awaitStreamLast(nc, total, mirror)

    const regionId = (yield* Effect.tryPromise({
      try: async () => (await (await jetstreamManager(nc)).streams.getMessage(STREAM, { seq: base + 1 }))?.header.get(MirrorHeaders.msgId) ?? "",
      catch: failed("reading the first message")
    })).split("/")[0]!
    const stream = yield* readStream(nc, total)
    const lags = Float64Array.from(stream.slice(total - lagMessages), (m) => m.stored - m.timestamp).sort()
    const audit = yield* auditStream(region, regionId, stream, total)

    const mirrorRatio = mirrorMBps / directMBps
    const result = {
      bench: "mirror",
      messages: options.messages,
      messageBytes: options.messageBytes,
      maxInFlight: options.maxInFlight,
      directMBps: round2(directMBps),
      mirrorMBps: round2(mirrorMBps),
      mirrorRatio: Math.round(mirrorRatio * 1000) / 1000,
      regionMBps: round2(regionMBps),
      regionWithMirrorMBps: round2(withMirrorMBps),
      publishRatio: Math.round((withMirrorMBps / regionMBps) * 1000) / 1000,
      // Cores the region's publishing (publisher, broker, head) used alone, and the mirror and the JetStream servers beside it, of `cores`.
      regionCores: round2(regionCores),
      mirrorSideCores: round2(mirrorSideCores),
      cores: availableParallelism(),
      lagRateMBps: options.rateMBps,
      lagMessages: lagMessages,
      lagP50Ms: round2(percentile(lags, 50)),
      lagP99Ms: round2(percentile(lags, 99)),
      auditPassed: audit.passed,
      audit: audit.detail,
      ratio: Math.round(mirrorRatio * 1000) / 1000
    }
    if (!options.json) {
      yield* Console.log(table(["cxlog bench --type mirror", "MB/s", "vs direct", "region MB/s", "with mirror", `lag p99 @ ${options.rateMBps} MB/s`, "audit"], [[
        `${options.messages} × ${options.messageBytes} B`,
        result.mirrorMBps,
        result.mirrorRatio,
        result.regionMBps,
        result.publishRatio,
        `${result.lagP99Ms} ms`,
        audit.detail
      ]]))
    }
    yield* Console.log(JSON.stringify(result))
    return result
  }).pipe(Effect.scoped)
