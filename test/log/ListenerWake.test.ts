/**
 * Listener lines count their waiters, and the sequencer's ring skips lines without one. A
 * waiter racing a ring never loses its wake: it counts itself before it re-checks its
 * condition, and the ringer commits before it reads the count. Lost wakes fail through long
 * park bounds (a wait that ends false), never through a measured duration.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option } from "effect"
import { defaultLogConfig } from "../../src/layers/log/Layout.js"
import { directoryFor, logRegionLayout } from "../../src/layers/log/LogRegion.js"
import {
  claimLine,
  listen,
  listeningForOrdering,
  newOccurrence,
  ringEveryone,
  ringWaiters
} from "../../src/layers/log/Participants.js"
import { Participant } from "../../src/layers/log/Records.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { uniqueRegion } from "../helpers/Processes.js"

const WAITER_BELL = 8192
const RINGER_BELL = 8256
const VALUE = 16384
const AREA_BASE = 65536

const setup = Effect.gen(function*() {
  const name = yield* uniqueRegion("listen")
  const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
  const area = logRegionLayout(AREA_BASE, defaultLogConfig, directoryFor(defaultLogConfig, 1)).area
  // Park and wait bounds far past `onlyByWake`: only a ring ends a wait true.
  const waiterBell = yield* DoorbellLayers.make({ offset: WAITER_BELL, spinMicros: 0, parkMillis: 60_000 }).pipe(
    Effect.provideService(CxlMemory, region)
  )
  const ringerBell = yield* DoorbellLayers.make({ offset: RINGER_BELL, spinMicros: 0 }).pipe(
    Effect.provideService(CxlMemory, region)
  )
  const listening = yield* listen(region, area, waiterBell)
  const line = area.listener(0)
  const waits = () => Atomics.load(region.i32, (line + Participant.roomWaits) / 4)
  return { region, area, waiterBell, ringerBell, listening, waits }
})

/** Broker slot 1 owned by the waiter's process (its owner line names the waiter's doorbell). */
const OWNED_BROKER = 1
const setupOwner = Effect.gen(function*() {
  const base = yield* setup
  const { area, region, waiterBell } = base
  const owner = area.brokerOwner(OWNED_BROKER)
  expect(claimLine(region, owner, newOccurrence(), waiterBell.offset)).toBe(0)
  const orderingWaits = listeningForOrdering(region, area, waiterBell, OWNED_BROKER)
  if (orderingWaits === undefined) return expect.unreachable("the owner line names the waiter's doorbell")
  const ordering = orderingWaits.await
  const ackWaits = () => Atomics.load(region.i32, (owner + Participant.ackWaits) / 4)
  /** The waiter doorbell's words: they change only when someone rings it. */
  const bellWords = () => [Atomics.load(region.i32, WAITER_BELL / 4 + 1), Atomics.load(region.i32, WAITER_BELL / 4)]
  /** Forks a wait for the value to reach 1 and lets it count itself and park. */
  const parkedWaiter = Effect.gen(function*() {
    const waiter = yield* Effect.fork(onlyByWake(ordering(() => Atomics.load(region.i32, VALUE / 4) >= 1, 60_000)))
    for (let turns = 0; ackWaits() === 0 && turns < 1000; turns++) yield* Effect.yieldNow()
    // Parked (its flag set), so from now on only a ring re-checks the waiter's condition.
    for (let ms = 0; Atomics.load(region.i32, WAITER_BELL / 4 + 1) !== 1 && ms < 10_000; ms++) {
      yield* Effect.sleep("1 millis")
    }
    expect(Atomics.load(region.i32, WAITER_BELL / 4 + 1)).toBe(1)
    return waiter
  })
  return { ...base, ordering, orderingWatch: orderingWaits.watch, ackWaits, bellWords, parkedWaiter }
})

const onlyBroker = (broker: number) => (b: number) => b === broker

/** Ends a wait false after 20 s, before its own 60 s bound would re-check the condition. */
const onlyByWake = (wait: Effect.Effect<boolean>) =>
  wait.pipe(Effect.timeoutTo({ duration: "20 seconds", onSuccess: (ok) => ok, onTimeout: () => false }))

