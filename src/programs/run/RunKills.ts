/**
 * The faults a `cxlog run` injects mid-run, decided on the publisher's progress: `--kill-broker`
 * SIGKILLs a broker, `--kill-head` the active head, after which a standby must take over.
 */
import { Deferred, Effect } from "effect"
import { RoleFailed } from "./Cluster.js"
import type { RunRoles } from "./RunCluster.js"
import type { RunPlan } from "./RunPlan.js"
import type { RunProgress } from "./RunProgress.js"

/** How long a run waits after killing its head for a standby's first GOI entry before it fails. */
const TAKEOVER_BOUND_MS = 10_000

/** `--kill-broker`: SIGKILLs that broker once its fraction of the messages is acked. */
export const killBrokerMidRun = (plan: RunPlan, { brokers, publisher }: RunRoles, progress: RunProgress): void => {
  const kill = plan.options.killBroker
  if (kill === undefined) return
  publisher.onEvent("progress", () => {
    const victim = brokers[kill.index]
    if (progress.killedBroker === null && progress.acked >= plan.messages * kill.atFraction && victim !== undefined) {
      progress.killedBroker = kill.index
      victim.kill("SIGKILL")
    }
  })
}

/** `--kill-head`: when the active head was killed (epoch ms), and when and as which epoch a standby took over. */
export interface Takeover {
  readonly headKilledAt: Deferred.Deferred<number>
  readonly tookOver: Deferred.Deferred<{ readonly atMs: number; readonly epoch: number }>
  /** Fails the run when no standby took over within the bound after the kill (never, without one). */
  readonly takenOver: Effect.Effect<never, RoleFailed>
}

/** `--kill-head`: SIGKILLs the active head once its fraction of the messages is acked; then the standby that took over says when it wrote its first GOI entry. */
export const killHeadMidRun = (
  plan: RunPlan,
  { activeHead, head, publisher, standbys }: RunRoles,
  progress: RunProgress
) =>
  Effect.gen(function*() {
    const killHead = plan.options.killHead
    const headKilledAt = yield* Deferred.make<number>()
    const tookOver = yield* Deferred.make<{ readonly atMs: number; readonly epoch: number }>()
    if (killHead !== undefined) {
      let killedAtMs = 0
      let victim = head
      publisher.onEvent("progress", () => {
        if (killedAtMs === 0 && progress.acked >= plan.messages * killHead.atFraction) {
          killedAtMs = Date.now()
          victim = activeHead()
          victim.kill("SIGKILL")
          Deferred.unsafeDone(headKilledAt, Effect.succeed(killedAtMs))
        }
      })
      for (const standby of standbys) {
        let epoch = 0
        standby.onEvent("ready", (e) => {
          epoch = e.epoch
        })
        standby.onEvent("firstOrdered", (e) => {
          if (killedAtMs > 0 && standby !== victim) {
            Deferred.unsafeDone(tookOver, Effect.succeed({ atMs: e.atMs, epoch }))
          }
        })
      }
    }
    const takenOver = Effect.flatMap(Deferred.await(headKilledAt), () =>
      Deferred.await(tookOver).pipe(
        Effect.timeoutFail({
          duration: TAKEOVER_BOUND_MS,
          onTimeout: () =>
            new RoleFailed({
              role: "standby heads",
              reason: `no standby head ordered a batch within ${TAKEOVER_BOUND_MS} ms of the head's SIGKILL`,
              stderr: ""
            })
        }),
        Effect.zipRight(Effect.never)
      ))
    const takeover: Takeover = { headKilledAt, tookOver, takenOver }
    return takeover
  })

/** The summary's figures of a takeover: from the kill to the new head's first GOI entry, and its epoch (null without one). */
export const takeoverFigures = ({ headKilledAt, tookOver }: Takeover) =>
  Effect.gen(function*() {
    const killedAt = yield* Deferred.poll(headKilledAt).pipe(
      Effect.flatMap((o) => (o._tag === "Some" ? o.value : Effect.succeed(undefined)))
    )
    const took = yield* Deferred.poll(tookOver).pipe(
      Effect.flatMap((o) => (o._tag === "Some" ? o.value : Effect.succeed(undefined)))
    )
    return {
      takeoverMs: killedAt === undefined || took === undefined ? null : Math.max(0, took.atMs - killedAt),
      takeoverEpoch: took?.epoch ?? null
    }
  })
