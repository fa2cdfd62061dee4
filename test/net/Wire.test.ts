import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either } from "effect"
import * as fc from "effect/FastCheck"
import { BatchBuilder, BufferPool } from "../../src/layers/net/BatchBuilder.js"
import {
  checkBatchPayload,
  forEachMessage,
  MAX_TIME_DELTA_MS,
  MessageFlags,
  type MessageRecord,
  messageRecordBytes
} from "../../src/layers/net/BatchPayload.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import { parseAddresses } from "../../src/layers/net/BrokerAddress.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import {
  decodeControl,
  ErrorBody,
  errorFrame,
  Hello,
  helloFrame,
  PROTOCOL_VERSION,
  SessionOpen,
  sessionOpenFrame,
  WireViolation
} from "../../src/layers/net/Control.js"
import {
  encodeFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_ACK_PAYLOAD_BYTES,
  MAX_CONTROL_PAYLOAD_BYTES,
  writeHeader
} from "../../src/layers/net/Frame.js"
import { FrameReader } from "../../src/layers/net/FrameReader.js"
import { crc32c, crc32cKind } from "../../src/native/Crc32c.js"
import { crc32cSoftware } from "../../src/native/Crc32cSoftware.js"
import { encodedParts } from "../fixtures/encoded-parts.js"
import { rawConnect } from "../fixtures/net-raw-client.js"

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
  fc.uint8Array({ maxLength: h.type === FrameType.ACK ? 0 : h.type === FrameType.BATCH ? 3000 : 200 }).map((
    payload
  ) => ({ ...h, payload }))
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

const concat = (parts: ReadonlyArray<Uint8Array>) =>
  Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length)))

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
    fc.assert(
      fc.property(fc.array(frameSpec, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (specs, cuts) => {
        const stream = concat(specs.map(({ payload, ...h }) => encodeFrame(h, payload)))
        const reader = new FrameReader({ accept: allTypes, maxBatchBytes: MAX_BATCH })
        const { frames, violation } = readAll(reader, splitAt(stream, cuts))
        expect(violation).toBeUndefined()
        expect(reader.midFrame).toBe(false)
        expect(frames.map((f) => ({ ...f, payload: [...f.payload] }))).toEqual(
          specs.map((s) => ({
            ...s,
            payload: [...s.payload],
            payloadBytes: s.payload.length,
            crc32c: crc32c(s.payload, 0, s.payload.length)
          }))
        )
      })
    )
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
    const hello = helloFrame(new Hello({ protocol: PROTOCOL_VERSION, clientId: 1, ackLevel: 1 }))
    const { frames } = readAll(
      new FrameReader({ accept: allTypes, maxBatchBytes: MAX_BATCH }),
      splitAt(hello, [40, 50])
    )
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
  const good = () =>
    encodeFrame({ type: FrameType.BATCH, clientId: 1, sessionEpoch: 1, seq: 0, messageCount: 1 }, new Uint8Array(16))

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
    writeHeader(header, 0, {
      type: FrameType.BATCH,
      clientId: 1,
      sessionEpoch: 1,
      seq: 0,
      messageCount: 1,
      payloadBytes: 2 ** 32 - 1,
      crc32c: 0
    })
    expect(violationOf(header)).toBe("oversized")
    writeHeader(header, 0, {
      type: FrameType.BATCH,
      clientId: 1,
      sessionEpoch: 1,
      seq: 0,
      messageCount: 1,
      payloadBytes: MAX_BATCH + 8,
      crc32c: 0
    })
    expect(violationOf(header)).toBe("oversized")
    writeHeader(header, 0, {
      type: FrameType.HELLO,
      clientId: 1,
      sessionEpoch: 1,
      seq: 0,
      messageCount: 0,
      payloadBytes: 5000,
      crc32c: 0
    })
    expect(violationOf(header)).toBe("oversized")
    writeHeader(header, 0, {
      type: FrameType.ACK,
      clientId: 1,
      sessionEpoch: 1,
      seq: 0,
      messageCount: 1,
      payloadBytes: 4096 + 16,
      crc32c: 0
    })
    expect(violationOf(header)).toBe("oversized")
    const seq = good()
    seq.writeUInt32LE(2 ** 21, 16)
    expect(violationOf(seq)).toBe("oversized")
  })

  it("reads a frame whose payload is exactly its type's bound whole; one byte more is oversized", () => {
    const frameOf = (type: FrameType, bytes: number) =>
      encodeFrame({ type, clientId: 1, sessionEpoch: 1, seq: 0, messageCount: 1 }, new Uint8Array(bytes).fill(7))
    for (
      const [type, bound] of [
        [FrameType.BATCH, MAX_BATCH],
        [FrameType.ACK, MAX_ACK_PAYLOAD_BYTES],
        [FrameType.HELLO, MAX_CONTROL_PAYLOAD_BYTES],
        [FrameType.SESSION_FENCED, 0]
      ] as const
    ) {
      const { frames, violation } = readAll(new FrameReader({ accept: allTypes, maxBatchBytes: MAX_BATCH }), [
        frameOf(type, bound)
      ])
      expect(violation, `type ${type} at ${bound} bytes`).toBeUndefined()
      expect(frames.map((f) => [f.type, f.payload.length])).toEqual([[type, bound]])
      expect(violationOf(frameOf(type, bound + 1))).toBe("oversized")
    }
  })

  it("never throws on arbitrary bytes: each input ends in frames, a wait for more, or one violation", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 5 }), (bytes, cuts) => {
        const reader = new FrameReader({ accept: allTypes, maxBatchBytes: 256 })
        const { violation } = readAll(reader, splitAt(bytes, cuts))
        if (violation !== undefined) expect(violation).toBeInstanceOf(WireViolation)
      }),
      { numRuns: 2000 }
    )
  })
})

