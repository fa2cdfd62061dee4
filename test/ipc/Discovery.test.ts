/**
 * The Discovery contract, run against the live layer (a region in /dev/shm with its layout) and
 * the fake (a private region): objects of every kind published and withdrawn, processes joining,
 * leaving and crashing, and waitFor resolving or timing out typed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Exit, Fiber, Layer, Queue, Scope } from "effect"
import { spawn } from "node:child_process"
import * as DiscoveryLayers from "../../src/layers/ipc/Discovery.js"
import * as DiscoveryMemoryLayers from "../../src/layers/ipc/DiscoveryMemory.js"
import type { MemoryDiscoveryRegion } from "../../src/layers/ipc/DiscoveryMemory.js"
import { oneBrokerLogConfig } from "../../src/layers/log/LogRegion.js"
import { makeWriterMemory } from "../../src/layers/region/DirectoryMemory.js"
import * as ProcessSlotLayers from "../../src/layers/region/ProcessSlot.js"
import { slotLines } from "../../src/layers/region/SlotLine.js"
import { defaultControlConfig, type RegionConfig, RegionLayout } from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import { Discovery, type DiscoveryEvent, type DiscoveryShape } from "../../src/services/ipc/Discovery.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import type { DirectoryWriterShape } from "../../src/services/region/Directory.js"
import type { ProcessLabel } from "../../src/services/region/ProcessSlot.js"
import { exitedPid, uniqueRegion } from "../helpers/Processes.js"

const config: RegionConfig = {
  directory: { entrySlots: 16, holderLines: 4, heapBytes: 4 << 20 },
  control: { ...defaultControlConfig, maxProcesses: 8, appRings: 2, appRingBytes: 64 << 10 },
  log: oneBrokerLogConfig
}

interface Harness {
  readonly discovery: DiscoveryShape
  readonly writer: DirectoryWriterShape
  readonly store: MemoryDiscoveryRegion
}

const live = Effect.gen(function*() {
  const name = yield* uniqueRegion("discovery")
  const context = yield* Layer.build(
    DiscoveryLayers.layer.pipe(Layer.provideMerge(Roles.createRegion({ name }, config)))
  )
  const layout = Context.get(context, RegionLayout)
  const store = { region: Context.get(context, CxlMemory), area: layout.directory, processTable: layout.processTable }
  const writer = yield* makeWriterMemory(store, { epoch: 1 })
  return { discovery: Context.get(context, Discovery), writer, store } satisfies Harness
})

const fake = Effect.gen(function*() {
  const store = DiscoveryMemoryLayers.makeMemoryRegion({ processSlots: 8 })
  const context = yield* Layer.build(DiscoveryMemoryLayers.layerMemory(store))
  const writer = yield* makeWriterMemory(store, { epoch: 1 })
  return { discovery: Context.get(context, Discovery), writer, store } satisfies Harness
})

/** A process slot of this process in `store`'s table, held until `scope` closes. */
const claimSlot = (store: MemoryDiscoveryRegion, scope: Scope.Scope, label?: ProcessLabel) =>
  ProcessSlotLayers.make({ table: store.processTable, role: "worker", ...(label === undefined ? {} : { label }) }).pipe(
    Effect.provideService(CxlMemory, store.region),
    Scope.extend(scope)
  )

/** Slot `slot` made to read as held by `pid` (a process that is gone), as a SIGKILLed owner leaves it. */
const plantDeadOwner = (store: MemoryDiscoveryRegion, slot: number, pid: number) => {
  const lines = slotLines(store.region)
  const at = ProcessSlotLayers.slotOffset(store.processTable, slot)
  expect(lines.claim(at, lines.claimWord(at), pid)).toBe(true)
  lines.setOccurrence(at, lines.occurrence(at) + 1)
  lines.setStartedMs(at, Date.now())
  lines.storeReady(at, lines.occurrence(at))
}

/** The events told so far (at least one: it waits for the next look that tells any). */
const nextEvents = (queue: Queue.Dequeue<DiscoveryEvent>): Effect.Effect<ReadonlyArray<DiscoveryEvent>> =>
  Effect.map(Queue.takeBetween(queue, 1, 64), Chunk.toArray)

