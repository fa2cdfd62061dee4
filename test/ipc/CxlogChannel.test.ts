/**
 * The Promise facade over channels: over the in-memory fake, and over a live region between two
 * facades of their own runtimes (one creating the channel as the head would, one finding it by name).
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as ChannelsMemory from "../../src/layers/ipc/ChannelsMemory.js"
import { CxlogChannel } from "../../src/layers/ipc/CxlogChannel.js"
import {
  ChannelClosed,
  Channels,
  ChannelSubscriptionClosed,
  ChannelTakeTimeout,
  InvalidChannel
} from "../../src/services/ipc/Channels.js"
import { liveChannels } from "../fixtures/channel-region.js"
import { uniqueRegion } from "../helpers/Processes.js"

const Price = Schema.Struct({ symbol: Schema.String, price: Schema.Number.pipe(Schema.positive()) })

const TAKE_MS = 10_000

/** V8's collector, called: `--expose-gc` set now, `gc` taken from a context made after it. */
const collectGarbage = (): () => void => {
  setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as () => void
}

describe("CxlogChannel", () => {
  it.live("publish, and a subscription's async iteration: every value once, in order; a value that does not encode rejects typed", () =>
    Effect.promise(async () => {
      const prices = await CxlogChannel.openWith(ChannelsMemory.layerMemory(), "prices", Price, {
        writerSlots: 2,
        readerSlots: 2,
        ringBytes: 8192
      })
      try {
        expect(prices.shape).toEqual({ writerSlots: 2, readerSlots: 2, ringBytes: 8192 })
        const subscription = await prices.subscribe()
        await prices.publish({ symbol: "ACME", price: 1 })
        await prices.publishAll([2, 3, 4].map((price) => ({ symbol: "ACME", price })))
        const refused = await prices.publish({ symbol: "ACME", price: -1 }).catch((e: unknown) => e)
        expect((refused as { _tag: string })._tag).toBe("ChannelEncodeError")
        // A JavaScript caller's one value, or nothing, where publishAll's list goes: refused, nothing written.
        for (const values of [5, undefined] as ReadonlyArray<unknown> as ReadonlyArray<Array<typeof Price.Type>>) {
          await expect(prices.publishAll(values)).rejects.toMatchObject({
            _tag: "ChannelEncodeError",
            reason: `publishAll takes an iterable of values, not ${String(values)}`
          })
        }
        const seen: Array<number> = []
        for await (const { value } of subscription) {
          seen.push(value.price)
          if (seen.length === 4) break
        }
        expect(seen).toEqual([1, 2, 3, 4])
        // Nothing of the refused value was written.
        const none = await subscription.take(50).catch((e: unknown) => e)
        expect((none as { _tag: string })._tag).toBe("ChannelTakeTimeout")
      } finally {
        await prices.close()
      }
    }))

  it.live("a closed subscription is let go by its channel: one subscribed to and closed again and again keeps none of them", () =>
    Effect.promise(async () => {
      const gc = collectGarbage()
      const prices = await CxlogChannel.openWith(ChannelsMemory.layerMemory(), "prices", Price, {
        writerSlots: 1,
        readerSlots: 2,
        ringBytes: 8192
      })
      try {
        // In a function of its own: nothing of this frame holds the subscription once it has returned.
        const subscribeAndClose = async () => {
          const subscription = await prices.subscribe()
          await prices.publishAll([1, 2, 3].map((price) => ({ symbol: "ACME", price })))
          // One handed out, two held by the iteration's batch when it closes.
          for await (const { value } of subscription) {
            expect(value.price).toBe(1)
            break
          }
          await subscription.close()
          return new WeakRef(subscription)
        }
        const closed: Array<WeakRef<object>> = []
        for (let i = 0; i < 3; i++) closed.push(await subscribeAndClose())
        // A WeakRef holds its target to the end of the job that made it: collected in a later one.
        await new Promise((resolve) => setImmediate(resolve))
        gc()
        expect(closed.filter((ref) => ref.deref() !== undefined)).toHaveLength(0)
      } finally {
        await prices.close()
      }
    }))

  it.live("an iteration takes values in batches; what it had not handed out when left goes to the next take or takeUpTo", () =>
    Effect.promise(async () => {
      const prices = await CxlogChannel.openWith(ChannelsMemory.layerMemory(), "batches", Price)
      try {
        const subscription = await prices.subscribe()
        await prices.publishAll([1, 2, 3, 4, 5, 6].map((price) => ({ symbol: "ACME", price })))
        const seen: Array<number> = []
        for await (const { value } of subscription) {
          seen.push(value.price)
          if (seen.length === 2) break
        }
        expect(seen).toEqual([1, 2])
        // Room for none takes none of them, as the subscription's own takeUpTo: they stay for the next take.
        expect(await subscription.takeUpTo(0, TAKE_MS)).toEqual([])
        expect(await subscription.takeUpTo(Number.NaN, TAKE_MS)).toEqual([])
        expect((await subscription.take(TAKE_MS)).value.price).toBe(3)
        expect((await subscription.takeUpTo(1.5, TAKE_MS)).map((m) => m.value.price)).toEqual([4])
        expect((await subscription.takeUpTo(10, TAKE_MS)).map((m) => m.value.price)).toEqual([5, 6])
      } finally {
        await prices.close()
      }
    }))

  it.live("consume hands every value to a handler, held ones first, until close; a handler's throw rejects it and the next value waits", () =>
    Effect.promise(async () => {
      const prices = await CxlogChannel.openWith(ChannelsMemory.layerMemory(), "handed", Price)
      try {
        const subscription = await prices.subscribe()
        await prices.publishAll([1, 2, 3].map((price) => ({ symbol: "ACME", price })))
        for await (const { value } of subscription) if (value.price === 1) break
        const seen: Array<number> = []
        const thrown = new Error("handler failed")
        const failing = subscription.consume(({ value }) => {
          seen.push(value.price)
          if (value.price === 4) throw thrown
        })
        await prices.publishAll([4, 5].map((price) => ({ symbol: "ACME", price })))
        expect(await failing.catch((e: unknown) => e)).toBe(thrown)
        expect(seen).toEqual([2, 3, 4])
        const running = subscription.consume(({ value }) => void seen.push(value.price))
        await prices.publish({ symbol: "ACME", price: 6 })
        await expect.poll(() => seen.length, { timeout: TAKE_MS }).toBe(5)
        expect(seen).toEqual([2, 3, 4, 5, 6])
        await subscription.close()
        await running
      } finally {
        await prices.close()
      }
    }))

  it.live("closing ends an iteration under way and gives the slots back", () =>
    Effect.promise(async () => {
      const ticks = await CxlogChannel.openWith(ChannelsMemory.layerMemory(), "ticks", Price, {
        writerSlots: 1,
        readerSlots: 1,
        ringBytes: 8192
      })
      const first = await ticks.subscribe()
      const busy = await ticks.subscribe().catch((e: unknown) => e)
      expect((busy as { _tag: string })._tag).toBe("ChannelReadersBusy")
      const seen: Array<number> = []
      const iterating = (async () => {
        for await (const { value } of first) seen.push(value.price)
      })()
      await ticks.publish({ symbol: "X", price: 7 })
      await expect.poll(() => seen.length, { timeout: TAKE_MS }).toBe(1)
      // Closing ends the iteration that waits for the next value.
      await first.close()
      await iterating
      expect(seen).toEqual([7])
      // Its reader slot is free again.
      const second = await ticks.subscribe()
      await ticks.publish({ symbol: "X", price: 8 })
      expect((await second.take(TAKE_MS)).value.price).toBe(8)
      await ticks.close()
      const closed = await ticks.publish({ symbol: "X", price: 9 }).catch((e: unknown) => e)
      expect(closed).toBeInstanceOf(ChannelClosed)
      expect(await ticks.subscribe().catch((e: unknown) => e)).toBeInstanceOf(ChannelClosed)
      // Its subscription was closed with it: a take is told so, typed.
      await expect(second.take(10)).rejects.toBeInstanceOf(ChannelSubscriptionClosed)
      await expect(second.takeUpTo(3, 10)).rejects.toMatchObject({ _tag: "ChannelSubscriptionClosed", name: "ticks" })
    }))

  it.scopedLive("a publish refused ChannelWritersBusy takes a writer slot at the next publish, once one is free", () =>
    Effect.gen(function*() {
      // One Channels shared by the facade and the test, so the test can hold the one writer slot.
      const channels = Context.get(yield* Layer.build(ChannelsMemory.layerMemory()), Channels)
      const channel = yield* channels.open("one-writer", Price, { writerSlots: 1 })
      const holding = yield* Scope.make()
      yield* Scope.extend(channel.publisher, holding)
      yield* Effect.promise(async () => {
        const prices = await CxlogChannel.openWith(Layer.succeed(Channels, channels), "one-writer", Price)
        try {
          const subscription = await prices.subscribe()
          const busy = await prices.publish({ symbol: "A", price: 1 }).catch((e: unknown) => e)
          expect((busy as { _tag: string })._tag).toBe("ChannelWritersBusy")
          await Effect.runPromise(Scope.close(holding, Exit.void))
          await prices.publish({ symbol: "B", price: 2 })
          expect((await subscription.take(TAKE_MS)).value).toEqual({ symbol: "B", price: 2 })
        } finally {
          await prices.close()
        }
      })
    }))

  it.live("an open's options are checked (InvalidChannel naming the option); a take's bound that is not a number waits not at all", () =>
    Effect.promise(async () => {
      for (
        const [options, named] of [
          [{ subscriberBuffer: 0 }, "subscriberBuffer 0"],
          [{ subscriberBuffer: 1.5 }, "subscriberBuffer 1.5"],
          [{ publishTimeoutMs: Number.NaN }, "publishTimeoutMs NaN"],
          [{ spinMicros: -1 }, "spinMicros -1"]
        ] as const
      ) {
        const refused = await CxlogChannel.openWith(ChannelsMemory.layerMemory(), "options", Price, options).catch((
          e: unknown
        ) => e)
        expect(refused).toBeInstanceOf(InvalidChannel)
        expect(String(refused)).toContain(named)
      }
      const prices = await CxlogChannel.openWith(ChannelsMemory.layerMemory(), "bounds", Price)
      try {
        const subscription = await prices.subscribe()
        expect(await subscription.take(Number.NaN).catch((e: unknown) => e)).toBeInstanceOf(ChannelTakeTimeout)
        expect(await subscription.takeUpTo(4, Number.NaN).catch((e: unknown) => e)).toBeInstanceOf(ChannelTakeTimeout)
        // Nor does one that is no number at all (a JavaScript caller's string): not a ParseError of the timeout's own.
        const text = "500" as unknown as number
        expect(await subscription.take(text).catch((e: unknown) => e)).toMatchObject({
          _tag: "ChannelTakeTimeout",
          timeoutMs: Number.NaN
        })
        expect(await subscription.takeUpTo(4, text).catch((e: unknown) => e)).toBeInstanceOf(ChannelTakeTimeout)
      } finally {
        await prices.close()
      }
    }))

  it.scopedLive(
    "two facades over a live region: one creates the channel, the other finds it by name and reads it",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("cxlog-channel")
        yield* Effect.promise(async () => {
          const head = await CxlogChannel.openWith(
            liveChannels({ region, bell: 0, writesDirectory: true }),
            "prices",
            Price,
            { writerSlots: 2, readerSlots: 2, ringBytes: 8192, publishTimeoutMs: 60_000 }
          )
          try {
            const other = await CxlogChannel.openWith(
              liveChannels({ region, bell: 1, writesDirectory: false }),
              "prices",
              Price
            )
            try {
              expect(other.shape).toEqual(head.shape)
              const subscription = await other.subscribe()
              await head.publishAll([{ symbol: "A", price: 1 }, { symbol: "B", price: 2 }])
              expect((await subscription.next())?.value).toEqual({ symbol: "A", price: 1 })
              expect((await subscription.next())?.value).toEqual({ symbol: "B", price: 2 })
              // The subscription takes no more: the head's ring fills, and a publish waits for room until the head closes.
              let waiting: Promise<unknown> | undefined
              for (let price = 3; waiting === undefined; price++) {
                const publishing = head.publish({ symbol: "C", price }).catch((e: unknown) => e)
                // A window, not a wait: a publish with room settles at once; one still open after 200 ms waits for room.
                const settled = await Promise.race([
                  publishing,
                  new Promise((resolve) => setTimeout(resolve, 200, "waiting"))
                ])
                if (settled === "waiting") waiting = publishing
                else expect(settled).toBeUndefined()
              }
              await head.close()
              expect(await waiting).toBeInstanceOf(ChannelClosed)
            } finally {
              await other.close()
            }
          } finally {
            await head.close()
          }
        })
      }),
    60_000
  )
})
