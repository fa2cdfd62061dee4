/**
 * The doorbell's wake path: parked processes are woken through their wake FIFOs, no wake is
 * lost to a ring racing a park, dead targets are skipped, a restarted target gets the wakes,
 * and the FIFOs go with their scopes. Lost wakes fail these tests through long park bounds
 * (a wait that ends false), never through a measured duration.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, type Scope } from "effect"
import { closeSync, constants, existsSync, lstatSync, openSync, readdirSync, readlinkSync } from "node:fs"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { doorbellParks } from "../../src/Metrics.js"
import { CxlMemory, type CxlMemoryShape, type RegionOptions } from "../../src/services/region/CxlMemory.js"
import { Doorbell, type DoorbellShape } from "../../src/services/region/Doorbell.js"
import { type Child, spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const BELL = 8192
const CHILD_BELL = 8256
const VALUE = 16384

const nativeRegion = Effect.gen(function*() {
  const name = yield* uniqueRegion("wake")
  const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
  return { name, region }
})

/**
 * Ends a doorbell wait false after 20 s, before the wait's own 60 s bound would re-check its
 * condition: a wait that ends true was ended by a wake (or was satisfied at once).
 */
const onlyByWake = (wait: Effect.Effect<boolean>) =>
  wait.pipe(Effect.timeoutTo({ duration: "20 seconds", onSuccess: (ok) => ok, onTimeout: () => false }))

const parkedFlagOf = (region: CxlMemoryShape, bell: number) => Atomics.load(region.i32, bell / 4 + 1)

/** Until the owner of `bell` has published `parked` (a poll of the test, not of the code under test). */
const untilParked = (region: CxlMemoryShape, bell: number) =>
  Effect.gen(function*() {
    while (parkedFlagOf(region, bell) === 0) yield* Effect.sleep("1 millis")
  })

/** A ringer with its own bell at BELL, spinning not at all. */
const ringerOver = (region: CxlMemoryShape) =>
  DoorbellLayers.make({ offset: BELL, spinMicros: 0 }).pipe(Effect.provideService(CxlMemory, region))

/** A `doorbell-waiter` owning CHILD_BELL until VALUE is `until`: ready, then parked. */
const parkedWaiter = (name: string, region: CxlMemoryShape, until: number) =>
  Effect.gen(function*() {
    const waiter = yield* spawnFixture("doorbell-waiter", [name, `${CHILD_BELL}`, `${VALUE}`, `${until}`])
    expect(yield* waiter.next()).toEqual({ ready: true })
    yield* untilParked(region, CHILD_BELL)
    return waiter
  })

const sigkilled = (child: Child) =>
  Effect.gen(function*() {
    child.process.kill("SIGKILL")
    yield* child.exited
  })

/** Satisfies a parked waiter and rings it: it reports the wake and exits 0. */
const wokenToExit = (ringer: DoorbellShape, region: CxlMemoryShape, waiter: Child, value: number) =>
  Effect.gen(function*() {
    Atomics.store(region.i32, VALUE / 4, value)
    ringer.ring(CHILD_BELL)
    expect(yield* waiter.next()).toEqual({ woke: true })
    expect((yield* waiter.exited).code).toBe(0)
  })

