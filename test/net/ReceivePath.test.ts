/**
 * The broker's receive path: the in-place frame reader (every read goes where the reader says:
 * a header, or the log's space for a batch) and the TCP broker over the region using it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { Hello, helloFrame, PROTOCOL_VERSION, WireViolation } from "../../src/layers/net/Control.js"
import {
  encodeFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  type FrameHeader,
  FrameType,
  writeHeader
} from "../../src/layers/net/Frame.js"
import { InPlaceFrameReader } from "../../src/layers/net/FrameReader.js"
import { batchFrame, errorCode, hello, openedEpoch, rawConnect } from "../fixtures/net-raw-client.js"
import { regionBroker as regionBrokerFixture } from "../fixtures/region-broker.js"
import { until } from "../helpers/ServeProcess.js"

const MAX_BATCH = 1 << 16
const accept = [FrameType.HELLO, FrameType.BATCH, FrameType.CLOSE]

const bytesOf = (seed: number, length: number) => new Uint8Array(length).map((_, k) => (seed * 31 + k * 7) & 0xff)
/** Three batches (a tiny one, one of a few KiB, a small one), each of a few messages. */
const batches = [
  [bytesOf(1, 3)],
  [bytesOf(2, 1500), bytesOf(3, 1700), bytesOf(4, 9)],
  [bytesOf(5, 40), bytesOf(6, 41)]
]
/** A publisher's HELLO (its sessions' SESSION_OPEN frames follow it on a real connection). */
const helloBytes = helloFrame(new Hello({ protocol: PROTOCOL_VERSION, clientId: 7, ackLevel: 1 }))
const stream = Buffer.concat([
  helloBytes,
  ...batches.map((messages, seq) => batchFrame(7, 0, seq, messages)),
  encodeFrame({ type: FrameType.CLOSE, clientId: 7, sessionEpoch: 0, seq: 3, messageCount: 0 })
])
/** Where frame `i` of `stream` starts, and its payload. */
const frameStarts = (() => {
  const starts: Array<number> = []
  for (let at = 0; at < stream.length; at += FRAME_HEADER_BYTES + stream.readUInt32LE(at + 24)) starts.push(at)
  return starts
})()

/** A stand-in for the Blog: `place` hands out fresh space in it (payload + 32 bytes of slack), or declines every other time when `sometimes`. */
const blogPlacement = (sometimes = false) => {
  const blog = new Uint8Array(1 << 20)
  let head = 0
  let calls = 0
  const place = (header: FrameHeader): Uint8Array | undefined => {
    if (sometimes && calls++ % 2 === 1) return undefined
    const view = blog.subarray(head, head + header.payloadBytes + FRAME_HEADER_BYTES)
    head += header.payloadBytes + FRAME_HEADER_BYTES
    return view
  }
  return { blog, place }
}

/**
 * Feeds `bytes` as a socket would: the kernel has `cuts[0]` bytes at first, then up to
 * `cuts[1]`, …, then all; each read takes what the reader's buffer holds of what is there,
 * at most `step` bytes. Frames are collected with copies of their payloads (and whether the
 * payload was a view of `blog`); stops at the first violation.
 */
const receive = (
  reader: InPlaceFrameReader,
  bytes: Uint8Array,
  cuts: ReadonlyArray<number>,
  blog?: Uint8Array,
  step = Infinity
) => {
  const frames: Array<Frame & { readonly inBlog: boolean }> = []
  let taken = 0
  for (const available of [...cuts, bytes.length]) {
    while (taken < available) {
      const into = reader.buffer()
      expect(into.length).toBeGreaterThan(0)
      const n = Math.min(into.length, available - taken, step)
      into.set(bytes.subarray(taken, taken + n))
      reader.filled(n)
      taken += n
      for (let f = reader.next(); f !== undefined; f = reader.next()) {
        if (f instanceof WireViolation) return { frames, violation: f, taken }
        frames.push({
          ...f,
          payload: f.payload.slice(),
          inBlog: f.payload.buffer === blog?.buffer && f.payload.length > 0
        })
      }
    }
  }
  return { frames, violation: undefined, taken }
}

