import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as fc from "effect/FastCheck"
import { crc32cSoftware } from "../../src/native/Crc32cSoftware.js"
import {
  BatchBuilder,
  BufferPool,
  checkBatchPayload,
  forEachMessage,
  messageRecordBytes
} from "../../src/layers/net/BatchPayload.js"
import { parseAddresses } from "../../src/layers/net/ClientConnection.js"
import { decodeControl, ErrorBody, errorFrame, Hello, helloFrame, PROTOCOL_VERSION, WireViolation } from "../../src/layers/net/Control.js"
import { crc32c, crc32cKind } from "../../src/layers/net/Crc32c.js"
import { encodeFrame, type Frame, FRAME_HEADER_BYTES, FrameType, writeHeader } from "../../src/layers/net/Frame.js"
import { FrameReader } from "../../src/layers/net/FrameReader.js"

const allTypes = Object.values(FrameType)
const MAX_BATCH = 1 << 16

const header = fc.record({
  type: fc.constantFrom(FrameType.BATCH, FrameType.HELLO, FrameType.ERROR, FrameType.ACK),
  clientId: fc.nat({ max: 2 ** 32 - 1 }),
  sessionEpoch: fc.nat({ max: 2 ** 32 - 1 }),
  seq: fc.maxSafeNat(),
  messageCount: fc.nat({ max: 2 ** 32 - 1 })
})
const frameSpec = header.chain((h) =>
  fc.uint8Array({ maxLength: h.type === FrameType.ACK ? 0 : h.type === FrameType.BATCH ? 3000 : 200 }).map((payload) => ({ ...h, payload }))
)

/** Feeds `chunks` through a reader and collects copies of every frame (views die with the next call). */
const readAll = (reader: FrameReader, chunks: ReadonlyArray<Uint8Array>) => {
  const frames: Array<Frame> = []
  for (const chunk of chunks) {
    reader.push(chunk)
    for (let f = reader.next(); f !== undefined; f = reader.next()) {
      if (f instanceof WireViolation) return { frames, violation: f }
      frames.push({ ...f, payload: f.payload.slice() })
    }
  }
  return { frames, violation: undefined }
}

const splitAt = (bytes: Uint8Array, cuts: ReadonlyArray<number>) => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Uint8Array> = []
  let from = 0
  for (const p of points) {
    chunks.push(bytes.slice(from, p))
    from = p
  }
  chunks.push(bytes.slice(from))
  return chunks
}

const concat = (parts: ReadonlyArray<Uint8Array>) => Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length)))

describe("crc32c", () => {
  it("matches the software table, and the check value of \"123456789\"", () => {
    expect(crc32c(Buffer.from("123456789"), 0, 9)).toBe(0xe3069283)
    expect(crc32c(new Uint8Array(0), 0, 0)).toBe(0)
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(), (bytes, seed) => {
      expect(crc32c(bytes, 0, bytes.length, seed >>> 0)).toBe(crc32cSoftware(bytes, 0, bytes.length, seed >>> 0))
    }))
    expect(["native", "software"]).toContain(crc32cKind)
  })
})

