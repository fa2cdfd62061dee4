/**
 * The live coordinator client, every process's (the head's too): it joins over RPC, leaves on
 * close, and re-joins after a takeover or a drop; what it asks once joined, its calls and the
 * barriers it enters, is CoordinatorCalls.ts. The coordinator itself, in the head, is
 * CoordinatorServer.ts; the fake (CoordinatorMemory.ts) runs the same barrier engine and
 * membership without RPC.
 */
import { type ConfigError, Data, Effect, FiberHandle, Layer, Schedule, type Scope, Stream } from "effect"
import {
  Coordinator,
  type CoordinatorShape,
  type CoordinatorUnavailable,
  type Member
} from "../../services/control/Coordinator.js"
import { type RingCorrupt, Rings } from "../../services/control/Rings.js"
import { Rpc, type RpcNotice } from "../../services/control/Rpc.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { ProcessSlot } from "../../services/region/ProcessSlot.js"
import { RegionLayout } from "../../services/RegionLayout.js"
import { headWatch } from "../log/HeadWatch.js"
import { participantRings } from "./BarrierStreams.js"
import { clientShape, type Participant, requestsReadByHead, takeoverSignal, unavailable } from "./CoordinatorCalls.js"
import * as Protocol from "./CoordinatorProtocol.js"
import { watchCoordinator } from "./CoordinatorWatch.js"
import { boundByHead } from "./HeadBoundCalls.js"

// The server's layers, exported here too: the package's CoordinatorLayers are both sides.
export {
  layerServer,
  layerServerConfig,
  makeServer,
  type ServerOptions,
  serverOptionsConfig
} from "./CoordinatorServer.js"

export interface ClientOptions {
  /**
   * How long joining waits for the coordinator of a head that is there (a head that is gone fails
   * joining with `HeadUnavailable` sooner: `makeClient`).
   */
  readonly joinTimeoutMs?: number
  /** How long a call waits for the coordinator of a head that is there (the Rpc client's default, 10 s). */
  readonly callTimeoutMs?: number
  /**
   * How long re-joining (after a new coordinator took over, or after this process was dropped
   * for not running) keeps trying, with backoff, before it gives up (default 60 s).
   */
  readonly rejoinTimeoutMs?: number
}

const DEFAULT_REJOIN_TIMEOUT_MS = 60_000
/** Pauses between re-join attempts: 200 ms, doubling, at most 5 s. */
const rejoinBackoff = Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))

/** Re-joining the coordinator gave up: what started it, and how long it waited for the coordinator's answers. */
export class CoordinatorRejoinFailed extends Data.TaggedError("CoordinatorRejoinFailed")<{
  readonly slot: number
  readonly after: string
  readonly attempts: number
  readonly waitedMs: number
  readonly last: string
}> {
  override get message() {
    return `slot ${this.slot}: re-joining the coordinator after ${this.after} gave up: no answer to its join and group calls in ${this.attempts} attempts over ${this.waitedMs} ms (last: ${this.last}); this process is no member until it joins again`
  }
}

/**
 * Joins again and re-creates and re-joins the groups (`rejoinOnce`), retried with backoff for up
 * to `rejoinTimeoutMs` (the coordinator may be failing over, or not serving yet): one failed
 * attempt must not leave this process out of the membership for good. Giving up is logged
 * as `CoordinatorRejoinFailed`.
 */
const rejoin = <E extends { readonly message: string }>(
  rejoinOnce: Effect.Effect<void, E>,
  slot: number,
  after: string,
  rejoinTimeoutMs: number
) =>
  Effect.suspend(() => {
    const started = Date.now()
    let attempts = 0
    return rejoinOnce.pipe(
      Effect.tapError((e) =>
        Effect.logWarning(`coordinator: re-joining after ${after} failed (attempt ${++attempts}): ${e.message}`)
      ),
      Effect.retry(rejoinBackoff.pipe(Schedule.upTo(rejoinTimeoutMs))),
      Effect.catchAll((e) =>
        Effect.logError(
          new CoordinatorRejoinFailed({
            slot,
            after,
            attempts,
            waitedMs: Date.now() - started,
            last: e.message
          }).message
        )
      )
    )
  })

