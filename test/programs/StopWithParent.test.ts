/** `stopWithParent`: a server or CPU load a bench starts is stopped when the bench is SIGKILLed, not left running. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { isPidAlive } from "../../src/layers/region/ProcessInfo.js"
import { spawnFixture } from "../helpers/Processes.js"

/** Starts the fixture's sleep, SIGKILLs the fixture, and says whether the sleep is gone within 5 s (then kills it if not). */
const outlivesParent = (mode: "guarded" | "bare") =>
  Effect.scoped(Effect.gen(function*() {
    const parent = yield* spawnFixture("guarded-child", [mode])
    const { pid } = yield* parent.next<{ pid: number }>()
    yield* Effect.addFinalizer(() => Effect.sync(() => isPidAlive(pid) && process.kill(pid, "SIGKILL")))
    expect(isPidAlive(pid)).toBe(true)
    parent.process.kill("SIGKILL")
    const deadline = Date.now() + 5_000
    while (isPidAlive(pid) && Date.now() < deadline) yield* Effect.sleep("50 millis")
    return isPidAlive(pid)
  }))

describe("stopWithParent", () => {
  it.live(
    "a guarded child is stopped once its parent is SIGKILLed; an unguarded one outlives it",
    () =>
      Effect.gen(function*() {
        expect(yield* outlivesParent("guarded")).toBe(false)
        // The reference: without the guard the same child is still there.
        expect(yield* outlivesParent("bare")).toBe(true)
      }),
    30_000
  )
})
