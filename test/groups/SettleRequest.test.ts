/**
 * The broker reads a `settle` request without its Schemas when it has their shape: what that
 * check takes must be exactly what SettleDelivery's Schema decodes, to the same value, and a
 * member's acks as its client sends them must take the plain path.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import * as fc from "effect/FastCheck"
import { groupRequestFrame, SETTLE_MAX_DELIVERIES, SettleDelivery } from "../../src/layers/groups/GroupProtocol.js"
import { plainSettleInput, plainSettleRequest } from "../../src/layers/groups/SettleRequest.js"
import { TERM_REASON_MAX_CHARS } from "../../src/layers/groups/TermReason.js"
import { FrameType } from "../../src/layers/net/Frame.js"
import { FrameReader } from "../../src/layers/net/FrameReader.js"

const decode = Schema.decodeUnknownEither(SettleDelivery.payload)

/** Numbers a JSON text can carry, near the edges the Schema checks. */
const number = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom(0.5, -0.5, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 1e300),
  fc.double({ noNaN: true, noDefaultInfinity: true })
)
const anyValue = fc.oneof(
  number,
  fc.string({ maxLength: 4 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.nat(), { maxLength: 2 })
)

/** Well-formed settle inputs: what a member's client sends. */
const wellFormed = fc.record(
  {
    member: fc.nat(),
    deliveries: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
    action: fc.constantFrom("ack", "nak", "term", "inProgress"),
    delayMs: fc.nat(),
    reason: fc.string({ maxLength: 8 })
  },
  { requiredKeys: ["member", "deliveries", "action"] }
)

/** Settle inputs, well formed and not: each property present or not, of the right type or not, in range or not. */
const anyInput = fc.record(
  {
    member: fc.oneof(number, anyValue),
    deliveries: fc.oneof(
      fc.array(number, { minLength: 0, maxLength: 4 }),
      fc.array(fc.nat(), { minLength: SETTLE_MAX_DELIVERIES, maxLength: SETTLE_MAX_DELIVERIES + 1 }),
      anyValue
    ),
    action: fc.oneof(fc.constantFrom("ack", "nak", "term", "inProgress", "Ack", ""), anyValue),
    delayMs: fc.oneof(number, anyValue),
    reason: fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.constant("x".repeat(TERM_REASON_MAX_CHARS)),
      fc.constant("x".repeat(TERM_REASON_MAX_CHARS + 1)),
      anyValue
    ),
    extra: anyValue
  },
  { requiredKeys: [] }
)
const input = fc.oneof(wellFormed, anyInput, fc.tuple(wellFormed, anyInput).map(([good, bad]) => ({ ...good, ...bad })))

describe("a settle request read without its Schemas", () => {
  it("takes exactly what the Schema decodes, to the same value", () => {
    let taken = 0
    fc.assert(
      fc.property(input, (given) => {
        // As the wire carries it: JSON text parsed back.
        const value: unknown = JSON.parse(JSON.stringify(given))
        const plain = plainSettleInput(value)
        const schema = decode(value)
        if (Either.isLeft(schema)) {
          expect(plain).toBeUndefined()
        } else {
          expect(plain).toStrictEqual(schema.right)
          taken++
        }
      }),
      { numRuns: 5_000 }
    )
    // The generator reaches the accepting side as well, not only refusals.
    expect(taken).toBeGreaterThan(50)
  })

  it("takes a member's acks, naks and terms as its client frames them, and nothing of another operation", () => {
    const payloadOf = (frame: Buffer) => {
      const reader = new FrameReader({ accept: [FrameType.GROUP_REQUEST], maxBatchBytes: 0 })
      reader.push(frame)
      const read = reader.next()
      if (read === undefined || !("type" in read)) throw new Error(`no GROUP_REQUEST read: ${String(read)}`)
      return read.payload
    }
    const sent = [
      { member: 3, deliveries: Array.from({ length: 64 }, (_, i) => 1_000 + i), action: "ack" as const },
      { member: 3, deliveries: [7], action: "nak" as const, delayMs: 250 },
      { member: 9, deliveries: [8, 9], action: "term" as const, reason: "bad input" }
    ]
    for (const settle of sent) {
      expect(plainSettleRequest(payloadOf(groupRequestFrame(12, SettleDelivery, settle)))).toStrictEqual(settle)
    }
    const text = (body: unknown) => new TextEncoder().encode(JSON.stringify(body))
    expect(plainSettleRequest(text({ operation: "leave", input: { member: 3 } }))).toBeUndefined()
    expect(plainSettleRequest(text({ operation: "settle", input: { member: 3, deliveries: [], action: "ack" } })))
      .toBeUndefined()
    expect(plainSettleRequest(new TextEncoder().encode("{not json"))).toBeUndefined()
    expect(plainSettleRequest(Uint8Array.of(0xff, 0xfe))).toBeUndefined()
  })
})
