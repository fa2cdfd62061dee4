/**
 * What a joined coordinator client asks (Coordinator.ts joins, leaves and re-joins): its calls,
 * their failures narrowed to the coordinator's typed errors, and the barriers it enters with drain
 * targets captured from the rings this process writes.
 *
 * A barrier from arrival to release: `enterBarrier` (the participant: `arrival` with its
 * drain targets) → the RPC call → `deferArrival` (the coordinator) → the engine's `enter` …
 * `release` (BarrierEngine.ts) → the deferred reply → `awaitReleaseWatermark`.
 */
import { Effect, FiberRef } from "effect"
import { setMaxListeners } from "node:events"
import { callerDeadline } from "../../services/control/CallerDeadline.js"
import {
  type BarrierOptions,
  BarrierTimeout,
  type CoordinatorShape,
  CoordinatorUnavailable,
  GROUP_ALL,
  type Member
} from "../../services/control/Coordinator.js"
import type { RingInspector, RingsShape } from "../../services/control/Rings.js"
import type { AnyRpcMethod, Failure, Payload, RpcCallError, RpcClient, Success } from "../../services/control/Rpc.js"
import { HeadUnavailable } from "../../services/log/HeadWatch.js"
import { checkTopicName, checkTopicSpec, checkTrim } from "../../services/log/Topics.js"
import { InvalidObjectName, objectNameProblem } from "../../services/region/Directory.js"
import { arrival, checkBarrier, fenceTargets } from "./BarrierStreams.js"
import * as Protocol from "./CoordinatorProtocol.js"
import type { CoordinatorWatch } from "./CoordinatorWatch.js"
import type { HeadBoundCalls } from "./HeadBoundCalls.js"

export const unavailable = (reason: string) => new CoordinatorUnavailable({ reason })

/**
 * Where a call that got no reply was lost, from this process's request ring: a head that never
 * read the requests is not reading this process's ring (it waits on another writer, or stalls);
 * one that read them did not answer, or its replies did not reach this process.
 */
export const requestsReadByHead = (requests: RingInspector): string => {
  const end = requests.writer().sequence
  const readers = requests.readers().filter((r) => r.state === "attached")
  if (readers.length === 0) return "nothing reads this process's request ring"
  const read = Math.max(...readers.map((r) => r.delivered))
  return read >= end
    ? "the head read every request of this process; no reply reached it"
    : `the head has not read this process's last ${end - read} bytes of requests`
}

/**
 * What became of a change (`Protocol.CHANGE_METHODS`) written at `from` or after in this process's
 * request ring, once its head is lost: one no head has read is never made (a head that lapsed
 * refuses it if it runs again, LapseGuard.ts; a standby never reads what was sent before it
 * started); one a head may have read may have been made. Conservative: any frame at or after
 * `from` read counts as this one.
 */
export const changeFate = (requests: RingInspector, from: number) => (): string =>
  requests.readers().some((r) => r.state === "attached" && r.delivered > from)
    ? "sent, and read by the head before it was lost: it may have been made"
    : "not read by the head: not made, and a head that runs again refuses it; safe to ask again"

/** A head's refusal of a change it read after its lease lapsed, said as waiting for what this process asked (`asked`). */
const refusalAsAsked = <E>(e: E, asked: () => string): E =>
  e instanceof HeadUnavailable && e.state === "lapse-refused"
    ? new HeadUnavailable({
      region: e.region,
      pid: e.pid,
      epoch: e.epoch,
      state: e.state,
      lapsedMs: e.lapsedMs,
      boundMs: e.boundMs,
      waitingFor: asked()
    }) as E
    : e

/** Typed coordinator errors pass through; transport failures become `CoordinatorUnavailable`. */
const passThrough =
  <T extends string>(tags: ReadonlyArray<T>) => <E extends { readonly _tag: string; readonly message: string }>(e: E) =>
    (tags as ReadonlyArray<string>).includes(e._tag) ? (e as Extract<E, { readonly _tag: T }>) : unavailable(e.message)

/**
 * Local fence: returns once this process's own reader of the broadcast ring has delivered
 * past the release watermark. The reply comes after the release in that ring and the reader
 * publishes `delivered` before handing a frame on, so this normally holds at once; otherwise
 * the reader crossing the watermark wakes the wait (`awaitProgress`). Bounded by the barrier's
 * timeout: past it, `BarrierTimeout` names this reader and how far it got.
 */
