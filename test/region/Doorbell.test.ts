import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, Option, Schedule, type Scope } from "effect"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { CxlMemory, type CxlMemoryShape, type RegionOptions } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { parked } from "../helpers/Parked.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const BELL = 8192
const VALUE = 16384

const withDoorbell = (
  open: (o: RegionOptions) => Effect.Effect<CxlMemoryShape, unknown, Scope.Scope>,
  spinMicros: number
) =>
  Effect.gen(function*() {
    const name = yield* uniqueRegion("bell")
    const region = yield* open({ name, size: 1 << 20, mode: "create" })
    const doorbell = yield* DoorbellLayers.make({ offset: BELL, spinMicros }).pipe(
      Effect.provideService(CxlMemory, region)
    )
    return { region, doorbell, name }
  })

/** Waits (looking every millisecond) until the doorbell at BELL has published its parked flag. */
const untilBellParked = (region: CxlMemoryShape) =>
  Effect.gen(function*() {
    while (Atomics.load(region.i32, BELL / 4 + 1) === 0) yield* Effect.sleep("1 millis")
  })

describe("Doorbell settings", () => {
  const madeWith = (env: Record<string, string>, spinMicros?: number) =>
    Effect.gen(function*() {
      const region = yield* CxlMemoryMemoryLayers.makeMemory({ name: "settings", size: 1 << 20, mode: "create" })
      const doorbell = yield* DoorbellLayers.make({ offset: BELL, ...(spinMicros === undefined ? {} : { spinMicros }) })
        .pipe(Effect.provideService(CxlMemory, region))
      return DoorbellLayers.internalsOf(doorbell)!.maxSpinMicros
    }).pipe(Effect.scoped, Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

  it.effect("CXLOG_SPIN_MICROS bounds the spin unless the options give one; a value that is no number is a ConfigError", () =>
    Effect.gen(function*() {
      expect(yield* madeWith({ CXLOG_SPIN_MICROS: "300" })).toBe(300)
      expect(yield* madeWith({ CXLOG_SPIN_MICROS: "300" }, 7)).toBe(7)
      expect(yield* madeWith({})).toBe(DoorbellLayers.defaultSpinMicros())
      const refused = yield* Effect.flip(madeWith({ CXLOG_SPIN_MICROS: "fast" }))
      expect(refused._tag).toBe("ConfigError")
      expect(String(refused)).toContain("CXLOG_SPIN_MICROS")
    }))
})

describe("Doorbell spin wishes", () => {
  it.scoped("a standing watch's spinMicros raises the process's spin ceiling while it stands, the largest wish winning", () =>
    Effect.gen(function*() {
      const region = yield* CxlMemoryMemoryLayers.makeMemory({ name: "wishes", size: 1 << 20, mode: "create" })
      const doorbell = yield* DoorbellLayers.make({ offset: BELL, spinMicros: 50 }).pipe(
        Effect.provideService(CxlMemory, region)
      )
      const ceiling = DoorbellLayers.internalsOf(doorbell)!.spinCeilingMicros
      const never = () => false
      const every = () => 60_000
      expect(ceiling()).toBe(50)
      const plain = doorbell.watch(never, () => {}, every)
      expect(ceiling()).toBe(50)
      const high = doorbell.watch(never, () => {}, every, 400)
      const low = doorbell.watch(never, () => {}, every, 300)
      const lowToo = doorbell.watch(never, () => {}, every, 300)
      expect(ceiling()).toBe(400)
      high()
      expect(ceiling()).toBe(300)
      low()
      expect(ceiling()).toBe(300)
      lowToo()
      expect(ceiling()).toBe(50)
      plain()
      expect(ceiling()).toBe(50)
    }))

  it.scoped("a doorbell that never spins (0 µs: one CPU, an in-memory region) takes no wish", () =>
    Effect.gen(function*() {
      const region = yield* CxlMemoryMemoryLayers.makeMemory({ name: "no-wishes", size: 1 << 20, mode: "create" })
      const doorbell = yield* DoorbellLayers.make({ offset: BELL, spinMicros: 0 }).pipe(
        Effect.provideService(CxlMemory, region)
      )
      const ceiling = DoorbellLayers.internalsOf(doorbell)!.spinCeilingMicros
      const stop = doorbell.watch(() => false, () => {}, () => 60_000, 500)
      expect(ceiling()).toBe(0)
      stop()
      expect(ceiling()).toBe(0)
    }))
})

const contract = (label: string, open: (o: RegionOptions) => Effect.Effect<CxlMemoryShape, unknown, Scope.Scope>) =>
  describe(`Doorbell over ${label}`, () => {
    for (const spinMicros of [0, 50]) {
      it.scopedLive(`spin ${spinMicros} µs: immediate, timeout, and a poke wakes every waiter`, () =>
        Effect.gen(function*() {
          const { region, doorbell } = yield* withDoorbell(open, spinMicros)
          expect(yield* doorbell.await(() => true, 10)).toBe(true)
          const started = performance.now()
          expect(yield* doorbell.await(() => false, 30)).toBe(false)
          expect(performance.now() - started).toBeGreaterThanOrEqual(25)
          const fibers = yield* Effect.forEach(
            [1, 2, 3],
            (n) => Effect.fork(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) >= n, 10_000)),
            { concurrency: "unbounded" }
          )
          // Every waiter waits and the doorbell has parked: a fiber is suspended as soon as it
          // registers, before the park step's re-check, which would find the value stored too.
          yield* parked(fibers)
          yield* untilBellParked(region)
          // Without the poke the park bound's timer would still settle them (within 1 s): only the
          // count of waits a wake settled tells the poke did.
          const woken = DoorbellLayers.internalsOf(doorbell)!.settledByWake
          const wokenBefore = woken()
          Atomics.store(region.i32, VALUE / 4, 3)
          doorbell.poke()
          const results = yield* Fiber.joinAll(fibers)
          expect(results).toEqual([true, true, true])
          expect(woken()).toBe(wokenBefore + 3)
        }))
    }

    it.scopedLive("a waiter whose condition throws dies alone: the others are still served and still time out", () =>
      Effect.gen(function*() {
        const { region, doorbell } = yield* withDoorbell(open, 0)
        let calls = 0
        const faulty = yield* Effect.fork(doorbell.await(() => {
          if (++calls > 1) throw new Error("condition broke")
          return false
        }, 10_000))
        const timing = yield* Effect.fork(doorbell.await(() => false, 50))
        const served = yield* Effect.fork(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === 7, 10_000))
        doorbell.poke()
        const died = yield* Fiber.await(faulty)
        expect(died._tag === "Failure" && String(died.cause)).toContain("condition broke")
        expect(yield* Fiber.join(timing)).toBe(false)
        Atomics.store(region.i32, VALUE / 4, 7)
        doorbell.poke()
        expect(yield* Fiber.join(served)).toBe(true)
      }))

    it.scopedLive("an interrupted waiter leaves the others waiting", () =>
      Effect.gen(function*() {
        const { region, doorbell } = yield* withDoorbell(open, 0)
        const a = yield* Effect.fork(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === 1, 10_000))
        const b = yield* Effect.fork(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === 1, 10_000))
        yield* parked([a, b])
        yield* Fiber.interrupt(a)
        Atomics.store(region.i32, VALUE / 4, 1)
        doorbell.poke()
        expect(yield* Fiber.join(b)).toBe(true)
      }))

    it.scopedLive("watch: a standing waiter, called from the wake every time its condition holds (rung through the parked flag), and after everyMs without; stopped, it is called no more", () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("bell")
        const region = yield* open({ name, size: 1 << 20, mode: "create" })
        // A park bound far past the test's waits: a round that no wake ends is not ended by it.
        const doorbell = yield* DoorbellLayers.make({ offset: BELL, spinMicros: 0, parkMillis: 60_000 }).pipe(
          Effect.provideService(CxlMemory, region)
        )
        // Another doorbell of the region rings ours: the ring goes through our parked flag.
        const ringer = yield* DoorbellLayers.make({ offset: BELL + 64, spinMicros: 0 }).pipe(
          Effect.provideService(CxlMemory, region)
        )
        const value = () => Atomics.load(region.i32, VALUE / 4)
        const calls: Array<[boolean, number]> = []
        let seen = 0
        const stop = doorbell.watch(() => value() !== seen, (ready) => {
          if (ready) seen = value()
          calls.push([ready, seen])
        }, () => 60_000)
        const quiet = doorbell.watch(() => false, (ready) => calls.push([ready, -1]), () => 40)
        const until = (n: number) =>
          Effect.repeat(Effect.sync(() => calls.length), {
            until: (length) => length >= n,
            schedule: Schedule.spaced("2 millis")
          }).pipe(Effect.timeout("5 seconds"))
        yield* until(1) // the quiet watch's period passed with nothing: called with false
        expect(calls).toEqual([[false, -1]])
        quiet()
        // The quiet watch's last period still has the timer armed, and a wait re-checks as it
        // parks: only the count of waits a wake settled tells the ring called the watch.
        const woken = DoorbellLayers.internalsOf(doorbell)!.settledByWake
        for (const n of [1, 2]) {
          // Parked, its flag published (the park step runs once the process has nothing else to
          // do): the value is stored after the park's re-check, so only a ring can deliver it.
          yield* untilBellParked(region).pipe(Effect.timeout("5 seconds"))
          const wokenBefore = woken()
          Atomics.store(region.i32, VALUE / 4, n)
          ringer.ring(BELL)
          yield* until(n + 1)
          expect(woken()).toBe(wokenBefore + 1)
        }
        expect(calls).toEqual([[false, -1], [true, 1], [true, 2]])
        stop()
        Atomics.store(region.i32, VALUE / 4, 3)
        ringer.ring(BELL)
        doorbell.poke()
        // A window, not a wait: the watch was stopped, so neither the ring nor the poke may call it in it.
        yield* Effect.sleep("30 millis")
        expect(calls.length).toBe(3)
        expect(Atomics.load(region.i32, BELL / 4 + 1)).toBe(0) // nobody waits: not parked
      }))
  })

