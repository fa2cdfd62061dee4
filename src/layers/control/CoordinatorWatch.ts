/**
 * Whether the coordinator holding a barrier's arrival still runs, looked at while a barrier
 * waits. The coordinator is the broadcast ring's one writer (its RPC replies and notices go
 * there), and that ring's writer line names it by pid and start tag: once its process is gone (a
 * later process under its pid is not it), or it closed the ring, the arrival went with it and no
 * release will come. The barriers waiting then end
 * within a look (`CHECK_MS`) through the signal they share (as at a takeover), not at their
 * call's bound — the barrier's timeout plus the margin left for the coordinator's own
 * `BarrierTimeout`. It looks only while a barrier is in flight: one look per `CHECK_MS` however
 * many are, and none per call.
 */
import { Effect, type Scope } from "effect"
import type { RingInspector } from "../../services/control/Rings.js"
import { isProcessAlive } from "../region/ProcessInfo.js"

const CHECK_MS = 50

/** Why no coordinator will answer, or undefined while its process runs and writes the broadcast ring. */
const goneReason = (broadcast: RingInspector): string | undefined => {
  const writer = broadcast.writer()
  if (writer.occurrence === 0) return "no coordinator writes the broadcast ring"
  if (writer.closed) return `the coordinator (pid ${writer.pid}) stopped`
  return isProcessAlive(writer.pid, writer.start) ? undefined : `the coordinator's process (pid ${writer.pid}) is gone`
}

export interface CoordinatorWatch {
  /** `wait`, with the coordinator looked at while it runs: when it is gone, `abort` is called with why. */
  readonly during: <A, E, R>(wait: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/** Watches `broadcast`'s writer while any `during` runs, for the scope; `abort(why)` ends the waits. */
export const watchCoordinator = (
  broadcast: RingInspector,
  abort: (why: string) => void
): Effect.Effect<CoordinatorWatch, never, Scope.Scope> =>
  Effect.gen(function*() {
    let waiting = 0
    const busy = yield* Effect.makeLatch(false)
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* busy.await
      const gone = goneReason(broadcast)
      if (gone !== undefined) abort(gone)
      yield* Effect.sleep(CHECK_MS)
    })))
    return {
      during: (wait) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.suspend(() => {
            if (waiting++ === 0) busy.unsafeOpen()
            return Effect.ensuring(
              restore(wait),
              Effect.sync(() => {
                if (--waiting === 0) busy.unsafeClose()
              })
            )
          })
        )
    }
  })
