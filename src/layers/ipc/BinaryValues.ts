/**
 * A typed channel's values in binary: for a Schema made of numbers, strings, booleans, literals,
 * exact structs (optional properties too) and arrays of those, refined or not — the Schemas whose
 * values JsonCodec's fast check takes (JsonCodec.ts) — a value that check accepts travels as its
 * fields in the Schema's order rather than as JSON text: encoding and parsing the text cost each
 * value about 7 µs of a one-way trip on the project's VM (docs/performance.md, "Channels").
 *
 * Layout (little-endian): byte 0 is 0x00, which no JSON text starts with, so a reader tells a
 * binary frame from a text one; byte 1 the layout version (1); then the value: a number as f64, a
 * boolean as one byte (0 or 1), a string as u32 UTF-8 length then its bytes, a literal as nothing
 * (the Schema says it), a struct's properties in the Schema's order (an optional one behind a
 * presence byte), an array as u32 length then its items. A reader checks every length against the
 * frame, refuses bytes left over, and runs the Schema's check (its refinements included) on what it
 * read: a frame that fails any of it is an InvalidChannelFrame, as a text that does not parse is.
 *
 * A value with a string JSON would carry but UTF-8 cannot (a lone surrogate) goes as JSON text.
 * Numbers go as they are: NaN, ±Infinity and -0, which JSON text turns into null or 0, arrive as sent.
 */
import type { SchemaAST as AST } from "effect"
import { compileCheck } from "../control/JsonCodec.js"

/** Byte 0 of a binary frame: JSON text never starts with it. */
export const BINARY_MARK = 0x00
export const BINARY_LAYOUT = 1
const HEADER_BYTES = 2

/** A compiled part of a value: its size, its writer and its reader. */
interface Part {
  /** The fewest bytes any value of the part takes (an array's items bound its length by it). */
  readonly minBytes: number
  /** Bytes the part takes, or -1 when it cannot go in binary (a string UTF-8 cannot carry). */
  readonly size: (u: unknown) => number
  /** Writes the part at the cursor, moving it past the part. */
  readonly write: (u: unknown, out: Cursor) => void
  /** Reads the part at the cursor, moving it past the part; MALFORMED when the bytes do not hold one. */
  readonly read: (input: Cursor) => unknown
}

/** A position in a frame, and the frame's views. */
interface Cursor {
  bytes: Uint8Array
  view: DataView
  at: number
  end: number
}

const MALFORMED: unique symbol = Symbol("malformed")

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const encoder = new TextEncoder()

/** `String.prototype.isWellFormed` (Node 20 has it; ES2024, past the ES2022 lib this project builds with). */
const wellFormed = (s: string): boolean => (s as string & { isWellFormed(): boolean }).isWellFormed()

/** UTF-8 bytes of `s`, or -1 when UTF-8 cannot carry it (a lone surrogate). */
const utf8Length = (s: string): number => {
  const n = s.length
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) return wellFormed(s) ? Buffer.byteLength(s, "utf8") : -1
  }
  return n
}

const numberPart: Part = {
  minBytes: 8,
  size: () => 8,
  write: (u, out) => {
    out.view.setFloat64(out.at, u as number, true)
    out.at += 8
  },
  read: (input) => {
    if (input.at + 8 > input.end) return MALFORMED
    const value = input.view.getFloat64(input.at, true)
    input.at += 8
    return value
  }
}

const booleanPart: Part = {
  minBytes: 1,
  size: () => 1,
  write: (u, out) => {
    out.bytes[out.at++] = u === true ? 1 : 0
  },
  read: (input) => {
    if (input.at + 1 > input.end) return MALFORMED
    const byte = input.bytes[input.at++]
    return byte === 1 ? true : byte === 0 ? false : MALFORMED
  }
}

const stringPart: Part = {
  minBytes: 4,
  size: (u) => {
    const length = utf8Length(u as string)
    return length < 0 ? -1 : 4 + length
  },
  write: (u, out) => {
    const s = u as string
    const start = out.at + 4
    let at = start
    const n = s.length
    let ascii = true
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) {
        ascii = false
        break
      }
      out.bytes[at++] = c
    }
    if (!ascii) at = start + encoder.encodeInto(s, out.bytes.subarray(start, out.end)).written
    out.view.setUint32(out.at, at - start, true)
    out.at = at
  },
  read: (input) => {
    if (input.at + 4 > input.end) return MALFORMED
    const length = input.view.getUint32(input.at, true)
    const start = input.at + 4
    if (length > input.end - start) return MALFORMED
    input.at = start + length
    const { bytes } = input
    let s = ""
    for (let i = start; i < start + length; i++) {
      const c = bytes[i]!
      if (c >= 0x80) {
        try {
          return decoder.decode(bytes.subarray(start, start + length))
        } catch {
          return MALFORMED
        }
      }
      s += String.fromCharCode(c)
    }
    return s
  }
}

