/**
 * Removing a channel (`Channels.remove`), over the live layer (a region mapped by the addon) and
 * the in-memory fake: refused while a live process writes to it or is subscribed; an object of it
 * opened before the removal and used only after it is refused too, rather than writing and
 * reading memory no later open finds.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { lines, ringLineViews } from "../../src/layers/control/RingLines.js"
import { ringAddresses } from "../../src/layers/ipc/ChannelLayout.js"
import * as ChannelsMemory from "../../src/layers/ipc/ChannelsMemory.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { ownStartTag } from "../../src/layers/region/ProcessInfo.js"
import { Channels, type ChannelsShape } from "../../src/services/ipc/Channels.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { type ChannelsRun, liveChannels, liveChannelsRun, memoryChannelsRun } from "../fixtures/channel-region.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { laterStartTag } from "../helpers/StartTags.js"

const Price = Schema.Struct({ symbol: Schema.String, price: Schema.Number.pipe(Schema.positive()) })

const TAKE_MS = 10_000

/** Channels of one region twice: `remover`'s creates and removes; `holder`'s only opens what exists. */
type Pair = Effect.Effect<{ readonly remover: ChannelsShape; readonly holder: ChannelsShape }, unknown, Scope.Scope>

/** Two attachments of one live region, each with its own mapping, directory view and rings, as two processes have. */
const livePair: Pair = Effect.gen(function*() {
  const region = yield* uniqueRegion("channel-removal")
  const remover = Context.get(yield* Layer.build(liveChannels({ region, bell: 0, writesDirectory: true })), Channels)
  const holder = Context.get(yield* Layer.build(liveChannels({ region, bell: 1, writesDirectory: false })), Channels)
  return { remover, holder }
})

const memoryPair: Pair = Effect.map(Layer.build(ChannelsMemory.layerMemory()), (context) => {
  const channels = Context.get(context, Channels)
  return { remover: channels, holder: channels }
})

const removal = (label: string, run: ChannelsRun, pair: Pair) =>
  describe(`Channels removal: ${label}`, () => {
    it.scopedLive(
      "remove: refused while a live process uses the channel, then its name and room are given back; 300 made and removed in turn fit a directory of fewer",
      () =>
        run(Effect.gen(function*() {
          const channels = yield* Channels
          expect(yield* Effect.flip(channels.remove("nothing"))).toMatchObject({
            _tag: "ChannelNotFound",
            name: "nothing"
          })
          const scope = yield* Scope.make()
          const channel = yield* Scope.extend(channels.open("prices", Price, { ringBytes: 8192 }), scope)
          const subscription = yield* Scope.extend(channel.subscribe, scope)
          expect(yield* Effect.flip(channels.remove("prices"))).toMatchObject({
            _tag: "ChannelInUse",
            name: "prices",
            pids: [process.pid]
          })
          // Refused, it is untouched: a value still goes through.
          yield* (yield* Scope.extend(channel.publisher, scope)).publish({ symbol: "A", price: 1 })
          expect((yield* subscription.take(TAKE_MS)).value.price).toBe(1)
          yield* Scope.close(scope, Exit.void)
          yield* channels.remove("prices")
          expect(yield* channels.list).toEqual([])
          yield* Effect.scoped(Effect.gen(function*() {
            const again = yield* channels.open("prices", Price, { ringBytes: 4096 })
            expect(again.shape.ringBytes).toBe(4096)
          }))
          // Opened, used and removed in turn, more channels than the directory has entries (64 live, 256 in the
          // fake). A channel this process held open meanwhile would keep their memory from coming back (docs/ipc.md).
          for (let i = 0; i < 300; i++) {
            yield* Effect.scoped(Effect.gen(function*() {
              const c = yield* channels.open(`churn-${i}`, Price, { ringBytes: 4096 })
              const s = yield* c.subscribe
              yield* (yield* c.publisher).publish({ symbol: "C", price: i + 1 })
              expect((yield* s.take(TAKE_MS)).value.price).toBe(i + 1)
            }))
            yield* channels.remove(`churn-${i}`)
          }
          expect(yield* channels.list).toEqual(["prices"])
        })),
      120_000
    )

    it.scopedLive(
      "a channel removed while another attachment has it open, neither writing nor subscribed: that object's publisher and subscribe are ChannelRemoved; opened again, the name is the new channel",
      () =>
        Effect.gen(function*() {
          const { holder, remover } = yield* pair
          yield* remover.open("prices", Price, { ringBytes: 4096 })
          const stale = yield* holder.open("prices", Price)
          const staleRaw = yield* holder.openRaw("prices")
          // Only pinned there: not in use as remove counts it (docs/ipc.md), so the removal goes through.
          yield* remover.remove("prices")
          expect(yield* Effect.flip(stale.subscribe)).toMatchObject({ _tag: "ChannelRemoved", name: "prices" })
          expect(yield* Effect.flip(stale.publisher)).toMatchObject({ _tag: "ChannelRemoved", name: "prices" })
          expect((yield* Effect.flip(staleRaw.subscribe))._tag).toBe("ChannelRemoved")
          expect((yield* Effect.flip(staleRaw.publisher))._tag).toBe("ChannelRemoved")
          // The name now is a new channel, and values through it reach its subscribers.
          const subscription = yield* (yield* remover.open("prices", Price, { ringBytes: 4096 })).subscribe
          const fresh = yield* holder.open("prices", Price)
          expect(fresh.entry.generation).not.toBe(stale.entry.generation)
          yield* (yield* fresh.publisher).publish({ symbol: "A", price: 2 })
          expect((yield* subscription.take(TAKE_MS)).value).toEqual({ symbol: "A", price: 2 })
        }),
      60_000
    )
  })

