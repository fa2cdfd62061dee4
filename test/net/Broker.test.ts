import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Deferred, Effect, Layer, Schedule } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { PROTOCOL_VERSION, SessionOpen, sessionOpenFrame } from "../../src/layers/net/Control.js"
import { encodeFrame, FRAME_HEADER_BYTES, FrameType, writeHeader } from "../../src/layers/net/Frame.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { crc32c } from "../../src/native/Crc32c.js"
import { AckTracker } from "../../src/services/log/AckTracker.js"
import { Appender, type AppenderShape } from "../../src/services/log/Appender.js"
import { Topics } from "../../src/services/log/Topics.js"
import { Broker, type BrokerLog, type BrokerOptions } from "../../src/services/net/Broker.js"
import { countingAcks } from "../fixtures/counting-acks.js"
import { drain, recordValue, regionCluster } from "../fixtures/log-harness.js"
import {
  ackOrders,
  batchFrame,
  epochOf,
  errorCode,
  hello,
  openedEpoch,
  rawConnect
} from "../fixtures/net-raw-client.js"

const message = (n: number) => new Uint8Array(24).fill(n & 0xff)

/** An open broker (these tests are about the wire, not authentication) over a fresh memory log; returns both. */
const broker = (options: BrokerOptions = {}, holdTimeoutMs = 5_000, brokerId = 0) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], holdTimeoutMs })
    const server = yield* BrokerLayers.make({ insecure: true, ...options }).pipe(
      Effect.provide(BrokerLogLayers.layerMemory(log, brokerId))
    )
    return { log, server }
  })

/** Brokers 0 and 1 over one in-memory log with topic "t". */
const twoBrokers = Effect.gen(function*() {
  const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
  const b0 = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(BrokerLogLayers.layerMemory(log, 0)))
  const b1 = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(BrokerLogLayers.layerMemory(log, 1)))
  return { log, b0, b1 }
})