describe("Doorbell wake path across processes", () => {
  // Both processes park at once, with park and wait bounds that outlast `onlyByWake`; the
  // child's commits land at random points of the parent's path into its park. A wake lost to
  // the race ends a round's wait false, whatever the machine's speed.
  it.scopedLive(
    "a ring racing a park never loses the wake, over thousands of rounds both ways",
    () =>
      Effect.gen(function*() {
        const { name, region } = yield* nativeRegion
        const doorbell = yield* DoorbellLayers.make({ offset: BELL, spinMicros: 0, parkMillis: 60_000 }).pipe(
          Effect.provideService(CxlMemory, region)
        )
        const rounds = 3000
        const child = yield* spawnFixture("doorbell-racer", [name, `${CHILD_BELL}`, `${BELL}`, `${VALUE}`, `${rounds}`])
        expect(yield* child.next()).toEqual({ ready: true })
        const paidBefore = Atomics.load(region.i32, BELL / 4)
        for (let round = 1; round <= rounds; round++) {
          const ok = yield* onlyByWake(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === round, 60_000))
          expect(ok).toBe(true)
          Atomics.store(region.i32, VALUE / 4 + 1, round)
          doorbell.ring(CHILD_BELL)
        }
        expect((yield* child.exited).code).toBe(0)
        // The race was real: some rounds parked and were woken through the FIFO.
        expect(Atomics.load(region.i32, BELL / 4) - paidBefore).toBeGreaterThan(0)
      }),
    120_000
  )

  it.scopedLive("a ring of a dead target returns without error, clears its parked flag once and wakes nobody", () =>
    Effect.gen(function*() {
      const { name, region } = yield* nativeRegion
      const ringer = yield* ringerOver(region)
      const target = yield* parkedWaiter(name, region, 1)
      yield* sigkilled(target)
      // The dead target's FIFO is still there, with no reader, and its line still says parked.
      expect(lstatSync(DoorbellLayers.wakeFifoPath(name, CHILD_BELL)).isFIFO()).toBe(true)
      expect(parkedFlagOf(region, CHILD_BELL)).toBe(1)
      const paid = Atomics.load(region.i32, CHILD_BELL / 4)
      Atomics.store(region.i32, VALUE / 4, 1)
      ringer.ring(CHILD_BELL)
      ringer.ring(CHILD_BELL)
      expect(parkedFlagOf(region, CHILD_BELL)).toBe(0)
      expect(Atomics.load(region.i32, CHILD_BELL / 4)).toBe(paid + 1)
      // A parked line whose owner never made a FIFO (nothing at its path) is skipped the same way.
      const stray = CHILD_BELL + 64
      Atomics.store(region.i32, stray / 4 + 1, 1)
      ringer.ring(stray)
      expect(parkedFlagOf(region, stray)).toBe(0)
      // Whoever retires the region removes the FIFO the SIGKILLed owner left.
      expect(DoorbellLayers.removeWakeFifos(name)).toBeGreaterThanOrEqual(1)
      expect(existsSync(DoorbellLayers.wakeFifoPath(name, CHILD_BELL))).toBe(false)
    }))

  it.scopedLive("a target that restarts at the same bell gets the wakes through its new FIFO", () =>
    Effect.gen(function*() {
      const { name, region } = yield* nativeRegion
      const ringer = yield* ringerOver(region)
      // The first owner is woken through its FIFO.
      yield* wokenToExit(ringer, region, yield* parkedWaiter(name, region, 1), 1)
      // A second owner of the bell dies parked, leaving its FIFO behind; a third takes the bell.
      yield* sigkilled(yield* parkedWaiter(name, region, 2))
      // The dead owner's parked flag would hide when the third one parks.
      Atomics.store(region.i32, CHILD_BELL / 4 + 1, 0)
      yield* wokenToExit(ringer, region, yield* parkedWaiter(name, region, 3), 3)
    }))

  it.scopedLive("a doorbell on a line a live process waits on is refused naming it; once that process is gone the line is taken", () =>
    Effect.gen(function*() {
      const { name, region } = yield* nativeRegion
      const waiter = yield* parkedWaiter(name, region, 1)
      const onTheSameLine = DoorbellLayers.make({ offset: CHILD_BELL, spinMicros: 0 }).pipe(
        Effect.provideService(CxlMemory, region)
      )
      const refused = yield* Effect.flip(onTheSameLine)
      expect(refused).toMatchObject({ _tag: "WakeFifoUnavailable" })
      expect(refused.message).toContain(`process ${waiter.process.pid} waits on the doorbell line at ${CHILD_BELL}`)
      // The waiter still gets its wakes: its FIFO was left as it was.
      const ringer = yield* ringerOver(region)
      yield* wokenToExit(ringer, region, waiter, 1)
      yield* onTheSameLine
    }))
})

