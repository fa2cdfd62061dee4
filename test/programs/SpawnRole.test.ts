/**
 * Cluster.spawnRole, the orchestrator's handle on a role process: a role that exited fails every
 * wait on its events, those asked for after the exit included (a run once waited an hour for the
 * "done" of a remote subscriber that had already failed).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnRole } from "../../src/programs/Cluster.js"

describe("spawnRole", () => {
  it.scoped("an event first awaited after the role exited fails at once, naming the exit", () =>
    Effect.gen(function*() {
      const role = yield* spawnRole("broken role", ["no-such-command"])
      const exited = yield* Effect.flip(role.exited)
      expect(exited.reason).toBe("exited with code 2")
      // The bound is far beyond the test's timeout: only the exit can end this wait in time.
      const failed = yield* Effect.flip(role.event("done", 3_600_000))
      expect(failed).toMatchObject({ _tag: "RoleFailed", role: "broken role", reason: "exited with code 2", waitingFor: `its "done" event` })
    }), 30_000)
})
