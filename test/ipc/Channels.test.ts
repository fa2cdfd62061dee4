/**
 * The Channels contract, over the live layer (a region mapped by the addon, this process as the
 * directory's writer) and the in-memory fake.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Fiber, Layer, Schedule, Schema, Scope } from "effect"
import { frameCheck } from "../../src/layers/control/RingFrames.js"
import { ringAddress } from "../../src/layers/ipc/ChannelLayout.js"
import * as ChannelsMemory from "../../src/layers/ipc/ChannelsMemory.js"
import { Entry } from "../../src/layers/region/DirectoryRecords.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { Rings } from "../../src/services/control/Rings.js"
import { type ChannelBroken, Channels } from "../../src/services/ipc/Channels.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import {
  channelDirectoryArea,
  type ChannelsRun,
  liveChannelsAndRegion,
  liveChannelsRun,
  memoryChannelsRun
} from "../fixtures/channel-region.js"
import { uniqueRegion } from "../helpers/Processes.js"

const Price = Schema.Struct({ symbol: Schema.String, price: Schema.Number.pipe(Schema.positive()) })

type Run = ChannelsRun
const live = liveChannelsRun
const memory = memoryChannelsRun

const TAKE_MS = 10_000
const encoder = new TextEncoder()

/**
 * A channel `name` with a small ring and a subscriber that does not take: prices 1, 2, … are
 * published until the writer is refused (its ring and the subscriber's buffer of
 * `subscriberBuffer` values full); how many were written, and why it stopped.
 */
const heldBack = (name: string, subscriberBuffer: number) =>
  Effect.gen(function*() {
    const channel = yield* (yield* Channels).open(name, Price, {
      ringBytes: 4096,
      publishTimeoutMs: 50,
      subscriberBuffer
    })
    const subscription = yield* channel.subscribe
    const publisher = yield* channel.publisher
    for (let written = 0;; written++) {
      const result = yield* Effect.either(publisher.publish({ symbol: name, price: written + 1 }))
      if (result._tag === "Left") return { subscription, publisher, written, refused: result.left }
    }
  })

/** A typed subscription of channel `name`, a raw writer of it, and a price's frame as that writer writes it. */
const typedReadRawWritten = (name: string) =>
  Effect.gen(function*() {
    const channels = yield* Channels
    const subscription = yield* (yield* channels.open(name, Price)).subscribe
    const publisher = yield* (yield* channels.openRaw(name)).publisher
    const value = (price: number) => encoder.encode(JSON.stringify({ symbol: name, price }))
    return { subscription, publisher, value }
  })