contract("the native region", CxlMemoryLayers.make)
contract("the in-memory fake", CxlMemoryMemoryLayers.makeMemory)

describe("Doorbell across processes", () => {
  // Both sides park with bounds that outlast the rounds' outer bounds (no 100 ms re-check),
  // so a round only completes if the other process's ring woke it through its wake FIFO.
  it.scopedLive("a child's ring wakes the parked parent, and the parent's ring the parked child, round after round", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("bellx")
      const layer = DoorbellLayers.layer({ offset: BELL, spinMicros: 0, parkMillis: 60_000 }).pipe(
        Layer.provideMerge(CxlMemoryLayers.layer({ name, size: 1 << 20, mode: "create" }))
      )
      yield* Effect.gen(function*() {
        const region = yield* CxlMemory
        const doorbell = yield* Doorbell
        const rounds = 50
        const child = yield* spawnFixture("doorbell-ringer", [name, `${VALUE}`, `${BELL}`, `${rounds}`])
        expect(yield* child.next()).toEqual({ ready: true })
        for (let round = 1; round <= rounds; round++) {
          // The outer bound ends the wait before its own bound would re-check: only a wake ends it true.
          const ok = yield* doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === round, 60_000).pipe(
            Effect.timeoutTo({ duration: "10 seconds", onSuccess: (ok) => ok, onTimeout: () => false })
          )
          expect(ok).toBe(true)
          Atomics.store(region.i32, VALUE / 4 + 1, round)
          doorbell.ring(8192 + 4096)
        }
        expect((yield* child.exited).code).toBe(0)
      }).pipe(Effect.provide(layer))
    }))
})

