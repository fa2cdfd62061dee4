/**
 * A subscribe that fails gives back what it took on the way: a subscription takes a reader slot on
 * every writer ring, and one that finds a later ring's slots all held is `ChannelReadersBusy` — the
 * slots it had taken on the rings before must not stay attached in the caller's scope, where they
 * would never read and would hold those rings' writers back.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema, Scope } from "effect"
import { ringAddress } from "../../src/layers/ipc/ChannelLayout.js"
import { Rings } from "../../src/services/control/Rings.js"
import { Channels } from "../../src/services/ipc/Channels.js"
import { liveChannelsAndRegion } from "../fixtures/channel-region.js"
import { innerScope } from "../helpers/InnerScope.js"
import { uniqueRegion } from "../helpers/Processes.js"

const Tick = Schema.Struct({ n: Schema.Number })

describe("a subscribe refused", () => {
  it.scopedLive("ChannelReadersBusy on its second ring leaves no reader slot on its first: a writer there is not held back, and the next subscribe gets a slot", () =>
    Effect.flatMap(uniqueRegion("channel-slots"), (region) =>
      Effect.gen(function*() {
        const channels = yield* Channels
        const rings = yield* Rings
        const ticks = yield* channels.open("ticks", Tick, {
          writerSlots: 2,
          readerSlots: 1,
          ringBytes: 4096,
          publishTimeoutMs: 200
        })
        // Writer slot 1's only reader slot is held by another reader: a subscription gets ring 0's, then none on ring 1.
        const other = yield* innerScope
        yield* Scope.extend(rings.reader(ringAddress(ticks.entry, ticks.shape, 1)), other)
        expect((yield* Effect.flip(ticks.subscribe))._tag).toBe("ChannelReadersBusy")
        const inspected = yield* rings.inspect(ringAddress(ticks.entry, ticks.shape, 0))
        expect(inspected.readers().filter((r) => r.state === "attached")).toHaveLength(0)
        // Ring 0's writer writes past a ring's worth with no subscriber holding it back.
        const publisher = yield* ticks.publisher
        expect(publisher.writer).toBe(0)
        for (let n = 0; n < 500; n++) yield* publisher.publish({ n })
        // Once the other reader has gone, a subscription takes a slot on each ring.
        yield* Scope.close(other, Exit.void)
        const subscription = yield* ticks.subscribe
        yield* publisher.publish({ n: 500 })
        expect((yield* subscription.take(5_000)).value.n).toBe(500)
      }).pipe(Effect.scoped, Effect.provide(liveChannelsAndRegion({ region, bell: 0, writesDirectory: true })))))
})