const contract = (label: string, run: Run) =>
  describe(`Channels contract: ${label}`, () => {
    it.scopedLive("a channel is created at its first open and found by name at the next; every value once, in order per writer", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const first = yield* channels.open("prices", Price, { writerSlots: 4, readerSlots: 2, ringBytes: 8192 })
        const again = yield* channels.open("prices", Price, { writerSlots: 1 })
        expect(again.entry.generation).toBe(first.entry.generation)
        expect(again.shape).toEqual({ writerSlots: 4, readerSlots: 2, ringBytes: 8192 })
        expect(yield* channels.list).toEqual(["prices"])
        const subscription = yield* again.subscribe
        const a = yield* first.publisher
        const b = yield* again.publisher
        expect(a.writer).not.toBe(b.writer)
        const perWriter = 300
        // More than the rings and the subscription's buffer hold: the writers wait for the taking below.
        yield* Effect.forkScoped(
          Effect.forEach(
            Array.from({ length: perWriter }, (_, i) => i + 1),
            (i) => a.publish({ symbol: "A", price: i })
          )
        )
        yield* Effect.forkScoped(
          b.publishAll(Array.from({ length: perWriter }, (_, i) => ({ symbol: "B", price: i + 1 })))
        )
        const seen = new Map<number, Array<number>>()
        for (let n = 0; n < 2 * perWriter; n++) {
          const message = yield* subscription.take(TAKE_MS)
          expect(message.value.symbol).toBe(message.writer === a.writer ? "A" : "B")
          seen.set(message.writer, [...(seen.get(message.writer) ?? []), message.value.price])
        }
        const expected = Array.from({ length: perWriter }, (_, i) => i + 1)
        expect(seen.get(a.writer)).toEqual(expected)
        expect(seen.get(b.writer)).toEqual(expected)
      })))

    it.scopedLive("values whose text is not ASCII arrive as written, one at a time and many at once, across the ring's wrap", () =>
      run(Effect.gen(function*() {
        const channel = yield* (yield* Channels).open("utf8", Price, { ringBytes: 4096 })
        const subscription = yield* channel.subscribe
        const publisher = yield* channel.publisher
        const symbols = ["€uro", "日本円", "✓ ok", "plain", "Ωmega 𝄞"]
        // Several times round the 4 KiB ring: frames land at every offset, and past its end.
        for (let round = 0; round < 40; round++) {
          const values = symbols.map((symbol, i) => ({ symbol: `${symbol} ${round}`, price: round * 10 + i + 1 }))
          yield* publisher.publish(values[0]!)
          yield* publisher.publishAll(values.slice(1))
          for (const expected of values) expect((yield* subscription.take(TAKE_MS)).value).toEqual(expected)
        }
      })))

    it.scopedLive("a value its Schema refuses is not written, alone or in a batch; a frame that does not decode is refused typed, and reading goes on", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const channel = yield* channels.open("checked", Price)
        const raw = yield* channels.openRaw("checked")
        const subscription = yield* channel.subscribe
        const publisher = yield* channel.publisher
        const refused = yield* Effect.flip(publisher.publish({ symbol: "X", price: -1 }))
        expect(refused._tag).toBe("ChannelEncodeError")
        // One line naming the field and why, not Schema's tree.
        expect(refused.message).toBe(
          `channel "checked": the value does not encode: price: Expected a positive number, actual -1`
        )
        // Through one writer, whose frames arrive in the order written.
        const rawPublisher = yield* raw.publisher
        yield* rawPublisher.write(encoder.encode(JSON.stringify({ symbol: "Y", price: -2 })))
        yield* rawPublisher.write(new Uint8Array([0xff, 0xfe]))
        yield* rawPublisher.write(encoder.encode(JSON.stringify({ symbol: "Z", price: 3 })))
        const invalid = yield* Effect.flip(subscription.take(TAKE_MS))
        expect(invalid._tag).toBe("InvalidChannelFrame")
        expect(invalid._tag === "InvalidChannelFrame" && invalid.writer).toBe(rawPublisher.writer)
        expect(invalid.message).toMatch(/does not decode: price: Expected a positive number, actual -2$/)
        const notText = yield* Effect.flip(subscription.take(TAKE_MS))
        expect(notText._tag).toBe("InvalidChannelFrame")
        expect((yield* subscription.take(TAKE_MS)).value).toEqual({ symbol: "Z", price: 3 })
        // A batch with one value refused writes none of it, not even the values before that one.
        const batch = yield* Effect.flip(publisher.publishAll([{ symbol: "A", price: 1 }, { symbol: "B", price: -1 }]))
        expect(batch._tag).toBe("ChannelEncodeError")
        yield* publisher.publish({ symbol: "after", price: 4 })
        expect((yield* subscription.take(TAKE_MS)).value).toEqual({ symbol: "after", price: 4 })
      })))

    it.scopedLive("takeUpTo: the values available at once, at most max, stopping before a frame that does not decode", () =>
      run(Effect.gen(function*() {
        const { publisher, subscription, value } = yield* typedReadRawWritten("batched")
        // One commit: the subscription decodes the whole batch in one wake-up.
        yield* publisher.writeAll([value(1), value(2), value(3), new Uint8Array([0xff]), value(4)])
        const prices = (messages: ReadonlyArray<{ readonly value: typeof Price.Type }>) =>
          messages.map((m) => m.value.price)
        // Room for none takes none, at once, whether values wait or not (below, none waits: no timeout either).
        expect(yield* subscription.takeUpTo(0, 600_000)).toEqual([])
        expect(prices(yield* subscription.takeUpTo(2, TAKE_MS))).toEqual([1, 2])
        expect(prices(yield* subscription.takeUpTo(10, TAKE_MS))).toEqual([3])
        const invalid = yield* Effect.flip(subscription.takeUpTo(10, TAKE_MS))
        expect(invalid._tag).toBe("InvalidChannelFrame")
        expect(prices(yield* subscription.takeUpTo(10, TAKE_MS))).toEqual([4])
        const none = yield* Effect.flip(subscription.takeUpTo(10, 20))
        expect(none._tag).toBe("ChannelTakeTimeout")
        expect(yield* subscription.takeUpTo(0, 600_000)).toEqual([])
      })))

    it.scopedLive("available: waits for a value without taking it; interrupted, it loses none", () =>
      run(Effect.gen(function*() {
        const channel = yield* (yield* Channels).open("awaited", Price)
        const subscription = yield* channel.subscribe
        const publisher = yield* channel.publisher
        expect(yield* subscription.available(20)).toBe(false)
        // A wait raced and lost: nothing was taken by it.
        const raced = yield* Effect.raceFirst(subscription.available(Number.POSITIVE_INFINITY), Effect.succeed("other"))
        expect(raced).toBe("other")
        const waiting = yield* Effect.fork(subscription.available(TAKE_MS))
        yield* publisher.publish({ symbol: "A", price: 1 })
        expect(yield* Fiber.join(waiting)).toBe(true)
        expect(yield* subscription.available(0)).toBe(true)
        expect((yield* subscription.take(TAKE_MS)).value).toEqual({ symbol: "A", price: 1 })
        expect(yield* subscription.available(20)).toBe(false)
      })))

    it.scopedLive("a subscriber that does not take holds the writer back: ChannelFull, typed, and nothing lost", () =>
      run(Effect.gen(function*() {
        const { publisher, refused, subscription, written } = yield* heldBack("slow", 1)
        expect(refused).toMatchObject({ _tag: "ChannelFull", name: "slow" })
        // Refused after the open's publishTimeoutMs (50 ms) waited out, not at once, nor after the 10 s default.
        const { waitedMs } = refused as { waitedMs: number }
        expect(waitedMs).toBeGreaterThanOrEqual(50)
        expect(waitedMs).toBeLessThan(5_000)
        for (let n = 1; n <= written; n++) expect((yield* subscription.take(TAKE_MS)).value.price).toBe(n)
        yield* publisher.publish({ symbol: "S", price: written + 1 })
        expect((yield* subscription.take(TAKE_MS)).value.price).toBe(written + 1)
      })))

    it.scopedLive("a value larger than a quarter of the ring is ChannelFrameTooLarge naming its size and the limit, written by neither publish nor publishAll, nor any value of its batch; the next goes through", () =>
      run(Effect.gen(function*() {
        const channel = yield* (yield* Channels).open("large", Price, { ringBytes: 4096 })
        const subscription = yield* channel.subscribe
        const publisher = yield* channel.publisher
        const large = { symbol: "x".repeat(2000), price: 1 }
        const refused = yield* Effect.flip(publisher.publish(large))
        // A frame of a quarter of the ring, its 8-byte header included.
        expect(refused).toMatchObject({ _tag: "ChannelFrameTooLarge", name: "large", maxFrameBytes: 1016 })
        expect((refused as { bytes: number }).bytes).toBeGreaterThan(2000)
        expect(yield* Effect.flip(publisher.publishAll([large]))).toMatchObject({ _tag: "ChannelFrameTooLarge" })
        // A batch with one value too large writes none of it: the value before it does not go out with the next commit.
        const batch = [{ symbol: "before", price: 1 }, large]
        expect(yield* Effect.flip(publisher.publishAll(batch))).toMatchObject({ _tag: "ChannelFrameTooLarge" })
        yield* publisher.publish({ symbol: "small", price: 2 })
        expect((yield* subscription.take(TAKE_MS)).value).toEqual({ symbol: "small", price: 2 })
        expect((yield* Effect.flip(subscription.take(20)))._tag).toBe("ChannelTakeTimeout")
        // So for raw frames.
        const raw = yield* (yield* Channels).openRaw("large-raw", { ringBytes: 4096 })
        const frames: Array<number> = []
        const rawSubscription = yield* raw.subscribe
        yield* Effect.forkScoped(rawSubscription.consume((frame) => frames.push(frame[0]!)))
        const rawPublisher = yield* raw.publisher
        const refusedRaw = yield* Effect.flip(rawPublisher.writeAll([Uint8Array.of(1), new Uint8Array(2000)]))
        expect(refusedRaw).toMatchObject({ _tag: "ChannelFrameTooLarge", bytes: 2000 })
        yield* rawPublisher.write(Uint8Array.of(2))
        yield* Effect.repeat(Effect.sync(() => frames.length), { until: (n) => n > 0, schedule: Schedule.spaced(5) })
          .pipe(
            Effect.timeout(TAKE_MS)
          )
        expect(frames).toEqual([2])
      })))

    it.scopedLive("writer slots are held while a publisher's scope is open, and free again after", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const channel = yield* channels.open("one-writer", Price, { writerSlots: 1 })
        const subscription = yield* channel.subscribe
        yield* Effect.scoped(Effect.gen(function*() {
          yield* (yield* channel.publisher).publish({ symbol: "first", price: 1 })
          const busy = yield* Effect.flip(channel.publisher)
          expect(busy._tag).toBe("ChannelWritersBusy")
        }))
        yield* (yield* channel.publisher).publish({ symbol: "second", price: 2 })
        expect((yield* subscription.take(TAKE_MS)).value.symbol).toBe("first")
        expect((yield* subscription.take(TAKE_MS)).value.symbol).toBe("second")
      })))

    it.scopedLive("a take waiting as its subscription's scope closes, and a take after, fail at once: ChannelSubscriptionClosed", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const channel = yield* channels.open("closing", Price)
        const scope = yield* Scope.make()
        const subscription = yield* Scope.extend(channel.subscribe, scope)
        // Bounds far past the test's own: a take that waited them out would time the test out instead.
        const waiting = yield* Effect.fork(Effect.flip(subscription.take(600_000)))
        yield* Effect.yieldNow()
        yield* Scope.close(scope, Exit.void)
        expect((yield* Fiber.join(waiting))._tag).toBe("ChannelSubscriptionClosed")
        expect((yield* Effect.flip(subscription.takeUpTo(10, 600_000)))._tag).toBe("ChannelSubscriptionClosed")
      })))

    it.scopedLive("consume: the values a held-back writer waited with come first, then the rest as they arrive, each once, in order; takes get none meanwhile", () =>
      run(Effect.gen(function*() {
        // The buffer and the ring full: the ring's reading waits with a decoded value in hand.
        const { publisher, subscription, written } = yield* heldBack("handed", 2)
        const got: Array<number> = []
        const all = yield* Effect.makeLatch(false)
        let wanted = written
        const consuming = yield* Effect.forkScoped(subscription.consume(({ value }) => {
          got.push(value.price)
          if (got.length === wanted) all.unsafeOpen()
        }))
        yield* all.await.pipe(Effect.timeout(TAKE_MS))
        expect(got).toEqual(Array.from({ length: written }, (_, i) => i + 1))
        // One consume at a time.
        const second = yield* Effect.exit(subscription.consume(() => undefined).pipe(Effect.timeout(TAKE_MS)))
        expect(Exit.isFailure(second) && Cause.isDie(second.cause)).toBe(true)
        all.unsafeClose()
        wanted = written + 1
        yield* publisher.publish({ symbol: "H", price: written + 1 })
        yield* all.await.pipe(Effect.timeout(TAKE_MS))
        expect(got.at(-1)).toBe(written + 1)
        expect((yield* Effect.flip(subscription.take(20)))._tag).toBe("ChannelTakeTimeout")
        // Interrupted, it hands over nothing more: the next value waits for a take.
        yield* Fiber.interrupt(consuming)
        yield* publisher.publish({ symbol: "H", price: written + 2 })
        expect((yield* subscription.take(TAKE_MS)).value.price).toBe(written + 2)
        expect(got).toHaveLength(written + 1)
      })))

    it.scopedLive("consume ends with InvalidChannelFrame at a frame that does not decode, and as a defect when its handler throws; the next consume or take goes on after", () =>
      run(Effect.gen(function*() {
        const { publisher, subscription, value } = yield* typedReadRawWritten("handed-checked")
        yield* publisher.writeAll([value(1), new Uint8Array([0xff]), value(2), value(3), value(4)])
        const got: Array<number> = []
        const invalid = yield* Effect.flip(subscription.consume(({ value }) => void got.push(value.price)))
        expect(invalid._tag).toBe("InvalidChannelFrame")
        expect(got).toEqual([1])
        const thrown = new Error("handler failed")
        const ended = yield* Effect.exit(subscription.consume(({ value }) => {
          got.push(value.price)
          if (value.price === 3) throw thrown
        }))
        expect(Exit.isFailure(ended) && Cause.squash(ended.cause)).toBe(thrown)
        expect(got).toEqual([1, 2, 3])
        expect((yield* subscription.take(TAKE_MS)).value.price).toBe(4)
        // The same from a ring's wake-up (the values above were held in the buffer when it started).
        const live = yield* Effect.fork(Effect.exit(subscription.consume(({ value }) => {
          got.push(value.price)
          if (value.price === 5) throw thrown
        })))
        yield* Effect.yieldNow()
        yield* publisher.writeAll([value(5), value(6)])
        const liveEnd = yield* Fiber.join(live)
        expect(Exit.isFailure(liveEnd) && Cause.squash(liveEnd.cause)).toBe(thrown)
        expect((yield* subscription.take(TAKE_MS)).value.price).toBe(6)
        expect(got).toEqual([1, 2, 3, 5])
      })))

    it.scopedLive("a consume running as its subscription's scope closes, and one after, end with ChannelSubscriptionClosed", () =>
      run(Effect.gen(function*() {
        const channel = yield* (yield* Channels).open("handed-closing", Price)
        const scope = yield* Scope.make()
        const subscription = yield* Scope.extend(channel.subscribe, scope)
        const running = yield* Effect.fork(Effect.flip(subscription.consume(() => undefined)))
        yield* Effect.yieldNow()
        yield* Scope.close(scope, Exit.void)
        expect((yield* Fiber.join(running))._tag).toBe("ChannelSubscriptionClosed")
        expect((yield* Effect.flip(subscription.consume(() => undefined)))._tag).toBe("ChannelSubscriptionClosed")
      })))

    it.scopedLive("raw frames are read in place, each writer's in order", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const raw = yield* channels.openRaw("frames")
        const subscription = yield* raw.subscribe
        const got: Array<number> = []
        const done = yield* Effect.makeLatch(false)
        yield* Effect.forkScoped(subscription.consume((frame) => {
          got.push(frame[0]!)
          if (got.length === 100) done.unsafeOpen()
        }))
        const publisher = yield* raw.publisher
        yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (i) => publisher.write(new Uint8Array([i])))
        yield* done.await.pipe(Effect.timeout(TAKE_MS))
        expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i))
      })))

    it.scopedLive("raw frames a batch at a time (consumeFrames): each writer's frames in order, every one once, read in place", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const raw = yield* channels.openRaw("batches", { writerSlots: 2 })
        const subscription = yield* raw.subscribe
        const got: Array<Array<number>> = [[], []]
        let calls = 0
        const done = yield* Effect.makeLatch(false)
        yield* Effect.forkScoped(subscription.consumeFrames((batch, writer) => {
          calls++
          for (let i = 0; i < batch.count; i++) {
            expect(batch.lengths[i]).toBe(2)
            got[writer]!.push(batch.bytes[batch.offsets[i]!]! * 256 + batch.bytes[batch.offsets[i]! + 1]!)
          }
          if (got[0]!.length + got[1]!.length === 400) done.unsafeOpen()
        }))
        const frame = (i: number) => new Uint8Array([i >> 8, i & 0xff])
        const first = yield* raw.publisher
        const second = yield* raw.publisher
        yield* first.writeAll(Array.from({ length: 150 }, (_, i) => frame(i)))
        yield* second.writeAll(Array.from({ length: 200 }, (_, i) => frame(i)))
        yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => 150 + i), (i) => first.write(frame(i)))
        yield* done.await.pipe(Effect.timeout(TAKE_MS))
        expect(got[first.writer]).toEqual(Array.from({ length: 200 }, (_, i) => i))
        expect(got[second.writer]).toEqual(Array.from({ length: 200 }, (_, i) => i))
        // Batches, not frames: a commit of many frames comes in one call.
        expect(calls).toBeLessThan(400)
      })))

    it.scopedLive("raw tryWriteAll: the frames that fit go at once, what found no room goes through writeAll; every frame once, in order", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const raw = yield* channels.openRaw("tried", { ringBytes: 4096 })
        const subscription = yield* raw.subscribe
        const got: Array<number> = []
        const done = yield* Effect.makeLatch(false)
        const last = yield* Effect.makeLatch(false)
        yield* Effect.forkScoped(subscription.consumeFrames((batch) => {
          for (let i = 0; i < batch.count; i++) got.push(new DataView(batch.bytes.buffer).getUint32(batch.offsets[i]!))
          if (got.length === 4000) done.unsafeOpen()
          if (got.length === 4032) last.unsafeOpen()
        }))
        const publisher = yield* raw.publisher
        const frame = (i: number) => {
          const bytes = new Uint8Array(64)
          new DataView(bytes.buffer).setUint32(0, i)
          return bytes
        }
        let partial = 0
        for (let i = 0; i < 4000; i += 32) {
          const call = Array.from({ length: 32 }, (_, k) => frame(i + k))
          const written = publisher.tryWriteAll(call)
          if (written < call.length) {
            partial++
            yield* publisher.writeAll(call.slice(written))
          }
        }
        yield* done.await.pipe(Effect.timeout(TAKE_MS))
        expect(got).toEqual(Array.from({ length: 4000 }, (_, i) => i))
        // A 4 KiB ring holds 56 such frames: the writer ran ahead of its reader and found it full.
        expect(partial).toBeGreaterThan(0)
        // With the reader caught up, a call's frames all fit, and its own commit brings them (no writeAll after it).
        expect(publisher.tryWriteAll(Array.from({ length: 32 }, (_, k) => frame(4000 + k)))).toBe(32)
        yield* last.await.pipe(Effect.timeout(TAKE_MS))
        expect(got.slice(4000)).toEqual(Array.from({ length: 32 }, (_, k) => 4000 + k))
      })))

    it.scopedLive("a shape no channel can have is InvalidChannel", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const refused = yield* Effect.flip(channels.open("bad", Price, { ringBytes: 100 }))
        expect(refused._tag).toBe("InvalidChannel")
        // Each bound of docs/ipc.md, one past it: 1 to 256 writer slots, 1 to 64 reader slots, a multiple of 64 bytes
        // from 4 KiB to 1 GiB a ring.
        for (
          const [shape, named] of [
            [{ writerSlots: 0 }, "writerSlots 0"],
            [{ writerSlots: 257 }, "writerSlots 257"],
            [{ writerSlots: 1.5 }, "writerSlots 1.5"],
            [{ readerSlots: 0 }, "readerSlots 0"],
            [{ readerSlots: 65 }, "readerSlots 65"],
            [{ ringBytes: 4096 - 64 }, "ringBytes 4032"],
            [{ ringBytes: 4096 + 32 }, "ringBytes 4128"],
            [{ ringBytes: 2 ** 30 + 64 }, `ringBytes ${2 ** 30 + 64}`]
          ] as const
        ) {
          const why = yield* Effect.flip(channels.open("bad", Price, shape))
          expect(why).toMatchObject({ _tag: "InvalidChannel", name: "bad" })
          expect(why.message).toContain(named)
        }
        expect(yield* channels.list).toEqual([])
        // At the bounds, a channel.
        const widest = yield* channels.open("widest", Price, { writerSlots: 256, readerSlots: 64, ringBytes: 4096 })
        expect(widest.shape).toEqual({ writerSlots: 256, readerSlots: 64, ringBytes: 4096 })
      })))
  })

