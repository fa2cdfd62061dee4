/**
 * Cluster.spawnRole, the orchestrator's handle on a role process: a role that exited fails every
 * wait on its events, those asked for after the exit included (a run once waited an hour for the
 * "done" of a remote subscriber that had already failed), and its failure says why in its
 * first line (the one the CLI prints): the role's own one-line failure.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { spawnRole } from "../../src/programs/run/Cluster.js"

describe("spawnRole", () => {
  it.scoped(
    "an event first awaited after the role exited fails at once, naming the exit",
    () =>
      Effect.gen(function*() {
        const role = yield* spawnRole("broken role", ["no-such-command"])
        const exited = yield* Effect.flip(role.exited)
        expect(exited.reason).toBe("exited with code 2")
        // The bound is far beyond the test's timeout: only the exit can end this wait in time.
        const failed = yield* Effect.flip(role.event("done", 3_600_000))
        expect(failed).toMatchObject({
          _tag: "RoleFailed",
          role: "broken role",
          reason: "exited with code 2",
          waitingFor: `its "done" event`
        })
      }),
    30_000
  )

  it.scoped(
    "a role that fails at start: the failure's first line carries the role's own reason",
    () =>
      Effect.gen(function*() {
        // A replicated topic that is not order 5: the head refuses it before making a region, as a configuration mistake (exit 2).
        const head = yield* spawnRole("head", ["head", "--topic", "t:2:2:2"], {
          CXLOG_REGION: `cxlog-spawnrole-${process.pid}`,
          CXLOG_DATA_DIR: join(tmpdir(), `cxlog-spawnrole-${process.pid}`)
        })
        const failed = yield* Effect.flip(head.event("ready", 20_000))
        expect(failed.reason).toBe("exited with code 2")
        expect(failed.message.split("\n")[0]).toContain(
          "cxlog head: --topic: t:2:2:2: replication factor 2 needs order 5"
        )
      }),
    30_000
  )
})
