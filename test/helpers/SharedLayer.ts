/**
 * A block of tests sharing one layer, as @effect/vitest's `layer` gives it, without its side
 * effect: `layer` (0.30) assigns the block's `effect`, `scoped`, … onto the module-wide `it`, so
 * every test registered after the block — later in the file, or in the next file of a worker that
 * shares modules between files (`isolate: false`) — would run in the block's runtime, its TestClock
 * included (such a test started at the virtual time the block's tests had reached). Here the
 * methods `it` had before are put back as soon as the block has registered its tests.
 */
import { it as moduleIt, layer, type Vitest } from "@effect/vitest"
import type { Duration, Layer } from "effect"

/** The methods `layer` assigns onto `it`. */
const METHODS = ["effect", "scoped", "live", "scopedLive", "flakyTest", "layer", "prop"] as const

export const sharedLayer =
  <R, E>(backing: Layer.Layer<R, E>, options: { readonly timeout?: Duration.DurationInput } = {}) =>
  (name: string, tests: (it: Vitest.MethodsNonLive<R>) => void): void => {
    const before = Object.fromEntries(METHODS.map((method) => [method, moduleIt[method]]))
    layer(backing, options)(name, (it) => {
      try {
        tests(it)
      } finally {
        Object.assign(moduleIt, before)
      }
    })
  }
