/**
 * sharedLayer: a block's tests share its layer and runtime; tests registered after the block run
 * as if it were not there (their own TestClock, from 0), which @effect/vitest's `layer` alone
 * does not give them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Effect, Layer, TestClock } from "effect"
import { sharedLayer } from "./SharedLayer.js"

class Counter extends Context.Tag("test/Counter")<Counter, { count: number }>() {}

sharedLayer(Layer.sync(Counter, () => ({ count: 0 })))("a block sharing one layer", (it) => {
  it.effect("its first test moves the block's virtual clock on by a minute", () =>
    Effect.gen(function*() {
      ;(yield* Counter).count++
      yield* TestClock.adjust("1 minute")
      expect(yield* Clock.currentTimeMillis).toBe(60_000)
    }))
  it.effect("its next test has the same service and the same clock", () =>
    Effect.gen(function*() {
      expect((yield* Counter).count).toBe(1)
      expect(yield* Clock.currentTimeMillis).toBe(60_000)
    }))
})

// Collected after the block (a describe's tests are registered once the file's top level has run).
describe("a test registered after the block", () => {
  it.effect("has a TestClock of its own, from 0, and no part of the block's layer", () =>
    Effect.gen(function*() {
      expect(yield* Clock.currentTimeMillis).toBe(0)
      expect(yield* Effect.serviceOption(Counter)).toMatchObject({ _tag: "None" })
    }))
})
