/**
 * Typed channels in binary (BinaryValues.ts), over the live layer and the in-memory fake: a value
 * its Schema's binary form takes travels as that form and arrives equal, text frames still decode,
 * a binary frame that is cut short, has bytes left over, another layout, bad UTF-8 or a value the
 * Schema refuses is an InvalidChannelFrame and reading goes on, and what the form cannot carry goes
 * as JSON text.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Queue, Schema } from "effect"
import { BINARY_LAYOUT, BINARY_MARK } from "../../src/layers/ipc/BinaryValues.js"
import { Channels, type RawSubscription } from "../../src/services/ipc/Channels.js"
import { type ChannelsRun, liveChannelsRun, memoryChannelsRun } from "../fixtures/channel-region.js"

const TAKE_MS = 10_000

const Order = Schema.Struct({
  id: Schema.Number.pipe(Schema.int()),
  symbol: Schema.String,
  side: Schema.Literal("buy"),
  filled: Schema.Boolean,
  note: Schema.optionalWith(Schema.String, { exact: true }),
  legs: Schema.Array(Schema.Struct({ qty: Schema.Number, venue: Schema.String }))
})
type Order = typeof Order.Type

const orders: ReadonlyArray<Order> = [
  { id: 1, symbol: "ACME", side: "buy", filled: false, legs: [] },
  { id: 2, symbol: "Zürich ☕ 株", side: "buy", filled: true, note: "", legs: [{ qty: 1.5, venue: "X" }] },
  {
    id: 3,
    symbol: "",
    side: "buy",
    filled: true,
    note: "n".repeat(3000),
    legs: [{ qty: -0, venue: "" }, { qty: 2, venue: "é" }]
  },
  // A leading U+FEFF is one of the string's characters, not a byte order mark to drop.
  { id: 4, symbol: "\ufeffBOM", side: "buy", filled: false, note: "\ufeff", legs: [{ qty: 3, venue: "\ufeff\ufeffv" }] }
]

/** Each frame `subscription` reads, copied as it comes: the effect takes the next (bounded). */
const rawFrames = (subscription: RawSubscription) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Uint8Array>()
    yield* Effect.forkScoped(subscription.consume((frame) => void queue.unsafeOffer(Uint8Array.from(frame))))
    return Queue.take(queue).pipe(Effect.timeout(TAKE_MS))
  })

