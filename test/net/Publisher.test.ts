import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, ExecutionStrategy, Exit, Fiber, Schedule, Scope } from "effect"
import { createHook } from "node:async_hooks"
import { type AddressInfo, createServer, Socket } from "node:net"
import { BatchBuilder, BufferPool } from "../../src/layers/net/BatchBuilder.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { CxlogPublisher } from "../../src/layers/net/CxlogPublisher.js"
import { FrameType, writeFrameHeader, writeHeader } from "../../src/layers/net/Frame.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { refusal } from "../../src/layers/net/PublisherDefaults.js"
import { REFUSED_ATTEMPTS } from "../../src/layers/net/PublisherLinkTcp.js"
import { Appender, type AppenderShape, type AppendReceipt, type BatchHeader } from "../../src/services/log/Appender.js"
import type { BrokerShape } from "../../src/services/net/Broker.js"
import type { PublisherOptions } from "../../src/services/net/Publisher.js"
import { anonymous } from "../fixtures/anonymous-region.js"
import { FiberCounts } from "../fixtures/fiber-counts.js"
import { audit, clean, offsetsOf, publishTestMessages, testMessage } from "../fixtures/net-audit.js"
import { hello, rawConnect } from "../fixtures/net-raw-client.js"

/** `npm run test:stress` runs the long variants. */
const SCALE = process.env["CXLOG_STRESS"] ? 10 : 1

/** What a log that loses a batch says when it takes it. */
const swallowed: AppendReceipt = { brokerId: 0, pbrSeq: 0, blogPosition: 0 }

/** `count` brokers over one memory log, each in its own scope so a test can kill it. */
const cluster = (
  count: number,
  options: {
    holdTimeoutMs?: number
    sessionSlots?: number
    wrap?: (appender: AppenderShape) => AppenderShape
    topics?: ReadonlyArray<string>
    heapLanes?: number
  } = {}
) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({
      topics: (options.topics ?? ["t"]).map((name) => ({ name })),
      holdTimeoutMs: options.holdTimeoutMs ?? 2_000,
      ...(options.sessionSlots === undefined ? {} : { sessionSlots: options.sessionSlots }),
      ...(options.heapLanes === undefined ? {} : { heapLanes: options.heapLanes })
    })
    const parent = yield* Effect.scope
    const brokers: Array<{ server: BrokerShape; kill: Effect.Effect<void> }> = []
    for (let id = 0; id < count; id++) {
      const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
      const services = options.wrap === undefined
        ? log.forBroker(id)
        : Context.add(log.forBroker(id), Appender, options.wrap(log.appender(id)))
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(services), Scope.extend(scope))
      brokers.push({ server, kill: Scope.close(scope, Exit.void) })
    }
    const addresses = brokers.map((b) => ({ host: "127.0.0.1", port: b.server.port }))
    const publisher = (options: Partial<PublisherOptions> = {}) =>
      PublisherLayers.make({ brokers: addresses, topic: "t", ...options })
    return { log, brokers, addresses, publisher }
  })