const layouts = (label: string, run: Run) =>
  describe(`Channels' value layouts: ${label}`, () => {
    it.scopedLive("an open whose Schema lays values out otherwise in binary (fields reordered, renamed, retyped) is InvalidChannel; the same layout opens", () =>
      run(Effect.gen(function*() {
        const channels = yield* Channels
        const Quote = Schema.Struct({ bid: Schema.Number, ask: Schema.Number })
        const quotes = yield* channels.open("quotes", Quote)
        for (
          const other of [
            Schema.Struct({ ask: Schema.Number, bid: Schema.Number }),
            Schema.Struct({ buy: Schema.Number, sell: Schema.Number }),
            Schema.Struct({ bid: Schema.Number, ask: Schema.String })
          ] as ReadonlyArray<Schema.Schema<unknown, unknown>>
        ) {
          const refused = yield* Effect.flip(channels.open("quotes", other))
          expect(refused).toMatchObject({ _tag: "InvalidChannel", name: "quotes" })
          expect(refused.message).toContain("another Schema's")
        }
        // The same layout from a Schema of its own (another build's, refined), and values go through.
        const same = yield* channels.open(
          "quotes",
          Schema.Struct({ bid: Schema.Number, ask: Schema.Number.pipe(Schema.positive()) })
        )
        const subscription = yield* same.subscribe
        yield* (yield* quotes.publisher).publish({ bid: 99, ask: 101 })
        expect((yield* subscription.take(TAKE_MS)).value).toEqual({ bid: 99, ask: 101 })
        // Values that go as JSON text carry their names: such a Schema is not held to the layout.
        yield* channels.open("quotes", Schema.Union(Quote, Schema.Struct({ halted: Schema.Boolean })))
      })))
  })