describe("frames", () => {
  it("round-trip through the reader however the stream is cut into chunks", () => {
    fc.assert(fc.property(fc.array(frameSpec, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (specs, cuts) => {
      const stream = concat(specs.map(({ payload, ...h }) => encodeFrame(h, payload)))
      const reader = new FrameReader({ accept: allTypes, maxBatchBytes: MAX_BATCH })
      const { frames, violation } = readAll(reader, splitAt(stream, cuts))
      expect(violation).toBeUndefined()
      expect(reader.midFrame).toBe(false)
      expect(frames.map((f) => ({ ...f, payload: [...f.payload] }))).toEqual(
        specs.map((s) => ({ ...s, payload: [...s.payload], payloadBytes: s.payload.length, crc32c: crc32c(s.payload, 0, s.payload.length) }))
      )
    }))
  })

  it("hands out a payload inside one chunk as a view of that chunk, and reassembles only a straddling one", () => {
    const payload = new Uint8Array(1000).fill(7)
    const frame = encodeFrame({ type: FrameType.BATCH, clientId: 1, sessionEpoch: 2, seq: 3, messageCount: 1 }, payload)
    const reader = new FrameReader({ accept: allTypes, maxBatchBytes: MAX_BATCH })
    reader.push(frame)
    const whole = reader.next() as Frame
    expect(whole.payload.buffer).toBe(frame.buffer)
    expect(whole.payload.byteOffset).toBe(frame.byteOffset + FRAME_HEADER_BYTES)
    reader.push(frame.subarray(0, 500))
    expect(reader.next()).toBeUndefined()
    expect(reader.midFrame).toBe(true)
    reader.push(frame.subarray(500))
    const straddling = reader.next() as Frame
    expect(straddling.payload.buffer).not.toBe(frame.buffer)
    expect([...straddling.payload]).toEqual([...payload])
  })

  it("a wrong crc across chunks is bad-crc once the last piece arrives, never a silent drop; control frames are reassembled", () => {
    const payload = new Uint8Array(3000).map((_, i) => i & 0xff)
    const batch = encodeFrame({ type: FrameType.BATCH, clientId: 1, sessionEpoch: 0, seq: 0, messageCount: 1 }, payload)
    batch[FRAME_HEADER_BYTES + 2000] ^= 1
    const reader = new FrameReader({ accept: allTypes, maxBatchBytes: MAX_BATCH })
    const answers = splitAt(batch, [100, 1500, 2800]).map((chunk) => {
      reader.push(chunk)
      const f = reader.next()
      return f instanceof WireViolation ? f.code : f === undefined ? "waiting" : "frame"
    })
    expect(answers).toEqual(["waiting", "waiting", "waiting", "bad-crc"])
    expect(reader.next()).toBeInstanceOf(WireViolation)
    const hello = helloFrame(new Hello({ protocol: PROTOCOL_VERSION, topic: "t", clientId: 1, sessionEpoch: 0, ackLevel: 1 }))
    const { frames } = readAll(new FrameReader({ accept: allTypes, maxBatchBytes: MAX_BATCH }), splitAt(hello, [40, 50]))
    expect([...frames[0]!.payload]).toEqual([...hello.subarray(FRAME_HEADER_BYTES)])
  })

  const violationOf = (bytes: Uint8Array, maxBatchBytes = MAX_BATCH, accept = allTypes) => {
    const reader = new FrameReader({ accept, maxBatchBytes })
    const first = readAll(reader, [bytes]).violation
    // A poisoned reader keeps answering with the same violation.
    reader.push(new Uint8Array(64))
    expect(reader.next()).toBe(first)
    return first?.code
  }
  const good = () => encodeFrame({ type: FrameType.BATCH, clientId: 1, sessionEpoch: 1, seq: 0, messageCount: 1 }, new Uint8Array(16))

  it("refuses bad magic, another wire version, an unexpected type, a wrong crc", () => {
    const badMagic = good()
    badMagic[2] = 0
    expect(violationOf(badMagic)).toBe("bad-magic")
    const version = good()
    version[1] = 9
    expect(violationOf(version)).toBe("version-mismatch")
    const unknown = good()
    unknown[0] = 77
    expect(violationOf(unknown)).toBe("bad-frame-type")
    expect(violationOf(good(), MAX_BATCH, [FrameType.ACK])).toBe("bad-frame-type")
    const crc = good()
    crc[FRAME_HEADER_BYTES + 3] ^= 1
    expect(violationOf(crc)).toBe("bad-crc")
  })

  it("refuses an oversized length from the header alone, before any payload arrives", () => {
    const header = new Uint8Array(FRAME_HEADER_BYTES)
    writeHeader(header, 0, { type: FrameType.BATCH, clientId: 1, sessionEpoch: 1, seq: 0, messageCount: 1, payloadBytes: 2 ** 32 - 1, crc32c: 0 })
    expect(violationOf(header)).toBe("oversized")
    writeHeader(header, 0, { type: FrameType.BATCH, clientId: 1, sessionEpoch: 1, seq: 0, messageCount: 1, payloadBytes: MAX_BATCH + 8, crc32c: 0 })
    expect(violationOf(header)).toBe("oversized")
    writeHeader(header, 0, { type: FrameType.HELLO, clientId: 1, sessionEpoch: 1, seq: 0, messageCount: 0, payloadBytes: 5000, crc32c: 0 })
    expect(violationOf(header)).toBe("oversized")
    writeHeader(header, 0, { type: FrameType.ACK, clientId: 1, sessionEpoch: 1, seq: 0, messageCount: 1, payloadBytes: 4096 + 16, crc32c: 0 })
    expect(violationOf(header)).toBe("oversized")
    const seq = good()
    seq.writeUInt32LE(2 ** 21, 16)
    expect(violationOf(seq)).toBe("oversized")
  })

  it("never throws on arbitrary bytes: each input ends in frames, a wait for more, or one violation", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 5 }), (bytes, cuts) => {
      const reader = new FrameReader({ accept: allTypes, maxBatchBytes: 256 })
      const { violation } = readAll(reader, splitAt(bytes, cuts))
      if (violation !== undefined) expect(violation).toBeInstanceOf(WireViolation)
    }), { numRuns: 2000 })
  })
})

