/**
 * Subscribing over TCP, past the contract: bad requests get typed ERROR frames while the broker
 * serves everyone else; a batch torn in flight is never delivered; a subscriber that stops
 * reading holds up only itself.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Option, Stream } from "effect"
import { createServer, type Socket } from "node:net"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { decodeControl, ErrorBody, errorFrame, PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { encodeFrame, FRAME_HEADER_BYTES, FrameType } from "../../src/layers/net/Frame.js"
import {
  creditFrame,
  Subscribe,
  Subscribed,
  subscribedFrame,
  subscribeFrame,
  writeDataHeader
} from "../../src/layers/net/SubscribeFrames.js"
import { makeRemote } from "../../src/layers/net/SubscriberRemote.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { crc32c } from "../../src/native/Crc32c.js"
import { AckTracker } from "../../src/services/log/AckTracker.js"
import { Appender } from "../../src/services/log/Appender.js"
import { LogReader } from "../../src/services/log/LogReader.js"
import { Topics } from "../../src/services/log/Topics.js"
import type { Subscription } from "../../src/services/net/Subscriber.js"
import { header, makeMessageBatch, regionCluster, SMALL_BLOG_BYTES } from "../fixtures/log-harness.js"
import { batchFrame, errorCode, hello, openedEpoch, rawConnect } from "../fixtures/net-raw-client.js"

const subscribe = (topic: string, from: Subscribe["from"] = "earliest", credit = 16, protocol = PROTOCOL_VERSION) =>
  subscribeFrame(new Subscribe({ protocol, topic, from, credit }))

/** The ERROR frame's body. */
const errorBody = (payload: Uint8Array) => {
  const body = decodeControl(ErrorBody, payload, "internal")
  if (Either.isLeft(body)) throw new Error(body.left.message)
  return body.right
}

const pullOne = (subscription: Subscription) =>
  Effect.map(Stream.toPull(subscription.batches), (pull) =>
    pull.pipe(
      Effect.map(Chunk.unsafeHead),
      Effect.catchAll((e) => (Option.isSome(e) ? Effect.fail(e.value) : Effect.dieMessage("the stream ended")))
    ))