layouts("live region", live)
layouts("in-memory fake", memory)

contract("live region", live)
contract("in-memory fake", memory)

describe("Channels over a damaged region (live)", () => {
  // What a crashed or buggy writer could leave: a frame committed with a length past the ring, or
  // a header word that does not belong to its position. Read as such, a ring would hand on another
  // frame's bytes or read past its data area.
  it.scopedLive("a ring found corrupt ends its reading with ChannelBroken naming the channel, the writer slot and what is wrong, and gives that reader slot back at once; its other rings and other channels go on", () =>
    Effect.flatMap(uniqueRegion("channel-corrupt"), (region) =>
      Effect.gen(function*() {
        const memory = yield* CxlMemory
        const channels = yield* Channels
        const rings = yield* Rings
        // Two reader slots: this typed subscription's and a raw one's, so neither has a spare.
        const bad = yield* channels.open("bad", Price, { writerSlots: 4, readerSlots: 2, ringBytes: 4096 })
        const good = yield* channels.open("good", Price)
        const badReading = yield* bad.subscribe
        const badRaw = yield* (yield* channels.openRaw("bad")).subscribe
        const goodReading = yield* good.subscribe
        const writers = [yield* bad.publisher, yield* bad.publisher, yield* bad.publisher, yield* bad.publisher]
        const goodWriter = yield* good.publisher
        for (const writer of writers) yield* writer.publish({ symbol: `w${writer.writer}`, price: 1 })
        for (let n = 0; n < 4; n++) expect((yield* badReading.take(TAKE_MS)).value.price).toBe(1)
        /** A frame committed after writer slot `writer`'s first one, its header's words made by `header` from its position. */
        const commitBadFrame = (writer: number, header: (at: number) => readonly [number, number]) => {
          const ring = ringAddress(bad.entry, bad.shape, writer)
          const data = ring.offset + 64 * (1 + ring.readerSlots)
          const at = Atomics.load(memory.u32, ring.offset / 4)
          ;[memory.u32[(data + at) / 4], memory.u32[(data + at) / 4 + 1]] = header(at)
          // The leading sequence past it, as a commit stores it (the f64, then its low word).
          memory.f64[(ring.offset + 8) / 8] = at + 64
          Atomics.store(memory.u32, ring.offset / 4, at + 64)
        }
        commitBadFrame(0, (at) => [0xfffffff0, frameCheck(at)])
        commitBadFrame(1, (at) => [40, frameCheck(at) ^ 1]) // Rung as a commit rings: the subscription's readers wait on this process's doorbell.
        ;(yield* Doorbell).poke()
        const broken = [yield* Effect.flip(badReading.take(TAKE_MS)), yield* Effect.flip(badReading.take(TAKE_MS))]
        const byWriter = [...broken].sort((a, b) => (a as ChannelBroken).writer - (b as ChannelBroken).writer)
        expect(byWriter).toMatchObject([
          { _tag: "ChannelBroken", name: "bad", writer: 0 },
          { _tag: "ChannelBroken", name: "bad", writer: 1 }
        ])
        expect(byWriter[0]!.message).toMatch(
          /^channel "bad": reading writer slot 0 ended: ring \d+ is corrupt at position 24: frame length 4294967280 runs past the data area; this subscription reads nothing more from that slot \(subscribe again/
        )
        expect(byWriter[1]!.message).toMatch(
          /^channel "bad": reading writer slot 1 ended: ring \d+ is corrupt at position 24: frame header does not belong to this position;/
        )
        // The raw subscription's consume ends at one broken ring; the next goes on with the rest, up to the other.
        const rawBroken = [yield* Effect.flip(badRaw.consume(() => {})), yield* Effect.flip(badRaw.consume(() => {}))]
        expect(rawBroken.map((e) => e.writer).sort()).toEqual([0, 1])
        // Told broken, both give those rings' reader slots back at once: a replacement reader attaches
        // there and only it is listed; the rings they still read keep their slots.
        const attachedTo = (writer: number) =>
          Effect.map(
            rings.inspect(ringAddress(bad.entry, bad.shape, writer)),
            (ring) => ring.readers().filter((r) => r.state === "attached").length
          )
        for (const writer of [0, 1]) {
          expect(yield* attachedTo(writer)).toBe(0)
          yield* rings.reader(ringAddress(bad.entry, bad.shape, writer))
          expect(yield* attachedTo(writer)).toBe(1)
        }
        expect(yield* attachedTo(2)).toBe(2)
        // A writer whose ring's occurrence word no longer names it (taken over, or overwritten) writes nothing more there.
        const fourth = ringAddress(bad.entry, bad.shape, 3)
        memory.u32[(fourth.offset + 16) / 4]! += 1
        const refused = yield* Effect.flip(writers[3]!.publish({ symbol: "w3", price: 2 }))
        expect(refused).toMatchObject({ _tag: "ChannelBroken", name: "bad", writer: 3, side: "writing" })
        expect(refused.message).toMatch(
          /^channel "bad": writer slot 3 can write no more: ring \d+ was closed or taken over at sequence 24; take a publisher again$/
        )
        // The untouched ring of the same subscription, and another channel, go on.
        yield* writers[2]!.publish({ symbol: "w2", price: 2 })
        expect(yield* badReading.take(TAKE_MS)).toMatchObject({ writer: 2, value: { price: 2 } })
        yield* goodWriter.publish({ symbol: "g", price: 3 })
        expect((yield* goodReading.take(TAKE_MS)).value.price).toBe(3)
      }).pipe(Effect.scoped, Effect.provide(liveChannelsAndRegion({ region, bell: 0, writesDirectory: true })))))

  it.scopedLive("a channel whose directory entry does not read as one is InvalidChannel saying remove frees its name; removed, the name makes a new channel", () =>
    Effect.flatMap(uniqueRegion("channel-entry"), (region) =>
      Effect.gen(function*() {
        const memory = yield* CxlMemory
        const channels = yield* Channels
        const damaged = yield* channels.open("damaged", Price)
        yield* channels.open("kept", Price)
        // Its layout parameter (the entry's first f64) as no build writes it.
        memory.f64[(channelDirectoryArea.entry(damaged.entry.slot) + Entry.params) / 8] = Number.NaN
        const refused = yield* Effect.flip(channels.open("damaged", Price))
        expect(refused).toMatchObject({ _tag: "InvalidChannel", name: "damaged" })
        expect(refused.message).toBe(
          `channel "damaged": its layout is NaN, this build reads layout 1 (another build's, or damaged: Channels.remove frees its name)`
        )
        yield* channels.remove("damaged")
        expect(yield* channels.list).toEqual(["kept"])
        const again = yield* channels.open("damaged", Price)
        expect(again.entry.generation).not.toBe(damaged.entry.generation)
        const subscription = yield* again.subscribe
        yield* (yield* again.publisher).publish({ symbol: "d", price: 1 })
        expect((yield* subscription.take(TAKE_MS)).value.price).toBe(1)
      }).pipe(Effect.scoped, Effect.provide(liveChannelsAndRegion({ region, bell: 0, writesDirectory: true })))))
})

describe("Channels settings", () => {
  // The layer reads CXLOG_CHANNEL_* once, as it is built: a channel opened with no shape gets them.
  it.scopedLive("a channel whose open names no shape takes CXLOG_CHANNEL_WRITER_SLOTS, _READER_SLOTS and _RING_BYTES", () =>
    Effect.gen(function*() {
      const channels = yield* Channels
      const opened = yield* channels.open("configured", Price)
      expect(opened.shape).toEqual({ writerSlots: 3, readerSlots: 2, ringBytes: 16384 })
    }).pipe(
      Effect.provide(
        ChannelsMemory.layerMemory().pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
            new Map([
              ["CXLOG_CHANNEL_WRITER_SLOTS", "3"],
              ["CXLOG_CHANNEL_READER_SLOTS", "2"],
              ["CXLOG_CHANNEL_RING_BYTES", "16KiB"]
            ])
          )))
        )
      )
    ))
})