describe("control frames", () => {
  const payloadOf = (frame: Uint8Array) => frame.subarray(FRAME_HEADER_BYTES)

  it("HELLO and ERROR bodies round-trip through Schema", () => {
    const hello = new Hello({ protocol: PROTOCOL_VERSION, topic: "t", clientId: 7, sessionEpoch: 3, ackLevel: 2 })
    expect(decodeControl(Hello, payloadOf(helloFrame(hello)), "bad-handshake")).toEqual(Either.right(hello))
    const error = decodeControl(ErrorBody, payloadOf(errorFrame("bad-crc", "x".repeat(5000))), "internal")
    expect(Either.isRight(error) && error.right.code).toBe("bad-crc")
  })

  it("a malformed HELLO is a bad-handshake violation, never an exception", () => {
    const encoder = new TextEncoder()
    for (const body of ["", "{", "[]", "null", "{\"protocol\":1}", JSON.stringify({ protocol: 1, topic: "", clientId: 1, sessionEpoch: 1, ackLevel: 1 }),
      JSON.stringify({ protocol: 1, topic: "t", clientId: -1, sessionEpoch: 1, ackLevel: 1 }),
      JSON.stringify({ protocol: 1, topic: "t", clientId: 1, sessionEpoch: 1, ackLevel: 3 })]) {
      const result = decodeControl(Hello, encoder.encode(body), "bad-handshake")
      expect(Either.isLeft(result) && result.left.code).toBe("bad-handshake")
    }
    expect(Either.isLeft(decodeControl(Hello, new Uint8Array([0xff, 0xfe]), "bad-handshake"))).toBe(true)
  })
})

describe("batch payloads", () => {
  it("what the builder seals, the checker accepts and the walker returns, message by message", () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 2 ** 32 - 1 })), { minLength: 1, maxLength: 40 }), (messages) => {
      const builder = new BatchBuilder(new BufferPool(512, 4))
      const batches: Array<{ payload: Uint8Array; count: number; crc: number }> = []
      const expected: Array<Array<[Array<number>, number]>> = [[]]
      for (const [message, flags] of messages) {
        if (!builder.fits(message.length)) {
          const sealed = builder.seal()
          batches.push({ payload: sealed.payload, count: sealed.messageCount, crc: sealed.crc32c })
          expected.push([])
        }
        builder.add(message, flags)
        expected[expected.length - 1]!.push([[...message], flags])
      }
      const sealed = builder.seal()
      batches.push({ payload: sealed.payload, count: sealed.messageCount, crc: sealed.crc32c })
      expect(batches.map((b) => {
        expect(checkBatchPayload(b.payload, b.count)).toBeUndefined()
        expect(b.crc).toBe(crc32c(b.payload, 0, b.payload.length))
        expect(b.payload.length <= 512 || b.count === 1).toBe(true)
        const seen: Array<[Array<number>, number]> = []
        forEachMessage(b.payload, b.count, (m, flags) => seen.push([[...m], flags]))
        return seen
      })).toEqual(expected)
    }))
  })

  it("a recycled buffer's old bytes never leak into padding", () => {
    const pool = new BufferPool(64, 1)
    pool.give(new Uint8Array(64).fill(0xff))
    const builder = new BatchBuilder(pool)
    builder.add(new Uint8Array([1, 2, 3]), 5)
    builder.add(new Uint8Array(0))
    builder.add(new Uint8Array(9).fill(4))
    const { payload } = builder.seal()
    expect([...payload]).toEqual([
      3, 0, 0, 0, 5, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0,
      9, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0
    ])
  })

  it("the checker refuses payloads whose framing does not add up", () => {
    const builder = new BatchBuilder(new BufferPool(256, 0))
    builder.add(new Uint8Array(10))
    builder.add(new Uint8Array(3))
    const { payload } = builder.seal()
    expect(payload.length).toBe(messageRecordBytes(10) + messageRecordBytes(3))
    expect(checkBatchPayload(payload, 2)).toBeUndefined()
    expect(checkBatchPayload(payload, 1)).toMatch(/follow the last/)
    expect(checkBatchPayload(payload, 3)).toMatch(/starts past|overruns/)
    expect(checkBatchPayload(payload, 0)).toMatch(/message count/)
    expect(checkBatchPayload(payload.subarray(0, 20), 1)).toMatch(/multiple of 8/)
    const overrun = payload.slice()
    new DataView(overrun.buffer).setUint32(0, 1000, true)
    expect(checkBatchPayload(overrun, 2)).toMatch(/overruns/)
  })
})

describe("broker addresses", () => {
  it("parses host:port lists, defaulting the host", () => {
    expect(parseAddresses("127.0.0.1:7400, 7401,localhost:9")).toEqual([
      { host: "127.0.0.1", port: 7400 },
      { host: "127.0.0.1", port: 7401 },
      { host: "localhost", port: 9 }
    ])
    expect(() => parseAddresses("x:70000")).toThrow(/not a broker address/)
  })
})
