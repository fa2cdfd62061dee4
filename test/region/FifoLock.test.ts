import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Scheduler } from "effect"
import { unsafeMakeFifoLock } from "../../src/layers/region/FifoLock.js"

/** A scheduler that runs tasks as the default one does, counting them: each is a fiber woken to run. */
const countingScheduler = () => {
  let tasks = 0
  const scheduler = new Scheduler.SyncScheduler()
  const counted: Scheduler.Scheduler = {
    scheduleTask: (task, priority) => {
      tasks++
      setImmediate(() => scheduler.scheduleTask(task, priority))
      setImmediate(() => scheduler.flush())
    },
    shouldYield: (fiber) => scheduler.shouldYield(fiber)
  }
  return { counted, tasks: () => tasks }
}

const nextTurn = Effect.async<void>((resume) => void setImmediate(() => resume(Effect.void)))

describe("FifoLock", () => {
  it.live("runs its effects one at a time, in arrival order", () =>
    Effect.gen(function*() {
      const lock = unsafeMakeFifoLock()
      const gate = yield* Deferred.make<void>()
      const order: Array<number> = []
      let inside = 0
      let most = 0
      const first = yield* Effect.fork(lock(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const rest = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) =>
          Effect.fork(lock(Effect.gen(function*() {
            inside++
            most = Math.max(most, inside)
            yield* Effect.yieldNow()
            order.push(i)
            inside--
          }))).pipe(Effect.tap(() => Effect.yieldNow()))
      )
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Fiber.joinAll(rest)
      expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i))
      expect(most).toBe(1)
    }))

  it.live("a release wakes the next waiter alone: N waiters cost a few wake-ups each, not N each", () =>
    Effect.gen(function*() {
      const { counted, tasks } = countingScheduler()
      const lock = unsafeMakeFifoLock()
      const waiters = 300
      yield* Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const first = yield* Effect.fork(lock(Deferred.await(gate)))
        yield* Effect.yieldNow()
        const rest = yield* Effect.forEach(
          Array.from({ length: waiters }),
          // Each holds the lock across a turn of the event loop, as a lane request waits for the head.
          () => Effect.fork(lock(nextTurn)).pipe(Effect.tap(() => Effect.yieldNow()))
        )
        const before = tasks()
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(first)
        yield* Fiber.joinAll(rest)
        // Each waiter is woken once to take the lock (and a few tasks go to its end). Every
        // waiter woken at each release, as Effect's Semaphore does, is waiters² / 2: 45 000.
        expect(tasks() - before).toBeLessThan(waiters * 10)
      }).pipe(Effect.withScheduler(counted))
    }))

  it.live("a waiter interrupted leaves the line; the lock still goes to the rest, and is free after", () =>
    Effect.gen(function*() {
      const lock = unsafeMakeFifoLock()
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const first = yield* Effect.fork(lock(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const quitter = yield* Effect.fork(lock(Effect.sync(() => ran.push("quitter"))))
      yield* Effect.yieldNow()
      const stayer = yield* Effect.fork(lock(Effect.sync(() => ran.push("stayer"))))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(quitter)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(stayer)
      expect(ran).toEqual(["stayer"])
      // Free again: taken at once.
      expect(yield* lock(Effect.succeed("again")).pipe(Effect.timeout("5 seconds"))).toBe("again")
    }))
})
