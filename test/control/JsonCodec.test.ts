import { describe, expect, it } from "@effect/vitest"
import { Either, ParseResult, Schema } from "effect"
import {
  BarrierArriveMethod,
  BarrierReleaseNotice,
  JoinMethod,
  ListMembersMethod
} from "../../src/layers/control/CoordinatorProtocol.js"
import { jsonCodec } from "../../src/layers/control/JsonCodec.js"
import { BarrierTimeout } from "../../src/services/control/Coordinator.js"

const Point = Schema.Struct({
  x: Schema.Int,
  y: Schema.Number.pipe(Schema.nonNegative()),
  label: Schema.optionalWith(Schema.String, { exact: true })
})
const Shapes = Schema.Struct({
  kind: Schema.Literal("a", "b"),
  points: Schema.Array(Point),
  pair: Schema.Tuple(Schema.String, Schema.Boolean),
  nothing: Schema.Null
}).pipe(Schema.filter((s) => s.points.length < 4 || "at most 3 points"))

/** Schema's own answer, to compare the codec with: the value, or the formatted issue. */
const viaSchema = {
  decode: (schema: Schema.Schema<any, any>, text: string) => Schema.decodeUnknownEither(Schema.parseJson(schema))(text),
  encode: (schema: Schema.Schema<any, any>, value: unknown) => Schema.encodeEither(Schema.parseJson(schema))(value)
}

const same = (
  actual: Either.Either<unknown, ParseResult.ParseError>,
  expected: Either.Either<unknown, ParseResult.ParseError>
) => {
  expect(actual._tag).toBe(expected._tag)
  if (Either.isRight(actual) && Either.isRight(expected)) expect(actual.right).toEqual(expected.right)
  if (Either.isLeft(actual) && Either.isLeft(expected)) {
    expect(ParseResult.TreeFormatter.formatErrorSync(actual.left)).toBe(
      ParseResult.TreeFormatter.formatErrorSync(expected.left)
    )
  }
}

const good = { kind: "a", points: [{ x: 1, y: 2 }, { x: -3, y: 0, label: "o" }], pair: ["s", true], nothing: null }

// Inputs on both sides of every check: each must come out exactly as Schema.parseJson says.
const decodeCases: ReadonlyArray<unknown> = [
  good,
  { ...good, extra: 1 }, // excess property: Schema strips it
  { ...good, points: [{ x: 1, y: 2, z: 3 }] }, // excess inside an array element
  { ...good, kind: "c" },
  { ...good, points: [{ x: 1.5, y: 2 }] }, // Int refinement
  { ...good, points: [{ x: 1, y: -1 }] }, // nonNegative refinement
  { ...good, points: [{ x: 1 }] }, // missing required property
  { ...good, points: [{ x: 1, y: 1, label: 7 }] },
  { ...good, points: Array.from({ length: 4 }, () => ({ x: 1, y: 1 })) }, // the struct's own filter
  { ...good, pair: ["s"] },
  { ...good, pair: ["s", true, 1] },
  { ...good, nothing: 0 },
  [good],
  null,
  "text"
]

describe("JsonCodec", () => {
  it("decodes every input exactly as Schema.parseJson does: values, stripped excess properties and issues", () => {
    const codec = jsonCodec(Shapes)
    expect(codec.fast).toBe(true)
    for (const input of decodeCases) {
      same(codec.decode(JSON.stringify(input)), viaSchema.decode(Shapes, JSON.stringify(input)))
    }
    same(codec.decode("{not json"), viaSchema.decode(Shapes, "{not json"))
  })

  it("encodes every value exactly as Schema.parseJson does, refusing the invalid ones with Schema's issue", () => {
    const codec = jsonCodec(Shapes)
    for (const value of decodeCases) same(codec.encode(value), viaSchema.encode(Shapes, value))
    // A class instance is not a plain object: left to Schema.
    class Boxed {
      x = 1
      y = 1
    }
    same(jsonCodec(Point).encode(new Boxed()), viaSchema.encode(Point, new Boxed()))
  })

  it("takes the fast path for the coordinator's plain messages and leaves transformations and tagged errors to Schema", () => {
    for (
      const schema of [
        ListMembersMethod.payload,
        ListMembersMethod.success,
        JoinMethod.payload,
        BarrierArriveMethod.payload,
        BarrierArriveMethod.success,
        BarrierReleaseNotice.schema
      ]
    ) {
      expect(jsonCodec(schema as Schema.Schema<unknown, unknown>).fast).toBe(true)
    }
    expect(jsonCodec(BarrierTimeout).fast).toBe(false)
    expect(jsonCodec(Schema.DateFromString).fast).toBe(false)
    expect(jsonCodec(Schema.Struct({ a: Schema.NumberFromString })).fast).toBe(false)
    // A union of objects: Schema picks a candidate (and strips for it), so it is Schema's to decode.
    expect(
      jsonCodec(
        Schema.Union(Schema.Struct({ a: Schema.Number }), Schema.Struct({ a: Schema.Number, b: Schema.Number }))
      ).fast
    ).toBe(false)
    // Records (index signatures) are not handled either.
    expect(jsonCodec(Schema.Record({ key: Schema.String, value: Schema.Number })).fast).toBe(false)
    // The slow path still gives Schema's results.
    const dates = jsonCodec(Schema.DateFromString)
    same(
      dates.decode(JSON.stringify("2024-01-01T00:00:00.000Z")),
      viaSchema.decode(Schema.DateFromString, JSON.stringify("2024-01-01T00:00:00.000Z"))
    )
  })

  // parseJson refuses them (JSON has no undefined), so a Schema.Void reply could never be sent.
  it("round-trips values whose encoded form is undefined (Schema.Void, Schema.Undefined) and still refuses invalid ones", () => {
    const optional = Schema.Union(Schema.Undefined, Schema.String)
    for (
      const [schema, value] of [[Schema.Void, undefined], [Schema.Undefined, undefined], [optional, undefined], [
        optional,
        "s"
      ]] as const
    ) {
      const codec = jsonCodec(schema as Schema.Schema<unknown, unknown>)
      const text = codec.encode(value)
      expect(Either.isRight(text)).toBe(true)
      expect(codec.decode(Either.getOrThrow(text))).toEqual(Either.right(value))
    }
    same(jsonCodec(Schema.Undefined).encode(null), viaSchema.encode(Schema.Undefined, null))
    expect(Either.isLeft(jsonCodec(Schema.Undefined).decode("null"))).toBe(true)
    expect(Either.isLeft(jsonCodec(Point).decode(""))).toBe(true)
  })
})