describe("Broker", () => {
  it.scopedLive("handshake, then cumulative ACKs coalesced over a fast stream of batches", () =>
    Effect.gen(function*() {
      const { log, server } = yield* broker({}, 5_000, 3)
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 11))
      const welcome = yield* client.nextFrame()
      expect(welcome.type).toBe(FrameType.WELCOME)
      expect(JSON.parse(Buffer.from(welcome.payload).toString())).toMatchObject({
        protocol: PROTOCOL_VERSION,
        brokerId: 3
      })
      // The SESSION_OPEN registered a new session: the log handed out its epoch.
      const epoch = epochOf(yield* client.nextFrame())
      expect(epoch).toBeGreaterThan(0)
      const batches = 200
      client.write(
        Buffer.concat(
          Array.from({ length: batches }, (_, seq) => batchFrame(11, epoch, seq, [message(seq), message(seq + 1)]))
        )
      )
      let acked = 0
      let ackFrames = 0
      while (acked < batches) {
        const frame = yield* client.nextFrame()
        expect(frame.type).toBe(FrameType.ACK)
        expect(frame.seq).toBeGreaterThan(acked)
        expect([frame.clientId, frame.sessionEpoch, frame.messageCount]).toEqual([11, epoch, 1])
        acked = frame.seq
        ackFrames++
      }
      expect(ackFrames).toBeLessThan(batches / 2)
      expect(server.stats()).toMatchObject({ batches, messages: 2 * batches, ackFrames })
      expect(log.ordered("t").map((b) => b.batchSeq)).toEqual(Array.from({ length: batches }, (_, i) => i))
      expect(log.ordered("t")[5]!.broker).toBe(3)
    }))

  it.scopedLive("ACKs name every carried batch's total order before their frontier covers it, split past 256 batches a frame", () =>
    Effect.gen(function*() {
      // One ACK, then a pause: the next ACK covers hundreds of batches.
      const { server } = yield* broker({ ackIntervalMs: 500 })
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 12))
      const epoch = yield* openedEpoch(client)
      const batches = 1_000
      client.write(
        Buffer.concat(
          Array.from({ length: batches }, (_, seq) => batchFrame(12, epoch, seq, [message(seq), message(seq + 1)]))
        )
      )
      const orders = new Map<number, number>()
      let acked = 0
      let largest = 0
      while (acked < batches) {
        const frame = yield* client.nextFrame()
        expect(frame.type).toBe(FrameType.ACK)
        const pairs = ackOrders(frame)
        largest = Math.max(largest, pairs.length)
        // Named no later than the frame whose frontier covers them.
        for (const [seq, order] of pairs) {
          expect(seq).toBeGreaterThanOrEqual(acked)
          orders.set(seq, order)
        }
        expect(frame.seq).toBeGreaterThanOrEqual(acked)
        acked = frame.seq
        for (let seq = 0; seq < acked; seq++) expect(orders.has(seq)).toBe(true)
      }
      expect([...orders]).toEqual(Array.from({ length: batches }, (_, seq) => [seq, 2 * seq]))
      expect(largest).toBe(256)
    }))

  it.scopedLive("an idle connection's ACK tracker sleeps until the topic moves: no periodic re-reads", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      // A connection's tracker reads its session's frontiers through its watch: counted.
      const { context: counting, counts } = countingAcks(log, 0)
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(counting))
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 13))
      const epoch = yield* openedEpoch(client)
      client.write(batchFrame(13, epoch, 0, [message(0)]))
      expect((yield* client.nextFrame()).seq).toBe(1)
      yield* log.settle
      // A window, not a wait: longer than the old 1 s re-check, and an idle tracker reads nothing in it.
      const before = counts.reads
      yield* Effect.sleep("1500 millis")
      expect(counts.reads).toBe(before)
      // And it still wakes when the topic moves.
      client.write(batchFrame(13, epoch, 1, [message(1)]))
      expect((yield* client.nextFrame()).seq).toBe(2)
    }))

  it.scopedLive("the ACK is per session across brokers: each connection that carried a batch learns the shared frontier", () =>
    Effect.gen(function*() {
      const { log, b0, b1 } = yield* twoBrokers
      const c0 = yield* rawConnect(b0.port)
      const c1 = yield* rawConnect(b1.port)
      const c2 = yield* rawConnect(b1.port)
      // c0 registers the session; the others attach to it.
      c0.write(hello("t", 5, undefined, 2))
      const epoch = yield* openedEpoch(c0)
      for (const c of [c1, c2]) c.write(hello("t", 5, epoch, 2))
      for (const c of [c1, c2]) expect(yield* openedEpoch(c)).toBe(epoch)
      c1.write(batchFrame(5, epoch, 1, [message(1)]))
      // Batch 1 waits for 0 in the log before 0 is sent (a fixed pause let a slow machine order 0 alone first).
      while (log.stats("t").held < 1) yield* Effect.sleep("5 millis")
      c0.write(batchFrame(5, epoch, 0, [message(0)]))
      const ack0 = yield* c0.nextFrame()
      const ack1 = yield* c1.nextFrame()
      expect([ack0.type, ack0.seq, ack0.messageCount]).toEqual([FrameType.ACK, 2, 2])
      expect([ack1.type, ack1.seq]).toEqual([FrameType.ACK, 2])
      // Each ACK names the total order of the batches its connection carried, and only those.
      expect(ackOrders(ack0)).toEqual([[0, 0]])
      expect(ackOrders(ack1)).toEqual([[1, 1]])
      // c2 carried nothing, so it is not sent ACKs it has no use for (a window, not a wait: none may come in it).
      yield* Effect.sleep("30 millis")
      expect(yield* c2.frames.size).toBe(0)
    }))

  it.scopedLive("a connection gets no ACK for a frontier that covers none of its batches (other brokers' batches moved it)", () =>
    Effect.gen(function*() {
      const { log, b0, b1 } = yield* twoBrokers
      const c0 = yield* rawConnect(b0.port)
      const c1 = yield* rawConnect(b1.port)
      c0.write(hello("t", 6))
      const epoch = yield* openedEpoch(c0)
      c1.write(hello("t", 6, epoch))
      expect(yield* openedEpoch(c1)).toBe(epoch)
      c1.write(batchFrame(6, epoch, 0, [message(0)]))
      expect((yield* c1.nextFrame()).seq).toBe(1)
      // The session's frontier moves to 3 with b0's batches while c1 has nothing in flight.
      for (const seq of [1, 2]) {
        c0.write(batchFrame(6, epoch, seq, [message(seq)]))
        expect((yield* c0.nextFrame()).seq).toBe(seq + 1)
      }
      // c1's next batch is held (3 is missing): frontier 3 is past what c1 was sent, but covers nothing it carries.
      c1.write(batchFrame(6, epoch, 4, [message(4)]))
      while (log.stats("t").held < 1) yield* Effect.sleep("5 millis")
      c0.write(batchFrame(6, epoch, 3, [message(3)]))
      const ack = yield* c1.nextFrame()
      expect([ack.type, ack.seq]).toEqual([FrameType.ACK, 5])
      expect(ackOrders(ack)).toEqual([[4, 4]])
    }))

  it.scopedLive("ack level 0 sends no ACK frames", () =>
    Effect.gen(function*() {
      const { log, server } = yield* broker()
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 1, undefined, 0))
      const epoch = yield* openedEpoch(client)
      client.write(Buffer.concat([batchFrame(1, epoch, 0, [message(0)]), batchFrame(1, epoch, 1, [message(1)])]))
      while (log.ordered("t").length < 2) yield* Effect.sleep("5 millis")
      // A window, not a wait: both batches are ordered; no ACK frame may come in it.
      yield* Effect.sleep("30 millis")
      expect(yield* client.frames.size).toBe(0)
    }))

  it.scopedLive("a gap held past the hold timeout gets SESSION_FENCED with the committed frontier", () =>
    Effect.gen(function*() {
      const { server } = yield* broker({}, 50)
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 9))
      const epoch = yield* openedEpoch(client)
      client.write(
        Buffer.concat([
          batchFrame(9, epoch, 0, [message(0)]),
          batchFrame(9, epoch, 1, [message(1)]),
          batchFrame(9, epoch, 3, [message(3)])
        ])
      )
      let frame = yield* client.nextFrame()
      while (frame.type === FrameType.ACK) frame = yield* client.nextFrame()
      expect([frame.type, frame.clientId, frame.sessionEpoch, frame.seq]).toEqual([
        FrameType.SESSION_FENCED,
        9,
        epoch,
        2
      ])
      expect(server.stats().fencedFrames).toBe(1)
    }))

  it.scopedLive("at ACK 2 a fenced session's SESSION_FENCED waits until what was ordered is on disk (it counts as done)", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({
        topics: [{ name: "d", ackLevel: 2, replicationFactor: 2 }],
        holdTimeoutMs: 50
      })
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const client = yield* rawConnect(server.port)
      client.write(hello("d", 9, undefined, 2))
      const epoch = yield* openedEpoch(client)
      // Batches 0 and 1 are ordered, 3 waits for 2 past the hold timeout: fenced at 2, with nothing on disk yet.
      client.write(
        Buffer.concat([
          batchFrame(9, epoch, 0, [message(0)]),
          batchFrame(9, epoch, 1, [message(1)]),
          batchFrame(9, epoch, 3, [message(3)])
        ])
      )
      const early = yield* Effect.either(Effect.timeout(client.nextFrame(), "500 millis"))
      expect(early._tag).toBe("Left")
      // The durable tier covers batches 0 and 1: the ACK at level 2, then the fence.
      const topic = log.store.topics.find((t) => t.info.name === "d")!
      expect(topic.sessions.setDurable(9, epoch, 2)).toBe(true)
      topic.progress++
      log.store.signal.notify()
      const ack = yield* client.nextFrame()
      expect([ack.type, ack.seq]).toEqual([FrameType.ACK, 2])
      const fenced = yield* client.nextFrame()
      expect([fenced.type, fenced.seq]).toEqual([FrameType.SESSION_FENCED, 2])
    }))

  /** Each bad input, given the epoch of client 1's registered session. */
  const badInputs: ReadonlyArray<readonly [string, string, (epoch: number) => ReadonlyArray<Uint8Array>]> = [
    ["garbage", "bad-magic", () => [new Uint8Array(64).fill(0x41)]],
    ["a batch before the handshake", "unexpected-frame", (e) => [batchFrame(1, e, 0, [message(0)])]],
    ["a HELLO whose JSON does not decode", "bad-handshake", () => [
      encodeFrame(
        { type: FrameType.HELLO, clientId: 1, sessionEpoch: 0, seq: 0, messageCount: 0 },
        Buffer.from("{\"protocol\":1,\"topic\":7}")
      )
    ]],
    ["another protocol version", "version-mismatch", (e) => [hello("t", 1, e, 1, PROTOCOL_VERSION + 1)]],
    ["another wire version", "version-mismatch", (e) => {
      const frame = hello("t", 1, e)
      frame[1] = 2
      return [frame]
    }],
    ["a wrong crc32c", "bad-crc", (e) => {
      const frame = batchFrame(1, e, 0, [message(0)])
      frame[FRAME_HEADER_BYTES + 9] ^= 0xff
      return [hello("t", 1, e), frame]
    }],
    ["an oversized length", "oversized", (e) => {
      const header = new Uint8Array(FRAME_HEADER_BYTES)
      writeHeader(header, 0, {
        type: FrameType.BATCH,
        clientId: 1,
        sessionEpoch: e,
        seq: 0,
        messageCount: 1,
        payloadBytes: 2 ** 31,
        crc32c: 0
      })
      return [hello("t", 1, e), header]
    }],
    [
      "a batch of another session",
      "session-mismatch",
      (e) => [hello("t", 1, e), batchFrame(1, e + 1000, 0, [message(0)])]
    ],
    ["a batch whose messages do not add up", "bad-batch", (e) => {
      const frame = batchFrame(1, e, 0, [message(0), message(1)])
      frame.writeUInt32LE(3, 20)
      return [hello("t", 1, e), frame]
    }],
    ["a second HELLO", "unexpected-frame", (e) => [hello("t", 1, e), hello("t", 1, e)]],
    [
      "a session id that does not increase",
      "bad-handshake",
      (e) => [hello("t", 1, e), sessionOpenFrame(1, e, new SessionOpen({ topic: "t" }))]
    ],
    [
      "a batch of a session id never opened",
      "session-mismatch",
      (e) => [hello("t", 1, e), batchFrame(2, e, 0, [message(0)])]
    ]
  ]

  for (const [what, code, input] of badInputs) {
    it.scopedLive(`${what}: ERROR ${code}, that connection closed, the others served`, () =>
      Effect.gen(function*() {
        const { log, server } = yield* broker()
        const good = yield* rawConnect(server.port)
        good.write(hello("t", 100))
        const goodEpoch = yield* openedEpoch(good)
        const badEpoch = yield* log.appender(0).registerSession("t", 1)
        const bad = yield* rawConnect(server.port)
        for (const bytes of input(badEpoch)) bad.write(bytes)
        const frames = yield* Deferred.await(bad.closed)
        expect(errorCode(frames[frames.length - 1])).toBe(code)
        expect(server.stats().rejected[code as "bad-crc"]).toBe(1)
        good.write(batchFrame(100, goodEpoch, 0, [message(7)]))
        expect((yield* good.nextFrame()).seq).toBe(1)
        expect(log.ordered("t").filter((b) => b.clientId !== 100)).toEqual([])
      }))
  }

  it.scopedLive("a frame cut short by the end of the stream: ERROR truncated, nothing appended", () =>
    Effect.gen(function*() {
      const { log, server } = yield* broker()
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 1))
      const frame = batchFrame(1, yield* openedEpoch(client), 0, [message(0)])
      client.socket.end(frame.subarray(0, frame.length - 5))
      const frames = yield* Deferred.await(client.closed)
      expect(errorCode(frames[frames.length - 1])).toBe("truncated")
      expect(log.ordered("t")).toEqual([])
    }))

  it.scopedLive("a silent connection is dropped after the handshake timeout; past maxConnections, refused", () =>
    Effect.gen(function*() {
      // A connection that has said nothing holds its slot: the next one is refused. (Its handshake timeout is out of the
      // way: with both on one 50 ms timer, a machine that took longer to connect the second saw the first dropped first.)
      const { server: patient } = yield* broker({ handshakeTimeoutMs: 60_000, maxConnections: 1 })
      yield* rawConnect(patient.port)
      while (patient.stats().connections < 1) yield* Effect.sleep("5 millis")
      const extra = yield* rawConnect(patient.port)
      expect(errorCode((yield* Deferred.await(extra.closed))[0])).toBe("too-many-connections")
      const { server } = yield* broker({ handshakeTimeoutMs: 50 })
      const silent = yield* rawConnect(server.port)
      const timedOut = (yield* Deferred.await(silent.closed))[0]
      expect(errorCode(timedOut)).toBe("handshake-timeout")
      expect(Buffer.from(timedOut!.payload).toString()).toContain(
        "the handshake (HELLO, then AUTH when the broker authenticates) did not finish within 50 ms"
      )
    }))

  it.scopedLive("a fast client against a stalled log: the socket is paused, the broker's queue stays bounded", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const gate = yield* Deferred.make<void>()
      const memory = log.appender(0)
      // No room until the gate opens: the fast path declines, the waiting path waits for the gate.
      let open = false
      const stalled: AppenderShape = {
        ...memory,
        tryAppendWith: (...args) => (open ? memory.tryAppendWith(...args) : "wait"),
        appendWith: (...args) => Effect.zipRight(Deferred.await(gate), memory.appendWith(...args))
      }
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(Context.add(log.forBroker(0), Appender, stalled))
      )
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 1))
      const epoch = yield* openedEpoch(client)
      const batches = 512
      const payload = new Uint8Array(60_000)
      for (let seq = 0; seq < batches; seq++) client.write(batchFrame(1, epoch, seq, [payload]))
      // Until the broker holds the stalled batch and the rest backs up in the client (bounded).
      yield* Effect.repeat(
        Effect.sync(() => server.stats().queuedBytes > 0 && client.socket.writableLength > 8 << 20),
        { until: (settled) => settled, schedule: Schedule.spaced("5 millis") }
      ).pipe(Effect.timeout("10 seconds"))
      expect(server.stats().queuedBytes).toBeGreaterThan(0)
      // The batch waiting for room and at most the next frame's header: reading stops meanwhile, the kernel holds the rest.
      // (One message of 60 000 bytes makes a payload of 60 016: its record header and the batch's base timestamp.)
      expect(server.stats().queuedBytes).toBeLessThanOrEqual(60_016 + FRAME_HEADER_BYTES)
      expect(client.socket.writableLength).toBeGreaterThan(8 << 20)
      open = true
      yield* Deferred.succeed(gate, undefined)
      let acked = 0
      while (acked < batches) acked = (yield* client.nextFrame(10_000)).seq
      expect(log.ordered("t").length).toBe(batches)
    }))

  it.scopedLive("closing the broker's scope closes its connections and stops listening", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const { port, client } = yield* Effect.scoped(
        Effect.gen(function*() {
          const server = yield* Broker
          const client = yield* rawConnect(server.port)
          client.write(hello("t", 1))
          expect((yield* client.nextFrame()).type).toBe(FrameType.WELCOME)
          return { port: server.port, client }
        }).pipe(
          Effect.provide(
            BrokerLayers.layer({ insecure: true }).pipe(Layer.provide(BrokerLogLayers.layerMemory(log, 0)))
          )
        )
      )
      yield* Deferred.await(client.closed)
      expect((yield* Effect.flip(rawConnect(port))).message).toMatch(/ECONNREFUSED/)
    }))

  it.scopedLive("over the region: batches cut into many socket chunks are gathered straight into the Blog, intact and in order", () =>
    Effect.gen(function*() {
      const cluster = yield* regionCluster(CxlMemoryLayers.make)()
      yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
      const appender = yield* cluster.appender(0)
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provideService(Appender, appender),
        Effect.provideService(AckTracker, cluster.acks),
        Effect.provideService(Topics, cluster.topics)
      )
      const client = yield* rawConnect(server.port)
      client.socket.setNoDelay(true)
      client.write(hello("t", 21))
      const epoch = yield* openedEpoch(client)
      const messages = (seq: number) =>
        Array.from({ length: 12 }, (_, i) => new Uint8Array(1000 + i).map((_, k) => (seq * 13 + i * 7 + k) & 0xff))
      const frames = [0, 1, 2].map((seq) => batchFrame(21, epoch, seq, messages(seq)))
      // Every frame goes out in pieces of 700 bytes (headers and message headers cut too), each its own TCP segment.
      for (const frame of frames) {
        for (let at = 0; at < frame.length; at += 700) {
          client.write(frame.subarray(at, at + 700))
          yield* Effect.sleep("1 millis")
        }
      }
      const sequencer = yield* cluster.sequencer()
      let acked = 0
      const orders: Array<[number, number]> = []
      while (acked < 3) {
        yield* drain(sequencer)
        const frame = yield* client.nextFrame(200).pipe(Effect.option)
        if (frame._tag === "Some") {
          acked = frame.value.seq
          orders.push(...ackOrders(frame.value))
        }
      }
      // The ACKs name each batch's total order, read from its PBR slot's sequencer line.
      expect(orders).toEqual([[0, 0], [1, 12], [2, 24]])
      const cursor = yield* cluster.reader.subscribe("t", { from: "earliest" })
      const read: Array<{ seq: number; crcOk: boolean; payloads: Array<Array<number>> }> = []
      yield* cursor.pollBatches((b) =>
        read.push({ seq: b.batchSeq, crcOk: crc32c(b.bytes, b.offset, b.length) === b.crc32c, payloads: [] })
      )
      yield* (yield* cluster.reader.subscribe("t", { from: "earliest" })).poll((m) =>
        read[m.batch.batchSeq]!.payloads.push([...recordValue(m)])
      )
      expect(read.map((b) => [b.seq, b.crcOk])).toEqual([[0, true], [1, true], [2, true]])
      expect(read.map((b) => b.payloads)).toEqual([0, 1, 2].map((seq) => messages(seq).map((m) => [...m])))
      expect(server.stats()).toMatchObject({ batches: 3, messages: 36, rejected: {} })
    }))

  it.scopedLive("authentication is the default: a broker given no credentials refuses to start unless told insecure (make, layer, layerConfig)", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const refused = yield* Effect.flip(
        BrokerLayers.make({}).pipe(Effect.provide(BrokerLogLayers.layerMemory(log, 0)))
      )
      expect(refused).toMatchObject({ _tag: "BrokerListenFailed", host: "127.0.0.1" })
      expect(refused.message).toBe(
        "broker cannot listen on 127.0.0.1:0: no credentials: give `credentials` (a credential file: docs/security.md), or `insecure: true` to let every client in"
      )
      const brokerOf = <E>(layer: Layer.Layer<Broker, E, BrokerLog>) =>
        Effect.scoped(
          Effect.map(Broker, (b) => b.port).pipe(
            Effect.provide(layer.pipe(Layer.provide(BrokerLogLayers.layerMemory(log, 0))))
          )
        )
      expect(yield* Effect.flip(brokerOf(BrokerLayers.layer({ port: 0 })))).toMatchObject({
        _tag: "BrokerListenFailed"
      })
      const fromEnvironment = (env: Record<string, string>) =>
        brokerOf(BrokerLayers.layerConfig).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ CXLOG_BROKER_PORT: "0", ...env }))))
        )
      expect(yield* Effect.flip(fromEnvironment({}))).toMatchObject({ _tag: "BrokerListenFailed" })
      expect(yield* fromEnvironment({ CXLOG_INSECURE: "true" })).toBeGreaterThan(0)
      // Told insecure, it lets a client in without a handshake's authentication step.
      const open = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const client = yield* rawConnect(open.port)
      client.write(hello("t", 1))
      expect((yield* client.nextFrame()).type).toBe(FrameType.WELCOME)
    }))
})