/**
 * Every process's coordinator client, joined. Joining, and each call after it but a barrier, waits
 * for a head that is there or coming, not for one that is gone (HeadBoundCalls.ts): while the head's
 * process is gone or its lease lapsed or was released, it fails `HeadUnavailable` (naming the head)
 * once that has lasted `CXLOG_HEAD_LOST_MS`, counted from the lease's expiry, so a head gone longer
 * than that fails it at the first look; within the bound a standby that takes the lease over answers
 * it (a call the old head never answered is sent to the new one). A head that holds its lease but does
 * not answer is waited for up to `joinTimeoutMs`, or the call's own timeout, then `CoordinatorUnavailable`.
 */
export const makeClient = (options: ClientOptions = {}): Effect.Effect<
  CoordinatorShape,
  CoordinatorUnavailable | HeadUnavailable | ConfigError.ConfigError,
  CxlMemory | RegionLayout | Rings | Rpc | ProcessSlot | Scope.Scope
> =>
  Effect.gen(function*() {
    const head = yield* headWatch(yield* CxlMemory)
    const calls = yield* boundByHead(head)
    const layout = yield* RegionLayout
    const rings = yield* Rings
    const rpc = yield* Rpc
    const slot = yield* ProcessSlot
    // The coordinator frees a stopped member's reply slot as it drops it: resumed, the member
    // attaches again and joins again (`restart`, defined below, run only after this client exists).
    const rejoinAfterDrop: Effect.Effect<void> = Effect.suspend(() =>
      restart("this process was dropped for not running")
    )
    // The broadcast ring read corrupt, and the client read on from its head: the notices between
    // (a takeover's, this member's drop) may be lost with the replies, so it re-joins, saying that.
    // The coordinator did not drop it: no "dropped for not running".
    const rejoinAfterLostReplies = (corrupt: RingCorrupt): Effect.Effect<void> =>
      Effect.suspend(() =>
        restart(`the broadcast ring read corrupt (${corrupt.message}) and the replies and notices there were lost`)
      )
    // One re-join at a time, in a fiber of its own: a newer reason (another takeover) replaces a
    // re-join still retrying, and the takeover notices go on being handled meanwhile.
    const rejoining = yield* FiberHandle.make<void, never>()
    const client = yield* rpc.client({
      client: slot.slot,
      requests: layout.requestRing(slot.slot),
      replies: layout.broadcastRing,
      replySlot: slot.slot,
      onReattach: rejoinAfterDrop,
      onRepliesLost: rejoinAfterLostReplies,
      ...(options.callTimeoutMs === undefined ? {} : { timeoutMs: options.callTimeoutMs })
    }).pipe(Effect.mapError((e) => unavailable(e.message)))
    const broadcast = yield* rings.inspect(layout.broadcastRing).pipe(Effect.orDie)
    const requests = yield* rings.inspect(layout.requestRing(slot.slot)).pipe(Effect.orDie)
    const writable = yield* participantRings(rings, layout)
    const self: Member = { slot: slot.slot, pid: slot.pid, occurrence: slot.occurrence, role: slot.role }

    const joinOnce = (headLost?: AbortSignal) =>
      client.call(Protocol.JoinMethod, self, {
        timeoutMs: 1_000,
        ...(headLost === undefined ? {} : { signal: headLost })
      })
    // The head's loss ends the attempts (an abandoned one is not tried again): `during` says it.
    const join = calls.during(
      () => `its coordinator to answer the join of this process (pid ${self.pid}, slot ${self.slot})`,
      (headLost) =>
        joinOnce(headLost).pipe(
          Effect.retry({
            times: Math.ceil((options.joinTimeoutMs ?? 10_000) / 1_000),
            while: (e) => e._tag !== "RpcAbandoned"
          }),
          Effect.mapError((e) =>
            e._tag === "RpcAbandoned" ? e : unavailable(`join failed: ${e.message} (${requestsReadByHead(requests)})`)
          )
        )
    )
    yield* Effect.acquireRelease(
      join,
      () =>
        client.call(Protocol.LeaveMethod, { slot: self.slot, occurrence: self.occurrence }, { timeoutMs: 1_000 }).pipe(
          Effect.ignore
        )
    )
    // First on close: no re-join runs on while this process leaves and its client closes.
    yield* Effect.addFinalizer(() => FiberHandle.clear(rejoining))

    // A new coordinator (a standby head took over) knows the live members from the process
    // table but not the groups: re-join, re-create and re-join them, and fail barriers in flight.
    const created = new Map<string, ReadonlyArray<number>>()
    const joined = new Set<string>()
    let takeover = takeoverSignal()
    /** Ends the barriers in flight with `why`; later ones wait on a fresh signal. */
    const abortBarriers = (why: string) => {
      const current = takeover
      takeover = takeoverSignal()
      current.abort(why)
    }
    // A coordinator that is gone takes no re-join: a standby that takes over says so (the notice below).
    const watch = yield* watchCoordinator(broadcast, abortBarriers)
    // One join call per attempt: `rejoin`'s schedule does the retrying (not `join`'s own retries inside each attempt).
    const rejoinOnce = Effect.gen(function*() {
      yield* joinOnce()
      for (const [name, slots] of created) yield* client.call(Protocol.CreateGroupMethod, { name, members: slots })
      for (const name of joined) {
        yield* client.call(Protocol.JoinGroupMethod, { name, slot: self.slot, occurrence: self.occurrence })
      }
    })
    const rejoinTimeoutMs = options.rejoinTimeoutMs ?? DEFAULT_REJOIN_TIMEOUT_MS
    /**
     * Fails the barriers in flight (`why`: what happened, as a clause) and re-joins in the
     * background (replacing a re-join still retrying). After a takeover (`sendAgain`), the other
     * calls still waiting are sent to the new coordinator first: it never read what was sent
     * before it started (a call made while the head was gone), and runs each at most once.
     */
    const restart = (why: string, sendAgain = false) =>
      Effect.zipRight(
        Effect.logInfo(`coordinator: ${why}; re-joining`),
        Effect.suspend(() => {
          abortBarriers(why)
          return Effect.zipRight(
            sendAgain ? client.resendWaiting : Effect.void,
            Effect.asVoid(FiberHandle.run(rejoining, rejoin(rejoinOnce, self.slot, why, rejoinTimeoutMs)))
          )
        })
      )
    /** Restarts on each notice of a kind that `why` says concerns this process. */
    const restartOn = <A, I>(
      notice: RpcNotice<string, A, I>,
      why: (value: A) => string | undefined,
      sendAgain = false
    ) =>
      Effect.flatMap(client.notices(notice), (notices) =>
        notices.pipe(
          Stream.runForEach((value) => {
            const reason = why(value)
            return reason === undefined ? Effect.void : restart(reason, sendAgain)
          }),
          Effect.forkScoped
        ))
    yield* restartOn(
      Protocol.CoordinatorTakeoverNotice,
      ({ epoch }) => `the coordinator failed over (epoch ${epoch})`,
      true
    )
    // Dropped while running (a stop or a blocked loop outlasted the stale bound) with the reply
    // reader still attached: nothing but this notice says so.
    yield* restartOn(Protocol.MemberDroppedNotice, (drop) =>
      drop.slot === self.slot && drop.occurrence === self.occurrence
        ? `this process was dropped from the membership (${drop.reason})`
        : undefined)

    const participant: Participant = {
      rings,
      client,
      self,
      writable,
      requests,
      broadcast,
      takeover: () => takeover.signal,
      watch
    }
    // A coordinator that answered while no head had ever held the sequencer lease serves without
    // one (the control plane composed alone): the lease cannot tell it gone, and no call is bound by it.
    return clientShape(participant, head.everHeld() ? calls : undefined, created, joined)
  })

export const layer = (options: ClientOptions = {}) => Layer.scoped(Coordinator, makeClient(options))