const awaitReleaseWatermark = (
  rings: RingsShape,
  broadcast: RingInspector,
  slot: number,
  barrier: string,
  releaseWatermark: number,
  timeoutMs: number
) => {
  const reached = () => broadcast.reader(slot).delivered >= releaseWatermark
  return reached() ? Effect.void : awaitWatermark(rings, broadcast, slot, barrier, releaseWatermark, timeoutMs, reached)
}

const awaitWatermark = (
  rings: RingsShape,
  broadcast: RingInspector,
  slot: number,
  barrier: string,
  releaseWatermark: number,
  timeoutMs: number,
  reached: () => boolean
) =>
  Effect.gen(function*() {
    const passed = yield* rings.awaitProgress(broadcast.address, releaseWatermark, reached, timeoutMs).pipe(
      Effect.orDie
    )
    if (passed) return
    return yield* new BarrierTimeout({
      barrier,
      timeoutMs,
      notArrived: [],
      undrained: [{
        ring: broadcast.address.id,
        reader: slot,
        target: releaseWatermark,
        observed: broadcast.reader(slot).delivered
      }]
    })
  })

const BARRIER_ERROR_TAGS = [
  "BarrierTimeout",
  "BarrierModeMismatch",
  "BarrierNameReserved",
  "BarrierParticipantDied",
  "BarrierReleaseNotSent",
  "NotAMember",
  "UnknownGroup"
] as const

/** What a participant needs to enter barriers: its RPC client, its membership, the rings it writes, the broadcast ring it reads. */
export interface Participant {
  readonly rings: RingsShape
  readonly client: RpcClient
  readonly self: Member
  readonly writable: ReadonlyArray<RingInspector>
  /** This process's request ring. */
  readonly requests: RingInspector
  readonly broadcast: RingInspector
  /**
   * Aborted (with why) when a new coordinator takes over or this one is gone; then replaced by a
   * fresh one.
   */
  readonly takeover: () => AbortSignal
  /** Looks at the coordinator while a barrier waits for its release. */
  readonly watch: CoordinatorWatch
}

/**
 * A participant enters a barrier: its arrival, with the drain targets of the rings it writes
 * captured now, goes to the coordinator, whose deferred reply is the release; then the local
 * fence on the release watermark.
 */
const enterBarrier = (participant: Participant, name: string, options: BarrierOptions) =>
  Effect.zipRight(
    checkBarrier(name, options),
    Effect.flatMap(fenceTargets(participant.rings, participant.writable, options), (targets) => {
      const { broadcast, client, rings, self } = participant
      const arrive = arrival(self, name, options, targets)
      // The coordinator that holds this arrival may be replaced meanwhile, or be gone: the new
      // one never saw it. Either aborts the signal, which ends the wait for the reply (no racing
      // fibers); the 5 s past the timeout leave a live coordinator time to say BarrierTimeout.
      const released = participant.watch.during(client.call(Protocol.BarrierArriveMethod, arrive, {
        timeoutMs: arrive.timeoutMs + 5_000,
        signal: participant.takeover()
      })).pipe(
        Effect.mapError((e) =>
          e._tag === "RpcAbandoned"
            ? unavailable(`${e.reason} while barrier ${name} was in flight; enter it again`)
            : passThrough(BARRIER_ERROR_TAGS)(e)
        )
      )
      return Effect.flatMap(
        released,
        (r) =>
          Effect.as(awaitReleaseWatermark(rings, broadcast, self.slot, name, r.releaseWatermark, arrive.timeoutMs), r)
      )
    })
  )

/** One signal shared by every barrier call in flight (any number of them): no listener limit to warn about. */
export const takeoverSignal = () => {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}

/**
 * The client's calls, their failures narrowed to the coordinator's typed errors. Every one but a
 * barrier goes through `ask`: it waits for a head that is there or being taken over, and ends
 * `HeadUnavailable` once the head has been gone past its bound (HeadBoundCalls.ts); a barrier
 * ends within a look once its coordinator is gone (CoordinatorWatch.ts). The groups created and
 * joined are remembered (`created`, `joined`): a re-join restores them.
 */