removal("live region", liveChannelsRun, livePair)
removal("in-memory fake", memoryChannelsRun, memoryPair)

describe("Channels removal: users by pid and start tag", () => {
  it.scopedLive("a writer line and reader slots naming a live pid under another start tag (a dead user's pid reused) hold no removal back", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("channel-reused-pid")
      const channels = Context.get(
        yield* Layer.build(liveChannels({ region, bell: 0, writesDirectory: true })),
        Channels
      )
      const channel = yield* channels.open("prices", Price, { writerSlots: 1, ringBytes: 4096 })
      yield* channel.subscribe
      yield* channel.publisher
      expect(yield* Effect.flip(channels.remove("prices"))).toMatchObject({ _tag: "ChannelInUse", pids: [process.pid] })
      // Through a mapping of the region of its own: this process's lines given a later process's start
      // tag, as a dead writer's and reader's lines read once their pid went to another process.
      const memory = Context.get(yield* Layer.build(CxlMemoryLayers.layer({ name: region, mode: "attach" })), CxlMemory)
      const { control, reader } = ringLineViews(memory)
      const own = ownStartTag()
      expect(own).toBeGreaterThan(0)
      const later = laterStartTag(own)
      const mine: Array<number> = []
      for (const address of ringAddresses(channel.entry, channel.shape)) {
        const at = lines(address)
        expect(control.swapWriter(at.control, control.writer(at.control), process.pid, later)).toBe(true)
        for (let slot = 0; slot < address.readerSlots; slot++) {
          if (reader.pid(at.line(slot)) === process.pid) mine.push(at.line(slot))
        }
        // Put back before the publisher and subscription let go of them.
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => control.swapWriter(at.control, control.writer(at.control), process.pid, own))
        )
      }
      expect(mine).toHaveLength(1)
      for (const line of mine) reader.setStart(line, later)
      yield* Effect.addFinalizer(() => Effect.sync(() => mine.forEach((line) => reader.setStart(line, own))))
      yield* channels.remove("prices")
      expect(yield* channels.list).toEqual([])
    }))
})
