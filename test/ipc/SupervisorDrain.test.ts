/**
 * The draining collective shutdown across processes: a writer child publishing on a channel and a
 * slow reader child, both opted in with `drainOnStop`, under a supervisor in this process (a
 * member of the region whose head this process is too). A draining shutdown completes only once
 * the reader has processed every value the writer published; the same children under a supervisor
 * that does not drain lose the writer's backlog (the control); a child that opted in but never
 * arrives ends the fence at its bound, named. Children are stopped by the supervisor's scope (and
 * SIGKILLed past its bounds), the region removed, even when a test fails.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import * as SupervisorLayers from "../../src/layers/ipc/Supervisor.js"
import { oneBrokerLogConfig } from "../../src/layers/log/LogRegion.js"
import { defaultControlConfig, type RegionConfig } from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import { Channels } from "../../src/services/ipc/Channels.js"
import { Supervisor, type SupervisorEvent } from "../../src/services/ipc/Supervisor.js"
import { channelHead } from "../fixtures/channel-head.js"
import { Tick } from "../fixtures/channel-tick.js"
import { fixtureEntry } from "../helpers/FixtureBuild.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

const config: RegionConfig = {
  directory: { entrySlots: 16, holderLines: 8, heapBytes: 4 << 20 },
  control: { ...defaultControlConfig, maxProcesses: 16, appRings: 2, appRingBytes: 64 << 10 },
  log: oneBrokerLogConfig
}
const WAIT_MS = 60_000
const GROUP = "app"

/** The supervisor's bounds (its children get the drain bound from it): the fence's, and 5 s for the exits. */
const bounds = (drainTimeoutMs: number) =>
  ConfigProvider.fromMap(
    new Map([["CXLOG_SUPERVISOR_DRAIN_TIMEOUT_MS", `${drainTimeoutMs}`], ["CXLOG_SUPERVISOR_STOP_TIMEOUT_MS", "5000"]])
  )

/**
 * A region with this process as its head (the coordinator, the directory's writer, channel
 * `ticks` made with a 4 KiB ring) and, as a member of it, a supervisor: draining over `app`, or not.
 */
const setUp = (draining: boolean, drainTimeoutMs = 20_000) =>
  Effect.gen(function*() {
    const region = yield* uniqueRegion("drain")
    const dir = yield* tempDir("cxlog-drain-")
    const { region: built, channels } = yield* channelHead(region, config)
    yield* Context.get(channels, Channels).open("ticks", Tick, { writerSlots: 2, readerSlots: 2, ringBytes: 4096 })
    const supervised = yield* Layer.build(
      (draining ? SupervisorLayers.layerDraining(GROUP) : SupervisorLayers.layer).pipe(
        Layer.provide(Layer.setConfigProvider(bounds(drainTimeoutMs))),
        Layer.provide(Roles.coordinatorClient()),
        Layer.provide(Roles.controlTransport),
        Layer.provide(Roles.processSlot("worker")),
        Layer.provide(Layer.succeedContext(built))
      )
    )
    const supervisor = Context.get(supervised, Supervisor)
    // Every event until ShutdownDone (subscribed long before any shutdown: children start first).
    const events = yield* Effect.forkScoped(Stream.runCollect(supervisor.events))
    /** Starts `role` (named so) and waits for it to be ready (opted in, unless `optIn` is false). */
    const start = (role: "write" | "read" | "deaf", optIn = true) =>
      Effect.gen(function*() {
        yield* supervisor.start({
          name: role,
          command: process.execPath,
          args: [fixtureEntry("drain-member"), JSON.stringify({ region, dir, role, optIn })],
          restart: "never",
          output: "ignore"
        })
        yield* fileAppears(join(dir, `${role}.ready`))
      })
    const report = (role: string) =>
      Effect.map(fileAppears(join(dir, `${role}.json`)), (file) => JSON.parse(readFileSync(file, "utf8")))
    return { dir, supervisor, events, start, report }
  })

