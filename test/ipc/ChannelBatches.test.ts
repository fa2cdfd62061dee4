/**
 * A batch that runs out of room on the way (`publishAll`, a raw `writeAll`) has committed the
 * values before the one that found none: its `ChannelFull` says how many (`written`), and those
 * are read, the rest never, so a caller sends again only what was not written. Over the live layer
 * and the fake.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { type ChannelFull, Channels } from "../../src/services/ipc/Channels.js"
import { type ChannelsRun, liveChannelsRun, memoryChannelsRun } from "../fixtures/channel-region.js"

const Tick = Schema.Struct({ n: Schema.Number, pad: Schema.String })
const TAKE_MS = 5_000
/** 4 KiB of ring, a subscriber's buffer of one value, a short bound: a batch of 100 ticks cannot all go in. */
const CRAMPED = { ringBytes: 4096, subscriberBuffer: 1, publishTimeoutMs: 50 }

const contract = (label: string, run: ChannelsRun) =>
  describe(`a batch that finds no room: ${label}`, () => {
    it.scopedLive("publishAll's ChannelFull names how many of its values were written; exactly those are read", () =>
      run(Effect.gen(function*() {
        const ticks = yield* (yield* Channels).open("ticks", Tick, CRAMPED)
        const subscription = yield* ticks.subscribe
        const publisher = yield* ticks.publisher
        const batch = Array.from({ length: 100 }, (_, n) => ({ n, pad: "x".repeat(100) }))
        const refused = (yield* Effect.flip(publisher.publishAll(batch))) as ChannelFull
        expect(refused._tag).toBe("ChannelFull")
        const written = refused.written ?? 0
        expect(written).toBeGreaterThan(0)
        expect(written).toBeLessThan(batch.length)
        expect(refused.message).toContain(`the first ${written} values of the call were written`)
        // The subscriber reads exactly those, then nothing.
        const read: Array<number> = []
        for (let i = 0; i < written; i++) read.push((yield* subscription.take(TAKE_MS)).value.n)
        expect(read).toEqual(batch.slice(0, written).map((t) => t.n))
        expect((yield* Effect.flip(subscription.take(50)))._tag).toBe("ChannelTakeTimeout")
      })))

    it.scopedLive("a raw writeAll's ChannelFull names how many of its frames were written", () =>
      run(Effect.gen(function*() {
        const ticks = yield* (yield* Channels).openRaw("raw-ticks", { ringBytes: 4096, publishTimeoutMs: 50 })
        // A raw subscription that never consumes holds its slot on each ring: the ring fills.
        yield* ticks.subscribe
        const publisher = yield* ticks.publisher
        const frames = Array.from({ length: 100 }, () => new Uint8Array(200))
        const refused = (yield* Effect.flip(publisher.writeAll(frames))) as ChannelFull
        expect(refused._tag).toBe("ChannelFull")
        expect(refused.written).toBeGreaterThan(0)
        expect(refused.written).toBeLessThan(frames.length)
        // A single value that finds no room wrote nothing, and says so.
        const single = (yield* Effect.flip(publisher.write(new Uint8Array(200)))) as ChannelFull
        expect(single.written).toBeUndefined()
        expect(single.message).toMatch(/nothing was written$/)
      })))
  })

contract("live region", liveChannelsRun)
contract("in-memory fake", memoryChannelsRun)
