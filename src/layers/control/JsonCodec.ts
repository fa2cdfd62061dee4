/**
 * JSON codecs for RPC payloads: `Schema.parseJson(schema)` semantics, with a fast path for
 * the plain JSON shapes that control-plane messages are made of.
 *
 * Schema's interpreter costs ~10 µs to decode or encode a few small structs — a third of an
 * in-process RPC round trip. For a Schema built only from strings, numbers, booleans, literals,
 * unions of those, arrays, exact structs (no index signatures) and refinements (whose own
 * filters run), a value is checked by a closure compiled once from the AST instead. The fast
 * check accepts only values that Schema accepts and returns unchanged: it refuses excess
 * properties (Schema would strip them), unions of objects (Schema would pick a candidate) and
 * anything with a transformation, so its result is what Schema's would be. Whatever it refuses
 * — an invalid value, or a Schema outside that set — goes through Schema itself, which gives
 * the same result or the same ParseError as before.
 *
 * JSON has no `undefined`, so `Schema.parseJson` cannot encode a value whose encoded form is
 * undefined (a `Schema.Void` or `Schema.Undefined` reply): such a value travels as the empty
 * text, which no JSON document is, and the empty text decodes as undefined.
 */
import { Either, Option, ParseResult, Schema, SchemaAST as AST } from "effect"

/** A compiled check: true when Schema would accept `u` and give it back unchanged. */
type Check = (u: unknown) => boolean

const NO_OPTIONS: AST.ParseOptions = {}

/** The text of an encoded `undefined` (see above): not JSON, so it names nothing else. */
const UNDEFINED_TEXT = ""

const isPlainObject = (u: unknown): u is Record<string, unknown> => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

/** A scalar check (string, number, boolean, null or literal, refined or not), for union members. */
const compileScalar = (ast: AST.AST): Check | undefined => {
  switch (ast._tag) {
    case "StringKeyword":
      return (u) => typeof u === "string"
    case "NumberKeyword":
      return (u) => typeof u === "number"
    case "BooleanKeyword":
      return (u) => typeof u === "boolean"
    case "Literal": {
      const literal = ast.literal
      return typeof literal === "bigint" ? undefined : (u) => u === literal
    }
    case "Refinement": {
      const from = compileScalar(ast.from)
      return from === undefined ? undefined : refined(from, ast)
    }
    default:
      return undefined
  }
}

const refined = (from: Check, ast: AST.Refinement): Check => (u) =>
  from(u) && Option.isNone(ast.filter(u, NO_OPTIONS, ast))

/** The fast check of `ast`, or undefined when the Schema is outside the supported set. */
export const compileCheck = (ast: AST.AST): Check | undefined => {
  switch (ast._tag) {
    case "Refinement": {
      const from = compileCheck(ast.from)
      return from === undefined ? undefined : refined(from, ast)
    }
    case "Union": {
      const members = ast.types.map(compileScalar)
      if (members.some((m) => m === undefined)) return undefined
      const checks = members as ReadonlyArray<Check>
      return (u) => checks.some((check) => check(u))
    }
    case "TupleType": {
      if (ast.elements.some((e) => e.isOptional) || ast.rest.length > 1) return undefined
      const elements = ast.elements.map((e) => compileCheck(e.type))
      const rest = ast.rest.length === 1 ? compileCheck(ast.rest[0]!.type) : null
      if (elements.some((e) => e === undefined) || rest === undefined) return undefined
      const fixed = elements as ReadonlyArray<Check>
      return (u) => {
        if (!Array.isArray(u) || u.length < fixed.length || (rest === null && u.length !== fixed.length)) return false
        for (let i = 0; i < fixed.length; i++) if (!fixed[i]!(u[i])) return false
        if (rest !== null) { for (let i = fixed.length; i < u.length; i++) if (!rest(u[i])) return false }
        return true
      }
    }
    case "TypeLiteral": {
      if (ast.indexSignatures.length > 0) return undefined
      const props: Array<{ readonly name: string; readonly check: Check; readonly optional: boolean }> = []
      for (const ps of ast.propertySignatures) {
        const check = compileCheck(ps.type)
        if (typeof ps.name !== "string" || check === undefined) return undefined
        props.push({ name: ps.name, check, optional: ps.isOptional })
      }
      return (u) => {
        if (!isPlainObject(u)) return false
        let present = 0
        for (const { check, name, optional } of props) {
          if (Object.hasOwn(u, name)) {
            if (!check(u[name])) return false
            present++
          } else if (!optional) return false
        }
        // Excess properties: Schema strips them, so such a value is left to Schema.
        return Object.keys(u).length === present
      }
    }
    default:
      return compileScalar(ast)
  }
}

export interface JsonCodec {
  readonly encode: (value: unknown) => Either.Either<string, ParseResult.ParseError>
  readonly decode: (json: string) => Either.Either<unknown, ParseResult.ParseError>
  /** Whether values this codec accepts skip Schema's interpreter. */
  readonly fast: boolean
}

/** A codec with `Schema.parseJson(schema)`'s results; build once per Schema (it compiles the Schema). */
export const jsonCodec = <A, I>(schema: Schema.Schema<A, I>): JsonCodec => {
  const json = Schema.parseJson(schema)
  const encodeJson = Schema.encodeEither(json)
  const decodeJson = Schema.decodeUnknownEither(json)
  const encodeBare = Schema.encodeEither(schema)
  const decodeBare = Schema.decodeUnknownEither(schema)
  // Only a value parseJson refused is encoded again without it: the common case pays nothing.
  const slowEncode = (value: unknown): Either.Either<string, ParseResult.ParseError> => {
    const encoded = encodeJson(value as A)
    if (Either.isRight(encoded)) return encoded
    const bare = encodeBare(value as A)
    return Either.isRight(bare) && bare.right === undefined ? Either.right(UNDEFINED_TEXT) : encoded
  }
  const slowDecode = (text: string) => (text === UNDEFINED_TEXT ? decodeBare(undefined) : decodeJson(text))
  const check = compileCheck(schema.ast)
  if (check === undefined) return { encode: slowEncode, decode: slowDecode, fast: false }
  return {
    fast: true,
    encode: (value) => (check(value) ? Either.right(JSON.stringify(value)) : slowEncode(value)),
    decode: (text) => {
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        return slowDecode(text)
      }
      return check(parsed) ? Either.right(parsed) : slowDecode(text)
    }
  }
}