const expectWholeStream = (frames: ReadonlyArray<Frame & { readonly inBlog: boolean }>) => {
  expect(frames.map((f) => f.type)).toEqual([
    FrameType.HELLO,
    FrameType.BATCH,
    FrameType.BATCH,
    FrameType.BATCH,
    FrameType.CLOSE
  ])
  frames.forEach((f, i) =>
    expect([...f.payload]).toEqual([
      ...stream.subarray(frameStarts[i]! + FRAME_HEADER_BYTES, frameStarts[i]! + FRAME_HEADER_BYTES + f.payloadBytes)
    ])
  )
}

describe("InPlaceFrameReader", () => {
  it("a stream cut at every byte position: every frame intact, every batch received straight into the space placed for it", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { blog, place } = blogPlacement()
      const { frames, violation } = receive(
        new InPlaceFrameReader({ accept, maxBatchBytes: MAX_BATCH, place }),
        stream,
        [cut],
        blog
      )
      expect(violation).toBeUndefined()
      expectWholeStream(frames)
      expect(frames.filter((f) => f.type === FrameType.BATCH).every((f) => f.inBlog)).toBe(true)
    }
  })

  it("cut at every pair of positions around a batch, with space placed for every other batch only: still intact", () => {
    const [from, to] = [frameStarts[2]! - 3, frameStarts[3]! + 3]
    for (let a = from; a <= to; a += 61) {
      for (let b = a; b <= to; b += 67) {
        const { blog, place } = blogPlacement(true)
        const { frames, violation } = receive(
          new InPlaceFrameReader({ accept, maxBatchBytes: MAX_BATCH, place }),
          stream,
          [a, b],
          blog
        )
        expect(violation).toBeUndefined()
        expectWholeStream(frames)
      }
    }
  })

  it("a slow writer (one byte a read) and reads into a buffer the reader has moved on from: intact", () => {
    const { blog, place } = blogPlacement()
    expectWholeStream(
      receive(new InPlaceFrameReader({ accept, maxBatchBytes: MAX_BATCH, place }), stream, [], blog, 1).frames
    )
    // The header is complete but nobody asked the reader yet: the payload waits in its stash and moves on once it parses the header.
    const reader = new InPlaceFrameReader({ accept, maxBatchBytes: MAX_BATCH, place })
    const first = reader.buffer()
    first.set(stream.subarray(0, FRAME_HEADER_BYTES))
    reader.filled(FRAME_HEADER_BYTES)
    const early = reader.buffer()
    const payloadBytes = frameStarts[1]! - FRAME_HEADER_BYTES
    early.set(stream.subarray(FRAME_HEADER_BYTES, frameStarts[1]))
    reader.filled(payloadBytes)
    const frame = reader.next() as Frame
    expect(frame.type).toBe(FrameType.HELLO)
    expect([...frame.payload]).toEqual([...stream.subarray(FRAME_HEADER_BYTES, frameStarts[1])])
    // A read into an old buffer after the reader moved on: its bytes are taken in order from the stash.
    const stale = reader.buffer()
    expect(reader.next()).toBeUndefined()
    stale.set(stream.subarray(frameStarts[1]!, frameStarts[1]! + 10))
    reader.filled(10)
    const rest = receive(reader, stream.subarray(frameStarts[1]! + 10), [], blog)
    expect(rest.violation).toBeUndefined()
    expect(rest.frames.map((f) => [f.type, f.seq])).toEqual([[FrameType.BATCH, 0], [FrameType.BATCH, 1], [
      FrameType.BATCH,
      2
    ], [FrameType.CLOSE, 3]])
  })

  it("a corrupt crc inside a batch cut at every position is bad-crc, never a frame and never a silent drop", () => {
    const corrupt = Buffer.from(stream)
    // A byte in the middle of the big batch's payload.
    corrupt[frameStarts[2]! + FRAME_HEADER_BYTES + 1600] ^= 0x10
    for (let cut = 0; cut <= corrupt.length; cut += 3) {
      const { blog, place } = blogPlacement()
      const { frames, violation } = receive(
        new InPlaceFrameReader({ accept, maxBatchBytes: MAX_BATCH, place }),
        corrupt,
        [cut],
        blog
      )
      expect(violation?.code).toBe("bad-crc")
      expect(frames.map((f) => f.seq)).toEqual([0, 0])
    }
  })

  it("an oversized BATCH is refused from its header (none of its payload read); a frame cut short is mid-frame", () => {
    const oversized = new Uint8Array(FRAME_HEADER_BYTES + 100)
    writeHeader(oversized, 0, {
      type: FrameType.BATCH,
      clientId: 7,
      sessionEpoch: 0,
      seq: 0,
      messageCount: 1,
      payloadBytes: MAX_BATCH + 8,
      crc32c: 0
    })
    const placed: Array<number> = []
    const reader = new InPlaceFrameReader({
      accept,
      maxBatchBytes: MAX_BATCH,
      place: (h) => void placed.push(h.payloadBytes)
    })
    const refused = receive(reader, oversized, [])
    expect(refused.violation?.code).toBe("oversized")
    expect(refused.taken).toBe(FRAME_HEADER_BYTES)
    expect(placed).toEqual([])
    const cutShort = new InPlaceFrameReader({ accept, maxBatchBytes: MAX_BATCH })
    const partial = receive(cutShort, stream.subarray(0, frameStarts[2]! + 100), [])
    expect(partial.frames.map((f) => f.type)).toEqual([FrameType.HELLO, FrameType.BATCH])
    expect(cutShort.midFrame).toBe(true)
    expect(cutShort.heldBytes).toBe(100 - FRAME_HEADER_BYTES)
  })
})