describe("Subscribing over TCP", () => {
  it.scopedLive("bad subscribe requests get typed ERROR frames; the broker serves its publisher and subscriber throughout", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      // A publisher and a subscriber that stay connected while the bad requests come and go.
      const publisher = yield* rawConnect(server.port)
      publisher.write(hello("t", 5))
      const epoch = yield* openedEpoch(publisher)
      const remote = makeRemote({ brokers: [{ host: "127.0.0.1", port: server.port }] })
      const subscription = yield* remote.subscribe("t")
      const next = yield* pullOne(subscription)

      const garbageJson = encodeFrame({
        type: FrameType.SUBSCRIBE,
        clientId: 0,
        sessionEpoch: 0,
        seq: 0,
        messageCount: 0
      }, new TextEncoder().encode("{\"topic\":"))
      const cases: ReadonlyArray<[string, Uint8Array, string]> = [
        ["unknown topic", subscribe("nope"), "unknown-topic"],
        ["an offset past the end", subscribe("t", 1_000), "out-of-range"],
        ["a body that is not a subscription", garbageJson, "bad-subscribe"],
        ["another protocol version", subscribe("t", "earliest", 16, PROTOCOL_VERSION + 1), "version-mismatch"],
        [
          "a frame other than CREDIT after SUBSCRIBE",
          Buffer.concat([subscribe("t"), batchFrame(5, epoch, 0, [new Uint8Array(8)])]),
          "unexpected-frame"
        ],
        ["SUBSCRIBE after HELLO", Buffer.concat([hello("t", 6), subscribe("t")]), "unexpected-frame"],
        ["a CREDIT that opens a connection", creditFrame(4), "unexpected-frame"]
      ]
      for (const [what, bytes, code] of cases) {
        const bad = yield* rawConnect(server.port)
        bad.write(bytes)
        const frames = yield* bad.closed.pipe(
          Effect.timeoutFail({ duration: 5_000, onTimeout: () => new Error(`${what}: not closed`) })
        )
        const error = frames.find((f) => f.type === FrameType.ERROR)
        expect(errorCode(error), what).toBe(code)
        if (code === "out-of-range") {
          expect(errorBody(error!.payload)).toMatchObject({ requested: 1_000, earliest: 0, end: 0 })
        }
      }
      // The publisher's batch is acknowledged and the subscriber reads it.
      publisher.write(batchFrame(5, epoch, 0, [new TextEncoder().encode("still here")]))
      expect((yield* publisher.nextFrame()).type).toBe(FrameType.ACK)
      const batch = yield* next
      const texts: Array<string> = []
      batch.forEach((m) => texts.push(new TextDecoder().decode(m.payload)))
      expect(texts).toEqual(["still here"])
      expect(server.stats().rejected).toMatchObject({
        "unknown-topic": 1,
        "bad-subscribe": 1,
        "version-mismatch": 1,
        "unexpected-frame": 3
      })
    }))

  it.scopedLive("a DATA frame torn in flight is never delivered: with the broker's out-of-range after it, the pull fails LogOutOfRange", () =>
    Effect.gen(function*() {
      // A fake broker: SUBSCRIBED, one good batch, one whose bytes changed after its crc32c was taken, then the error.
      const good = makeMessageBatch([16, 16], 1)
      const torn = makeMessageBatch([16, 16], 2)
      const sockets: Array<Socket> = []
      const withError = { value: true }
      const fake = createServer((socket) => {
        sockets.push(socket)
        socket.on("error", () => {})
        socket.once("data", () => {
          socket.write(
            subscribedFrame(new Subscribed({ protocol: PROTOCOL_VERSION, brokerId: 0, start: 0, earliest: 0, end: 4 }))
          )
          const headers = Buffer.alloc(2 * FRAME_HEADER_BYTES)
          writeDataHeader(headers, 1, 1, 0, 2, good.payload.length, good.crc32c)
          writeDataHeader(headers.subarray(FRAME_HEADER_BYTES), 1, 1, 2, 2, torn.payload.length, torn.crc32c)
          const tornBytes = torn.payload.slice()
          tornBytes[9] ^= 0xff
          socket.write(
            Buffer.concat([
              headers.subarray(0, FRAME_HEADER_BYTES),
              good.payload,
              headers.subarray(FRAME_HEADER_BYTES),
              tornBytes
            ])
          )
          if (withError.value) {
            socket.end(errorFrame("out-of-range", "reclaimed", { requested: 2, earliest: 40, end: 50 }))
          } else socket.end()
        })
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void fake.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => (sockets.forEach((s) => s.destroy()), fake.close()))
      )
      const port = (fake.address() as { port: number }).port
      const remote = makeRemote({ brokers: [{ host: "127.0.0.1", port }] })
      expect(crc32c(good.payload, 0, good.payload.length)).toBe(good.crc32c)

      const next = yield* pullOne(yield* remote.subscribe("t"))
      expect((yield* next).offset).toBe(0)
      expect(yield* Effect.flip(next)).toMatchObject({ _tag: "LogOutOfRange", requested: 2, earliest: 40, end: 50 })

      // Without the error: a broken stream, still nothing torn delivered.
      withError.value = false
      const bare = yield* pullOne(yield* remote.subscribe("t"))
      expect((yield* bare).offset).toBe(0)
      expect(yield* Effect.flip(bare)).toMatchObject({ _tag: "SubscriberConnectionFailed", code: "closed" })
    }))

  it.scopedLive("a subscriber that stops pulling holds up only itself, and once what it would read next is reclaimed it gets out-of-range, not torn data", () =>
    Effect.gen(function*() {
      const cluster = yield* regionCluster(CxlMemoryLayers.make)()
      yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provideService(Appender, yield* cluster.appender(3, { registered: false })),
        Effect.provideService(AckTracker, cluster.acks),
        Effect.provideService(Topics, cluster.topics),
        Effect.provideService(LogReader, cluster.reader)
      )
      const brokers = [{ host: "127.0.0.1", port: broker.port }]
      // The slow one has 8 batches of credit and pulls nothing until the end.
      const slow = yield* makeRemote({ brokers, credit: 8 }).subscribe("t")
      const fast = yield* makeRemote({ brokers }).subscribe("t")
      const a = yield* cluster.appender(0)
      yield* Effect.forkScoped((yield* cluster.sequencer()).run)
      const fastNext = yield* pullOne(fast)
      const sizes = Array.from({ length: 15 }, () => 4000)
      let fastRead = 0
      // 16 × the Blog through the log; the fast subscriber keeps up, batch by batch.
      const batches = 16 * Math.ceil(SMALL_BLOG_BYTES / (15 * 4008))
      for (let seq = 0; seq < batches; seq++) {
        const batch = makeMessageBatch(sizes, seq)
        yield* a.append("t", header(1, 0, seq, batch), batch.payload)
        const got = yield* fastNext
        expect([got.offset, got.count]).toEqual([fastRead, 15])
        got.forEach((m) => expect(m.payload[0]).toBe((seq * 31 + (m.offset % 15) * 7) & 0xff))
        fastRead += got.count
      }
      expect(fastRead).toBe(15 * batches)
      // The slow one now reads: an intact, contiguous prefix, then out-of-range.
      const slowNext = yield* pullOne(slow)
      let slowRead = 0
      const error = yield* Effect.flip(Effect.forever(Effect.map(slowNext, (b) => {
        expect(b.offset).toBe(slowRead)
        b.forEach((m) => expect(m.payload[3]).toBe((Math.floor(m.offset / 15) * 31 + (m.offset % 15) * 7 + 3) & 0xff))
        slowRead += b.count
      })))
      expect(error, error.message).toMatchObject({ _tag: "LogOutOfRange" })
      expect(slowRead).toBeGreaterThanOrEqual(8 * 15)
      expect(slowRead).toBeLessThan(15 * batches)
    }))
})