describe("control frames", () => {
  const payloadOf = (frame: Uint8Array) => frame.subarray(FRAME_HEADER_BYTES)

  it("HELLO, SESSION_OPEN and ERROR bodies round-trip through Schema", () => {
    const hello = new Hello({ protocol: PROTOCOL_VERSION, clientId: 7, ackLevel: 2, orderedAcks: true })
    expect(decodeControl(Hello, payloadOf(helloFrame(hello)), "bad-handshake")).toEqual(Either.right(hello))
    const open = new SessionOpen({ topic: "t", sessionToken: "token" })
    const openFrame = sessionOpenFrame(5, 3, open)
    expect([openFrame[0], openFrame.readUInt32LE(4), openFrame.readUInt32LE(8)]).toEqual([FrameType.SESSION_OPEN, 5, 3])
    expect(decodeControl(SessionOpen, payloadOf(openFrame), "bad-handshake")).toEqual(Either.right(open))
    const error = decodeControl(ErrorBody, payloadOf(errorFrame("bad-crc", "x".repeat(5000))), "internal")
    expect(Either.isRight(error) && error.right.code).toBe("bad-crc")
  })

  it("a malformed HELLO is a bad-handshake violation, never an exception", () => {
    const encoder = new TextEncoder()
    for (
      const body of [
        "",
        "{",
        "[]",
        "null",
        "{\"protocol\":1}",
        JSON.stringify({ protocol: 1, clientId: 1, ackLevel: 1, user: "" }),
        JSON.stringify({ protocol: 1, clientId: -1, ackLevel: 1 }),
        JSON.stringify({ protocol: 1, clientId: 1, ackLevel: 3 })
      ]
    ) {
      const result = decodeControl(Hello, encoder.encode(body), "bad-handshake")
      expect(Either.isLeft(result) && result.left.code).toBe("bad-handshake")
    }
    expect(Either.isLeft(decodeControl(Hello, new Uint8Array([0xff, 0xfe]), "bad-handshake"))).toBe(true)
  })

  /** The detail a HELLO body gets back. */
  const helloDetail = (body: string) => {
    const result = decodeControl(Hello, new TextEncoder().encode(body), "bad-handshake")
    return Either.isLeft(result) ? result.left.detail : "decoded"
  }
  const hello = (fields: Record<string, unknown>) =>
    JSON.stringify({ protocol: PROTOCOL_VERSION, clientId: 1, ackLevel: 1, ...fields })
  /** The detail a SESSION_OPEN body gets back. */
  const openDetail = (fields: Record<string, unknown>) => {
    const result = decodeControl(SessionOpen, new TextEncoder().encode(JSON.stringify(fields)), "bad-handshake")
    return Either.isLeft(result) ? result.left.detail : "decoded"
  }

  it("a malformed HELLO's detail is one readable line: the field that is wrong and how, not Schema's tree", () => {
    expect(helloDetail(hello({ clientId: -1 }))).toBe(
      "Hello.clientId: Expected a number between 0 and 4294967295, actual -1"
    )
    expect(openDetail({ topic: 7 })).toBe("SessionOpen.topic: Expected string, actual 7")
    expect(openDetail({ topic: "" })).toBe(
      "SessionOpen.topic: Expected a string at least 1 character(s) long, actual \"\""
    )
    expect(helloDetail(hello({ ackLevel: 3 }))).toBe("Hello.ackLevel: Expected 0 | 1 | 2, actual 3")
    expect(helloDetail("{}")).toBe("Hello.protocol: is missing")
    expect(helloDetail("[1]")).toBe("Hello: expected a JSON object, actual [1]")
    expect(helloDetail("not json")).toMatch(/^Hello: Unexpected token .* is not valid JSON$/)
    const long = helloDetail(hello({ user: "x".repeat(5000) }))
    expect(long).toMatch(/^Hello\.user: Expected minLength\(1\) & maxLength\(255\) \| undefined, actual "x+…$/)
    expect(long.length).toBeLessThanOrEqual(300)
    for (const detail of [helloDetail(hello({ clientId: -1 })), helloDetail("[1]"), long]) {
      expect(detail).not.toMatch(/\n|Encoded side|parseJson|└─/)
    }
    // Whatever the body: one line of at most 300 characters, never a throw.
    const body = fc.oneof(
      fc.string(),
      fc.json(),
      fc.record({ protocol: fc.anything(), user: fc.anything(), clientId: fc.anything(), ackLevel: fc.anything() })
        .map((r) => JSON.stringify(r) ?? "")
    )
    fc.assert(
      fc.property(body, (text) => {
        const detail = helloDetail(text)
        expect(detail.length).toBeLessThanOrEqual(300)
        expect(detail).not.toContain("\n")
      }),
      { numRuns: 500 }
    )
  })

  it.scopedLive("on the wire: a broker answers a HELLO that does not decode with ERROR bad-handshake and that one line", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const client = yield* rawConnect(server.port)
      client.write(
        encodeFrame(
          { type: FrameType.HELLO, clientId: 1, sessionEpoch: 0, seq: 0, messageCount: 0 },
          new TextEncoder().encode(hello({ clientId: -1 }))
        )
      )
      const frames = yield* Deferred.await(client.closed)
      const error = decodeControl(ErrorBody, frames[frames.length - 1]!.payload, "internal")
      expect(Either.getOrThrow(error)).toMatchObject({
        code: "bad-handshake",
        message: "Hello.clientId: Expected a number between 0 and 4294967295, actual -1"
      })
    }))
})