const literalPart = (literal: AST.LiteralValue): Part => ({
  minBytes: 0,
  size: () => 0,
  write: () => {},
  read: () => literal
})

const structPart = (
  props: ReadonlyArray<{ readonly name: string; readonly part: Part; readonly optional: boolean }>
): Part => ({
  minBytes: props.reduce((n, { optional, part }) => n + (optional ? 1 : part.minBytes), 0),
  size: (u) => {
    const record = u as Record<string, unknown>
    let size = 0
    for (const { name, optional, part } of props) {
      const present = Object.hasOwn(record, name)
      if (optional) size++
      if (!present) continue
      const s = part.size(record[name])
      if (s < 0) return -1
      size += s
    }
    return size
  },
  write: (u, out) => {
    const record = u as Record<string, unknown>
    for (const { name, optional, part } of props) {
      const present = Object.hasOwn(record, name)
      if (optional) out.bytes[out.at++] = present ? 1 : 0
      if (present) part.write(record[name], out)
    }
  },
  read: (input) => {
    const record: Record<string, unknown> = {}
    for (const { name, optional, part } of props) {
      if (optional) {
        if (input.at + 1 > input.end) return MALFORMED
        const presence = input.bytes[input.at++]
        if (presence === 0) continue
        if (presence !== 1) return MALFORMED
      }
      const value = part.read(input)
      if (value === MALFORMED) return MALFORMED
      record[name] = value
    }
    return record
  }
})

const arrayPart = (item: Part): Part => ({
  minBytes: 4,
  size: (u) => {
    const items = u as ReadonlyArray<unknown>
    let size = 4
    for (const value of items) {
      const s = item.size(value)
      if (s < 0) return -1
      size += s
    }
    return size
  },
  write: (u, out) => {
    const items = u as ReadonlyArray<unknown>
    out.view.setUint32(out.at, items.length, true)
    out.at += 4
    for (const value of items) item.write(value, out)
  },
  read: (input) => {
    if (input.at + 4 > input.end) return MALFORMED
    const length = input.view.getUint32(input.at, true)
    input.at += 4
    // Each item takes minBytes (one at least: arrays of what takes none go as text), so a count the frame cannot hold is refused before anything is made.
    if (length > (input.end - input.at) / item.minBytes) return MALFORMED
    const items: Array<unknown> = []
    for (let i = 0; i < length; i++) {
      const value = item.read(input)
      if (value === MALFORMED) return MALFORMED
      items.push(value)
    }
    return items
  }
})

/** The binary part of `ast`, or undefined when its values go as text. */
const compilePart = (ast: AST.AST): Part | undefined => {
  switch (ast._tag) {
    case "NumberKeyword":
      return numberPart
    case "StringKeyword":
      return stringPart
    case "BooleanKeyword":
      return booleanPart
    case "Literal":
      return typeof ast.literal === "bigint" ? undefined : literalPart(ast.literal)
    case "Refinement":
      // The filter runs in the check of the whole value, after it is read.
      return compilePart(ast.from)
    case "TypeLiteral": {
      if (ast.indexSignatures.length > 0) return undefined
      const props: Array<{ name: string; part: Part; optional: boolean }> = []
      for (const ps of ast.propertySignatures) {
        const part = compilePart(ps.type)
        if (typeof ps.name !== "string" || part === undefined) return undefined
        props.push({ name: ps.name, part, optional: ps.isOptional })
      }
      return structPart(props)
    }
    case "TupleType": {
      if (ast.elements.length > 0 || ast.rest.length !== 1) return undefined
      const item = compilePart(ast.rest[0]!.type)
      // Items of no bytes (literals, empty structs) would let a short frame claim any count: those go as text.
      return item === undefined || item.minBytes === 0 ? undefined : arrayPart(item)
    }
    default:
      return undefined
  }
}

