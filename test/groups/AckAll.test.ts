/**
 * `ackAll` over deliveries of several kinds at once: those acked together (a remote member's: one
 * request per member) and those acked one by one. Every delivery gets its own outcome in the order
 * given, each membership's acks go in one request of exactly its deliveries, and a chunk of one
 * membership (the usual case, which runs without a fiber per request) answers the same.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ackAll, type AckedTogether, type AcksTogether } from "../../src/layers/groups/GroupDelivery.js"
import type { GroupLink } from "../../src/layers/groups/GroupLink.js"
import { RemoteDelivery, RemoteSettling } from "../../src/layers/groups/RemoteDelivery.js"
import { type Delivery, GroupsUnavailable } from "../../src/services/groups/ConsumerGroups.js"

/** A membership whose request settles the deliveries whose offsets `settles` holds, recording each request. */
const membership = (settles: (offset: number) => boolean) => {
  const requests: Array<Array<number>> = []
  const acks: AcksTogether = {
    ackAll: (deliveries) =>
      Effect.sync(() => {
        requests.push(deliveries.map((d) => d.offset))
        return deliveries.map((d) => settles(d.offset))
      }),
    giveBackAll: () => Effect.die("not given back in these tests")
  }
  return { acks, requests }
}

const fields = (offset: number) => ({
  group: "g",
  topic: "t",
  offset,
  timestamp: 0,
  key: undefined,
  headers: undefined,
  value: new Uint8Array(0),
  deliveryCount: 1,
  nak: () => Effect.succeed(false),
  term: () => Effect.succeed(false),
  inProgress: Effect.succeed(false)
})

const together = (acks: AcksTogether, offset: number): Delivery & AckedTogether => ({
  ...fields(offset),
  acks,
  ack: Effect.die("acked on its own, not with its membership")
})

const alone = (offset: number, outcome: boolean, acked: Array<number>): Delivery => ({
  ...fields(offset),
  ack: Effect.sync(() => {
    acked.push(offset)
    return outcome
  })
})

describe("ackAll", () => {
  it.effect("one membership's chunk: one request of all of them, each outcome in order", () =>
    Effect.gen(function*() {
      const m = membership((offset) => offset % 2 === 0)
      const outcomes = yield* ackAll([0, 1, 2, 3].map((offset) => together(m.acks, offset)))
      expect(outcomes).toEqual([true, false, true, false])
      expect(m.requests).toEqual([[0, 1, 2, 3]])
    }))

  it.effect("two memberships and deliveries acked alone, interleaved: a request per membership, outcomes in the order given", () =>
    Effect.gen(function*() {
      const a = membership(() => true)
      const b = membership(() => false)
      const aloneAcked: Array<number> = []
      const outcomes = yield* ackAll([
        together(a.acks, 10),
        together(b.acks, 20),
        alone(30, true, aloneAcked),
        together(a.acks, 11),
        alone(31, false, aloneAcked),
        together(b.acks, 21)
      ])
      expect(outcomes).toEqual([true, false, true, true, false, false])
      expect(a.requests).toEqual([[10, 11]])
      expect(b.requests).toEqual([[20, 21]])
      expect(aloneAcked).toEqual([30, 31])
    }))

  it.effect("one membership beside deliveries acked alone", () =>
    Effect.gen(function*() {
      const a = membership((offset) => offset !== 2)
      const aloneAcked: Array<number> = []
      const outcomes = yield* ackAll([together(a.acks, 1), alone(5, true, aloneAcked), together(a.acks, 2)])
      expect(outcomes).toEqual([true, true, false])
      expect(a.requests).toEqual([[1, 2]])
      expect(aloneAcked).toEqual([5])
    }))

  it.effect("a remote member's settles over a link that broke answer false: the message may come again, nothing fails", () =>
    Effect.gen(function*() {
      // The link's calls fail as a broken connection's do (GroupLink.ts).
      const broken = {
        call: () => Effect.fail(new GroupsUnavailable({ reason: "the connection to 127.0.0.1:1 closed" }))
      } as unknown as GroupLink
      const settling = new RemoteSettling(broken, 1, "g", "t")
      const deliveries = [0, 1].map((offset) =>
        new RemoteDelivery(settling, offset + 1, { ...fields(offset), key: undefined, headers: undefined })
      )
      const [first] = deliveries
      expect(yield* first!.ack).toBe(false)
      expect(yield* first!.inProgress).toBe(false)
      expect(yield* first!.nak()).toBe(false)
      expect(yield* first!.term("bad")).toBe(false)
      expect(yield* ackAll(deliveries)).toEqual([false, false])
    }))
})