/** A message as published: value, time, and perhaps a key and headers. */
const publishedMessage = fc.record({
  value: fc.uint8Array({ maxLength: 300 }),
  at: fc.nat({ max: 20_000_000 }),
  key: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }),
  headers: fc.option(
    fc.array(fc.tuple(fc.string({ maxLength: 12 }), fc.uint8Array({ maxLength: 30 })), { minLength: 1, maxLength: 4 }),
    { nil: undefined }
  )
})

type Seen = {
  value: Array<number>
  timestamp: number
  key: Array<number> | undefined
  headers: Array<[string, Array<number>]> | undefined
}

const seenOf = (m: MessageRecord): Seen => ({
  value: [...m.payload],
  timestamp: m.timestamp,
  key: m.key === undefined ? undefined : [...m.key],
  headers: m.headers?.map((h) => [h.name, [...h.value]])
})

/** A one-message batch whose first record's parts are written by hand (after its base timestamp). */
const handMade = (flags: number, body: ReadonlyArray<number>, withBase = true) => {
  const bodyBytes = (withBase ? 8 : 0) + body.length
  const payload = new Uint8Array(messageRecordBytes(bodyBytes))
  const view = new DataView(payload.buffer)
  view.setUint32(0, bodyBytes, true)
  view.setUint32(4, flags | (withBase ? MessageFlags.BASE_TIME : 0), true)
  if (withBase) view.setFloat64(8, 1_700_000_000_000, true)
  payload.set(body, withBase ? 16 : 8)
  return payload
}
const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]