/** Resolves once `file` exists; bounded. */
const fileAppears = (file: string) =>
  Effect.suspend(() => (existsSync(file) ? Effect.succeed(file) : Effect.fail("absent" as const))).pipe(
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: WAIT_MS, onTimeout: () => new Error(`${file} did not appear`) })
  )

const drained = (events: Iterable<SupervisorEvent>) => [...events].find((e) => e._tag === "ShutdownDrained")

describe("A draining collective shutdown across processes", () => {
  it.scopedLive(
    "completes only after the slow reader processed every value the writer published, its last ones at its stop included",
    () =>
      Effect.gen(function*() {
        const { dir, events, report, start, supervisor } = yield* setUp(true)
        yield* start("read")
        yield* start("write")
        // Held back by the reader by now: a ring's worth of values it has not processed yet.
        yield* fileAppears(join(dir, "write.busy"))
        const done = yield* supervisor.shutdown
        const { published } = yield* report("write")
        expect(published).toBeGreaterThanOrEqual(300 + 50)
        expect(yield* report("read")).toEqual({ processed: published, outOfOrder: 0 })
        expect(done).toEqual({ stopped: 2, killed: 0, drain: "completed" })
        expect(drained(yield* Fiber.join(events))).toMatchObject({
          group: GROUP,
          completed: true,
          arrived: expect.arrayContaining(["read#0", "write#0"]),
          missing: []
        })
      }),
    120_000
  )

  /** The scenario under a supervisor that does not drain: what the writer published and the reader processed. */
  const undrained = (optIn: boolean) =>
    Effect.gen(function*() {
      const { dir, events, report, start, supervisor } = yield* setUp(false)
      yield* start("read", optIn)
      yield* start("write", optIn)
      yield* fileAppears(join(dir, "write.busy"))
      expect(yield* supervisor.shutdown).toEqual({ stopped: 2, killed: 0, drain: "none" })
      expect(drained(yield* Fiber.join(events))).toBeUndefined()
      const { published } = yield* report("write")
      const { processed } = yield* report("read")
      return { published, processed }
    })

  it.scopedLive(
    "the control: the same children under a supervisor that does not drain; the reader ends before the writer's last values",
    () =>
      Effect.gen(function*() {
        // Its consumer takes what its subscription holds at the stop (the ring's backlog), and ends: the writer's
        // last values come after it, from a writer nobody waits for.
        const { processed, published } = yield* undrained(true)
        expect(processed).toBeLessThan(published)
      }),
    120_000
  )

  it.scopedLive(
    "the control as things were: children that do not opt in leave the backlog unprocessed",
    () =>
      Effect.gen(function*() {
        // The reader's loop ends with its SIGTERM: a ring of values (4 KiB of 32-byte frames) waited for it.
        const { processed, published } = yield* undrained(false)
        expect(processed).toBeLessThan(published - 50)
      }),
    120_000
  )

  it.scopedLive(
    "a child that opted in but never arrives: the fence ends at its bound, naming it, and the shutdown goes on",
    () =>
      Effect.gen(function*() {
        const { events, report, start, supervisor } = yield* setUp(true, 3_000)
        yield* start("read")
        yield* start("deaf")
        // The deaf child ignores SIGTERM: SIGKILLed after the fence's bound and the stop bound.
        expect(yield* supervisor.shutdown).toEqual({ stopped: 2, killed: 1, drain: "failed" })
        const told = drained(yield* Fiber.join(events))
        expect(told).toMatchObject({ group: GROUP, completed: false, arrived: ["read#0"], missing: ["deaf#0"] })
        expect(told?._tag === "ShutdownDrained" && told.reason).toBe("not arrived within 3000 ms: deaf#0")
        // The reader's own arrival timed out as well; it exited on its own, having taken nothing.
        expect(yield* report("read")).toEqual({ processed: 0, outOfOrder: 0 })
      }),
    120_000
  )
})
