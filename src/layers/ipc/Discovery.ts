/**
 * The live Discovery layer over the region (its directory and process table), and the engine the
 * fake runs too. The region is watched by one fiber per process, and only while someone watches:
 * an event stream being read or a `waitFor` waiting. It looks every `CXLOG_DISCOVERY_WATCH_MS`
 * (50 ms) on the wall clock's grid (Cadence.ts): a look that finds nothing changed costs one atomic
 * load per object kind and one owner line per process slot. With nobody watching, nothing runs.
 */
import { type ConfigError, Effect, Fiber, Layer, PubSub, Queue, type Scope, Stream } from "effect"
import { Discovery, type DiscoveryEvent, type DiscoveryShape, DiscoveryTimeout } from "../../services/ipc/Discovery.js"
import { DISCOVERY_SETTINGS } from "../../services/ipc/DiscoverySettings.js"
import { CxlMemory, type CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { ObjectKind } from "../../services/region/Directory.js"
import type { ProcessTableLocation } from "../../services/region/ProcessSlot.js"
import { RegionLayout } from "../../services/RegionLayout.js"
import { settingsConfig } from "../../Settings.js"
import { everyTick } from "../region/Cadence.js"
import type { DirectoryArea } from "../region/DirectoryRecords.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import { ChildRecords, liveProcesses, objectOf, RegionWatch } from "./DiscoveryWatch.js"

export type DiscoveryOptions = Effect.Effect.Success<typeof discoveryOptions>
export const discoveryOptions = settingsConfig(DISCOVERY_SETTINGS.settings)

export interface DiscoveryArea {
  readonly directory: DirectoryArea
  readonly processTable: ProcessTableLocation
}

/** Discovery over `region`; its watching fiber, when one runs, ends with the scope. */
export const discoveryOver = (
  region: CxlMemoryShape,
  area: DiscoveryArea,
  options: DiscoveryOptions
): Effect.Effect<DiscoveryShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const table = new DirectoryTable(region, area.directory)
    const children = new ChildRecords()
    const watch = new RegionWatch(region, area.directory, area.processTable, children, options.exitWaitMs)
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<DiscoveryEvent>(), PubSub.shutdown)
    const lock = yield* Effect.makeSemaphore(1)
    let watchers = 0
    let watching: Fiber.RuntimeFiber<never> | undefined

    const look = Effect.suspend(() => {
      const events = watch.look(Date.now())
      return events.length === 0 ? Effect.void : PubSub.publishAll(hub, events)
    })
    const startWatching = lock.withPermits(1)(Effect.gen(function*() {
      watchers++
      if (watchers > 1) return
      watch.baseline(Date.now())
      // Started from an acquire, which is uninterruptible: the fiber is made interruptible, so its stop can end it.
      watching = yield* everyTick(() => options.watchMs, look).pipe(Effect.interruptible, Effect.forkIn(scope))
    }))
    const stopWatching = lock.withPermits(1)(Effect.gen(function*() {
      watchers--
      if (watchers > 0 || watching === undefined) return
      const fiber = watching
      watching = undefined
      yield* Fiber.interrupt(fiber)
    }))
    /** A subscription to the events from now on, with the region watched while it is open. */
    const subscribe = Effect.gen(function*() {
      // Subscribed before the watch starts (or its baseline is taken): nothing after it is missed.
      const dequeue = yield* PubSub.subscribe(hub)
      yield* Effect.acquireRelease(startWatching, () => stopWatching)
      return dequeue
    })

    const waitFor = (kind: ObjectKind, name: string, timeoutMs: number) =>
      Effect.scoped(Effect.gen(function*() {
        const dequeue = yield* subscribe
        // Looked up after subscribing: one published before is found here, one published after is an event.
        const found = table.lookup(kind, name)
        if (found !== undefined) return objectOf(found)
        for (;;) {
          const event = yield* Queue.take(dequeue)
          if (event._tag === "ObjectPublished" && event.object.kind === kind && event.object.name === name) {
            return event.object
          }
        }
      })).pipe(
        Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new DiscoveryTimeout({ kind, name, timeoutMs }) })
      )

    return {
      objects: (kind) =>
        Effect.sync(() =>
          table.list(kind).map(objectOf).sort((a, b) => a.createdAtMs - b.createdAtMs || a.generation - b.generation)
        ),
      processes: Effect.sync(() => liveProcesses(region, area.processTable, children)),
      waitFor,
      events: Stream.unwrapScoped(Effect.map(subscribe, (dequeue) => Stream.fromQueue(dequeue))),
      subscribe,
      adopt: (pid, name) => Effect.sync(() => children.adopt(pid, name)),
      exited: (pid, exit) => Effect.sync(() => children.exited(pid, exit))
    } satisfies DiscoveryShape
  })

export const make: Effect.Effect<
  DiscoveryShape,
  ConfigError.ConfigError,
  CxlMemory | RegionLayout | Scope.Scope
> = Effect.gen(function*() {
  const layout = yield* RegionLayout
  return yield* discoveryOver(
    yield* CxlMemory,
    { directory: layout.directory, processTable: layout.processTable },
    yield* discoveryOptions
  )
})

/** Discovery over the region this process has mapped. */
export const layer: Layer.Layer<Discovery, ConfigError.ConfigError, CxlMemory | RegionLayout> = Layer.scoped(
  Discovery,
  make
)