describe("batch payloads", () => {
  it("what the builder seals, the checker accepts and the walker returns: value, key, headers and timestamp of each message", () => {
    fc.assert(
      fc.property(
        fc.array(publishedMessage, { minLength: 1, maxLength: 40 }),
        fc.nat({ max: 2 ** 40 }),
        (messages, epoch) => {
          const builder = new BatchBuilder(new BufferPool(512, 4))
          const batches: Array<{ payload: Uint8Array; count: number; crc: number }> = []
          const expected: Array<Array<Seen>> = [[]]
          let base = 0
          for (const { value, at, key, headers } of messages) {
            const parts = encodedParts({ key, headers })
            const timestamp = epoch + at
            if (!builder.fits(value.length, parts?.bytes ?? 0, timestamp)) {
              const sealed = builder.seal()
              batches.push({ payload: sealed.payload, count: sealed.messageCount, crc: sealed.crc32c })
              expected.push([])
            }
            if (builder.messageCount === 0) base = timestamp
            builder.add(value, timestamp, parts)
            expected[expected.length - 1]!.push({
              value: [...value],
              // A clock that stepped back is read as the batch's base.
              timestamp: Math.max(base, timestamp),
              key: key === undefined ? undefined : [...key],
              headers: headers?.map(([name, v]) => [new TextDecoder().decode(new TextEncoder().encode(name)), [...v]])
            })
          }
          const sealed = builder.seal()
          batches.push({ payload: sealed.payload, count: sealed.messageCount, crc: sealed.crc32c })
          expect(batches.map((b) => {
            expect(checkBatchPayload(b.payload, b.count)).toBeUndefined()
            expect(b.crc).toBe(crc32c(b.payload, 0, b.payload.length))
            expect(b.payload.length <= 512 || b.count === 1).toBe(true)
            const seen: Array<Seen> = []
            forEachMessage(b.payload, b.count, (m) => seen.push(seenOf(m)))
            return seen
          })).toEqual(expected)
        }
      )
    )
  })

  it("a plain message costs its 8-byte record header; the batch's base timestamp rides on its first record", () => {
    const builder = new BatchBuilder(new BufferPool(4096, 0))
    builder.add(new Uint8Array(1024), 1_700_000_000_000)
    builder.add(new Uint8Array(1024), 1_700_000_000_250)
    const { payload } = builder.seal()
    expect(payload.length).toBe(messageRecordBytes(8 + 1024) + messageRecordBytes(1024))
    const times: Array<number> = []
    forEachMessage(payload, 2, (m) => times.push(m.timestamp))
    expect(times).toEqual([1_700_000_000_000, 1_700_000_000_250])
    // A message past the largest delta the flags hold starts a new batch.
    expect(builder.fits(8, 0, 1_700_000_000_000)).toBe(true)
    builder.add(new Uint8Array(8), 1_700_000_000_000)
    expect(builder.fits(8, 0, 1_700_000_000_000 + MAX_TIME_DELTA_MS)).toBe(true)
    expect(builder.fits(8, 0, 1_700_000_000_000 + MAX_TIME_DELTA_MS + 1)).toBe(false)
  })

  it("the pool keeps the buffers it is given back up to its count, raised by `keepMore` (a publisher's: one per topic)", () => {
    const pool = new BufferPool(64, 1)
    pool.keepMore(2)
    const given = [0, 1, 2, 3].map(() => new Uint8Array(64))
    for (const buffer of given) pool.give(buffer)
    const taken = [pool.take(), pool.take(), pool.take(), pool.take()]
    // The last given is taken first; the fourth was dropped, so the fourth taken is a new one.
    expect(taken.slice(0, 3)).toEqual([given[2], given[1], given[0]])
    expect(taken[0]).toBe(given[2])
    expect(taken[2]).toBe(given[0])
    expect(given.some((buffer) => buffer === taken[3])).toBe(false)
    expect(taken[3]!.length).toBe(64)
  })

  it("a recycled buffer's old bytes never leak into padding", () => {
    const pool = new BufferPool(64, 1)
    pool.give(new Uint8Array(64).fill(0xff))
    const builder = new BatchBuilder(pool)
    builder.add(new Uint8Array([1, 2, 3]), 0)
    builder.add(new Uint8Array(0), 0)
    builder.add(new Uint8Array(9).fill(4), 0)
    const { payload } = builder.seal()
    expect([...payload]).toEqual([
      11,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      2,
      3,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      9,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      4,
      4,
      4,
      4,
      4,
      4,
      4,
      4,
      4,
      0,
      0,
      0,
      0,
      0,
      0,
      0
    ])
  })

  it("the checker refuses payloads whose framing does not add up", () => {
    const builder = new BatchBuilder(new BufferPool(256, 0))
    builder.add(new Uint8Array(10))
    builder.add(new Uint8Array(3))
    const { payload } = builder.seal()
    expect(payload.length).toBe(messageRecordBytes(18) + messageRecordBytes(3))
    expect(checkBatchPayload(payload, 2)).toBeUndefined()
    expect(checkBatchPayload(payload, 1)).toMatch(/follow the last/)
    expect(checkBatchPayload(payload, 3)).toMatch(/starts past|overruns/)
    expect(checkBatchPayload(payload, 0)).toMatch(/message count/)
    expect(checkBatchPayload(payload.subarray(0, 20), 1)).toMatch(/multiple of 8/)
    const overrun = payload.slice()
    new DataView(overrun.buffer).setUint32(0, 1000, true)
    expect(checkBatchPayload(overrun, 2)).toMatch(/overruns/)
  })

  it("the checker refuses key and header lengths that run past their record, unknown flags and a misplaced base timestamp", () => {
    const { KEY, HEADERS, BASE_TIME } = MessageFlags
    const header = (
      name: number,
      value: number,
      bytes: number
    ) => [...u32le(name), ...u32le(value), ...Array<number>(bytes).fill(97)]
    // Well-formed first: a 2-byte key and one header ("a" = "aa"), then a value.
    expect(checkBatchPayload(handMade(KEY | HEADERS, [...u32le(2), 1, 2, ...u32le(11), ...header(1, 2, 3), 7]), 1))
      .toBeUndefined()
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ["a key longer than its record", handMade(KEY, [...u32le(9), 1, 2]), /9-byte key overruns/],
      ["a key length cut off", handMade(KEY, [1, 2]), /key length overruns/],
      ["a key length near 2^32", handMade(KEY, [...u32le(2 ** 32 - 1), 1]), /key overruns/],
      [
        "headers longer than the record",
        handMade(HEADERS, [...u32le(40), ...header(1, 1, 2)]),
        /40 bytes of headers overrun/
      ],
      ["a header name past the headers", handMade(HEADERS, [...u32le(10), ...header(5, 0, 2)]), /header 0 overruns/],
      [
        "a header value past the headers",
        handMade(HEADERS, [...u32le(11), ...header(1, 2 ** 32 - 1, 3)]),
        /header 0 overruns/
      ],
      ["a header cut off", handMade(HEADERS, [...u32le(12), ...header(1, 2, 3), 0]), /header 1 overruns/],
      ["an empty headers part", handMade(HEADERS, [...u32le(0)]), /no header/],
      ["unknown flag bits", handMade(0x20, [1, 2, 3]), /unknown flag bits/],
      ["no base timestamp on the first record", handMade(0, [1, 2, 3], false), /lacks the batch's base timestamp/],
      [
        "a base timestamp that is not a time",
        (() => {
          const p = handMade(0, [])
          new DataView(p.buffer).setFloat64(8, Number.NaN, true)
          return p
        })(),
        /not a time/
      ]
    ]
    for (const [label, payload, reason] of cases) {
      expect(checkBatchPayload(payload, 1) ?? "accepted", label).toMatch(reason)
    }
    // A second record with a base timestamp of its own.
    const builder = new BatchBuilder(new BufferPool(256, 0))
    builder.add(new Uint8Array(16))
    builder.add(new Uint8Array(16))
    const { payload } = builder.seal()
    const second = messageRecordBytes(24)
    new DataView(payload.buffer, payload.byteOffset).setUint32(second + 4, BASE_TIME, true)
    expect(checkBatchPayload(payload, 2)).toMatch(/message 1: only the first record/)
  })

  it("the checker judges a payload by its own bytes wherever it lies: the same verdict at any offset of a larger buffer, whatever follows it there", () => {
    fc.assert(fc.property(
      fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 5 }),
      fc.nat({ max: 40 }),
      fc.nat({ max: 4 }),
      (values, offset, cutWords) => {
        const builder = new BatchBuilder(new BufferPool(1024, 0))
        for (const value of values) builder.add(value, 1_700_000_000_000)
        const { payload, messageCount } = builder.seal()
        // The payload cut short inside a larger buffer that goes on with the rest of its records and then garbage.
        const length = Math.max(8, payload.length - 8 * cutWords)
        const host = new Uint8Array(offset + payload.length + 64).fill(0xff)
        host.set(payload, offset)
        const verdict = checkBatchPayload(host.subarray(offset, offset + length), messageCount)
        expect(verdict).toBe(checkBatchPayload(payload.slice(0, length), messageCount))
        if (length === payload.length) expect(verdict).toBeUndefined()
      }
    ))
  })

  it("the checker never throws and the walker agrees with it, whatever the bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 8, maxLength: 200 }), fc.nat({ max: 6 }), (bytes, count) => {
      const payload = bytes.subarray(0, bytes.length & ~7)
      if (checkBatchPayload(payload, count) !== undefined) return
      let walked = 0
      forEachMessage(payload, count, (m) => {
        walked++
        expect(m.payload.byteOffset + m.payload.length).toBeLessThanOrEqual(payload.byteOffset + payload.length)
        void m.headers
      })
      expect(walked).toBe(count)
    }))
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
