/**
 * A coordinator head in the test's own process over a region whose reply ring is small, and a
 * way to hold that ring full: for tests of what the coordinator does when a reply or notice
 * finds no room. Live layers: a real region, RPC over rings.
 */
import { expect } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import * as CoordinatorLayers from "../../src/layers/control/Coordinator.js"
import { oneBrokerLogConfig } from "../../src/layers/log/LogRegion.js"
import * as TopicsLayers from "../../src/layers/log/Topics.js"
import { defaultControlConfig, type RegionConfig, RegionLayout } from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import type { CoordinatorShape } from "../../src/services/control/Coordinator.js"
import { Rings } from "../../src/services/control/Rings.js"
import { uniqueRegion } from "./Processes.js"

/** An 8 KiB reply ring: a hundred short replies fill it. */
const config: RegionConfig = {
  directory: { entrySlots: 16, holderLines: 4, heapBytes: 4 << 20 },
  control: { ...defaultControlConfig, maxProcesses: 8, appRings: 1, appRingBytes: 4096, broadcastRingBytes: 8192 },
  log: oneBrokerLogConfig
}

/** A fresh region (named after `label`) with a small reply ring, and a coordinator head serving it in this process. */
export const headWithSmallReplyRing = (label: string, options: CoordinatorLayers.ServerOptions) =>
  Effect.gen(function*() {
    const name = yield* uniqueRegion(label)
    const region = yield* Layer.build(Roles.createRegion({ name }, config))
    const head = yield* Layer.build(
      CoordinatorLayers.layerServer(options).pipe(
        Layer.provideMerge(Layer.unwrapEffect(Effect.map(RegionLayout, (l) => TopicsLayers.layer(l.log)))),
        Layer.provideMerge(Roles.controlTransport),
        Layer.provideMerge(Roles.processSlot("head", 0)),
        Layer.provide(Layer.succeedContext(region))
      )
    )
    return { region, head, layout: Context.get(region, RegionLayout), rings: Context.get(head, Rings) }
  })

/**
 * A reader of this (running) process on the reply ring that never reads: the coordinator does
 * not free it, and no writer frees a live reader, so the ring stays full behind it until
 * `release`. `fill` makes the coordinator write short replies (UnknownGroup, to `caller`'s
 * member lists of no group) while `more(free, reply)` says so: the free bytes, one reply's.
 */
export const stuckReplyReader = (
  rings: Context.Tag.Service<typeof Rings>,
  layout: Context.Tag.Service<typeof RegionLayout>
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const stuck = yield* rings.reader(layout.broadcastRing).pipe(Scope.extend(scope))
    const replies = yield* rings.inspect(layout.broadcastRing)
    const free = () =>
      layout.broadcastRing.dataBytes - (replies.writer().sequence - replies.reader(stuck.slot).processed)
    const fill = (caller: CoordinatorShape, more: (free: number, reply: number) => boolean) =>
      Effect.gen(function*() {
        const before = replies.writer().sequence
        expect(yield* Effect.flip(caller.members("none"))).toMatchObject({ _tag: "UnknownGroup" })
        const reply = replies.writer().sequence - before
        while (more(free(), reply)) yield* Effect.flip(caller.members("none"))
      })
    return { free, fill, sequence: () => replies.writer().sequence, release: Scope.close(scope, Exit.void) }
  })
