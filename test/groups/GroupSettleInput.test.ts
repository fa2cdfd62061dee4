/**
 * A `settle` (a member's acks, one request per chunk it takes) is read without its Schemas when
 * plainly well formed, on the broker (the input) and on the member (the answer). What is read
 * plainly must be what the Schema decodes, every well-formed input must be read plainly, and
 * anything else must still get the Schema's typed refusal over the wire, the connection going on.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Effect, Either, FastCheck, Schema } from "effect"
import { openGroupLink } from "../../src/layers/groups/GroupLink.js"
import { plainSettleAnswer, plainSettleInput, SettleDelivery } from "../../src/layers/groups/GroupProtocol.js"
import { insecureGroupsBroker, insecureLink } from "../fixtures/groups-broker.js"

const decodeInput = Schema.decodeUnknownEither(SettleDelivery.payload)
const decodeAnswer = Schema.decodeUnknownEither(SettleDelivery.success)

/** Well-formed inputs, and each with one field broken or an extra one. */
const inputs = FastCheck.oneof(
  Arbitrary.make(SettleDelivery.payload),
  FastCheck.tuple(
    Arbitrary.make(SettleDelivery.payload),
    FastCheck.constantFrom("member", "deliveries", "action", "delayMs", "reason", "extra"),
    FastCheck.oneof(
      FastCheck.anything(),
      FastCheck.double(),
      FastCheck.array(FastCheck.double(), { maxLength: 300 }),
      FastCheck.array(FastCheck.integer(), { maxLength: 300 }),
      FastCheck.string({ maxLength: 1100 })
    )
  ).map(([input, field, value]) => ({ ...input, [field]: value })),
  FastCheck.anything()
)

describe("a settle read without its Schemas", () => {
  it("an input read plainly is what the Schema decodes; a well-formed one always is", () => {
    FastCheck.assert(
      FastCheck.property(inputs, (input) => {
        const plain = plainSettleInput(input)
        const decoded = decodeInput(input)
        if (plain !== undefined) expect(decoded).toEqual(Either.right(plain))
      }),
      { numRuns: 3000 }
    )
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(SettleDelivery.payload), (input) => {
        expect(plainSettleInput(input)).toEqual(Either.getOrThrow(decodeInput(input)))
      }),
      { numRuns: 1000 }
    )
  })

  it("an answer read plainly is what the Schema decodes; a boolean per delivery always is", () => {
    const answers = FastCheck.oneof(FastCheck.array(FastCheck.boolean()), FastCheck.anything())
    FastCheck.assert(
      FastCheck.property(answers, (body) => {
        const plain = plainSettleAnswer(SettleDelivery.tag, body)
        if (plain !== undefined) expect(decodeAnswer(body)).toEqual(Either.right(plain))
      }),
      { numRuns: 3000 }
    )
    expect(plainSettleAnswer(SettleDelivery.tag, [true, false])).toEqual([true, false])
    expect(plainSettleAnswer("describe", [true])).toBeUndefined()
  })

  it.scopedLive("over a broker: a malformed settle is refused InvalidGroupRequest, and the connection goes on", () =>
    Effect.gen(function*() {
      const { address } = yield* insecureGroupsBroker
      const link = yield* Effect.acquireRelease(
        openGroupLink(address, insecureLink),
        (l) => Effect.sync(() => l.close())
      )
      // Sent as they are: a settle's input goes on the wire without its Schema.
      const settle = (input: unknown) =>
        Effect.either(link.call(SettleDelivery, input as typeof SettleDelivery.payload.Type))
      const malformed: ReadonlyArray<[unknown, RegExp]> = [
        [{ member: 1, deliveries: [1.5], action: "ack" }, /deliveries/],
        [{ member: 1, deliveries: [], action: "ack" }, /deliveries/],
        [{ member: 1, deliveries: Array.from({ length: 201 }, (_, i) => i), action: "ack" }, /deliveries/],
        [{ member: "1", deliveries: [1], action: "ack" }, /member/],
        [{ member: 1, deliveries: [1], action: "drop" }, /action/],
        [{ member: 1, deliveries: [1], action: "nak", delayMs: -1 }, /delayMs/],
        [{ member: 1, deliveries: [1], action: "term", reason: "x".repeat(1001) }, /reason/],
        [[1, 2], /settle/]
      ]
      for (const [input, names] of malformed) {
        const refused = yield* settle(input)
        expect(Either.isLeft(refused) && refused.left._tag).toBe("InvalidGroupRequest")
        const reason = Either.isLeft(refused) && refused.left._tag === "InvalidGroupRequest" ? refused.left.reason : ""
        expect(reason).toMatch(/^the input of settle: /)
        expect(reason).toMatch(names)
      }
      // A well-formed settle naming deliveries this connection does not hold: answered, each false.
      expect(yield* settle({ member: 1, deliveries: [1, 2], action: "ack" })).toEqual(Either.right([false, false]))
      expect(yield* settle({ member: 1, deliveries: [3], action: "nak", delayMs: 10 })).toEqual(Either.right([false]))
    }))
})