/**
 * The fds this process holds on the wake FIFO at `path`. Only those: the suite's forks run file
 * after file, and what an earlier file left closing (a socket, a child's pipes) may open or
 * close fds of its own while this test waits for its child to park.
 */
const fifoFds = (path: string) => {
  let held = 0
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      if (target === path || target === `${path} (deleted)`) held++
    } catch {
      // The listing's own fd, closed by now.
    }
  }
  return held
}

describe("Doorbell wake fds", () => {
  it.scopedLive("a ringer keeps the owner's FIFO open across wakes and closes it once the owner died: rings to a dead target leak no fd", () =>
    Effect.gen(function*() {
      const { name, region } = yield* nativeRegion
      const ringer = yield* ringerOver(region)
      // Wakes that do not satisfy the target: it re-checks and parks again each time.
      const target = yield* parkedWaiter(name, region, 1)
      const fifo = DoorbellLayers.wakeFifoPath(name, CHILD_BELL)
      expect(fifoFds(fifo)).toBe(0)
      ringer.ring(CHILD_BELL)
      expect(fifoFds(fifo)).toBe(1)
      for (let wake = 0; wake < 20; wake++) {
        yield* untilParked(region, CHILD_BELL)
        ringer.ring(CHILD_BELL)
      }
      expect(fifoFds(fifo)).toBe(1)
      yield* sigkilled(target)
      const paid = Atomics.load(region.i32, CHILD_BELL / 4)
      for (let ring = 0; ring < 1000; ring++) {
        Atomics.store(region.i32, CHILD_BELL / 4 + 1, 1)
        ringer.ring(CHILD_BELL)
      }
      expect(Atomics.load(region.i32, CHILD_BELL / 4)).toBe(paid + 1000)
      expect(fifoFds(fifo)).toBe(0)
    }))

  it.scopedLive("a target restarted while its old FIFO still has a reader gets the wakes through its new FIFO", () =>
    Effect.gen(function*() {
      const { name, region } = yield* nativeRegion
      const ringer = yield* ringerOver(region)
      const first = yield* parkedWaiter(name, region, 1)
      // The ringer opens the first owner's FIFO (an unsatisfying wake: the owner parks again).
      ringer.ring(CHILD_BELL)
      yield* untilParked(region, CHILD_BELL)
      // Something still reads the old FIFO after its owner dies, so writes into it succeed.
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          openSync(DoorbellLayers.wakeFifoPath(name, CHILD_BELL), constants.O_RDWR | constants.O_NONBLOCK)
        ),
        (fd) => Effect.sync(() => closeSync(fd))
      )
      yield* sigkilled(first)
      Atomics.store(region.i32, CHILD_BELL / 4 + 1, 0)
      yield* wokenToExit(ringer, region, yield* parkedWaiter(name, region, 2), 2)
    }))
})

const regions: Array<[string, (o: RegionOptions) => Effect.Effect<CxlMemoryShape, unknown, Scope.Scope>]> = [
  ["the native region", CxlMemoryLayers.make],
  ["the in-memory fake", CxlMemoryMemoryLayers.makeMemory]
]

