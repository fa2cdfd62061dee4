/**
 * An application's process joining the head's coordinator (every `Roles.ipcMember` and
 * `Roles.groupMember` does as it is built) waits for a head that is there or being taken over, not
 * for one that is gone: a head SIGKILLed before the process starts, or stopped past its lease,
 * fails the join with `HeadUnavailable` naming it, within `CXLOG_HEAD_LOST_MS`, rather than once
 * the join's own attempts (10 s of them) ran out; a standby taking the lease over meanwhile
 * answers the join, and a head that holds its lease but is slow to answer is waited for. The heads
 * are `cxlog head` processes; the application is this process.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schema } from "effect"
import * as Roles from "../../src/layers/Roles.js"
import { ConsumerGroups } from "../../src/services/groups/ConsumerGroups.js"
import { Channels } from "../../src/services/ipc/Channels.js"
import { ipcHead, ipcRegionEnv } from "../fixtures/ipc-member.js"
import { forkCli } from "../helpers/CliRoles.js"
import { failureOf, headLostMs } from "../helpers/HeadLost.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** What an application does first: open channel "prices" through `Roles.ipcMember`. */
const openChannel = (region: string) =>
  Effect.scoped(Effect.flatMap(Channels, (channels) => channels.open("prices", Schema.Number))).pipe(
    Effect.asVoid,
    Effect.provide(Roles.ipcMember({ name: region }))
  )

/** What a consumer group's member does first: list the groups through `Roles.groupMember`. */
const listGroups = (region: string) =>
  Effect.flatMap(ConsumerGroups, (groups) => groups.list).pipe(
    Effect.asVoid,
    Effect.provide(Roles.groupMember({ name: region }))
  )

/** The join's own attempts: 10 s of them, each up to 1 s (Coordinator.ts); the head's loss must end the join before. */
const JOIN_ATTEMPTS_MS = 10_000

describe("an application's process joining while its head is gone (cxlog head processes)", () => {
  it.scopedLive(
    "its head SIGKILLed before it starts: Roles.ipcMember and Roles.groupMember fail HeadUnavailable naming the head and what to do",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("join-killed")
        const head = yield* ipcHead(region)
        head.child.kill("SIGKILL")
        yield* head.exited
        const starts: ReadonlyArray<readonly [string, Effect.Effect<void, { readonly message: string }>]> = [
          ["ipcMember", openChannel(region)],
          ["groupMember", listGroups(region)]
        ]
        for (const [role, start] of starts) {
          const { failed, tookMs } = yield* failureOf(start.pipe(headLostMs(500)))
          expect(failed, role).toMatchObject({
            _tag: "HeadUnavailable",
            region,
            pid: head.pid,
            epoch: 1,
            state: "exited",
            boundMs: 500
          })
          expect(failed.message, role).toContain(`the join of this process (pid ${process.pid}`)
          expect(failed.message, role).toContain(`cxlog head --attach --region ${region}`)
          expect(tookMs, role).toBeLessThan(JOIN_ATTEMPTS_MS)
        }
      }),
    60_000
  )

  it.scopedLive(
    "its head stopped past its lease (no standby): HeadUnavailable saying the lease lapsed, its process stuck, not gone",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("join-stopped")
        const head = yield* forkCli(["head", "--sequencer-lease-ms", "1000"], ipcRegionEnv(region))
        yield* head.event("ready")
        head.child.kill("SIGSTOP")
        const { failed, tookMs } = yield* failureOf(openChannel(region).pipe(headLostMs(500)))
        expect(failed).toMatchObject({ _tag: "HeadUnavailable", region, pid: head.pid, state: "lease-lapsed" })
        expect(failed.message).toContain("its sequencer lease lapsed (the process is stuck)")
        expect(tookMs).toBeLessThan(JOIN_ATTEMPTS_MS)
      }),
    60_000
  )

  it.scopedLive(
    "a standby that takes the lease over while the process joins answers the join: the process opens its channel",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("join-takeover")
        const env = ipcRegionEnv(region)
        const head = yield* forkCli(["head"], env)
        yield* head.event("ready")
        // It looks at the lease every half second: the process below starts before it has taken over.
        const standby = yield* forkCli(["head", "--standby", "--standby-check-ms", "500"], env)
        yield* standby.event("standby")
        head.child.kill("SIGKILL")
        yield* head.exited
        expect(standby.latest("ready")).toBeUndefined()
        // A bound well past a takeover's (well under a second, docs/operations.md) on a loaded machine.
        yield* openChannel(region).pipe(headLostMs(15_000))
        expect(yield* standby.event("ready")).toMatchObject({ epoch: 2 })
      }),
    60_000
  )

  it.scopedLive(
    "a head that holds its lease but does not answer (stopped, within its lease) is waited for, not taken for gone",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("join-slow")
        const head = yield* forkCli(["head", "--sequencer-lease-ms", "30000"], ipcRegionEnv(region))
        yield* head.event("ready")
        head.child.kill("SIGSTOP")
        const opening = yield* Effect.fork(openChannel(region).pipe(headLostMs(500)))
        // A bounded observation window: past the join's first attempt (1 s) and the bound (0.5 s) twice over,
        // the process still waits for the head that holds its lease.
        yield* Effect.sleep("2 seconds")
        expect(opening.unsafePoll()).toBeNull()
        head.child.kill("SIGCONT")
        yield* Fiber.join(opening)
      }),
    60_000
  )
})