const regionBroker = regionBrokerFixture()

/** `logged` once it holds every batch of `keys` ("client/seq"), bounded: a batch that never lands fails the test. */
const loggedWith = <A extends ReadonlyMap<string, unknown>, E, R>(
  logged: Effect.Effect<A, E, R>,
  keys: ReadonlyArray<string>
) =>
  Effect.repeat(logged, { until: (log) => keys.every((key) => log.has(key)), schedule: Schedule.spaced("2 millis") })
    .pipe(Effect.timeout("5 seconds"), Effect.zipRight(logged))

const messagesOf = (
  client: number,
  seq: number
) => [bytesOf(client * 100 + seq, 700 + client), bytesOf(client * 100 + seq + 50, 2000 + seq)]

describe("Broker receive path over the region", () => {
  it.scopedLive("many connections whose batches arrive interleaved mid-batch: every batch intact, in its session's order", () =>
    Effect.gen(function*() {
      const { logged, server } = yield* regionBroker
      const clients = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8], (id) =>
        Effect.gen(function*() {
          const client = yield* rawConnect(server.port)
          client.socket.setNoDelay(true)
          client.write(hello("t", id))
          return { id, client, epoch: yield* openedEpoch(client) }
        }))
      for (let seq = 0; seq < 4; seq++) {
        const frames = clients.map(({ epoch, id }) => batchFrame(id, epoch, seq, messagesOf(id, seq)))
        // Every connection sends part of its batch, then every one the rest: each batch is still arriving while others complete.
        for (const cut of [0, 900, 2500]) {
          clients.forEach(({ client }, i) =>
            client.write(frames[i]!.subarray(cut, cut === 2500 ? undefined : cut === 0 ? 900 : 2500))
          )
          yield* Effect.sleep("5 millis")
        }
      }
      const log = yield* logged
      for (const { id, epoch } of clients) {
        for (let seq = 0; seq < 4; seq++) {
          expect(log.get(`${id}/${seq}`), `batch ${seq} of client ${id} (epoch ${epoch})`).toEqual({
            crcOk: true,
            messages: messagesOf(id, seq).map((m) => [...m])
          })
        }
      }
      expect(server.stats()).toMatchObject({ batches: 32, rejected: {} })
    }))

  it.scopedLive("a slow writer, one byte a write: its batches arrive intact", () =>
    Effect.gen(function*() {
      const { logged, server } = yield* regionBroker
      const client = yield* rawConnect(server.port)
      client.socket.setNoDelay(true)
      client.write(hello("t", 3))
      const epoch = yield* openedEpoch(client)
      const small = (seq: number) => [bytesOf(seq, 30), bytesOf(seq + 9, 17)]
      const bytes = Buffer.concat([batchFrame(3, epoch, 0, small(0)), batchFrame(3, epoch, 1, small(1))])
      for (const byte of bytes) {
        client.write(Uint8Array.of(byte))
        yield* Effect.sleep("1 millis")
      }
      const log = yield* loggedWith(logged, ["3/0", "3/1"])
      expect([log.get("3/0"), log.get("3/1")]).toEqual(
        [0, 1].map((seq) => ({ crcOk: true, messages: small(seq).map((m) => [...m]) }))
      )
    }))

  it.scopedLive("a corrupt crc in a batch split across writes: ERROR bad-crc, the batch not in the log; a batch cut short by the end: ERROR truncated, not in the log; others unharmed", () =>
    Effect.gen(function*() {
      const { logged, server } = yield* regionBroker
      const good = yield* rawConnect(server.port)
      good.write(hello("t", 1))
      const goodEpoch = yield* openedEpoch(good)
      const corrupt = yield* rawConnect(server.port)
      corrupt.write(hello("t", 2))
      const corruptEpoch = yield* openedEpoch(corrupt)
      const cut = yield* rawConnect(server.port)
      cut.write(hello("t", 3))
      const cutEpoch = yield* openedEpoch(cut)
      corrupt.write(batchFrame(2, corruptEpoch, 0, messagesOf(2, 0)))
      const bad = Buffer.from(batchFrame(2, corruptEpoch, 1, messagesOf(2, 1)))
      bad[FRAME_HEADER_BYTES + 1500] ^= 1
      corrupt.write(bad.subarray(0, 1000))
      // The good connection's batch lands while the corrupt one is still arriving.
      good.write(batchFrame(1, goodEpoch, 0, messagesOf(1, 0)))
      yield* loggedWith(logged, ["1/0"])
      corrupt.write(bad.subarray(1000))
      const frames = yield* corrupt.closed
      expect(errorCode(frames[frames.length - 1]!)).toBe("bad-crc")
      // The end comes once the broker holds the cut batch's first part.
      cut.write(batchFrame(3, cutEpoch, 0, messagesOf(3, 0)).subarray(0, 2000))
      yield* until(() => server.stats().queuedBytes > 0, 5_000, () => "the cut batch's first part to reach the broker")
      cut.socket.end()
      const cutFrames = yield* cut.closed
      expect(errorCode(cutFrames[cutFrames.length - 1]!)).toBe("truncated")
      good.write(batchFrame(1, goodEpoch, 1, messagesOf(1, 1)))
      const log = yield* loggedWith(logged, ["1/1"])
      expect([...log.keys()].sort()).toEqual(["1/0", "1/1", "2/0"])
      for (const key of ["1/0", "1/1", "2/0"]) {
        const [client, seq] = key.split("/").map(Number)
        expect(log.get(key)).toEqual({ crcOk: true, messages: messagesOf(client!, seq!).map((m) => [...m]) })
      }
      expect(server.stats().rejected).toEqual({ "bad-crc": 1, truncated: 1 })
    }))
})