export const clientShape = (
  participant: Participant,
  calls: HeadBoundCalls | undefined,
  created: Map<string, ReadonlyArray<number>>,
  joined: Set<string>
): CoordinatorShape => {
  const { client, requests, self } = participant
  // A broker's calls are its clients' (an admin change, a remote group member's): its error goes back to that
  // client, to whom "this process" would name the broker as if it were the client itself.
  const askedBy = self.role === "broker"
    ? `asked by broker process pid ${self.pid}, slot ${self.slot}, on its client's behalf`
    : `asked by this process, pid ${self.pid}, slot ${self.slot}`
  /**
   * `method` asked of the coordinator (`what` it is asked, for a head that is gone); `tags`: its
   * typed errors, passed through. A change says, if its head is lost, whether it may have been made.
   */
  const ask = <M extends AnyRpcMethod, T extends string>(
    method: M,
    payload: Payload<M>,
    what: string,
    tags: ReadonlyArray<T>
  ) => {
    const asked = () => `its coordinator ${what} (${askedBy})`
    const fate = Protocol.CHANGE_METHODS.has(method.tag)
      ? () => changeFate(requests, requests.writer().sequence)
      : undefined
    // Asked on a remote client's behalf, the call is bounded by that client's deadline too.
    const answered = Effect.flatMap(
      FiberRef.get(callerDeadline),
      (deadlineMs): Effect.Effect<Success<M>, Failure<M> | RpcCallError | HeadUnavailable> => {
        const bound = deadlineMs === Infinity ? {} : { deadlineMs }
        return calls === undefined
          ? client.call(method, payload, bound)
          : calls.during(asked, (headLost) => client.call(method, payload, { ...bound, signal: headLost }), fate)
      }
    )
    return answered.pipe(Effect.mapError((e) => passThrough([...tags, "HeadUnavailable"])(refusalAsAsked(e, asked))))
  }
  return {
    self,
    members: (group = GROUP_ALL) =>
      ask(Protocol.ListMembersMethod, { group }, `to list the members of group ${group}`, ["UnknownGroup"]),
    createGroup: (name, slots) =>
      ask(Protocol.CreateGroupMethod, { name, members: slots }, `to create process group ${name}`, []).pipe(
        Effect.tap(() => Effect.sync(() => created.set(name, slots))),
        Effect.asVoid
      ),
    joinGroup: (name) =>
      ask(
        Protocol.JoinGroupMethod,
        { name, slot: self.slot, occurrence: self.occurrence },
        `to add this process to process group ${name}`,
        []
      ).pipe(
        Effect.tap(() => Effect.sync(() => joined.add(name))),
        Effect.asVoid
      ),
    barrier: (name, barrierOptions) => enterBarrier(participant, name, barrierOptions),
    createTopic: (spec) =>
      // Checked before it is sent: a spec that cannot be encoded is the caller's mistake, said as such.
      Effect.flatMap(checkTopicSpec(spec), (checked) =>
        ask(Protocol.CreateTopicMethod, checked, `to create topic ${checked.name}`, [
          "TopicExists",
          "DirectoryFull",
          "RegionFull",
          "ReplicationUnavailable",
          "InvalidTopicSpec",
          "NotDirectoryWriter"
        ])),
    deleteTopic: (name) =>
      Effect.flatMap(
        checkTopicName(name),
        (checked) =>
          ask(Protocol.DeleteTopicMethod, { name: checked }, `to delete topic ${checked}`, [
            "TopicNotFound",
            "TopicNotDeletable",
            "NotDirectoryWriter"
          ]).pipe(Effect.asVoid)
      ),
    trimTopic: (name, target) =>
      Effect.flatMap(
        checkTrim(name, target),
        (checked) =>
          ask(Protocol.TrimTopicMethod, checked, `to trim topic ${checked.name}`, [
            "TopicNotFound",
            "TopicNotTrimmable",
            "NotDirectoryWriter"
          ])
      ),
    purgeTopic: (name) =>
      Effect.flatMap(
        checkTopicName(name),
        (checked) =>
          ask(Protocol.PurgeTopicMethod, { name: checked }, `to purge topic ${checked}`, [
            "TopicNotFound",
            "TopicNotTrimmable",
            "NotDirectoryWriter"
          ])
      ),
    createObject: (spec) => {
      const problem = objectNameProblem(spec.name)
      if (problem !== undefined) {
        return Effect.fail(new InvalidObjectName({ name: spec.name, reason: problem }))
      }
      return ask(Protocol.CreateObjectMethod, spec, `to create ${spec.kind} ${JSON.stringify(spec.name)}`, [
        "NameTaken",
        "DirectoryFull",
        "RegionFull",
        "InvalidObjectName",
        "NotDirectoryWriter"
      ])
    },
    removeObject: (target) =>
      ask(Protocol.RemoveObjectMethod, target, `to remove ${target.kind} ${JSON.stringify(target.name)}`, [
        "ObjectNotFound",
        "NotDirectoryWriter"
      ]).pipe(Effect.asVoid)
  }
}