describe("Doorbell wake protocol", () => {
  for (const [label, open] of regions) {
    // A commit that lands after the loop's last check but before it publishes `parked` finds
    // the owner not parked, so its ring pays for no wake: only the re-check after publishing
    // `parked` can see it. The condition commits (and rings) on exactly that check, which
    // pins the interleaving; without the re-check the loop parks until the wait's bound.
    it.scopedLive(`over ${label}: a commit between the last check and publishing parked is seen by the re-check`, () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("recheck")
        const region = yield* open({ name, size: 1 << 20, mode: "create" })
        const owner = yield* DoorbellLayers.make({ offset: BELL, spinMicros: 0, parkMillis: 60_000 }).pipe(
          Effect.provideService(CxlMemory, region)
        )
        const ringer = yield* DoorbellLayers.make({ offset: CHILD_BELL, spinMicros: 0 }).pipe(
          Effect.provideService(CxlMemory, region)
        )
        let checks = 0
        const condition = () => {
          const seen = Atomics.load(region.i32, VALUE / 4) === 1
          // Check 0 is await's own, check 1 the loop's sweep before it parks.
          if (++checks === 2) {
            Atomics.store(region.i32, VALUE / 4, 1)
            expect(parkedFlagOf(region, BELL)).toBe(0)
            ringer.ring(BELL)
          }
          return seen
        }
        const parksBefore = (yield* Metric.value(doorbellParks)).count
        expect(yield* owner.await(condition, 3_000)).toBe(true)
        expect(checks).toBe(3)
        // Seen before parking: a lost wake would have parked until the wait's bound.
        expect((yield* Metric.value(doorbellParks)).count).toBe(parksBefore)
      }))
  }

  it.scopedLive("the wake FIFO is private to the user and removed when the doorbell's scope closes", () =>
    Effect.gen(function*() {
      const { name, region } = yield* nativeRegion
      const path = DoorbellLayers.wakeFifoPath(name, BELL)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* DoorbellLayers.make({ offset: BELL }).pipe(Effect.provideService(CxlMemory, region))
        const fifo = lstatSync(path)
        expect(fifo.isFIFO()).toBe(true)
        expect(fifo.mode & 0o777).toBe(0o600)
        expect(lstatSync(DoorbellLayers.wakeDirectory()).mode & 0o777).toBe(0o700)
        expect(path.startsWith("/dev/shm")).toBe(false)
      }))
      expect(existsSync(path)).toBe(false)
    }))

  it.scopedLive("a doorbell over the fake needs no addon and makes no FIFO", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("nofifo")
      const before = process.env["CXLOG_NATIVE_PATH"]
      process.env["CXLOG_NATIVE_PATH"] = "/nonexistent/cxlog_native.node"
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (before === undefined) delete process.env["CXLOG_NATIVE_PATH"]
          else process.env["CXLOG_NATIVE_PATH"] = before
        })
      )
      const layer = DoorbellLayers.layer({ offset: BELL, spinMicros: 0 }).pipe(
        Layer.provideMerge(CxlMemoryMemoryLayers.layerMemory({ name, size: 1 << 20, mode: "create" }))
      )
      yield* Effect.gen(function*() {
        const doorbell = yield* Doorbell
        const region = yield* CxlMemory
        expect(region.crossProcess).toBe(false)
        const waiting = yield* Effect.fork(doorbell.await(() => Atomics.load(region.i32, VALUE / 4) === 1, 10_000))
        yield* untilParked(region, BELL)
        Atomics.store(region.i32, VALUE / 4, 1)
        const other = yield* DoorbellLayers.make({ offset: CHILD_BELL, spinMicros: 0 })
        other.ring(BELL)
        expect(yield* waiting.await.pipe(Effect.flatten)).toBe(true)
        expect(existsSync(DoorbellLayers.wakeFifoPath(name, BELL))).toBe(false)
      }).pipe(Effect.provide(layer))
    }))

  it("spinning stops while runnable tasks outnumber the cores, re-sampled at most once per refresh", () => {
    let runnable = 2
    let samples = 0
    let clock = 0
    const realNow = performance.now
    performance.now = () => clock
    try {
      const over = DoorbellLayers.oversubscribed(2, () => (samples++, runnable), 100)
      expect(over()).toBe(false)
      runnable = 3
      clock = 50
      expect(over()).toBe(false)
      expect(samples).toBe(1)
      clock = 100
      expect(over()).toBe(true)
      expect(samples).toBe(2)
    } finally {
      performance.now = realNow
    }
  })
})
