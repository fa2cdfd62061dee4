/**
 * A wait for forked fibers to be parked: each suspended on something asynchronous (a doorbell,
 * a deferred reply, a ring's room), neither running nor done. What a test that must act only
 * once a waiter waits (a commit that wakes a parked reader, an abort of a call in flight) waits
 * for, instead of sleeping and hoping the waiter got there.
 */
import { Effect, Fiber } from "effect"

/** Waits (looking every millisecond, at most `timeoutMs`) until every one of `fibers` is suspended; fails if one ends instead. */
export const parked = (fibers: ReadonlyArray<Fiber.RuntimeFiber<unknown, unknown>>, timeoutMs = 10_000) =>
  Effect.gen(function*() {
    for (;;) {
      const states = yield* Effect.forEach(fibers, (fiber) => Fiber.status(fiber))
      if (states.every((s) => s._tag === "Suspended")) return
      if (states.some((s) => s._tag === "Done")) {
        return yield* Effect.fail(
          new Error(`a fiber ended instead of parking: ${states.map((s) => s._tag).join(", ")}`)
        )
      }
      yield* Effect.sleep("1 millis")
    }
  }).pipe(
    Effect.timeoutFail({
      duration: timeoutMs,
      onTimeout: () => new Error(`fibers not all parked within ${timeoutMs} ms`)
    })
  )