describe("Publisher", () => {
  it.scopedLive("a publisher restarted with the same client id is a new session: every message of both runs is in the log", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(2)
      // Someone sends batches for client 7 before the publisher ever starts (its own registered session).
      const stranger = yield* log.appender(0).registerSession("t", 7)
      for (let seq = 0; seq < 3; seq++) {
        const builder = new BatchBuilder(new BufferPool(1024, 0))
        builder.add(testMessage(1000, seq, 64))
        const batch = builder.seal()
        const header = {
          clientId: 7,
          sessionEpoch: stranger,
          batchSeq: seq,
          messageCount: 1,
          payloadBytes: batch.payload.length,
          crc32c: batch.crc32c
        }
        yield* log.appender(0).append("t", header, batch.payload)
      }
      // Two runs of `cxlog publish --client-id 7`, one after the other.
      const epochs: Array<number> = []
      for (const from of [0, 300]) {
        yield* Effect.scoped(Effect.gen(function*() {
          const p = yield* publisher({ clientId: 7, batchBytes: 1024 })
          yield* publishTestMessages(p, 7, 300, 100, from)
          yield* p.flush(10_000)
          epochs.push(p.stats().sessionEpoch)
        }))
      }
      expect(new Set([stranger, ...epochs]).size).toBe(3)
      expect(audit(log.ordered("t"), new Map([[7, 600]]))).toEqual({ messages: 600, ...clean })
      expect(log.stats("t").duplicates).toBe(0)
    }))

  it.scopedLive("closing releases the session at once, so sessions never run out; a truly full table is a typed refusal", () =>
    Effect.gen(function*() {
      // 8 lines: at most 7 live sessions. 20 publishers, one after the other, each closing cleanly.
      const { log, publisher } = yield* cluster(2, { sessionSlots: 8 })
      let last = { clientId: 0, sessionEpoch: 0 }
      for (let run = 0; run < 20; run++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const p = yield* publisher({ clientId: 50 + run, batchBytes: 1024 })
          yield* publishTestMessages(p, 50 + run, 20, 100)
          yield* p.flush(10_000)
          last = p.stats()
        }))
      }
      expect(audit(log.ordered("t"), new Map(Array.from({ length: 20 }, (_, i) => [50 + i, 20] as const)))).toEqual({
        messages: 400,
        ...clean
      })
      // The last CLOSE is on its way: once it is handled, that session is released with its frontier.
      while (!(yield* log.acks.sessionAcks("t", last.clientId, last.sessionEpoch)).fenced) {
        yield* Effect.sleep("2 millis")
      }
      expect(yield* log.acks.sessionAcks("t", last.clientId, last.sessionEpoch)).toMatchObject({
        fenced: true,
        known: true,
        durableFrozen: false
      })
      // Seven sessions that stay open fill the table: the eighth publisher is told why, not left to time out.
      for (let client = 0; client < 7; client++) yield* log.appender(0).registerSession("t", client)
      const late = yield* publisher({ clientId: 99, connectTimeoutMs: 60_000, ackTimeoutMs: 60_000 })
      const error = yield* Effect.flip(Effect.zipRight(late.publish(testMessage(99, 0, 64)), late.flush(60_000)))
      expect(error).toMatchObject({ _tag: "BrokerRejected", code: "session-table-full" })
    }))

  it.scopedLive("a broker with no lane in a topic for want of heap ends that session region-full: the other carries it, nothing lost, no connection dropped; a topic no broker has room for fails alone", () =>
    Effect.gen(function*() {
      // Heap for one lane: the broker that registers t's session takes it, the other can have none.
      const { brokers, log, publisher } = yield* cluster(2, { topics: ["t", "u"], heapLanes: 1 })
      const p = yield* publisher({ clientId: 5, batchBytes: 1024, spread: "round-robin" })
      yield* publishTestMessages(p, 5, 6000, 100)
      yield* p.flush(10_000)
      expect(audit(log.ordered("t"), new Map([[5, 6000]]))).toEqual({ messages: 6000, ...clean })
      // Round-robin sent batches to both: the one without a lane refused the session, and its batches went to the other.
      expect(p.stats().brokers.every((b) => b.sent > 0)).toBe(true)
      expect(new Set(log.ordered("t").map((batch) => batch.broker)).size).toBe(1)
      // Its connection went on (one each, never reconnected): it ended the session alone.
      const stats = brokers.map(({ server }) => server.stats())
      expect(stats.map((s) => s.accepted)).toEqual([1, 1])
      expect(stats.map((s) => s.rejected)).toContainEqual({})
      expect(stats.map((s) => s.rejected)).toContainEqual({ "region-full": 1 })
      // No lane in u anywhere and no room for one: its publishes fail, naming the heap; t's go on.
      const refused = yield* Effect.flip(
        Effect.zipRight(p.publish(testMessage(5, 0, 64), { topic: "u" }), p.flush(10_000))
      )
      expect(refused).toMatchObject({ _tag: "BrokerRejected", code: "region-full", topic: "u" })
      expect(refused.message).toContain("CXLOG_HEAP_BYTES")
      yield* publishTestMessages(p, 5, 100, 100, 6000)
      // A flush waits for every topic, then names u's failure while its message is unacknowledged.
      expect(yield* Effect.flip(p.flush(10_000))).toMatchObject({ code: "region-full", topic: "u" })
      expect(audit(log.ordered("t"), new Map([[5, 6100]]))).toEqual({ messages: 6100, ...clean })
    }))

  it.scopedLive("a topic's largest message: one published before its session said it is dropped unsent once it does (MessageTooLarge, counted lost); after, a larger one is refused at once; the topic goes on", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(1)
      yield* log.topics.create({ name: "small", order: 5, ackLevel: 1, replicationFactor: 1, maxMessageBytes: 4096 })
      // First of all: the publisher does not know the limit yet, the broker does.
      const blind = yield* publisher({ clientId: 7, topic: "small" })
      // One byte over: the broker's check is exact.
      const dropped = yield* Effect.flip(Effect.zipRight(blind.publish(testMessage(7, 0, 4097)), blind.flush(10_000)))
      expect(dropped).toMatchObject({ _tag: "MessageTooLarge", topic: "small", maxMessageBytes: 4096, bytes: 4097 })
      expect(dropped.message).toContain("over topic small's largest message of 4096 bytes")
      expect(blind.unacknowledged()).toEqual([{ topic: "small", from: 0, count: 1 }])
      // Its session goes on: the same publisher's next messages go in.
      expect(yield* blind.publishAcked(testMessage(7, 1, 64))).toEqual({ offset: 0 })
      // The session open, the publisher keeps the limit itself: nothing is sent, and the topic goes on.
      const p = yield* publisher({ clientId: 8, topic: "small" })
      expect(yield* p.publishAcked(testMessage(8, 0, 4096))).toEqual({ offset: 1 })
      const refused = yield* Effect.flip(p.publish(testMessage(8, 1, 4097)))
      expect(refused).toMatchObject({ _tag: "MessageTooLarge", topic: "small", maxMessageBytes: 4096, bytes: 4097 })
      expect(refused.message).toContain("over topic small's largest message of 4096 bytes")
      expect(yield* p.publishAcked(testMessage(8, 1, 64))).toEqual({ offset: 2 })
      expect(log.ordered("small").map((b) => [b.clientId, b.messageCount])).toEqual([[7, 1], [8, 1], [8, 1]])
    }))

  it.scopedLive("every broker full of connections: the publisher fails with too-many-connections, not a timeout", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const server = yield* BrokerLayers.make({ insecure: true, maxConnections: 1 }).pipe(
        Effect.provide(log.forBroker(0))
      )
      const taken = yield* rawConnect(server.port)
      taken.write(hello("t", 1))
      yield* taken.nextFrame()
      // Refused connections are retried for connectTimeoutMs (a slot may free); long enough that a refusal slowed by load still arrives first.
      const p = yield* PublisherLayers.make({
        brokers: [{ host: "127.0.0.1", port: server.port }],
        topic: "t",
        connectTimeoutMs: 2_000,
        ackTimeoutMs: 60_000
      })
      const error = yield* Effect.flip(Effect.zipRight(p.publish(testMessage(1, 0, 64)), p.flush(60_000)))
      expect(error).toMatchObject({ _tag: "BrokerRejected", code: "too-many-connections" })
      // What the broker said, not a guess at it (a user's own limit reads differently from the broker's).
      expect(error.message).toContain("this broker serves at most 1 connections")
    }))

  it.scopedLive("no broker listening: the publisher fails after a few refused attempts with BrokersUnreachable naming each address, not after its connect timeout", () =>
    Effect.gen(function*() {
      // Two ports nothing listens on (each bound, then released).
      const free = yield* Effect.forEach([0, 1], () =>
        Effect.async<number>((resume) => {
          const probe = createServer().listen(0, "127.0.0.1", () => {
            const { port } = probe.address() as AddressInfo
            probe.close(() => resume(Effect.succeed(port)))
          })
        }))
      // A connect timeout and an ACK timeout far past the test's own: only the refusals can end the wait.
      const p = yield* PublisherLayers.make({
        brokers: free.map((port) => ({ host: "127.0.0.1", port })),
        topic: "t",
        connectTimeoutMs: 600_000,
        ackTimeoutMs: 600_000
      })
      const error = yield* Effect.flip(Effect.zipRight(p.publish(testMessage(1, 0, 64)), p.flush(600_000)))
      expect(error).toMatchObject({ _tag: "BrokersUnreachable", refusedAttempts: REFUSED_ATTEMPTS })
      for (const port of free) expect(error.message).toContain(`127.0.0.1:${port} (unreachable: connect ECONNREFUSED`)
      expect(error.message).toMatch(/no broker is listening: .* each refused \d+ attempts; start one/)
    }))

  it("the largest message is maxBatchBytes less 16 bytes, key and headers included; one byte more is refused naming the settings that raise it", () => {
    const options = { brokers: [{ host: "127.0.0.1", port: 1 }], topic: "t", batchBytes: 4096, maxBatchBytes: 4096 }
    expect(PublisherLayers.refusal(options, 4080)).toBeUndefined()
    expect(PublisherLayers.refusal(options, 4070, { key: "k", headers: [] })).toBeUndefined()
    const refused = PublisherLayers.refusal(options, 4081)
    expect(refused).toMatchObject({ _tag: "MessageTooLarge", bytes: 4081, maxBatchBytes: 4096 })
    expect(refused?.message).toMatch(
      /the largest message is 4080 bytes, key and headers included\); raise the publisher's maxBatchBytes \(cxlog publish --max-batch-bytes\), within the brokers' --max-batch-bytes/
    )
    expect(PublisherLayers.refusal({ ...options, batchBytes: 8192 }, 100)?.message).toMatch(
      /batchBytes 8192 exceeds maxBatchBytes 4096: raise maxBatchBytes with it \(cxlog publish --max-batch-bytes\)/
    )
  })

  it.scopedLive("a full window with nothing acknowledged fails publish with PublishAckTimeout after ackTimeoutMs instead of waiting for ever", () =>
    Effect.gen(function*() {
      // The log takes batches and never orders them (as when the head is gone).
      const swallow = (appender: AppenderShape): AppenderShape => ({
        ...appender,
        tryAppendWith: () => swallowed,
        appendWith: () => Effect.succeed(swallowed)
      })
      const { publisher } = yield* cluster(1, { wrap: swallow })
      const p = yield* publisher({ clientId: 12, batchBytes: 1024, maxInFlightBatches: 2, ackTimeoutMs: 200 })
      const error = yield* Effect.flip(publishTestMessages(p, 12, 10_000, 200))
      expect(error).toMatchObject({ _tag: "PublishAckTimeout", timeoutMs: 200 })
      expect(error.message).toMatch(/B0=0\/\d+.*head/)
    }))

  it.scopedLive("an ACK timeout longer than setTimeout's longest delay bounds a wait with one capped timer, not one firing every millisecond", () =>
    Effect.gen(function*() {
      const swallow = (appender: AppenderShape): AppenderShape => ({
        ...appender,
        tryAppendWith: () => swallowed,
        appendWith: () => Effect.succeed(swallowed)
      })
      const { publisher } = yield* cluster(1, { wrap: swallow })
      // Node fires an over-long delay after 1 ms and says so with a TimeoutOverflowWarning.
      const overflows: Array<string> = []
      const onWarning = (warning: Error) => {
        if (warning.name === "TimeoutOverflowWarning") overflows.push(warning.message)
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => process.on("warning", onWarning)),
        () => Effect.sync(() => process.off("warning", onWarning))
      )
      const p = yield* publisher({ clientId: 13, batchBytes: 1024, ackTimeoutMs: 30 * 24 * 3_600_000 })
      yield* p.publish(testMessage(13, 0, 64))
      const flushing = yield* Effect.fork(p.flush(30 * 24 * 3_600_000))
      // A window, not a wait: a timer firing at once (an overflowed delay) would end the flush or warn in it.
      yield* Effect.sleep("50 millis")
      expect(flushing.unsafePoll()).toBeNull()
      expect(overflows).toEqual([])
      yield* Fiber.interrupt(flushing)
    }))

  it.scopedLive("two publishers over 4 brokers: everything acked, each message once, per-client FIFO, batches spread", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(4)
      const a = yield* publisher({ clientId: 1, batchBytes: 8192 })
      const b = yield* publisher({ clientId: 2, batchBytes: 4096, maxInFlightBatches: 8 })
      yield* Effect.all([publishTestMessages(a, 1, 20_000 * SCALE), publishTestMessages(b, 2, 10_000 * SCALE)], {
        concurrency: 2
      })
      yield* Effect.all([a.flush(30_000), b.flush(30_000)], { concurrency: 2 })
      expect(audit(log.ordered("t"), new Map([[1, 20_000 * SCALE], [2, 10_000 * SCALE]]))).toEqual({
        messages: 30_000 * SCALE,
        ...clean
      })
      const stats = a.stats()
      expect(stats).toMatchObject({ messages: 20_000 * SCALE, inFlight: 0, resends: 0, fences: 0 })
      expect(stats.ackedBatches).toBe(stats.batches)
      expect(stats.brokers.map((x) => x.sent > 0)).toEqual([true, true, true, true])
      expect(stats.brokers.reduce((n, x) => n + x.acked, 0)).toBe(stats.batches)
      expect(a.ackLatencies().length).toBe(stats.batches)
      // Since a count of acknowledged batches: the later ones only, in the order acknowledged.
      const latest = a.ackLatencies(stats.batches - 3)
      expect(latest.length).toBe(3)
      expect([...latest]).toEqual([...a.ackLatencies()].slice(-3))
      expect(a.ackLatencies(stats.batches).length).toBe(0)
      expect(new Set(log.ordered("t").map((x) => x.broker))).toEqual(new Set([0, 1, 2, 3]))
    }))

  it.scopedLive("each batch goes to the socket as one write of header and payload (the header in the pool's room in front), an oversized message's too", () =>
    Effect.gen(function*() {
      // Every socket write of a BATCH frame in this process: its header's payload length and the write's length.
      const batchWrites: Array<{ payloadBytes: number; length: number }> = []
      const original = Socket.prototype.write
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          Socket.prototype.write = function(this: Socket, chunk: unknown, ...rest: Array<unknown>) {
            if (
              chunk instanceof Uint8Array && chunk.length >= 32 && chunk[0] === FrameType.BATCH && chunk[2] === 0x43 &&
              chunk[3] === 0x58
            ) {
              batchWrites.push({
                payloadBytes: Buffer.from(chunk.buffer, chunk.byteOffset, 32).readUInt32LE(24),
                length: chunk.length
              })
            }
            return (original as (...args: Array<unknown>) => boolean).apply(this, [chunk, ...rest])
          } as typeof original
        }),
        () => Effect.sync(() => (Socket.prototype.write = original))
      )
      const { log, publisher } = yield* cluster(2)
      const p = yield* publisher({ clientId: 24, batchBytes: 2048, maxBatchBytes: 16_384 })
      yield* publishTestMessages(p, 24, 300, 500)
      // Larger than a pooled buffer: a batch of its own, copied behind a header.
      yield* p.publish(testMessage(24, 300, 9_000))
      yield* p.flush(10_000)
      expect(audit(log.ordered("t"), new Map([[24, 301]]))).toEqual({ messages: 301, ...clean })
      expect(batchWrites.length).toBe(p.stats().batches)
      expect(batchWrites.filter((w) => w.length !== 32 + w.payloadBytes)).toEqual([])
      expect(batchWrites.some((w) => w.payloadBytes > 9_000)).toBe(true)
    }))

  it.scopedLive("a plain TCP broker connection reads into its own reused buffer (onread): ACKs arrive without a stream data event per read", () =>
    Effect.gen(function*() {
      const { log, addresses, publisher } = yield* cluster(1)
      // Data events on the publisher's side of its connections (the broker's side is the one whose local port is the broker's).
      let clientDataEvents = 0
      const original = Socket.prototype.emit
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          Socket.prototype.emit = function(this: Socket, event: string | symbol, ...args: Array<unknown>) {
            if (event === "data" && this.remotePort === addresses[0]!.port) clientDataEvents++
            return original.apply(this, [event, ...args] as Parameters<typeof original>)
          } as unknown as typeof original
        }),
        () => Effect.sync(() => (Socket.prototype.emit = original))
      )
      const p = yield* publisher({ clientId: 25, batchBytes: 1024 })
      yield* publishTestMessages(p, 25, 200, 300)
      yield* p.flush(10_000)
      expect(p.stats().ackedMessages).toBe(200)
      expect(audit(log.ordered("t"), new Map([[25, 200]]))).toEqual({ messages: 200, ...clean })
      expect(clientDataEvents).toBe(0)
    }))

  it("writeFrameHeader writes the bytes writeHeader writes", () => {
    const fields = {
      type: FrameType.BATCH,
      clientId: 0xfedc_ba98,
      sessionEpoch: 7,
      seq: 2 ** 40 + 12_345,
      messageCount: 513,
      payloadBytes: 65_536,
      crc32c: 0x8000_0001
    }
    const expected = Buffer.alloc(32)
    writeHeader(expected, 0, fields)
    const frame = Buffer.alloc(32, 0xff)
    writeFrameHeader(
      frame,
      fields.type,
      fields.clientId,
      fields.sessionEpoch,
      fields.seq,
      fields.messageCount,
      fields.payloadBytes,
      fields.crc32c
    )
    expect(frame).toEqual(expected)
  })

  it.scopedLive("sticky spread keeps to one broker; ack level 2 and level 0 complete too", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(3)
      const sticky = yield* publisher({ clientId: 3, spread: "sticky", ackLevel: 2, batchBytes: 1024 })
      yield* publishTestMessages(sticky, 3, 2_000, 200)
      yield* sticky.flush(10_000)
      expect(sticky.stats().brokers.filter((x) => x.sent > 0).length).toBe(1)
      const fireAndForget = yield* publisher({ clientId: 4, ackLevel: 0, batchBytes: 1024 })
      yield* publishTestMessages(fireAndForget, 4, 2_000, 200)
      yield* fireAndForget.flush(10_000)
      while (audit(log.ordered("t"), new Map([[4, 2_000]])).messages < 2_000) yield* Effect.sleep("5 millis")
      expect(audit(log.ordered("t"), new Map([[3, 2_000], [4, 2_000]]))).toEqual({ messages: 4_000, ...clean })
    }))

  it.scopedLive("a broker killed mid-run: its batches are rerouted and resent; all acked, the audit passes", () =>
    Effect.gen(function*() {
      // In-process brokers destroyed abruptly (the memory log cannot be shared across
      // processes); the cluster run over the region repeats this with SIGKILL.
      const { log, brokers, publisher } = yield* cluster(4)
      const p = yield* publisher({ clientId: 5, batchBytes: 4096, maxInFlightBatches: 32 })
      const total = 40_000 * SCALE
      const running = yield* Effect.fork(publishTestMessages(p, 5, total))
      while (p.stats().ackedMessages < total / 4) yield* Effect.sleep("1 millis")
      yield* brokers[1]!.kill
      yield* Fiber.join(running)
      yield* p.flush(10_000)
      expect(audit(log.ordered("t"), new Map([[5, total]]))).toEqual({ messages: total, ...clean })
      const stats = p.stats()
      expect(stats.brokers[1]!.connected).toBe(false)
      expect(stats.ackedBatches).toBe(stats.batches)
      const sentAfterKill = stats.brokers[1]!.sent
      yield* publishTestMessages(p, 5, 1000, 1024, total)
      yield* p.flush(10_000)
      expect(p.stats().brokers[1]!.sent).toBe(sentAfterKill)
    }))

  it.scopedLive("every broker down for a while: batches wait, then go out when one comes back", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const first = yield* Scope.make()
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(log.forBroker(0)),
        Scope.extend(first)
      )
      const p = yield* PublisherLayers.make({
        brokers: [{ host: "127.0.0.1", port: server.port }],
        topic: "t",
        clientId: 6,
        reconnectDelayMs: 5
      })
      yield* publishTestMessages(p, 6, 100)
      yield* p.flush(5_000)
      yield* Scope.close(first, Exit.void)
      yield* publishTestMessages(p, 6, 100, 1024, 100)
      // A window, not a wait: the brokers stay down over several reconnect tries (every 5 ms); the batches must stay in flight.
      yield* Effect.sleep("50 millis")
      expect(p.stats().inFlight).toBeGreaterThan(0)
      yield* BrokerLayers.make({ insecure: true, port: server.port }).pipe(Effect.provide(log.forBroker(0)))
      yield* p.flush(5_000)
      expect(audit(log.ordered("t"), new Map([[6, 200]]))).toEqual({ messages: 200, ...clean })
    }))

  it.scopedLive("SessionFenced: the publisher opens the next epoch and replays its unacked suffix", () =>
    Effect.gen(function*() {
      // Broker 0 loses the first batch 3 it is given (acknowledges the frame, never appends it):
      // the gap outlives the hold timeout and the sequencer fences the session.
      let lost = false
      let firstEpoch = -1
      const losing = (header: BatchHeader) => {
        if (firstEpoch < 0) firstEpoch = header.sessionEpoch
        return header.batchSeq === 3 && header.sessionEpoch === firstEpoch && !lost
      }
      const dropOnce = (appender: AppenderShape): AppenderShape => ({
        ...appender,
        tryAppendWith: (
          topic,
          header,
          fill
        ) => (losing(header) ? ((lost = true), swallowed) : appender.tryAppendWith(topic, header, fill)),
        appendWith: (
          topic,
          header,
          fill
        ) => (losing(header) ? Effect.sync(() => ((lost = true), swallowed)) : appender.appendWith(topic, header, fill))
      })
      const { log, publisher } = yield* cluster(2, { holdTimeoutMs: 100, wrap: dropOnce })
      const p = yield* publisher({ clientId: 7, batchBytes: 1024 })
      yield* publishTestMessages(p, 7, 3_000, 100)
      yield* p.flush(10_000)
      expect(lost).toBe(true)
      expect(audit(log.ordered("t"), new Map([[7, 3_000]]))).toEqual({ messages: 3_000, ...clean })
      // The replay went out in a new session the log handed out.
      expect(p.stats()).toMatchObject({ fences: 1, inFlight: 0 })
      expect(p.stats().sessionEpoch).not.toBe(firstEpoch)
      expect(log.ordered("t").filter((b) => b.sessionEpoch === firstEpoch).map((b) => b.batchSeq)).toEqual([0, 1, 2])
      // The first session ended fenced at the lost batch.
      expect(yield* log.acks.sessionAcks("t", 7, firstEpoch)).toMatchObject({ ordered: 3, fenced: true })
    }))

  it.scopedLive("flush timeout: PublishAckTimeout names each broker's acked/sent counts", () =>
    Effect.gen(function*() {
      // Broker 1's log takes batches but never orders them.
      const swallow = (appender: AppenderShape): AppenderShape =>
        appender.brokerId === 1
          ? { ...appender, tryAppendWith: () => swallowed, appendWith: () => Effect.succeed(swallowed) }
          : appender
      const { publisher } = yield* cluster(2, { wrap: swallow, holdTimeoutMs: 60_000 })
      const p = yield* publisher({ clientId: 8, batchBytes: 1024, maxInFlightBatches: 4 })
      while (!p.stats().brokers.every((b) => b.sessions === 1)) yield* Effect.sleep("1 millis")
      const published = yield* Effect.fork(publishTestMessages(p, 8, 2_000, 100))
      while (p.stats().inFlight < 4) yield* Effect.sleep("1 millis")
      const error = yield* Effect.flip(p.flush(300))
      if (error._tag !== "PublishAckTimeout") throw error
      const [b0, b1] = error.brokers
      expect(b0!.acked).toBe(1)
      expect(b1!.acked).toBe(0)
      // Batches 0..4: 0 ordered, 1 swallowed, 2..4 held behind it; the window (4) is full.
      expect(b0!.sent + b1!.sent).toBe(5)
      expect(error.outstanding).toBe(5)
      expect(error.message).toContain(`B0=1/${b0!.sent}, B1=0/${b1!.sent}`)
      expect(error.message).toMatch(/batches not acknowledged within 300 ms/)
      // Backpressure: the window stayed full, so the publishing fiber is still waiting.
      expect(p.stats().inFlight).toBe(4)
      expect(published.unsafePoll()).toBeNull()
    }))

  it.scopedLive("refusals: an unknown topic fails the publisher with BrokerRejected; an oversized message is refused", () =>
    Effect.gen(function*() {
      const { addresses } = yield* cluster(1)
      const p = yield* PublisherLayers.make({ brokers: addresses, topic: "missing", clientId: 9 })
      yield* p.publish(testMessage(9, 0, 100))
      const error = yield* Effect.flip(p.flush(5_000))
      expect(error._tag).toBe("BrokerRejected")
      expect(error.message).toMatch(/unknown-topic/)
      const ok = yield* PublisherLayers.make({ brokers: addresses, topic: "t", maxBatchBytes: 4096, batchBytes: 1024 })
      expect((yield* Effect.flip(ok.publish(new Uint8Array(5000))))._tag).toBe("MessageTooLarge")
      yield* ok.publish(new Uint8Array(3000))
      yield* ok.flush(5_000)
      expect((yield* Effect.flip(PublisherLayers.make({ brokers: [], topic: "t" })))._tag).toBe(
        "InvalidPublisherOptions"
      )
      // A linger is a timer's delay: not a number, below 0 or past what a timer can wait (Node would fire it at once, with a warning).
      for (const lingerMs of [-1, Number.NaN, 2 ** 31]) {
        expect(yield* Effect.flip(PublisherLayers.make({ brokers: addresses, topic: "t", lingerMs }))).toMatchObject({
          _tag: "InvalidPublisherOptions",
          message: `invalid publisher options: lingerMs ${lingerMs} must be a number of milliseconds from 0 to ${
            2 ** 31 - 1
          }`
        })
      }
      // An address no socket can be opened to is the options' mistake, said as such (Node's connect would throw).
      for (const address of [{ host: "127.0.0.1", port: 70_000 }, { host: "", port: 7400 }, { host: "h", port: 1.5 }]) {
        const invalid = yield* Effect.flip(PublisherLayers.make({ brokers: [addresses[0]!, address], topic: "t" }))
        expect(invalid).toMatchObject({
          _tag: "InvalidPublisherOptions",
          message:
            `invalid publisher options: not a broker address: "${address.host}:${address.port}" ({ host, port }: a host and a whole port in 0..65535)`
        })
      }
      // A JavaScript caller's value of another type is named with its type, before anything connects.
      const mistyped: ReadonlyArray<[Record<string, unknown>, string]> = [
        [{ ackTimeoutMs: "1000" }, `ackTimeoutMs must be a number, not "1000" (a string)`],
        [{ maxInFlightBatches: "10" }, `maxInFlightBatches must be a number, not "10" (a string)`],
        [{ ackLevel: 7 }, "ackLevel must be 0, 1 or 2, not 7"],
        [{ adaptiveWindow: "yes" }, `adaptiveWindow must be true or false, not "yes" (a string)`],
        [{ spread: "random" }, `spread must be "round-robin" or "sticky", not "random" (a string)`],
        [
          { brokers: "127.0.0.1:7400" },
          `brokers is a list of addresses ([{ host: "127.0.0.1", port: 7400 }]), not "127.0.0.1:7400" (a string)`
        ]
      ]
      for (const [options, reason] of mistyped) {
        const made = PublisherLayers.make({ brokers: addresses, topic: "t", ...options } as PublisherOptions)
        expect(yield* Effect.flip(made)).toMatchObject({
          _tag: "InvalidPublisherOptions",
          message: `invalid publisher options: ${reason}`
        })
      }
      // A misspelt option is the caller's mistake, said with the options there are, not a default taken in silence.
      const misspelt = { brokers: addresses, topic: "t", maxInflightBatches: 4 } as PublisherOptions
      const unknown = yield* Effect.flip(PublisherLayers.make(misspelt))
      expect(unknown._tag).toBe("InvalidPublisherOptions")
      expect(unknown.message).toMatch(
        /^invalid publisher options: a publisher has no option maxInflightBatches \(its options: brokers, topic, .*maxInFlightBatches/
      )
      expect(refusal(misspelt, 10)?.message).toBe(unknown.message)
    }))

  it.scopedLive("self-clocking: a message with nothing in flight is sealed at once (at the end of its synchronous burst, with the burst), with no linger timer; one behind it goes with the ACK", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(1)
      // A linger no test would wait for: only the mechanism can send these messages.
      const p = yield* publisher({ clientId: 20, lingerMs: 60_000, ackTimeoutMs: 10_000 })
      expect(p.tryPublish(testMessage(20, 0, 64))).toBe(true)
      expect(p.stats()).toMatchObject({ batches: 0 })
      // The burst ends: one microtask later it is sealed and sent.
      yield* Effect.promise(() => Promise.resolve())
      expect(p.stats()).toMatchObject({ batches: 1, inFlight: 1 })
      // Behind batch 0 it gathers in the open batch; batch 0's ACK sends it (no flush).
      expect(yield* p.publishAcked(testMessage(20, 1, 64))).toEqual({ offset: 1 })
      expect(p.stats()).toMatchObject({ batches: 2, ackedMessages: 2 })
      // Idle again: a burst of three goes as one batch at once.
      for (let i = 2; i < 5; i++) expect(p.tryPublish(testMessage(20, i, 64))).toBe(true)
      yield* Effect.promise(() => Promise.resolve())
      expect(p.stats()).toMatchObject({ batches: 3, inFlight: 1, messages: 5 })
      expect(yield* p.publishAcked(testMessage(20, 5, 64))).toEqual({ offset: 5 })
      expect(audit(log.ordered("t"), new Map([[20, 6]]))).toEqual({ messages: 6, ...clean })
    }))

  it.scopedLive("waiting for an ACK (flush, publishAcked) starts no fiber: one callback wait per wait", () =>
    Effect.gen(function*() {
      const { publisher } = yield* cluster(1)
      const p = yield* publisher({ clientId: 22, ackTimeoutMs: 10_000 })
      // A timeout would race a sleeping fiber against the wait: count the fibers started.
      const counts = new FiberCounts()
      const roundTrips = Effect.gen(function*() {
        for (let i = 0; i < 20; i++) {
          yield* p.publish(testMessage(22, 2 * i, 64))
          yield* p.flush(10_000)
          yield* p.publishAcked(testMessage(22, 2 * i + 1, 64))
        }
      })
      yield* Effect.supervised(roundTrips, counts)
      expect(p.stats().ackedMessages).toBe(40)
      expect(counts.started).toBe(0)
    }))

  it.scopedLive("waits pending together (window room, flush, publishAcked) arm one timer between them, not one each", () =>
    Effect.gen(function*() {
      // The log takes batches and never orders them: every wait below stays pending.
      const swallow = (appender: AppenderShape): AppenderShape => ({
        ...appender,
        tryAppendWith: () => swallowed,
        appendWith: () => Effect.succeed(swallowed)
      })
      const { publisher } = yield* cluster(1, { wrap: swallow })
      const p = yield* publisher({ clientId: 23, batchBytes: 1024, maxInFlightBatches: 1, ackTimeoutMs: 60_000 })
      while (!p.stats().brokers.every((b) => b.connected)) yield* Effect.sleep("1 millis")
      yield* p.publish(testMessage(23, 0, 64))
      yield* Effect.promise(() => Promise.resolve())
      expect(p.stats().inFlight).toBe(1)
      const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length
      const before = timers()
      const waits = yield* Effect.forEach([
        ...Array.from({ length: 10 }, () => p.flush(60_000)),
        ...Array.from({ length: 10 }, (_, i) => p.publishAcked(testMessage(23, 1 + i, 64))),
        // The open batch is full: these wait for window room.
        ...Array.from({ length: 10 }, (_, i) => p.publish(testMessage(23, 11 + i, 1000)))
      ], (wait) => Effect.fork(wait))
      // A window, not a wait: none of the waits may end in it, and none may arm a timer of its own.
      yield* Effect.sleep("20 millis")
      expect(waits.map((fiber) => fiber.unsafePoll())).toEqual(waits.map(() => null))
      expect(timers() - before).toBeLessThanOrEqual(1)
      yield* Fiber.interruptAll(waits)
    }))

  it.scopedLive("a burst of batches behind one in flight arms one linger timer between them, and none while the window is full", () =>
    Effect.gen(function*() {
      // Nothing is ever acknowledged: every batch but the first waits behind it.
      const swallow = (appender: AppenderShape): AppenderShape => ({
        ...appender,
        tryAppendWith: () => swallowed,
        appendWith: () => Effect.succeed(swallowed)
      })
      const { publisher } = yield* cluster(1, { wrap: swallow })
      /** Timers created by one synchronous burst behind one batch in flight: batches fill and seal until the window is full, then the open one fills. */
      const timersOfBurst = (clientId: number, window: number) =>
        Effect.gen(function*() {
          const p = yield* publisher({
            clientId,
            batchBytes: 1024,
            maxInFlightBatches: window,
            lingerMs: 60_000,
            ackTimeoutMs: 60_000
          })
          while (!p.stats().brokers.every((b) => b.connected)) yield* Effect.sleep("1 millis")
          expect(p.tryPublish(testMessage(clientId, 0, 100))).toBe(true)
          yield* Effect.promise(() => Promise.resolve())
          expect(p.stats()).toMatchObject({ batches: 1, inFlight: 1 })
          let created = 0
          const hook = createHook({ init: (_id, type) => void (type === "Timeout" && created++) })
          hook.enable()
          let seq = 1
          while (p.tryPublish(testMessage(clientId, seq, 100)) === true) seq++
          hook.disable()
          expect(p.stats().inFlight).toBe(window)
          return created
        })
      expect(yield* timersOfBurst(24, 30)).toBe(1)
      // The window is full from the start: the ACK that frees it sends the open batch, no timer.
      expect(yield* timersOfBurst(26, 1)).toBe(0)
    }))

  it.scopedLive("a batch that opens while the linger timer runs for an earlier one waits its own lingerMs", () =>
    Effect.gen(function*() {
      const swallow = (appender: AppenderShape): AppenderShape => ({
        ...appender,
        tryAppendWith: () => swallowed,
        appendWith: () => Effect.succeed(swallowed)
      })
      const { publisher } = yield* cluster(1, { wrap: swallow })
      // Long enough that a stalled test process (a loaded CI machine) still checks between the two due times.
      const p = yield* publisher({
        clientId: 25,
        batchBytes: 1024,
        maxInFlightBatches: 8,
        lingerMs: 3_000,
        ackTimeoutMs: 60_000
      })
      while (!p.stats().brokers.every((b) => b.connected)) yield* Effect.sleep("1 millis")
      expect(p.tryPublish(testMessage(25, 0, 100))).toBe(true)
      yield* Effect.promise(() => Promise.resolve())
      // Batch 1 opens: the timer is armed for its due time, 3 000 ms from now.
      const opened = performance.now()
      let seq = 1
      expect(p.tryPublish(testMessage(25, seq++, 100))).toBe(true)
      // The scenario's pace (the linger timer is the subject): batch 2 opens 1.8 s into batch 1's linger.
      yield* Effect.sleep("1800 millis")
      // Batch 1 fills and seals; batch 2 opens behind it, due 3 000 ms from now.
      while (p.stats().batches < 2) expect(p.tryPublish(testMessage(25, seq++, 100))).toBe(true)
      expect(p.tryPublish(testMessage(25, seq++, 100))).toBe(true)
      // A window, not a wait: past batch 1's due time, before batch 2's, the timer fired and waits on; batch 2 must not seal.
      yield* Effect.sleep(`${Math.max(0, opened + 3_900 - performance.now())} millis`)
      expect(p.stats().batches).toBe(2)
      const sealedBy = performance.now() + 5_000
      while (p.stats().batches < 3 && performance.now() < sealedBy) yield* Effect.sleep("10 millis")
      expect(p.stats()).toMatchObject({ batches: 3, messages: seq })
    }))

  it.scopedLive("self-clocking under load: batches still fill, and the last one goes out with an ACK, not a timer", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(2)
      const p = yield* publisher({
        clientId: 21,
        lingerMs: 60_000,
        ackTimeoutMs: 10_000,
        batchBytes: 8192,
        maxInFlightBatches: 2
      })
      yield* publishTestMessages(p, 21, 5_000, 100)
      expect(yield* p.publishAcked(testMessage(21, 5_000, 64))).toEqual({ offset: 5_000 })
      const stats = p.stats()
      expect(stats.ackedMessages).toBe(5_001)
      expect(stats.messages / stats.batches).toBeGreaterThan(20)
      expect(audit(log.ordered("t"), new Map([[21, 5_001]]))).toEqual({ messages: 5_001, ...clean })
    }))

  it.scopedLive("publishAcked gives each message its offset in the total order, across brokers and publishers", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(3)
      const run = (client: number, count: number) =>
        Effect.gen(function*() {
          const p = yield* publisher({ clientId: client, batchBytes: 1024, maxInFlightBatches: 4 })
          // Acked and plain messages mixed in the same batches.
          const acked = yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) =>
            i % 3 === 0
              ? p.publishAcked(testMessage(client, i, 8 + (i * 37) % 300))
              : Effect.as(p.publish(testMessage(client, i, 8 + (i * 37) % 300)), undefined), { concurrency: 32 })
          yield* p.flush(10_000)
          return acked
        })
      const [a, b] = yield* Effect.all([run(30, 1_000), run(31, 1_000)], { concurrency: 2 })
      const offsets = offsetsOf(log.ordered("t"))
      expect(offsets.size).toBe(2_000)
      for (const [client, acks] of [[30, a], [31, b]] as const) {
        acks.forEach((ack, i) => {
          if (ack !== undefined) expect([i, ack.offset]).toEqual([i, offsets.get(`${client}/${i}`)])
        })
      }
    }))

  it.scopedLive("round-robin spreads batches in flight together over every broker, and sends a lone batch to the publisher's home broker", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(3)
      // Client 22's home: 22 % 3 = broker 1 (not the first, so a rule that starts from 0 fails).
      const p = yield* publisher({ clientId: 22, batchBytes: 1024 })
      const sent = () => p.stats().brokers.map((b) => b.sent)
      // Until the session is open on every link a batch goes to the first one after home where it is: wait for all three.
      yield* Effect.repeat(Effect.sync(() => p.stats().brokers.filter((b) => b.sessions === 1).length), {
        until: (open) => open === 3,
        schedule: Schedule.spaced("5 millis")
      })
      // A closed loop: each message waits for its ACK, so every batch is alone in flight.
      for (let i = 0; i < 30; i++) yield* p.publishAcked(testMessage(22, i, 64))
      const lone = sent()
      expect(lone).toEqual([0, 30, 0])
      // A stream: 1 KiB batches, many in flight at once.
      yield* publishTestMessages(p, 22, 3_000, 100, 30)
      yield* p.flush(10_000)
      const streamed = sent().map((n, i) => n - lone[i]!)
      expect(streamed.every((n) => n > 0)).toBe(true)
      // Alone again: back home, wherever the stream's last batch went.
      const before = sent()
      for (let i = 3_030; i < 3_050; i++) yield* p.publishAcked(testMessage(22, i, 64))
      expect(sent().map((n, i) => n - before[i]!)).toEqual([0, 20, 0])
      expect(audit(log.ordered("t"), new Map([[22, 3_050]]))).toEqual({ messages: 3_050, ...clean })
    }))

  it.scopedLive("the Promise facade publishes, flushes and closes", () =>
    Effect.gen(function*() {
      const { log, addresses } = yield* cluster(2)
      yield* Effect.promise(async () => {
        // A region without a secret file: the local user's default one, if some head made it, would ask for brokers that authenticate.
        const client = await CxlogPublisher.open({ ...anonymous, brokers: addresses, topic: "t", clientId: 10 })
        for (let i = 0; i < 500; i++) await client.publish(testMessage(10, i, 64))
        await client.publish("a string works too")
        // Asked for, the promise resolves at the ACK with the message's offset (no flush).
        expect(await client.publish(testMessage(10, 500, 64), { acked: true })).toEqual({ offset: 501 })
        await client.flush(5_000)
        expect(client.stats().ackedMessages).toBe(502)
        await client.close()
        await expect(client.publish(new Uint8Array(8))).rejects.toMatchObject({ _tag: "PublisherClosed" })
      })
      expect(audit(log.ordered("t"), new Map([[10, 501]]))).toEqual({ messages: 501, ...clean })
    }))

  it.scopedLive("a value, key or header that is not bytes is refused InvalidMessage at the call: nothing is sent, the publisher goes on", () =>
    Effect.gen(function*() {
      const { brokers, log, publisher } = yield* cluster(1)
      const p = yield* publisher({ clientId: 12, batchBytes: 1024 })
      const refusedWith = (reason: string) => ({ _tag: "InvalidMessage", message: `invalid message: ${reason}` })
      const notBytes = [
        [12345, "a number"],
        [null, "null"],
        [[1, 2, 3], "an array"],
        [{ a: 1 }, "an object"],
        [new ArrayBuffer(8), "an ArrayBuffer"]
      ] as const
      for (const [value, kind] of notBytes) {
        const reason = `its value is ${kind}, not bytes: publish a Uint8Array (CxlogPublisher also takes a string)`
        expect(p.tryPublish(value as unknown as Uint8Array)).toMatchObject(refusedWith(reason))
        expect(yield* Effect.flip(p.publish(value as unknown as Uint8Array))).toMatchObject(refusedWith(reason))
        expect(yield* Effect.flip(p.publishAcked(value as unknown as Uint8Array))).toMatchObject(refusedWith(reason))
      }
      const bytes = testMessage(12, 0, 64)
      expect(yield* Effect.flip(p.publish(bytes, { key: 7 as unknown as string }))).toMatchObject(
        refusedWith("its key is a number, not a string or bytes")
      )
      expect(yield* Effect.flip(p.publish(bytes, { headers: { trace: 1 as unknown as string } }))).toMatchObject(
        refusedWith("a header is not a name (a string) and a value (a string or bytes): \"trace\" = a number")
      )
      expect(yield* Effect.flip(p.publish(bytes, { headers: "x=1" as unknown as Record<string, string> })))
        .toMatchObject(
          refusedWith("its headers are a string: give [name, value] pairs or an object of name to value")
        )
      // Nothing reached the broker; a message that is bytes goes as ever.
      expect(brokers[0]!.server.stats()).toMatchObject({ batches: 0, rejected: {} })
      yield* publishTestMessages(p, 12, 10, 64)
      yield* p.flush(10_000)
      expect(audit(log.ordered("t"), new Map([[12, 10]]))).toEqual({ messages: 10, ...clean })
      expect(brokers[0]!.server.stats().rejected).toEqual({})
      // The Promise facade refuses the same, and takes a string as bytes.
      yield* Effect.promise(async () => {
        const client = await CxlogPublisher.open({
          ...anonymous,
          brokers: [{ host: "127.0.0.1", port: brokers[0]!.server.port }],
          topic: "t"
        })
        await expect(client.publish(12345 as unknown as string)).rejects.toMatchObject({ _tag: "InvalidMessage" })
        // Options that are no object, or an acked that is no boolean, would be read as no ACK wanted: refused.
        const lax = client.publish as (payload: string, options: unknown) => Promise<unknown>
        await expect(lax.call(client, "x", "acked")).rejects.toMatchObject(
          refusedWith("its options are a string, not an object ({ key, headers, topic, acked })")
        )
        await expect(lax.call(client, "x", { acked: "yes" })).rejects.toMatchObject(
          refusedWith("its acked is a string, not true or false")
        )
        await client.publish("a string")
        await client.close()
        expect(client.stats().messages).toBe(1)
      })
    }))

  it.effect("layerConfig reads the CXLOG_* names", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<readonly [string, string]>) =>
        PublisherLayers.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries))))
      expect(
        yield* read([["CXLOG_BROKERS", "10.0.0.1:7400,7401"], ["CXLOG_TOPIC", "events"], ["CXLOG_ACK_LEVEL", "2"], [
          "CXLOG_CLIENT_ID",
          "42"
        ]])
      ).toEqual({
        brokers: [{ host: "10.0.0.1", port: 7400 }, { host: "127.0.0.1", port: 7401 }],
        topic: "events",
        clientId: 42,
        ackLevel: 2,
        batchBytes: 65536,
        lingerMs: 1,
        maxInFlightBatches: 256,
        spread: "round-robin"
      })
      expect((yield* read([["CXLOG_TOPIC", "events"]]).pipe(Effect.flip))._op).toBe("MissingData")
      expect((yield* read([["CXLOG_BROKERS", "nope:x"], ["CXLOG_TOPIC", "events"]]).pipe(Effect.flip))._op).toBe(
        "InvalidData"
      )
      // A list with no address in it is refused as cxlog publish refuses it, naming the variable.
      for (const blank of [" ", ","]) {
        const refused = yield* read([["CXLOG_BROKERS", blank]]).pipe(Effect.flip)
        expect(refused._op).toBe("InvalidData")
        expect(String(refused)).toContain(
          `CXLOG_BROKERS: "no broker address in ${JSON.stringify(blank)} (host:port,…)"`
        )
      }
    }))
})
