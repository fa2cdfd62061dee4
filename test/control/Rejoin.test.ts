/**
 * A member whose reply slot the coordinator freed re-joins once it runs again (its RPC client
 * attaches again). The coordinator may be away meanwhile (failing over, restarting): re-joining
 * keeps trying with backoff within its bound, and gives up typed, naming what it waited for.
 * Live layers in this process: a real region, RPC over rings; the head is closed and built again.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, Scope } from "effect"
import * as CoordinatorLayers from "../../src/layers/control/Coordinator.js"
import { oneBrokerLogConfig } from "../../src/layers/log/LogRegion.js"
import * as TopicsLayers from "../../src/layers/log/Topics.js"
import { defaultControlConfig, type RegionConfig, RegionLayout } from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import { Coordinator } from "../../src/services/control/Coordinator.js"
import { RingCorrupt, Rings } from "../../src/services/control/Rings.js"
import { Rpc, type RpcClientOptions } from "../../src/services/control/Rpc.js"
import { uniqueRegion } from "../helpers/Processes.js"

const config: RegionConfig = {
  directory: { entrySlots: 16, holderLines: 4, heapBytes: 4 << 20 },
  control: { ...defaultControlConfig, maxProcesses: 8, appRings: 1, appRingBytes: 4096, broadcastRingBytes: 64 << 10 },
  log: oneBrokerLogConfig
}

/** Log lines of every fiber the test starts (the layers' fibers inherit the logger). */
const captured = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => {
    lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** Waits (bounded) for a captured line matching `pattern`; returns it. */
const awaitLine = (lines: ReadonlyArray<string>, pattern: RegExp, timeoutMs: number) =>
  Effect.gen(function*() {
    for (;;) {
      const line = lines.find((l) => pattern.test(l))
      if (line !== undefined) return line
      yield* Effect.sleep("20 millis")
    }
  }).pipe(Effect.timeoutFail({
    duration: timeoutMs,
    onTimeout: () => new Error(`no log line matching ${pattern} within ${timeoutMs} ms: ${lines.join(" | ")}`)
  }))

/** The head's coordinator over `region`. */
const headOf = <R>(region: Context.Context<R>) =>
  CoordinatorLayers.layerServer({ checkEveryMs: 50 }).pipe(
    Layer.provideMerge(Layer.unwrapEffect(Effect.map(RegionLayout, (l) => TopicsLayers.layer(l.log)))),
    Layer.provideMerge(Roles.controlTransport),
    Layer.provideMerge(Roles.processSlot("head", 0)),
    Layer.provide(Layer.succeedContext(region))
  )

const cluster = (rejoinTimeoutMs: number) =>
  Effect.gen(function*() {
    const name = yield* uniqueRegion("rejoin")
    const region = yield* Layer.build(Roles.createRegion({ name }, config))
    const headLayer = headOf(region)
    const headScope = yield* Scope.make()
    yield* Layer.buildWithScope(headLayer, headScope)
    const member = yield* Layer.build(
      Roles.coordinatorClient({ joinTimeoutMs: 1_000, rejoinTimeoutMs }).pipe(
        Layer.provideMerge(Roles.controlTransport),
        Layer.provideMerge(Roles.processSlot("worker")),
        Layer.provide(Layer.succeedContext(region))
      )
    )
    const coordinator = Context.get(member, Coordinator)
    yield* coordinator.joinGroup("g")
    // The coordinator goes away; then this member's reply slot is freed, as the coordinator does
    // for a member that stopped: its RPC client attaches again and the Coordinator client re-joins.
    yield* Scope.close(headScope, Exit.void)
    yield* Context.get(member, Rings).reap(Context.get(region, RegionLayout).broadcastRing, coordinator.self.slot)
    return { coordinator, restartHead: Layer.build(headLayer) }
  })

describe("re-joining the coordinator", () => {
  it.scopedLive(
    "a member whose RPC client read its reply ring past a corrupt stretch re-joins saying so, never as dropped for not running",
    () => {
      const log = captured()
      return Effect.gen(function*() {
        const name = yield* uniqueRegion("rejoin-corrupt")
        const region = yield* Layer.build(Roles.createRegion({ name }, config))
        yield* Layer.build(headOf(region))
        // What the member's Coordinator client asks its RPC client to run when that reads past corruption (Rpc.test.ts).
        let onRepliesLost: ((corrupt: RingCorrupt) => Effect.Effect<void>) | undefined
        const capturing = Layer.effect(
          Rpc,
          Effect.map(Rpc, (rpc) => ({
            ...rpc,
            client: (options: RpcClientOptions) => {
              onRepliesLost = options.onRepliesLost
              return rpc.client(options)
            }
          }))
        )
        const member = yield* Layer.build(
          Roles.coordinatorClient({ joinTimeoutMs: 1_000 }).pipe(
            Layer.provide(capturing),
            Layer.provideMerge(Roles.controlTransport),
            Layer.provideMerge(Roles.processSlot("worker")),
            Layer.provide(Layer.succeedContext(region))
          )
        )
        const coordinator = Context.get(member, Coordinator)
        yield* coordinator.joinGroup("g")
        expect(onRepliesLost).toBeDefined()
        const corrupt = new RingCorrupt({
          ring: Context.get(region, RegionLayout).broadcastRing.id,
          position: 640,
          reason: "frame header does not belong to this position"
        })
        yield* onRepliesLost!(corrupt)
        const line = yield* awaitLine(log.lines, /re-joining$/, 10_000)
        expect(line).toBe(
          `coordinator: the broadcast ring read corrupt (${corrupt.message}) and the replies and notices there were lost; re-joining`
        )
        expect(log.lines.filter((l) => l.includes("not running"))).toEqual([])
        // Re-joined: still in its group.
        expect((yield* coordinator.members("g")).map((m) => m.slot)).toContain(coordinator.self.slot)
      }).pipe(Effect.provide(log.layer))
    },
    30_000
  )

  it.scopedLive(
    "a re-join that fails while the coordinator is away is tried again: the member is back in its group once a coordinator serves",
    () => {
      const log = captured()
      return Effect.gen(function*() {
        const { coordinator, restartHead } = yield* cluster(60_000)
        // The first attempt's join calls have all timed out: only then does a coordinator come back.
        yield* awaitLine(log.lines, /re-joining .*failed/, 30_000)
        yield* restartHead
        const inGroup = Effect.gen(function*() {
          for (;;) {
            const members = yield* Effect.either(coordinator.members("g"))
            if (members._tag === "Right" && members.right.some((m) => m.slot === coordinator.self.slot)) return
            yield* Effect.sleep("50 millis")
          }
        })
        yield* inGroup.pipe(
          Effect.timeoutFail({
            duration: 30_000,
            onTimeout: () => new Error(`not back in group g within 30 s: ${log.lines.join(" | ")}`)
          })
        )
      }).pipe(Effect.provide(log.layer))
    },
    60_000
  )

  it.scopedLive(
    "with no coordinator back, re-joining gives up within its bound with CoordinatorRejoinFailed naming what it waited for",
    () => {
      const log = captured()
      return Effect.gen(function*() {
        const { coordinator } = yield* cluster(3_000)
        const line = yield* awaitLine(log.lines, /gave up/, 30_000)
        expect(line).toContain(
          `slot ${coordinator.self.slot}: re-joining the coordinator after this process was dropped for not running gave up`
        )
        expect(line).toMatch(/no answer to its join and group calls in \d+ attempts over \d+ ms/)
      }).pipe(Effect.provide(log.layer))
    },
    60_000
  )
})