describe("Listener lines", () => {
  it.scopedLive(
    "a ring racing a listener's wait never loses the wake, over thousands of rounds",
    () =>
      Effect.gen(function*() {
        const { area, listening, region, ringerBell, waiterBell, waits } = yield* setup
        // An uncounted wait that never ends keeps the doorbell parked between rounds, so no
        // sweep of its loop covers a listener that skipped its own re-check.
        yield* Effect.forkScoped(waiterBell.await(() => false, 120_000))
        const rounds = 3000
        for (let round = 1; round <= rounds; round++) {
          const waiter = yield* Effect.fork(
            onlyByWake(listening(() => Atomics.load(region.i32, VALUE / 4) >= round, 60_000))
          )
          // The commit and the ring land before, during or after the waiter's count and park.
          for (let k = round % 4; k > 0; k--) yield* Effect.yieldNow()
          Atomics.store(region.i32, VALUE / 4, round)
          ringEveryone(region, area, ringerBell)
          expect(yield* Fiber.join(waiter)).toBe(true)
        }
        // However each wait ended, it uncounted itself: the line has no waiter, and a round skips it.
        expect(waits()).toBe(0)
        const parked = Atomics.load(region.i32, WAITER_BELL / 4 + 1)
        const paid = Atomics.load(region.i32, WAITER_BELL / 4)
        ringEveryone(region, area, ringerBell)
        expect([Atomics.load(region.i32, WAITER_BELL / 4 + 1), Atomics.load(region.i32, WAITER_BELL / 4)]).toEqual([
          parked,
          paid
        ])
      }),
    120_000
  )

  it.scopedLive("a listener's wait counts itself while it waits, and a wait ended by its timeout or an interrupt uncounts itself", () =>
    Effect.gen(function*() {
      const { listening, waits } = yield* setup
      expect(waits()).toBe(0)
      const waiting = yield* Effect.fork(listening(() => false, 60_000))
      yield* Effect.yieldNow()
      expect(waits()).toBe(1)
      expect(yield* listening(() => false, 5)).toBe(false)
      expect(waits()).toBe(1)
      yield* Fiber.interrupt(waiting)
      expect(waits()).toBe(0)
    }))

  it.scopedLive("an ACK tracker's wait for its broker's batches is rung by a round that ordered one of them, not by rounds that ordered only other brokers'", () =>
    Effect.gen(function*() {
      const { ackWaits, area, bellWords, parkedWaiter, region, ringerBell, waits } = yield* setupOwner
      const waiter = yield* parkedWaiter
      // Counted in the owner line, not in the listener line every round rings.
      expect([ackWaits(), waits()]).toEqual([1, 0])
      Atomics.store(region.i32, VALUE / 4, 1)
      const before = bellWords()
      ringWaiters(region, area, ringerBell, onlyBroker(0))
      for (let turns = 0; turns < 10; turns++) yield* Effect.yieldNow()
      expect(bellWords()).toEqual(before)
      expect(Option.isNone(yield* Fiber.poll(waiter))).toBe(true)
      ringWaiters(region, area, ringerBell, onlyBroker(OWNED_BROKER))
      expect(yield* Fiber.join(waiter)).toBe(true)
      expect(ackWaits()).toBe(0)
    }))

  it.scopedLive("a change that may move any frontier (ringEveryone) rings every broker's waiting ACK trackers", () =>
    Effect.gen(function*() {
      const { area, parkedWaiter, region, ringerBell } = yield* setupOwner
      const waiter = yield* parkedWaiter
      Atomics.store(region.i32, VALUE / 4, 1)
      ringEveryone(region, area, ringerBell)
      expect(yield* Fiber.join(waiter)).toBe(true)
    }))

  it.scopedLive(
    "a round ordering the broker's batch racing its ACK tracker's wait never loses the wake, over thousands of rounds",
    () =>
      Effect.gen(function*() {
        const { ackWaits, area, ordering, region, ringerBell, waiterBell } = yield* setupOwner
        // As above: the doorbell stays parked between rounds, so only the ring can serve a waiter.
        yield* Effect.forkScoped(waiterBell.await(() => false, 120_000))
        const rounds = 3000
        for (let round = 1; round <= rounds; round++) {
          const waiter = yield* Effect.fork(
            onlyByWake(ordering(() => Atomics.load(region.i32, VALUE / 4) >= round, 60_000))
          )
          for (let k = round % 4; k > 0; k--) yield* Effect.yieldNow()
          Atomics.store(region.i32, VALUE / 4, round)
          ringWaiters(region, area, ringerBell, onlyBroker(OWNED_BROKER))
          expect(yield* Fiber.join(waiter)).toBe(true)
        }
        expect(ackWaits()).toBe(0)
      }),
    120_000
  )

  it.scopedLive(
    "a round ordering the broker's batch racing a standing (callback) wait never loses the wake, and the wait uncounts itself when stopped",
    () =>
      Effect.gen(function*() {
        const { ackWaits, area, orderingWatch, region, ringerBell, waiterBell } = yield* setupOwner
        yield* Effect.forkScoped(waiterBell.await(() => false, 120_000))
        const rounds = 2000
        for (let round = 1; round <= rounds; round++) {
          const ready = yield* Deferred.make<boolean>()
          const reached = () => Atomics.load(region.i32, VALUE / 4) >= round
          // The broker's protocol: register (counted), then check once; a later ring serves the rest.
          const stop = orderingWatch(reached, (satisfied) =>
            Deferred.unsafeDone(ready, Effect.succeed(satisfied)), () =>
            60_000)
          if (reached()) {
            Deferred.unsafeDone(ready, Effect.succeed(true))
          }
          for (let k = round % 4; k > 0; k--) {
            yield* Effect.yieldNow()
          }
          Atomics.store(region.i32, VALUE / 4, round)
          ringWaiters(region, area, ringerBell, onlyBroker(OWNED_BROKER))
          expect(yield* onlyByWake(Deferred.await(ready))).toBe(true)
          expect(ackWaits()).toBe(1)
          stop()
          stop()
          expect(ackWaits()).toBe(0)
        }
      }),
    120_000
  )

  it.scopedLive("a process that does not own the broker slot gets no such wait (its ACK trackers wait as listeners)", () =>
    Effect.gen(function*() {
      const { area, region, ringerBell } = yield* setupOwner
      expect(listeningForOrdering(region, area, ringerBell, OWNED_BROKER)).toBeUndefined()
      expect(listeningForOrdering(region, area, ringerBell, 0)).toBeUndefined()
    }))
})
