import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import { Writable } from "node:stream"
import { ackFrame } from "../../src/layers/net/Control.js"
import { ackEncoder, MAX_ACK_ORDERS, MAX_SEQUENCE } from "../../src/layers/net/Frame.js"
import type { AckLevel } from "../../src/services/log/Topics.js"

const ack = fc.record({
  clientId: fc.nat({ max: 2 ** 32 - 1 }),
  sessionEpoch: fc.nat({ max: 2 ** 32 - 1 }),
  acked: fc.nat({ max: MAX_SEQUENCE }),
  level: fc.constantFrom<AckLevel>(0, 1, 2),
  // Pairs of (batch seq, total order), integers below 2^53 like the broker's.
  orders: fc.array(fc.tuple(fc.nat({ max: MAX_SEQUENCE }), fc.nat({ max: MAX_SEQUENCE })), {
    maxLength: MAX_ACK_ORDERS + 40
  }),
  from: fc.nat({ max: 40 }),
  count: fc.nat({ max: MAX_ACK_ORDERS })
})

describe("AckEncoder (the broker's ACK fast path)", () => {
  it("writes, ACK after ACK into its reused buffer, exactly the bytes of the generic encoder", () => {
    const encoder = ackEncoder()
    fc.assert(
      fc.property(fc.array(ack, { minLength: 1, maxLength: 8 }), (acks) => {
        for (const a of acks) {
          const orders = Float64Array.from(a.orders.flat())
          const from = Math.min(a.from, a.orders.length)
          const count = Math.min(a.count, a.orders.length - from)
          const fast = encoder.encode(a.clientId, a.sessionEpoch, a.acked, a.level, orders, from, count)
          expect(Buffer.from(fast)).toEqual(ackFrame(a.clientId, a.sessionEpoch, a.acked, a.level, orders, from, count))
        }
      }),
      { numRuns: 300 }
    )
  })

  it("a frame stays valid until the next encode, and one a writer still queues keeps its buffer", () => {
    const encoder = ackEncoder()
    const orders = Float64Array.from([1, 100, 2, 200, 3, 300])
    const first = encoder.encode(7, 1, 3, 1, orders, 0, 3)
    const expected = ackFrame(7, 1, 3, 1, orders, 0, 3)
    expect(Buffer.from(first)).toEqual(expected)
    encoder.written({ writableLength: first.length })
    const second = encoder.encode(8, 2, 5, 2, orders, 1, 1)
    expect(Buffer.from(first)).toEqual(expected)
    expect(Buffer.from(second)).toEqual(ackFrame(8, 2, 5, 2, orders, 1, 1))
  })
})

describe("AckEncoder with a writer that queues", () => {
  it("frames a stream still holds are not overwritten by later ACKs (`written` leaves them their buffer)", async () => {
    // A socket whose kernel buffer is full: it holds every chunk, by reference, until drained.
    const held: Array<Buffer> = []
    const drains: Array<() => void> = []
    const writer = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _encoding, callback) => {
        held.push(chunk)
        drains.push(callback)
      }
    })
    const encoder = ackEncoder()
    const expected: Array<Buffer> = []
    for (let i = 0; i < 20; i++) {
      const orders = Float64Array.from([i, 1000 + i, i + 1, 2000 + i])
      writer.write(encoder.encode(i, 1, i + 2, 1, orders, 0, 1 + (i % 2)))
      encoder.written(writer)
      expected.push(ackFrame(i, 1, i + 2, 1, orders, 0, 1 + (i % 2)))
    }
    // The first chunk went to `write` at once; the rest queued behind it in the stream.
    for (let i = 0; drains[i] !== undefined; i++) drains[i]!()
    await new Promise((resolve) => setImmediate(resolve))
    expect(held.map((b) => Buffer.from(b))).toEqual(expected)
  })
})