describe("Doorbell spin policy and rings", () => {
  it("adaptive spin: misses halve the budget down to none; a satisfied short wait raises it, never past the limit", () => {
    const policy = DoorbellLayers.adaptiveSpin(() => 0.05)
    expect(policy.budgetMs()).toBe(0.05)
    for (let miss = 0; miss < 20; miss++) policy.spun(false, policy.budgetMs())
    expect(policy.budgetMs()).toBe(0)
    policy.parked(true, 0.5)
    expect(policy.budgetMs()).toBe(0)
    policy.parked(false, 0.004)
    expect(policy.budgetMs()).toBe(0)
    policy.parked(true, 0.004)
    expect(policy.budgetMs()).toBe(0.008)
    policy.spun(true, 0.002)
    expect(policy.budgetMs()).toBe(0.008)
    policy.parked(true, 0.04)
    expect(policy.budgetMs()).toBe(0.05)
    expect(DoorbellLayers.fixedSpin(() => 0.05).budgetMs()).toBe(0.05)
  })

  it.scopedLive("rings while the owner is parked cost one wake: only the ringer that clears parked pays (bumps the wake count)", () =>
    Effect.gen(function*() {
      const { region, doorbell } = yield* withDoorbell(CxlMemoryLayers.make, 0)
      const ringer = yield* DoorbellLayers.make({ offset: BELL + 64, spinMicros: 0 }).pipe(
        Effect.provideService(CxlMemory, region)
      )
      const waiting = yield* Effect.fork(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === 1, 10_000))
      while (Atomics.load(region.i32, BELL / 4 + 1) === 0) yield* Effect.sleep("1 millis")
      const word = Atomics.load(region.i32, BELL / 4)
      ringer.ring(BELL)
      ringer.ring(BELL)
      expect(Atomics.load(region.i32, BELL / 4)).toBe(word + 1)
      expect(Atomics.load(region.i32, BELL / 4 + 1)).toBe(0)
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      Atomics.store(region.i32, VALUE / 4, 1)
      ringer.ring(BELL)
      expect(yield* Fiber.join(waiting)).toBe(true)
    }))

  // The wake's own callback re-checks and resumes the waiter: no fiber, timer or park bound
  // between the ring and the resume (a long park bound makes a timer-settled wait visible too).
  it.scopedLive("a ring of a parked owner resumes its satisfied waiter inside the ring itself, not from a timer", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("bell")
      const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
      const doorbell = yield* DoorbellLayers.make({ offset: BELL, spinMicros: 0, parkMillis: 60_000 }).pipe(
        Effect.provideService(CxlMemory, region)
      )
      const ringer = yield* DoorbellLayers.make({ offset: BELL + 64, spinMicros: 0 }).pipe(
        Effect.provideService(CxlMemory, region)
      )
      const internals = DoorbellLayers.internalsOf(doorbell)!
      const waiting = yield* Effect.fork(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === 1, 60_000))
      while (Atomics.load(region.i32, BELL / 4 + 1) === 0) yield* Effect.sleep("1 millis")
      const before = internals.settledByWake()
      Atomics.store(region.i32, VALUE / 4, 1)
      ringer.ring(BELL)
      expect(internals.settledByWake()).toBe(before + 1)
      expect(yield* Fiber.join(waiting)).toBe(true)
      expect(internals.settledByTimer()).toBe(0)
    }))

  it.scopedLive("a ring of the own bell settles local waiters without touching the bell word", () =>
    Effect.gen(function*() {
      const { region, doorbell } = yield* withDoorbell(CxlMemoryLayers.make, 0)
      const waiting = yield* Effect.fork(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === 1, 10_000))
      yield* untilBellParked(region)
      // Without the ring the park bound's timer would settle the waiter (within 1 s): only the
      // count of waits a wake settled tells the ring did.
      const woken = DoorbellLayers.internalsOf(doorbell)!.settledByWake
      const wokenBefore = woken()
      const word = Atomics.load(region.i32, BELL / 4)
      Atomics.store(region.i32, VALUE / 4, 1)
      doorbell.ring(doorbell.offset)
      expect(yield* Fiber.join(waiting)).toBe(true)
      expect(woken()).toBe(wokenBefore + 1)
      expect(Atomics.load(region.i32, BELL / 4)).toBe(word)
    }))
})