describe("Channels spin", () => {
  // A value that follows the last within the spin is taken without a park and a kernel wake.
  const ceilingWhileSubscribed = (env: ReadonlyArray<[string, string]>, options: { readonly spinMicros?: number }) =>
    Effect.flatMap(uniqueRegion("channel-spin"), (region) =>
      Effect.gen(function*() {
        const doorbell = yield* Doorbell
        const ceiling = DoorbellLayers.internalsOf(doorbell)!.spinCeilingMicros
        const own = ceiling()
        const channels = yield* Channels
        const waiting = yield* Effect.scoped(Effect.gen(function*() {
          const channel = yield* channels.open("spun", Price, options)
          yield* channel.subscribe
          // The subscription's readers stand on the doorbell from their first wait on.
          const deadline = Date.now() + TAKE_MS
          while (ceiling() === own && Date.now() < deadline) yield* Effect.sleep("5 millis")
          return ceiling()
        }))
        return { own, waiting, after: ceiling() }
      }).pipe(
        Effect.provide(
          liveChannelsAndRegion({ region, bell: 0, writesDirectory: true }).pipe(
            Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(env))))
          )
        )
      ))

  it.scopedLive("a subscription lets its process spin up to CXLOG_CHANNEL_SPIN_MICROS while it waits, and no longer once closed", () =>
    Effect.gen(function*() {
      const seen = yield* ceilingWhileSubscribed(
        [["CXLOG_SPIN_MICROS", "50"], ["CXLOG_CHANNEL_SPIN_MICROS", "300"]],
        {}
      )
      expect(seen).toEqual({ own: 50, waiting: 300, after: 50 })
    }))

  it.scopedLive("an open's spinMicros wins over the setting", () =>
    Effect.gen(function*() {
      const seen = yield* ceilingWhileSubscribed([["CXLOG_SPIN_MICROS", "50"]], { spinMicros: 700 })
      expect(seen).toEqual({ own: 50, waiting: 700, after: 50 })
    }))
})