/**
 * The binary layout `ast`'s values travel in, as text: what a reader must agree on with a writer,
 * since a frame carries no field names (`compilePart`'s cases, with each property's name).
 */
const layoutText = (ast: AST.AST): string => {
  switch (ast._tag) {
    case "Refinement":
      return layoutText(ast.from)
    case "Literal":
      return `l${JSON.stringify(ast.literal)}`
    case "TypeLiteral":
      return `{${
        ast.propertySignatures.map((ps) =>
          `${JSON.stringify(String(ps.name))}${ps.isOptional ? "?" : ""}:${layoutText(ps.type)}`
        )
          .join(",")
      }}`
    case "TupleType":
      return `[${ast.rest.map((r) => layoutText(r.type)).join(",")}]`
    default:
      return ast._tag
  }
}

/** FNV-1a of `text`'s UTF-16 units, never 0 (0 says "no layout recorded"). */
const fingerprintOf = (text: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0
  return hash === 0 ? 1 : hash
}

export interface BinaryValues {
  /**
   * The binary layout's fingerprint (its fields' names, order and types): a channel records its
   * creator's, and an open whose layout differs is refused, as its reads would misread the values.
   */
  readonly fingerprint: number
  /** Bytes `value`'s frame takes, or -1 when it goes as text (the Schema's check refuses it, or a string UTF-8 cannot carry). */
  readonly frameBytes: (value: unknown) => number
  /** Writes `value`'s frame (of `frameBytes(value)` bytes) at `at` of `bytes`. */
  readonly write: (value: unknown, bytes: Uint8Array, at: number, frameBytes: number) => void
  /** The value of a binary frame (byte 0 is BINARY_MARK), or why it is refused. */
  readonly read: (frame: Uint8Array) => unknown
}

/** Why a binary frame is refused: what `read` returns instead of a value (no object per frame read). */
export class BinaryRefusal {
  constructor(readonly reason: string) {}
}

const NOT_BINARY = new BinaryRefusal("not a binary frame")
const CUT_SHORT = new BinaryRefusal("a binary frame cut short or with a bad length, byte or UTF-8 text")
const NOT_MATCHING = new BinaryRefusal("the value does not match the channel's Schema")

/**
 * The binary form of `ast`'s values, or undefined when they go as JSON text (a Schema outside the
 * set the fast check takes, or one with unions, index signatures or fixed tuple elements).
 */
export const binaryValues = (ast: AST.AST): BinaryValues | undefined => {
  const check = compileCheck(ast)
  const part = compilePart(ast)
  if (check === undefined || part === undefined) return undefined
  // One cursor for every value (a write or a read runs to its end, never interleaved), its views
  // made again only when a frame lies in another buffer (a ring's frames share its memory): no
  // allocation per value. Its positions are the buffer's, not the frame's.
  const cursor: Cursor = { bytes: new Uint8Array(0), view: new DataView(new ArrayBuffer(0)), at: 0, end: 0 }
  const over = (frame: Uint8Array): Cursor => {
    if (cursor.bytes.buffer !== frame.buffer) {
      cursor.bytes = new Uint8Array(frame.buffer)
      cursor.view = new DataView(frame.buffer)
    }
    return cursor
  }
  return {
    fingerprint: fingerprintOf(layoutText(ast)),
    frameBytes: (value) => {
      if (!check(value)) return -1
      const size = part.size(value)
      return size < 0 ? -1 : HEADER_BYTES + size
    },
    write: (value, bytes, at, frameBytes) => {
      const out = over(bytes)
      out.at = bytes.byteOffset + at
      out.end = out.at + frameBytes
      out.bytes[out.at++] = BINARY_MARK
      out.bytes[out.at++] = BINARY_LAYOUT
      part.write(value, out)
    },
    read: (frame) => {
      if (frame.length < HEADER_BYTES || frame[0] !== BINARY_MARK) return NOT_BINARY
      if (frame[1] !== BINARY_LAYOUT) return new BinaryRefusal(`binary layout ${frame[1]}, not ${BINARY_LAYOUT}`)
      const input = over(frame)
      input.at = frame.byteOffset + HEADER_BYTES
      input.end = frame.byteOffset + frame.length
      const value = part.read(input)
      if (value === MALFORMED) return CUT_SHORT
      if (input.at !== input.end) return new BinaryRefusal(`${input.end - input.at} bytes after the value`)
      return check(value) ? value : NOT_MATCHING
    }
  }
}
