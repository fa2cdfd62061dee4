import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as fc from "effect/FastCheck"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { FRAME_HEADER_BYTES, FrameType, writeHeader } from "../../src/layers/net/Frame.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { crc32c } from "../../src/native/Crc32c.js"
import { audit, clean, publishTestMessages } from "../fixtures/net-audit.js"
import { batchFrame, hello, sendAndAwaitClose } from "../fixtures/net-raw-client.js"

const FRAMES = process.env["CXLOG_STRESS"] ? 100_000 : 10_000
/** The most the good publisher sends beside the fuzzing. */
const GOOD_MESSAGES = 20_000
const MAX_BATCH = 1 << 16

const concat = (...parts: ReadonlyArray<Uint8Array>) => Buffer.concat(parts)
const validBatch = (client: number) =>
  fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 5 }).map((messages) =>
    batchFrame(client, 0, 0, messages)
  )

/**
 * One bad frame per connection, after a good HELLO (registering a session, whose epoch the
 * bad frames do not know) or without one.
 */
const badFrame = fc.nat({ max: 1_000_000 }).map((n) => 1000 + n).chain((client) =>
  fc.oneof(
    // Random bytes where a frame should be.
    fc.uint8Array({ minLength: 1, maxLength: 300 }),
    fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => concat(hello("t", client), bytes)),
    // A good batch cut short by the end of the stream.
    fc.tuple(validBatch(client), fc.double({ min: 0, max: 1, noNaN: true })).map(([frame, at]) =>
      concat(hello("t", client), frame.subarray(0, 1 + Math.floor(at * (frame.length - 2))))
    ),
    // A header announcing more than the broker takes.
    fc.integer({ min: MAX_BATCH + 1, max: 2 ** 32 - 1 }).map((payloadBytes) => {
      const header = new Uint8Array(FRAME_HEADER_BYTES)
      writeHeader(header, 0, {
        type: FrameType.BATCH,
        clientId: client,
        sessionEpoch: 0,
        seq: 0,
        messageCount: 1,
        payloadBytes,
        crc32c: 0
      })
      return concat(hello("t", client), header)
    }),
    // A payload byte flipped in transit.
    fc.tuple(validBatch(client), fc.nat(), fc.integer({ min: 1, max: 255 })).map(([frame, at, flip]) => {
      frame[FRAME_HEADER_BYTES + (at % (frame.length - FRAME_HEADER_BYTES))] ^= flip
      return concat(hello("t", client), frame)
    }),
    // A right crc over a payload whose message framing is wrong.
    fc.uint8Array({ minLength: 8, maxLength: 256 }).map((bytes) => {
      const payload = new Uint8Array(bytes.length & ~7)
      payload.set(bytes.subarray(0, payload.length))
      new DataView(payload.buffer).setUint32(0, payload.length, true)
      const header = new Uint8Array(FRAME_HEADER_BYTES)
      writeHeader(header, 0, {
        type: FrameType.BATCH,
        clientId: client,
        sessionEpoch: 0,
        seq: 0,
        messageCount: 1,
        payloadBytes: payload.length,
        crc32c: crc32c(payload, 0, payload.length)
      })
      return concat(hello("t", client), header, payload)
    }),
    // Handshakes that cannot be accepted.
    fc.string({ maxLength: 40 }).map((topic) => hello(`x${topic}`, client)),
    fc.integer({ min: PROTOCOL_VERSION + 1, max: 1000 }).map((protocol) => hello("t", client, undefined, 1, protocol))
  )
)

describe("Broker under fuzzed input", () => {
  it.scopedLive(
    `survives ${FRAMES} random, truncated, oversized and corrupt frames while a good publisher's audit passes`,
    () =>
      Effect.gen(function*() {
        // Every bad connection registers a session it never closes: room for them all (a table
        // fills to 7/8 of its slots; past that a HELLO is refused session-table-full, a second
        // rejection for the same connection).
        const sessionSlots = Math.max(1 << 15, 2 ** Math.ceil(Math.log2((FRAMES * 8) / 7 + 2)))
        const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], sessionSlots })
        const broker = yield* BrokerLayers.make({ insecure: true, maxBatchBytes: MAX_BATCH }).pipe(
          Effect.provide(BrokerLogLayers.layerMemory(log, 0))
        )
        const publisher = yield* PublisherLayers.make({
          brokers: [{ host: "127.0.0.1", port: broker.port }],
          topic: "t",
          clientId: 1,
          batchBytes: 4096,
          maxBatchBytes: MAX_BATCH
        })
        // The good publisher is welcomed and acknowledged before the fuzzing starts: its first
        // WELCOME, bounded by the connect timeout, does not wait behind this process generating the
        // fuzz inputs (seconds on a loaded host, the event loop held) and serving 16 bad connections.
        // Then it keeps publishing, at a steady pace, while the fuzzing lasts, up to a fixed
        // number: a slower host must not also mean more to order and audit.
        yield* publishTestMessages(publisher, 1, 200, 256, 0)
        yield* publisher.flush(20_000)
        let fuzzing = true
        let total = 200
        const good = yield* Effect.fork(Effect.gen(function*() {
          while (fuzzing && total < GOOD_MESSAGES) {
            yield* publishTestMessages(publisher, 1, 200, 256, total)
            total += 200
            yield* Effect.sleep("2 millis")
          }
        }))
        const inputs = fc.sample(badFrame, { numRuns: FRAMES, seed: 0x5eed })
        yield* Effect.forEach(
          inputs,
          (bytes) =>
            Effect.tryPromise(() => sendAndAwaitClose(broker.port, bytes)).pipe(
              Effect.timeoutFail({
                duration: 10_000,
                onTimeout: () => new Error("the broker kept a bad connection open")
              })
            ),
          { concurrency: 16, discard: true }
        )
        fuzzing = false
        yield* Fiber.join(good)
        expect(total).toBeGreaterThan(1_000)
        yield* publisher.flush(20_000)
        expect(audit(log.ordered("t"), new Map([[1, total]]))).toEqual({ messages: total, ...clean })
        const stats = broker.stats()
        const rejected = Object.values(stats.rejected).reduce((n, x) => n + (x ?? 0), 0)
        expect(rejected).toBe(FRAMES)
        expect(stats.rejected["bad-crc"]).toBeGreaterThan(0)
        expect(stats.rejected["oversized"]).toBeGreaterThan(0)
        expect(stats.rejected["truncated"]).toBeGreaterThan(0)
        // The broker hears each bad connection's end after its client does: the last ones go within a few turns.
        const deadline = performance.now() + 10_000
        while (broker.stats().connections > 1 && performance.now() < deadline) yield* Effect.sleep("5 millis")
        expect(broker.stats().connections).toBe(1)
        expect(log.ordered("t").every((b) => b.clientId === 1)).toBe(true)
      }),
    // Ten times the frames under CXLOG_STRESS, beside the other stress suites on the same cores.
    FRAMES > 10_000 ? 600_000 : 120_000
  )
})