const describeDiscovery = (label: string, harness: Effect.Effect<Harness, unknown, Scope.Scope>) =>
  describe(`Discovery (${label})`, () => {
    it.scopedLive("lists objects of every kind, and tells each published and withdrawn", () =>
      Effect.gen(function*() {
        const { discovery, writer } = yield* harness
        const events = yield* discovery.subscribe
        const prices = yield* writer.create({ kind: "channel", name: "prices", bytes: 4096 })
        yield* writer.create({ kind: "service", name: "quotes", bytes: 4096 })
        yield* writer.create({ kind: "group", name: "prices", bytes: 4096 })
        const told: Array<DiscoveryEvent> = []
        while (told.length < 3) told.push(...(yield* nextEvents(events)))
        expect(told.map((e) => e._tag === "ObjectPublished" ? `${e.object.kind}:${e.object.name}` : e._tag).sort())
          .toEqual(["channel:prices", "group:prices", "service:quotes"])
        expect((yield* discovery.objects("channel")).map((o) => o.name)).toEqual(["prices"])
        expect((yield* discovery.objects()).map((o) => `${o.kind}:${o.name}`)).toEqual([
          "channel:prices",
          "service:quotes",
          "group:prices"
        ])
        yield* writer.remove(prices)
        const withdrawn = yield* nextEvents(events)
        expect(withdrawn.map((e) => e._tag === "ObjectWithdrawn" ? `${e.object.kind}:${e.object.name}` : e._tag))
          .toEqual(["channel:prices"])
        expect(yield* discovery.objects("channel")).toEqual([])
      }))

    it.scopedLive("waitFor resolves when the object appears, and is DiscoveryTimeout past its bound", () =>
      Effect.gen(function*() {
        const { discovery, writer } = yield* harness
        const waiting = yield* Effect.fork(discovery.waitFor("service", "quotes", 10_000))
        // Created only once the wait found nothing and waits for an event.
        yield* Effect.repeat(Fiber.status(waiting), { until: (s) => s._tag === "Suspended" }).pipe(
          Effect.timeout(5_000)
        )
        yield* writer.create({ kind: "channel", name: "quotes", bytes: 4096 }) // another kind: not it
        yield* writer.create({ kind: "service", name: "quotes", bytes: 4096 })
        const found = yield* Fiber.join(waiting)
        expect([found.kind, found.name]).toEqual(["service", "quotes"])
        // Already there: at once.
        expect((yield* discovery.waitFor("channel", "quotes", 1)).kind).toBe("channel")
        const missing = yield* Effect.flip(discovery.waitFor("service", "nobody", 100))
        expect(missing._tag).toBe("DiscoveryTimeout")
        expect(missing.message).toContain("nobody")
      }))

    it.scopedLive("processes: joined, listed with pid and occurrence, left when the slot is given back, crashed when found dead", () =>
      Effect.gen(function*() {
        const { discovery, store } = yield* harness
        const events = yield* discovery.subscribe
        const scope = yield* Scope.make()
        const slot = yield* claimSlot(store, scope)
        const next = () => nextEvents(events)
        const joined = yield* next()
        expect(joined.map((e) => e._tag)).toEqual(["ProcessJoined"])
        const listed = yield* discovery.processes
        const mine = listed.find((p) => p.slot === slot.slot)!
        expect([mine.pid, mine.occurrence, mine.role]).toEqual([process.pid, slot.occurrence, "worker"])
        expect(mine.startedAtMs).toBeGreaterThan(0)
        yield* Scope.close(scope, Exit.void)
        expect((yield* next()).map((e) => e._tag)).toEqual(["ProcessLeft"])
        // A dead owner's slot: crashed (told once), without an exit since this process is not its parent.
        const dead = yield* exitedPid
        plantDeadOwner(store, 7, dead)
        const crashed = yield* next()
        expect(crashed.map((e) => e._tag)).toEqual(["ProcessCrashed"])
        // A dead child of this process: its crash carries the exit its parent saw.
        const child = yield* exitedPid
        yield* discovery.adopt(child, "worker-a")
        plantDeadOwner(store, 6, child)
        yield* discovery.exited(child, { code: null, signal: "SIGKILL" })
        const [childCrash] = yield* next()
        expect(childCrash?._tag === "ProcessCrashed" && [childCrash.process.name, childCrash.exit?.signal]).toEqual([
          "worker-a",
          "SIGKILL"
        ])
        expect((yield* discovery.processes).map((p) => p.pid)).not.toContain(child)
      }))

    it.scopedLive("a process seen running that dies holding its slot is told crashed, once", () =>
      Effect.gen(function*() {
        const { discovery, store } = yield* harness
        const events = yield* discovery.subscribe
        const bounded = <A>(wait: Effect.Effect<A>) =>
          wait.pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("no event") }))
        // A process of its own that waits, killed at the end whatever happens.
        const child = yield* Effect.acquireRelease(
          Effect.sync(() => spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" })),
          (c) => Effect.sync(() => c.exitCode === null && c.signalCode === null && c.kill("SIGKILL"))
        )
        plantDeadOwner(store, 4, child.pid!)
        const [joined] = yield* bounded(nextEvents(events))
        expect(joined?._tag === "ProcessJoined" && [joined.process.slot, joined.process.pid]).toEqual([4, child.pid])
        const exited = Effect.async<void>((resume) => void child.once("exit", () => resume(Effect.void)))
        child.kill("SIGKILL")
        yield* exited
        const [crashed, ...more] = yield* bounded(nextEvents(events))
        expect(crashed?._tag === "ProcessCrashed" && [crashed.process.slot, crashed.process.pid]).toEqual([
          4,
          child.pid
        ])
        expect(more).toEqual([])
        expect((yield* discovery.processes).map((p) => p.pid)).not.toContain(child.pid)
      }))

    it.scopedLive("a dead child's crash waits for the exit its parent learns: not told at the looks before it, then told with it", () =>
      Effect.gen(function*() {
        const { discovery, store, writer } = yield* harness
        const events = yield* discovery.subscribe
        const child = yield* exitedPid
        yield* discovery.adopt(child, "worker-b")
        plantDeadOwner(store, 5, child)
        // Two objects published one after the other: the look that tells the second came after the one
        // that told the first, and every look sees the dead slot. Until the exit is known, no crash.
        const told: Array<DiscoveryEvent> = []
        for (const marker of ["marker-1", "marker-2"]) {
          yield* writer.create({ kind: "channel", name: marker, bytes: 4096 })
          while (!told.some((e) => e._tag === "ObjectPublished" && e.object.name === marker)) {
            told.push(...(yield* nextEvents(events)))
          }
        }
        expect(told.filter((e) => e._tag !== "ObjectPublished")).toEqual([])
        yield* discovery.exited(child, { code: 3, signal: null })
        const [crash] = yield* nextEvents(events)
        expect(crash?._tag === "ProcessCrashed" && [crash.process.pid, crash.process.name, crash.exit]).toEqual([
          child,
          "worker-b",
          { code: 3, signal: null }
        ])
      }))

    it.scopedLive("a supervised process is listed and told by the label its slot carries; a slot's next owner carries its own", () =>
      Effect.gen(function*() {
        const { discovery, store } = yield* harness
        const events = yield* discovery.subscribe
        const first = yield* Scope.make()
        // 21 bytes: cut to 19, before the two-byte character that would not fit whole in the slot's 20.
        const named = yield* claimSlot(store, first, { name: "quotes-worker-1234#é", supervisor: 4242, restarts: 3 })
        const label = { name: "quotes-worker-1234#", supervisor: 4242, restarts: 3 }
        const [joined] = yield* nextEvents(events)
        expect(joined?._tag === "ProcessJoined" && joined.process).toMatchObject({ slot: named.slot, ...label })
        expect((yield* discovery.processes).find((p) => p.slot === named.slot)).toMatchObject(label)
        yield* Scope.close(first, Exit.void)
        const [left] = yield* nextEvents(events)
        expect(left?._tag === "ProcessLeft" && left.process).toMatchObject(label)
        const again = yield* claimSlot(store, yield* Scope.make())
        expect(again.slot).toBe(named.slot)
        const [rejoined] = yield* nextEvents(events)
        const unlabelled = rejoined?._tag === "ProcessJoined" ? rejoined.process : undefined
        expect([unlabelled?.name, unlabelled?.supervisor, unlabelled?.restarts]).toEqual([
          undefined,
          undefined,
          undefined
        ])
      }))
  })

describeDiscovery("live", live)
describeDiscovery("fake", fake)
