/**
 * A draining supervisor's side of its shutdown's processing fence (docs/ipc.md, "Supervised
 * processes"). It joins the drain group when the supervisor is made, before any child starts, so
 * no round of the fence can be released without it; at a shutdown, the children's SIGTERM sent,
 * it arrives with them and reports what the fence came to, naming the children by their pids.
 */
import { Effect, Either } from "effect"
import {
  type BarrierError,
  type BarrierReleased,
  Coordinator,
  type CoordinatorShape,
  CoordinatorUnavailable,
  type FenceStream,
  type InvalidBarrierOptions,
  type Member
} from "../../services/control/Coordinator.js"
import { SHUTDOWN_BARRIER } from "../../services/ipc/Supervisor.js"
import { SUPERVISOR_SETTINGS } from "../../services/ipc/SupervisorSettings.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"

/** Beyond the fence's own bound, how long an arrival waits for the coordinator's answer (its RPC is bounded alike). */
export const FENCE_REPLY_MARGIN_MS = 5_000

/** What a shutdown's fence came to, its participants named. */
export interface FenceReport {
  readonly completed: boolean
  /** The children that arrived (a member not started by this supervisor is `slot N`). */
  readonly arrived: ReadonlyArray<string>
  /** The members the fence went without: not arrived by its bound, or dropped as dead (with why). */
  readonly missing: ReadonlyArray<string>
  /** Why it did not complete; empty when it did. */
  readonly reason: string
}

export interface ShutdownFence {
  readonly group: string
  /** What its children get in their environment: the group and the fence's bound, so their arrivals agree with its own. */
  readonly childEnv: Readonly<Record<string, string>>
  /** Arrives at the fence (the children were sent SIGTERM); what it came to, children named by `nameOf(pid)`. */
  readonly enter: (nameOf: (pid: number) => string | undefined) => Effect.Effect<FenceReport>
}

/** The processing fence over `group`, bounded by `timeoutMs`, entered as this process's member (ends past the bound and a margin, whatever the coordinator does). */
export const enterShutdownFence = (
  coordinator: CoordinatorShape,
  group: string,
  timeoutMs: number,
  streams: ReadonlyArray<FenceStream> = []
): Effect.Effect<BarrierReleased, BarrierError | CoordinatorUnavailable | InvalidBarrierOptions> =>
  coordinator.barrier(SHUTDOWN_BARRIER, { mode: "processing-fence", group, timeoutMs, streams }).pipe(
    Effect.interruptible,
    Effect.timeoutFail({
      duration: timeoutMs + FENCE_REPLY_MARGIN_MS,
      onTimeout: () =>
        new CoordinatorUnavailable({
          reason: `no answer to the shutdown fence within ${timeoutMs + FENCE_REPLY_MARGIN_MS} ms`
        })
    })
  )

const reportOf = (
  outcome: Either.Either<BarrierReleased, BarrierError | CoordinatorUnavailable | InvalidBarrierOptions>,
  others: ReadonlyArray<Member>,
  label: (slot: number) => string
): FenceReport => {
  if (Either.isRight(outcome)) {
    const released = outcome.right
    const dropped = new Set(released.dropped.map((d) => d.participant))
    return {
      completed: true,
      arrived: others.filter((m) => !dropped.has(m.slot)).map((m) => label(m.slot)),
      missing: released.dropped.map((d) => `${label(d.participant)} (${d.reason})`),
      reason: ""
    }
  }
  const error = outcome.left
  if (error._tag === "BarrierTimeout") {
    const notArrived = new Set(error.notArrived)
    const missing = error.notArrived.map(label)
    return {
      completed: false,
      arrived: others.filter((m) => !notArrived.has(m.slot)).map((m) => label(m.slot)),
      missing,
      reason: missing.length > 0
        ? `not arrived within ${error.timeoutMs} ms: ${missing.join(", ")}`
        : error.message
    }
  }
  return { completed: false, arrived: [], missing: others.map((m) => label(m.slot)), reason: error.message }
}

/** Joins `group` now; the fence a shutdown enters later, bounded by `timeoutMs`. */
export const makeShutdownFence = (
  group: string,
  timeoutMs: number
): Effect.Effect<ShutdownFence, CoordinatorUnavailable | HeadUnavailable, Coordinator> =>
  Effect.gen(function*() {
    const coordinator = yield* Coordinator
    yield* coordinator.joinGroup(group)
    const { drainGroup, drainTimeoutMs } = SUPERVISOR_SETTINGS.settings
    return {
      group,
      childEnv: { [drainGroup.env]: group, [drainTimeoutMs.env]: String(timeoutMs) },
      enter: (nameOf) =>
        Effect.gen(function*() {
          // Listed before the fence: a member that arrives and exits is named all the same.
          const members = yield* Effect.orElseSucceed(coordinator.members(group), (): ReadonlyArray<Member> => [])
          const others = members.filter((m) => m.slot !== coordinator.self.slot)
          const label = (slot: number) => {
            const member = others.find((m) => m.slot === slot)
            return (member === undefined ? undefined : nameOf(member.pid)) ?? `slot ${slot}`
          }
          const outcome = yield* Effect.either(enterShutdownFence(coordinator, group, timeoutMs))
          return reportOf(outcome, others, label)
        })
    }
  })
