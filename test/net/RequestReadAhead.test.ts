/**
 * A request connection's requests in turn (RequestReadAhead.ts): between answers a request is read
 * when asked for, and nothing ahead; while an answer is `readingAhead`, the requests sent meanwhile
 * are read as they come, each stamped then (not when taken up) and with a payload of its own though
 * the connection's reader reuses its buffer, at most READ_AHEAD_REQUESTS; the end and a violation
 * come after every request read before them; the idle bound runs only while nothing waits to be
 * answered.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, Queue, TestClock } from "effect"
import { WireViolation } from "../../src/layers/net/Control.js"
import { type Frame, FrameType } from "../../src/layers/net/Frame.js"
import { READ_AHEAD_REQUESTS, requestsInTurn } from "../../src/layers/net/RequestReadAhead.js"

type Incoming = number | "end" | WireViolation

/**
 * A connection whose frames the test sends (`send`): each a GROUP_REQUEST whose seq and one-byte
 * payload are the number sent, its payload always in the same buffer, as a socket's reader reuses
 * its own. `reads` counts the frames taken off it.
 */
const connection = Effect.gen(function*() {
  const incoming = yield* Queue.unbounded<Incoming>()
  const buffer = new Uint8Array(1)
  let reads = 0
  const nextFrame = Effect.flatMap(Queue.take(incoming), (next): Effect.Effect<Frame | undefined, WireViolation> => {
    if (next === "end") return Effect.succeed(undefined)
    if (next instanceof WireViolation) return Effect.fail(next)
    reads++
    buffer[0] = next
    return Effect.succeed({
      type: FrameType.GROUP_REQUEST,
      clientId: 0,
      sessionEpoch: 0,
      seq: next,
      messageCount: 0,
      payloadBytes: 1,
      crc32c: 0,
      payload: buffer
    })
  })
  return {
    nextFrame,
    send: (...items: Array<Incoming>) => Queue.offerAll(incoming, items),
    reads: () => reads
  }
})

/** A connection and its requests in turn, with the idle bound `idleMs` (0: none). */
const served = (idleMs = 0) =>
  Effect.gen(function*() {
    const c = yield* connection
    return { c, requests: yield* requestsInTurn(c.nextFrame, () => idleMs) }
  })

describe("a request connection's requests in turn", () => {
  it.scoped("between answers, reads a request only when asked for one, stamped as it is read", () =>
    Effect.gen(function*() {
      const { c, requests } = yield* served()
      yield* c.send(1, 2, 3)
      yield* TestClock.adjust(1_000)
      const first = yield* requests.next
      expect([first?.frame.seq, first?.arrivedAtMs]).toEqual([1, 1_000])
      // Answered at once: the others wait in the connection, read as asked for.
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      expect(c.reads()).toBe(1)
      yield* TestClock.adjust(1_000)
      const second = yield* requests.next
      expect([second?.frame.seq, second?.arrivedAtMs]).toEqual([2, 2_000])
      expect(c.reads()).toBe(2)
    }))

  it.scoped("while an answer reads ahead, the requests sent meanwhile are read as they come, each its own payload", () =>
    Effect.gen(function*() {
      const { c, requests } = yield* served()
      yield* c.send(1)
      expect((yield* requests.next)?.frame.seq).toBe(1)
      yield* requests.readingAhead(Effect.gen(function*() {
        yield* TestClock.adjust(1_000)
        yield* c.send(2, 3)
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        yield* TestClock.adjust(4_000)
      }))
      const taken = [yield* requests.next, yield* requests.next]
      expect(taken.map((a) => [a?.frame.seq, a?.frame.payload[0], a?.arrivedAtMs])).toEqual([
        [2, 2, 1_000],
        [3, 3, 1_000]
      ])
    }))

  it.scoped("the end and a violation come after the requests read before them", () =>
    Effect.gen(function*() {
      const { c, requests } = yield* served()
      const violation = new WireViolation({ code: "bad-handshake", detail: "not a request" })
      yield* requests.readingAhead(Effect.zipRight(c.send(1, violation, 2), Effect.repeatN(Effect.yieldNow(), 20)))
      expect((yield* requests.next)?.frame.seq).toBe(1)
      expect(yield* Effect.either(requests.next)).toEqual(Either.left(violation))

      const { c: d, requests: others } = yield* served()
      yield* others.readingAhead(Effect.zipRight(d.send(1, "end"), Effect.repeatN(Effect.yieldNow(), 20)))
      expect((yield* others.next)?.frame.seq).toBe(1)
      expect(yield* others.next).toBeUndefined()
    }))

  it.scoped("the idle bound counts only while no request waits to be answered", () =>
    Effect.gen(function*() {
      const { c, requests } = yield* served(1_000)
      yield* c.send(1)
      expect((yield* requests.next)?.frame.seq).toBe(1)
      // Its answer takes far longer than the idle bound: the connection is busy, not idle.
      yield* requests.readingAhead(TestClock.adjust(10_000))
      const waiting = yield* Effect.fork(requests.next)
      yield* TestClock.adjust(999)
      yield* c.send(2)
      expect((yield* Fiber.join(waiting))?.frame.seq).toBe(2)
      const idle = yield* Effect.fork(requests.next)
      yield* TestClock.adjust(1_000)
      expect(yield* Effect.flip(Fiber.join(idle))).toMatchObject({ code: "idle-timeout" })
    }))

  it.scoped("reads at most READ_AHEAD_REQUESTS ahead, and the rest once asked for", () =>
    Effect.gen(function*() {
      const { c, requests } = yield* served()
      const sent = READ_AHEAD_REQUESTS + 10
      yield* requests.readingAhead(Effect.gen(function*() {
        yield* c.send(...Array.from({ length: sent }, (_, i) => i))
        yield* Effect.repeatN(Effect.yieldNow(), 200)
        expect(c.reads()).toBe(READ_AHEAD_REQUESTS)
      }))
      for (let i = 0; i < sent; i++) expect((yield* requests.next)?.frame.seq).toBe(i)
    }))
})