const contract = (label: string, run: ChannelsRun) =>
  describe(`typed channels in binary: ${label}`, () => {
    it.scopedLive("a value the binary form takes goes as that form and arrives equal, one at a time and many at once", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const channel = yield* channels.open("orders", Order)
        const typed = yield* channel.subscribe
        const nextFrame = yield* rawFrames(yield* (yield* channels.openRaw("orders")).subscribe)
        const publisher = yield* channel.publisher
        yield* publisher.publish(orders[0]!)
        yield* publisher.publishAll(orders.slice(1))
        for (const order of orders) {
          const frame = yield* nextFrame
          expect([frame[0], frame[1]]).toEqual([BINARY_MARK, BINARY_LAYOUT])
          const { value } = yield* typed.take(TAKE_MS)
          expect(value).toEqual(order)
        }
      })))

    it.scopedLive("numbers arrive as sent (NaN, ±Infinity, -0); a string with a lone surrogate goes as JSON text, intact", () =>
      run(Effect.gen(function*() {
        const Reading = Schema.Struct({ value: Schema.Number, label: Schema.String })
        const channels = yield* Channels
        const channel = yield* channels.open("readings", Reading)
        const typed = yield* channel.subscribe
        const nextFrame = yield* rawFrames(yield* (yield* channels.openRaw("readings")).subscribe)
        const publisher = yield* channel.publisher
        const sent = [NaN, Infinity, -Infinity, -0].map((value) => ({ value, label: "x" }))
        yield* publisher.publishAll([...sent, { value: 1, label: "a\ud800b" }])
        for (const reading of sent) {
          expect((yield* nextFrame)[0]).toBe(BINARY_MARK)
          const { value } = yield* typed.take(TAKE_MS)
          expect(Object.is(value.value, reading.value)).toBe(true)
        }
        expect(new TextDecoder().decode(yield* nextFrame)).toBe(JSON.stringify({ value: 1, label: "a\ud800b" }))
        expect((yield* typed.take(TAKE_MS)).value).toEqual({ value: 1, label: "a\ud800b" })
      })))

    it.scopedLive("a Schema without a binary form (a union of structs, a transformation) goes as JSON text", () =>
      run(Effect.gen(function*() {
        const Shape = Schema.Union(
          Schema.Struct({ kind: Schema.Literal("circle"), r: Schema.Number }),
          Schema.Struct({ kind: Schema.Literal("square"), side: Schema.Number })
        )
        const Stamp = Schema.Struct({ at: Schema.DateFromNumber })
        const channels = yield* Channels
        const shapes = yield* channels.open("shapes", Shape)
        const stamps = yield* channels.open("stamps", Stamp)
        const nextShape = yield* rawFrames(yield* (yield* channels.openRaw("shapes")).subscribe)
        const nextStamp = yield* rawFrames(yield* (yield* channels.openRaw("stamps")).subscribe)
        const typedStamps = yield* stamps.subscribe
        yield* (yield* shapes.publisher).publish({ kind: "square", side: 2 })
        yield* (yield* stamps.publisher).publish({ at: new Date(5) })
        expect(new TextDecoder().decode(yield* nextShape)).toBe("{\"kind\":\"square\",\"side\":2}")
        expect(new TextDecoder().decode(yield* nextStamp)).toBe("{\"at\":5}")
        expect((yield* typedStamps.take(TAKE_MS)).value).toEqual({ at: new Date(5) })
      })))

    it.scopedLive("text frames still decode; a bad binary frame is refused typed, naming why, and reading goes on", () =>
      run(Effect.gen(function*() {
        const Point = Schema.Struct({ x: Schema.Number.pipe(Schema.int()), tag: Schema.String })
        const channels = yield* Channels
        const typed = yield* (yield* channels.open("points", Point)).subscribe
        const raw = yield* (yield* channels.openRaw("points")).publisher
        /** A binary frame of Point: x as f64, tag as u32 length and bytes. */
        const frame = (x: number, tag: Uint8Array, layout = BINARY_LAYOUT) => {
          const bytes = new Uint8Array(2 + 8 + 4 + tag.length)
          const view = new DataView(bytes.buffer)
          bytes[0] = BINARY_MARK
          bytes[1] = layout
          view.setFloat64(2, x, true)
          view.setUint32(10, tag.length, true)
          bytes.set(tag, 14)
          return bytes
        }
        const ascii = new TextEncoder().encode("ok")
        const good = frame(7, ascii)
        const bad: ReadonlyArray<[Uint8Array, RegExp]> = [
          [good.subarray(0, good.length - 1), /cut short/],
          [Uint8Array.of(...good, 0), /1 bytes after the value/],
          [frame(7, ascii, 9), /binary layout 9, not 1/],
          [frame(7, Uint8Array.of(0xc3, 0x28)), /UTF-8/],
          [frame(7.5, ascii), /does not match the channel's Schema/],
          [Uint8Array.of(BINARY_MARK), /not a binary frame/]
        ]
        for (const [bytes, reason] of bad) {
          yield* raw.write(bytes)
          yield* raw.write(new TextEncoder().encode(JSON.stringify({ x: 1, tag: "text" })))
          yield* raw.write(good)
          const refused = yield* Effect.flip(typed.take(TAKE_MS))
          expect(refused).toMatchObject({ _tag: "InvalidChannelFrame", name: "points" })
          expect(refused.message).toMatch(reason)
          expect((yield* typed.take(TAKE_MS)).value).toEqual({ x: 1, tag: "text" })
          expect((yield* typed.take(TAKE_MS)).value).toEqual({ x: 7, tag: "ok" })
        }
      })))
  })

contract("the live region", liveChannelsRun)
contract("the in-memory fake", memoryChannelsRun)
