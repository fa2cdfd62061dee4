/**
 * A `connect` or `serve` that fails gives back the pin it took on the service's directory entry:
 * a pin left in the caller's scope (an app retrying `connect` until its server comes, in its main
 * scope) would hold back the memory of every object removed after it, for as long as that scope
 * lives, and an allocation that needs that memory would find the region full.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { Services } from "../../src/services/ipc/Services.js"
import { liveServices } from "../fixtures/channel-region.js"
import { bankHandlers } from "../fixtures/service-methods.js"
import { innerScope } from "../helpers/InnerScope.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** 8 MiB of the region's 16 MiB heap: its rings, 4 MiB and a little, rounded up to a power of two. */
const HALF_THE_HEAP = { callerSlots: 1, ringBytes: 2 << 20 }

/**
 * Serves "gone", fails a call of `refused` in the test's own scope while it (`stop`s, as `refused`
 * says) and removes it: the two services made next need its memory, which only pins taken before
 * the removal could hold back.
 */
const refusedLeavesNoPin = (
  refused: (services: Services["Type"], stop: Effect.Effect<void>) => Effect.Effect<string, unknown, Scope.Scope>,
  tag: string
) =>
  Effect.gen(function*() {
    const services = yield* Services
    const served = yield* innerScope
    yield* Scope.extend(services.serve("gone", bankHandlers({ value: 0 }), HALF_THE_HEAP), served)
    expect(yield* refused(services, Scope.close(served, Exit.void))).toBe(tag)
    yield* Scope.close(served, Exit.void)
    yield* services.remove("gone")
    const next = yield* innerScope
    for (const name of ["next-1", "next-2"]) {
      yield* Scope.extend(services.serve(name, bankHandlers({ value: 0 }), HALF_THE_HEAP), next)
    }
    yield* Scope.close(next, Exit.void)
    for (const name of ["next-1", "next-2"]) yield* services.remove(name)
  })

describe("a connect or serve refused", () => {
  it.scopedLive("ServiceNotServed and ServiceTaken keep no pin: a service removed after them gives its memory back", () =>
    Effect.flatMap(uniqueRegion("service-pins"), (region) =>
      Effect.gen(function*() {
        yield* refusedLeavesNoPin(
          (services, stop) => Effect.zipRight(stop, Effect.map(Effect.flip(services.connect("gone")), (e) => e._tag)),
          "ServiceNotServed"
        )
        yield* refusedLeavesNoPin(
          (services) => Effect.map(Effect.flip(services.serve("gone", [])), (e) => e._tag),
          "ServiceTaken"
        )
      }).pipe(
        // The program's scope closes before the layer's: its rings before their region.
        Effect.scoped,
        Effect.provide(liveServices({ region, bell: 0, writesDirectory: true }))
      )))
})
