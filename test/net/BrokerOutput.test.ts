import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import { ConnectionOutput } from "../../src/layers/net/BrokerOutput.js"
import { ackFrame, endedFrame, sessionFencedFrame } from "../../src/layers/net/Control.js"
import { MAX_ACK_ORDERS, MAX_SEQUENCE } from "../../src/layers/net/Frame.js"
import type { AckLevel } from "../../src/services/log/Topics.js"

const ack = fc.record({
  sessionId: fc.nat({ max: 2 ** 32 - 1 }),
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

/**
 * The writes an output made (copied as they were when written, and as the socket would send them
 * later), to a socket that hands everything to the kernel at once or (`holding`) keeps it all.
 */
const recorder = (holding: boolean) => {
  const writes: Array<{ readonly at: Buffer; readonly view: Buffer }> = []
  let held = 0
  const output = new ConnectionOutput((frames) => {
    writes.push({ at: Buffer.from(frames), view: frames })
    if (holding) held += frames.length
    return true
  }, () => held)
  return { output, writes }
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe("ConnectionOutput (a publisher connection's frames, each phase's in one write)", () => {
  it("ACKs are byte for byte what the generic encoder makes, and one phase's frames go out in one write, in order", async () => {
    const { output, writes } = recorder(false)
    await fc.assert(
      fc.asyncProperty(fc.array(ack, { minLength: 1, maxLength: 8 }), async (acks) => {
        writes.length = 0
        const expected: Array<Buffer> = []
        for (const a of acks) {
          const orders = Float64Array.from(a.orders.flat())
          const from = Math.min(a.from, a.orders.length)
          const count = Math.min(a.count, a.orders.length - from)
          output.ack(a.sessionId, a.sessionEpoch, a.acked, a.level, orders, from, count)
          expected.push(ackFrame(a.sessionId, a.sessionEpoch, a.acked, a.level, orders, from, count))
        }
        const fenced = sessionFencedFrame(9, 2, 17)
        output.frame(fenced)
        expected.push(fenced)
        expect(writes).toHaveLength(0)
        await nextTurn()
        expect(writes.map((w) => w.at)).toEqual([Buffer.concat(expected)])
      }),
      { numRuns: 200 }
    )
  })

  it("bytes the socket still holds are never written over: later frames go after them, or into a new buffer", async () => {
    // A socket whose kernel buffer is full: it holds every write, by reference, until drained.
    const { output, writes } = recorder(true)
    const orders = Float64Array.from(Array.from({ length: 2 * MAX_ACK_ORDERS }, (_, i) => i))
    // 40 callbacks of 20 ACKs of 256 pairs (4 KiB each): far past one buffer's 64 KiB.
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 20; i++) output.ack(round * 100 + i, 1, round, 1, orders, 0, MAX_ACK_ORDERS)
      output.frame(endedFrame(round, 1, "topic-deleted", `round ${round}`))
      await nextTurn()
    }
    expect(writes.length).toBeGreaterThanOrEqual(40)
    for (const write of writes) expect(write.view.equals(write.at)).toBe(true)
  })

  it("a drained socket's buffer is used again from its start", async () => {
    const { output, writes } = recorder(false)
    for (let round = 0; round < 3; round++) {
      output.frame(sessionFencedFrame(round, 1, round))
      await nextTurn()
    }
    const [first, second, third] = writes.map((w) => w.view)
    expect(first!.buffer).toBe(second!.buffer)
    expect([first!.byteOffset, second!.byteOffset, third!.byteOffset]).toEqual([0, 0, 0])
    expect(writes.map((w) => w.at)).toEqual([0, 1, 2].map((round) => sessionFencedFrame(round, 1, round)))
  })

  it("a thousand sessions' trackers waiting for the next turn run in one immediate, and their ACKs go out in one write", async () => {
    const { output, writes } = recorder(false)
    const orders = Float64Array.from([0, 0])
    const expected: Array<Buffer> = []
    let ran = 0
    for (let id = 1; id <= 1000; id++) {
      output.nextTurn(() => {
        ran++
        output.ack(id, 1, 1, 1, orders, 0, 1)
      })
      expected.push(ackFrame(id, 1, 1, 1, orders, 0, 1))
    }
    expect(ran).toBe(0)
    await nextTurn()
    await nextTurn()
    expect(ran).toBe(1000)
    expect(writes.map((w) => w.at)).toEqual([Buffer.concat(expected)])
  })
})
