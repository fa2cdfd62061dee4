/**
 * A subscription's bounded buffer of decoded values, filled from the rings' wake-ups and
 * emptied by `take`. Values already in it are handed over synchronously: a taker waits (one
 * wake-up and, with a finite bound, one timer) only when the buffer is empty, and a ring's
 * reading waits only when it is full — the frame it holds then counts as processed once its
 * value is in, so a subscriber that does not take holds its writers back, never loses.
 */
import { Effect } from "effect"

export interface ChannelBuffer<T> {
  /** Puts `item` in now if there is room; false when the buffer is full. */
  readonly offer: (item: T) => boolean
  /** Resolves once the buffer has room (at once when it has some now). */
  readonly awaitRoom: Effect.Effect<void>
  /** The first item, left in, or undefined. */
  readonly peek: () => T | undefined
  /** The first item, taken out, or undefined. */
  readonly pollOne: () => T | undefined
  /** Resolves true once the buffer holds an item, false after `timeoutMs` or once it is closed (at once when it holds one now). */
  readonly awaitItem: (timeoutMs: number) => Effect.Effect<boolean>
  readonly size: () => number
  /** Ends every wait for an item, now and later: nothing more will be offered. */
  readonly close: () => void
  readonly isClosed: () => boolean
}

export const makeChannelBuffer = <T>(capacity: number): ChannelBuffer<T> => {
  // A ring of `capacity` places: `head` is the first item's, `count` how many there are.
  const items = new Array<T | undefined>(capacity)
  let head = 0
  let count = 0
  let closed = false
  // Whoever waits is woken all at once and looks again: a wake-up can find the item already taken.
  const takers = new Set<() => void>()
  const roomWaiters = new Set<() => void>()

  const wakeAll = (waiters: Set<() => void>) => {
    if (waiters.size === 0) return
    const woken = Array.from(waiters)
    waiters.clear()
    for (const wake of woken) wake()
  }

  const offer = (item: T): boolean => {
    if (count === capacity) return false
    items[(head + count) % capacity] = item
    count++
    wakeAll(takers)
    return true
  }

  const removeFirst = (): T => {
    const item = items[head] as T
    items[head] = undefined
    head = (head + 1) % capacity
    count--
    return item
  }

  const awaitRoom = Effect.async<void>((resume) => {
    const wake = () => resume(Effect.void)
    if (count < capacity) return wake()
    roomWaiters.add(wake)
    return Effect.sync(() => void roomWaiters.delete(wake))
  })

  return {
    offer,
    awaitRoom,
    peek: () => (count === 0 ? undefined : items[head]),
    pollOne: () => {
      if (count === 0) return undefined
      const item = removeFirst()
      wakeAll(roomWaiters)
      return item
    },
    awaitItem: (timeoutMs) =>
      Effect.async<boolean>((resume) => {
        if (count > 0) return resume(Effect.succeed(true))
        if (closed) return resume(Effect.succeed(false))
        let timer: ReturnType<typeof setTimeout> | undefined
        const wake = () => {
          if (timer !== undefined) clearTimeout(timer)
          resume(Effect.succeed(count > 0))
        }
        takers.add(wake)
        // An unbounded wait sets no timer (a timer of Infinity would fire at once); NaN is no wait, not an unbounded one.
        if (Number.isFinite(timeoutMs) || Number.isNaN(timeoutMs)) {
          timer = setTimeout(() => {
            takers.delete(wake)
            resume(Effect.succeed(false))
          }, Math.max(0, timeoutMs || 0))
        }
        return Effect.sync(() => {
          takers.delete(wake)
          if (timer !== undefined) clearTimeout(timer)
        })
      }),
    size: () => count,
    close: () => {
      closed = true
      wakeAll(takers)
    },
    isClosed: () => closed
  }
}
