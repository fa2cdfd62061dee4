/**
 * A head whose lease lapsed (its process stopped or stalled past it, and no standby took over) may
 * run again with changes in its request rings whose callers gave up on it meanwhile: a caller ends
 * `HeadUnavailable` once the head has been gone past its bound (at once through a broker). Made
 * then, such a change would be one its caller was never told of. So the coordinator refuses a
 * change (`CHANGE_METHODS`) that it reads
 * - while its lease is expired (it ran again but has not renewed it yet), or
 * - from before the renewal that ended a lapse: at that renewal it takes each request ring's
 *   leading sequence, and a frame that starts below it was sent before the lease showed held again.
 *
 * A caller only gives up on a head whose lease it sees lapsed, so what it gave up on is refused,
 * never made; one still waiting gets the refusal (`HeadUnavailable`, state `lapse-refused`) and asks
 * again. A change sent after the renewal runs as usual. What the head read before it stopped is
 * not refused: it may have been made (its caller is told so, CoordinatorCalls.ts).
 */
import type { RingInspector } from "../../services/control/Rings.js"
import { HeadUnavailable } from "../../services/log/HeadWatch.js"
import type { SequencerShape } from "../../services/log/Sequencer.js"

export interface LapseGuard {
  /** Why the change read at `sequence` of `client`'s request ring is refused, or undefined to run it. */
  readonly refusal: (client: number, sequence: number, what: () => string) => HeadUnavailable | undefined
  /** Takes the guard off the lease. */
  readonly close: () => void
}

/** The guard of a head over `requests` (each process slot's request ring, by slot) in region `region`. */
export const makeLapseGuard = (
  region: string,
  lease: Pick<SequencerShape, "epoch" | "leaseExpiresAtMs" | "onLapseEnd">,
  requests: ReadonlyArray<RingInspector>
): LapseGuard => {
  /** Per slot: frames starting below it were sent before the last lapse ended. */
  const sentBefore = new Float64Array(requests.length)
  let lastLapseMs = 0
  const close = lease.onLapseEnd((lapsedMs) => {
    lastLapseMs = lapsedMs
    for (let slot = 0; slot < requests.length; slot++) sentBefore[slot] = requests[slot]!.writer().sequence
  })
  const refused = (lapsedMs: number, what: () => string) =>
    new HeadUnavailable({
      region,
      pid: process.pid,
      epoch: lease.epoch,
      state: "lapse-refused",
      lapsedMs,
      boundMs: 0,
      waitingFor: what()
    })
  return {
    refusal: (client, sequence, what) => {
      const expiredMs = Date.now() - lease.leaseExpiresAtMs()
      if (expiredMs > 0) return refused(expiredMs, what)
      return sequence < (sentBefore[client] ?? 0) ? refused(lastLapseMs, what) : undefined
    },
    close
  }
}
