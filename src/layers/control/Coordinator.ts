/**
 * The live coordinator layers.
 *
 * `layerServer` runs in the head: it serves every process slot's request ring, answers on
 * the broadcast ring (one writer), keeps membership and groups, detects deaths (pid gone or
 * heartbeat stale), reaps dead readers, and runs the barrier engine.
 * `layer` is every process's client (the head's too): it joins over RPC, leaves on close,
 * and enters barriers with drain targets captured from the rings this process writes.
 * The fake (CoordinatorMemory.ts) runs the same barrier engine and membership without RPC.
 *
 * A barrier from arrival to release: `enterBarrier` (the participant: `arrival` with its
 * drain targets) → the RPC call → `deferArrival` (the coordinator) → the engine's `enter` …
 * `release` (BarrierEngine.ts) → the deferred reply → `awaitReleaseWatermark`.
 */
import { Config, Data, Deferred, Effect, FiberHandle, Layer, Option, Schedule, type Scope, Stream } from "effect"
import { setMaxListeners } from "node:events"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import {
  type BarrierArrive,
  type BarrierError,
  type BarrierOptions,
  type BarrierReleased,
  BarrierReleaseNotSent,
  BarrierTimeout,
  Coordinator,
  CoordinatorUnavailable,
  type CoordinatorShape,
  GROUP_ALL,
  type Member
} from "../../services/control/Coordinator.js"
import { ProcessSlot } from "../../services/region/ProcessSlot.js"
import { type RingInspector, Rings, type RingsShape } from "../../services/control/Rings.js"
import { handle, Rpc, type RpcClient, type RpcHandler, type RpcNotice, type RpcRequest, type RpcServer } from "../../services/control/Rpc.js"
import { Sequencer } from "../../services/log/Sequencer.js"
import { Topics } from "../../services/log/Topics.js"
import { type BarrierEngine, make as makeEngine } from "./BarrierEngine.js"
import { arrival, controlRings, drainTargetsOf, participantRings, ringProbe } from "./BarrierStreams.js"
import {
  BarrierArriveMethod,
  BarrierReleaseNotice,
  CoordinatorTakeoverNotice,
  MemberDroppedNotice,
  CreateGroupMethod,
  CreateTopicMethod,
  JoinGroupMethod,
  JoinMethod,
  LeaveMethod,
  ListMembersMethod
} from "./CoordinatorProtocol.js"
import { makeMembership } from "./Membership.js"
import { READER_LIVENESS_MS } from "./RingFrames.js"
import { everyTick } from "../region/Cadence.js"
import { isPidAlive } from "../region/ProcessInfo.js"
import { isOwnerAlive, isSlotLive, readSlot } from "../region/ProcessSlot.js"
import { RegionLayout } from "../RegionLayout.js"

export interface ServerOptions {
  /** A participant dying mid-barrier: drop it and release the others, or fail the barrier. */
  readonly onParticipantDeath?: "drop" | "fail"
  /** A member whose heartbeat is older than this is dead. */
  readonly heartbeatStaleMs?: number
  /**
   * How often membership is checked for deaths while no barrier is open (default 1 s: within
   * the 2 s stale bound, and nothing waits on a member meanwhile).
   */
  readonly checkEveryMs?: number
  /** How often while a barrier is open, whose participants wait on the others (default 100 ms, or `checkEveryMs` if lower). */
  readonly checkWhileWaitingMs?: number
  /** Log every recorded target and observed progress value (`CXLOG_DEBUG_BARRIERS`). */
  readonly debugBarriers?: boolean
}

const DEFAULT_CHECK_EVERY_MS = 1_000
const DEFAULT_CHECK_WHILE_WAITING_MS = 100

export const makeServer = (options: ServerOptions = {}) =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const layout = yield* RegionLayout
    const rings = yield* Rings
    const rpc = yield* Rpc
    const topics = yield* Topics
    // In a head, the sequencer's lease is the coordinator's too: its epoch says whether this is
    // a takeover, and a head that lost it (fenced) must write nothing.
    const lease = yield* Effect.serviceOption(Sequencer)
    const epoch = Option.match(lease, { onNone: () => 0, onSome: (s) => s.epoch })
    const fenced = Option.match(lease, { onNone: () => () => false, onSome: (s) => () => !s.holdsLease() })
    const staleMs = options.heartbeatStaleMs ?? 2_000
    const membership = makeMembership()
    const { members, groupMembers } = membership
    const probe = yield* ringProbe(rings, layout)

    // The engine releases through the RPC server's reply ring, and the server serves the
    // engine: the server is handed over once it exists (a release waits for it until then;
    // after, a release notifies straight away, with no wait that would suspend its handler).
    const broadcastWriter = yield* Deferred.make<RpcServer>()
    let broadcast: RpcServer | undefined
    const engine: BarrierEngine = yield* makeEngine({
      probe,
      groupMembers,
      isPidAlive,
      // Committed at once when the reply ring's writer can (the release then runs as plain code in the last arrival's handler).
      // A ring that stays full past the writer's bound fails that round, typed, for its participants; the coordinator goes on.
      release: (barrier, round) =>
        broadcast?.notifyNow(BarrierReleaseNotice, { barrier, round }) ??
          (broadcast === undefined ? Deferred.await(broadcastWriter) : Effect.succeed(broadcast)).pipe(
            Effect.flatMap((server) => server.notify(BarrierReleaseNotice, { barrier, round })),
            Effect.mapError((e) => new BarrierReleaseNotSent({ barrier, round, ring: layout.broadcastRing.id, reason: e.message }))
          ),
      onParticipantDeath: options.onParticipantDeath ?? "drop",
      debug: options.debugBarriers ?? false
    })

    const scope = yield* Effect.scope
    const replies = yield* rings.inspect(layout.broadcastRing).pipe(Effect.orDie)
    /**
     * Frees reader `slot` of the reply ring while process `pid` still holds it: a process that is
     * stopped but alive (SIGSTOP, a frozen VM) never reads again, and its slot would fill the ring
     * and stall every reply. Resumed, its reader fails with `ReaderReaped` (see Rpc.ts).
     * Only a reader whose own line is stale too: a running reader writes its line's heartbeat as
     * it attaches, reads, and every READER_LIVENESS_MS while it waits (the bound must exceed
     * that). A process continued after its drop attaches again before its process-table
     * heartbeat is fresh, and that new reader must not be freed on the strength of the old one.
     */
    const readerStaleMs = Math.max(staleMs, 1.5 * READER_LIVENESS_MS)
    const freeReplySlot = (slot: number, pid: number) =>
      Effect.gen(function*() {
        const reader = replies.reader(slot)
        if (reader.state !== "attached" || reader.pid !== pid || Date.now() - reader.heartbeatMs <= readerStaleMs) return
        // Only the reader judged stale: one that attached since (the process continued) keeps the slot.
        if (yield* rings.reap(layout.broadcastRing, slot, reader.occurrence).pipe(Effect.orDie)) {
          yield* Effect.logWarning(`coordinator: freed reply-ring reader slot ${slot} of pid ${pid}, alive but not running`)
        }
      })

    /** `fromTick`: found by the liveness check, which must not wait on a release (it frees a stopped member's reply slot next). */
    const drop = (slot: number, reason: string, fromTick = false) =>
      Effect.gen(function*() {
        if (!membership.remove(slot)) return
        yield* Effect.logInfo(`coordinator: slot ${slot} left the membership: ${reason}`)
        for (const address of controlRings(layout)) yield* rings.reapDead(address).pipe(Effect.orDie)
        // Forked from the tick: a release that waits for room on the reply ring must not hold up
        // the liveness check (which then could not drop the reader that holds the ring back).
        yield* fromTick ? Effect.asVoid(Effect.forkIn(engine.memberGone(slot, reason), scope)) : engine.memberGone(slot, reason)
      })

    // A takeover starts from the process table: every live member of the old coordinator
    // (heads excepted: the head's own client joins, a standby that lost the race is leaving).
    if (epoch > 1) {
      const now = Date.now()
      for (let s = 0; s < layout.config.control.maxProcesses; s++) {
        const info = readSlot(region, layout.processTable, s)
        if (info.role !== "head" && isSlotLive(info, now, staleMs)) {
          members.set(s, { slot: s, pid: info.pid, occurrence: info.occurrence, role: info.role })
        }
      }
    }

    const handlers = [
      handle(JoinMethod, (join) =>
        Effect.gen(function*() {
          const info = readSlot(region, layout.processTable, join.slot)
          if (info.pid !== join.pid || info.occurrence !== join.occurrence) {
            yield* Effect.logWarning(`coordinator: join of slot ${join.slot} does not match the process table (pid ${info.pid}, occurrence ${info.occurrence})`)
          }
          const previous = members.get(join.slot)
          if (previous !== undefined && previous.occurrence !== join.occurrence) yield* drop(join.slot, "replaced by a new occurrence")
          members.set(join.slot, join)
          return [...members.values()]
        })),
      handle(LeaveMethod, (leave) =>
        Effect.as(members.get(leave.slot)?.occurrence === leave.occurrence ? drop(leave.slot, "left") : Effect.void, null)),
      handle(ListMembersMethod, ({ group }) => membership.list(group)),
      handle(CreateGroupMethod, ({ name, members: slots }) =>
        Effect.sync(() => {
          membership.createGroup(name, slots)
          return null
        })),
      handle(JoinGroupMethod, ({ name, slot }) =>
        Effect.sync(() => {
          membership.joinGroup(name, slot)
          return null
        })),
      handle(BarrierArriveMethod, (arrive, request) => deferArrival(engine, arrive, request)),
      handle(CreateTopicMethod, (spec) => topics.create(spec))
    ]

    const server = yield* rpc.serve(
      {
        requests: Array.from({ length: layout.config.control.maxProcesses }, (_, s) => ({ client: s, ring: layout.requestRing(s) })),
        replies: layout.broadcastRing,
        // Holding the lease, the broadcast ring is ours even if a fenced head still runs.
        takeOver: Option.isSome(lease)
      },
      handlers.map((h) => fence(h, fenced))
    )
    broadcast = server
    yield* Deferred.succeed(broadcastWriter, server)
    // Forked, so the liveness check starts at once (and frees the slot of an old head stopped
    // with the ring full); bounded (RingFull when no room comes): a member that misses it finds
    // out by its calls failing.
    if (epoch > 1) {
      yield* server.notify(CoordinatorTakeoverNotice, { epoch }).pipe(
        Effect.catchAll((e) => Effect.logError(`coordinator: the takeover notice was not sent: ${e.message}`)),
        Effect.forkScoped
      )
    }

    /**
     * Members dropped for a stale heartbeat whose process still runs, until they are told
     * (`MemberDroppedNotice`, tried each tick while the reply ring has no room), are members
     * again, or their process is gone.
     */
    const untold = new Map<number, { readonly occurrence: number; readonly reason: string }>()
    const tellDropped = () => {
      for (const [slot, drop] of untold) {
        const info = readSlot(region, layout.processTable, slot)
        const gone = info.occurrence !== drop.occurrence || !isOwnerAlive(info)
        const back = members.get(slot)?.occurrence === drop.occurrence
        if (gone || back || server.notifyNow(MemberDroppedNotice, { slot, occurrence: drop.occurrence, reason: drop.reason }, slot) !== undefined) {
          untold.delete(slot)
        }
      }
    }

    const idleCheckMs = options.checkEveryMs ?? DEFAULT_CHECK_EVERY_MS
    const waitingCheckMs = Math.min(idleCheckMs, options.checkWhileWaitingMs ?? DEFAULT_CHECK_WHILE_WAITING_MS)
    yield* everyTick(() => (engine.openRounds() > 0 ? waitingCheckMs : idleCheckMs), Effect.gen(function*() {
      const now = Date.now()
      for (const member of [...members.values()]) {
        const info = readSlot(region, layout.processTable, member.slot)
        if (info.occurrence !== member.occurrence) yield* drop(member.slot, `slot reclaimed (occurrence ${info.occurrence})`, true)
        else if (!isOwnerAlive(info)) yield* drop(member.slot, `pid ${member.pid} is gone`, true)
        else if (!isSlotLive(info, now, staleMs)) {
          const reason = `heartbeat stale for ${now - info.heartbeatMs} ms`
          yield* drop(member.slot, reason, true)
          untold.set(member.slot, { occurrence: member.occurrence, reason })
        }
      }
      tellDropped()
      // Stale processes that are no members hold reply-ring reader slots: a member just dropped
      // above, one dropped before its reader's own line went stale, an old head stopped while
      // this one took over.
      for (let s = 0; s < layout.config.control.maxProcesses; s++) {
        if (members.has(s)) continue
        const info = readSlot(region, layout.processTable, s)
        if (info.pid !== 0 && info.pid !== process.pid && now - info.heartbeatMs > staleMs && isPidAlive(info.pid)) {
          yield* freeReplySlot(s, info.pid)
        }
      }
    })).pipe(Effect.forkScoped)

    return { members: () => [...members.values()], openBarriers: engine.openRounds }
  })

/** A handler that runs only while this head holds the lease (a fenced head's handlers die; their replies are fenced by the ring). */
const fence = <R>(h: RpcHandler<R>, fenced: () => boolean): RpcHandler<R> => ({
  method: h.method,
  // Checked as the request is served, without wrapping: a handler's exit (most requests) stays an exit the server answers at once.
  run: (payload, request) => (fenced() ? Effect.dieMessage("this head was fenced: a newer head holds the lease") : h.run(payload, request))
})

export class CoordinatorServer extends Effect.Tag("cxlog/CoordinatorServer")<
  CoordinatorServer,
  { readonly members: () => ReadonlyArray<Member>; readonly openBarriers: () => number }
>() {}

export const layerServer = (options: ServerOptions = {}) => Layer.scoped(CoordinatorServer, makeServer(options))

export const serverOptionsConfig: Config.Config<ServerOptions> = Config.all({
  onParticipantDeath: Config.literal("drop", "fail")("CXLOG_BARRIER_ON_DEATH").pipe(Config.withDefault("drop" as const)),
  heartbeatStaleMs: Config.integer("CXLOG_HEARTBEAT_STALE_MS").pipe(Config.withDefault(2_000)),
  debugBarriers: Config.boolean("CXLOG_DEBUG_BARRIERS").pipe(Config.withDefault(false))
})

export const layerServerConfig = Layer.unwrapEffect(Effect.map(serverOptionsConfig, layerServer))

/**
 * The coordinator's side of `BarrierArrive`: the reply is deferred (the server goes on
 * reading requests) and answered by the engine when it releases or fails the round — no fiber
 * waits per arrival.
 */
const deferArrival = (engine: BarrierEngine, arrive: BarrierArrive, request: RpcRequest<BarrierReleased, BarrierError>) => {
  const reply = request.defer()
  const rest = engine.enter(arrive, reply.unsafeComplete)
  // An exit while nothing is left to run: the server goes on with no effect run for this request.
  return rest === undefined ? Effect.succeed(reply) : Effect.as(rest, reply)
}

const unavailable = (reason: string) => new CoordinatorUnavailable({ reason })

/** Typed coordinator errors pass through; transport failures become `CoordinatorUnavailable`. */
const passThrough = <T extends string>(tags: ReadonlyArray<T>) => <E extends { readonly _tag: string; readonly message: string }>(e: E) =>
  (tags as ReadonlyArray<string>).includes(e._tag) ? (e as Extract<E, { readonly _tag: T }>) : unavailable(e.message)

/**
 * Local fence: returns once this process's own reader of the broadcast ring has delivered
 * past the release watermark. The reply comes after the release in that ring and the reader
 * publishes `delivered` before handing a frame on, so this normally holds at once; otherwise
 * the reader crossing the watermark wakes the wait (`awaitProgress`). Bounded by the barrier's
 * timeout: past it, `BarrierTimeout` names this reader and how far it got.
 */
const awaitReleaseWatermark = (rings: RingsShape, broadcast: RingInspector, slot: number, barrier: string, releaseWatermark: number, timeoutMs: number) => {
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
    const passed = yield* rings.awaitProgress(broadcast.address, releaseWatermark, reached, timeoutMs).pipe(Effect.orDie)
    if (passed) return
    return yield* new BarrierTimeout({
      barrier,
      timeoutMs,
      notArrived: [],
      undrained: [{ ring: broadcast.address.id, reader: slot, target: releaseWatermark, observed: broadcast.reader(slot).delivered }]
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

export interface ClientOptions {
  /** How long joining waits for the coordinator. */
  readonly joinTimeoutMs?: number
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

/** What a participant needs to enter barriers: its RPC client, its membership, the rings it writes, the broadcast ring it reads. */
interface Participant {
  readonly rings: RingsShape
  readonly client: RpcClient
  readonly self: Member
  readonly writable: ReadonlyArray<RingInspector>
  readonly broadcast: RingInspector
  /** Aborted (reason `epoch N`) when a new coordinator takes over; then replaced by a fresh one. */
  readonly takeover: () => AbortSignal
}

/**
 * A participant enters a barrier: its arrival, with the drain targets of the rings it writes
 * captured now, goes to the coordinator, whose deferred reply is the release; then the local
 * fence on the release watermark.
 */
const enterBarrier = (participant: Participant, name: string, options: BarrierOptions) =>
  Effect.suspend(() => {
    const { broadcast, client, rings, self, writable } = participant
    const arrive = arrival(self, name, options, drainTargetsOf(writable))
    // The coordinator that holds this arrival may be replaced meanwhile: the new one never saw
    // it. A takeover aborts the signal, which ends the wait for the reply (no racing fibers).
    const released = client.call(BarrierArriveMethod, arrive, { timeoutMs: arrive.timeoutMs + 5_000, signal: participant.takeover() }).pipe(
      Effect.mapError((e) =>
        e._tag === "RpcAbandoned"
          ? unavailable(`${e.reason} while barrier ${name} was in flight; enter it again`)
          : passThrough(BARRIER_ERROR_TAGS)(e)
      )
    )
    return Effect.flatMap(released, (r) => Effect.as(awaitReleaseWatermark(rings, broadcast, self.slot, name, r.releaseWatermark, arrive.timeoutMs), r))
  })

export const makeClient = (options: ClientOptions = {}): Effect.Effect<
  CoordinatorShape,
  CoordinatorUnavailable,
  CxlMemory | RegionLayout | Rings | Rpc | ProcessSlot | Scope.Scope
> =>
  Effect.gen(function*() {
    const layout = yield* RegionLayout
    const rings = yield* Rings
    const rpc = yield* Rpc
    const slot = yield* ProcessSlot
    // The coordinator frees a stopped member's reply slot as it drops it: resumed, the member
    // attaches again and joins again (`rejoin`, defined below, run only after this client exists).
    const rejoinAfterDrop: Effect.Effect<void> = Effect.suspend(() => restart("this process was dropped for not running"))
    // One re-join at a time, in a fiber of its own: a newer reason (another takeover) replaces a
    // re-join still retrying, and the takeover notices go on being handled meanwhile.
    const rejoining = yield* FiberHandle.make<void, never>()
    const client = yield* rpc.client({
      client: slot.slot,
      requests: layout.requestRing(slot.slot),
      replies: layout.broadcastRing,
      replySlot: slot.slot,
      onReattach: rejoinAfterDrop,
      ...(options.callTimeoutMs === undefined ? {} : { timeoutMs: options.callTimeoutMs })
    }).pipe(Effect.mapError((e) => unavailable(e.message)))
    const broadcast = yield* rings.inspect(layout.broadcastRing).pipe(Effect.orDie)
    const writable = yield* participantRings(rings, layout)
    const self: Member = { slot: slot.slot, pid: slot.pid, occurrence: slot.occurrence, role: slot.role }

    const joinOnce = client.call(JoinMethod, self, { timeoutMs: 1_000 })
    const join = joinOnce.pipe(
      Effect.retry({ times: Math.ceil((options.joinTimeoutMs ?? 10_000) / 1_000) }),
      Effect.mapError((e) => unavailable(`join failed: ${e.message}`))
    )
    yield* Effect.acquireRelease(
      join,
      () => client.call(LeaveMethod, { slot: self.slot, occurrence: self.occurrence }, { timeoutMs: 1_000 }).pipe(Effect.ignore)
    )
    // First on close: no re-join runs on while this process leaves and its client closes.
    yield* Effect.addFinalizer(() => FiberHandle.clear(rejoining))

    // A new coordinator (a standby head took over) knows the live members from the process
    // table but not the groups: re-join, re-create and re-join them, and fail barriers in flight.
    const created = new Map<string, ReadonlyArray<number>>()
    const joined = new Set<string>()
    /** One signal shared by every barrier call in flight (any number of them): no listener limit to warn about. */
    const takeoverSignal = () => {
      const controller = new AbortController()
      setMaxListeners(0, controller.signal)
      return controller
    }
    let takeover = takeoverSignal()
    // One join call per attempt: `rejoin`'s schedule does the retrying (not `join`'s own retries inside each attempt).
    const rejoinOnce = Effect.gen(function*() {
      yield* joinOnce
      for (const [name, slots] of created) yield* client.call(CreateGroupMethod, { name, members: slots })
      for (const name of joined) yield* client.call(JoinGroupMethod, { name, slot: self.slot, occurrence: self.occurrence })
    })
    const rejoinTimeoutMs = options.rejoinTimeoutMs ?? DEFAULT_REJOIN_TIMEOUT_MS
    /**
     * Joins again and re-creates and re-joins the groups, retried with backoff for up to
     * `rejoinTimeoutMs` (the coordinator may be failing over, or not serving yet): one failed
     * attempt must not leave this process out of the membership for good. Giving up is logged
     * as `CoordinatorRejoinFailed`.
     */
    const rejoin = (after: string) =>
      Effect.suspend(() => {
        const started = Date.now()
        let attempts = 0
        return rejoinOnce.pipe(
          Effect.tapError((e) =>
            Effect.logWarning(`coordinator: re-joining after ${after} failed (attempt ${++attempts}): ${e.message}`)
          ),
          Effect.retry(rejoinBackoff.pipe(Schedule.upTo(rejoinTimeoutMs))),
          Effect.catchAll((e) =>
            Effect.logError(new CoordinatorRejoinFailed({ slot: self.slot, after, attempts, waitedMs: Date.now() - started, last: e.message }).message)
          )
        )
      })
    /** Fails the barriers in flight (`why`: what happened, as a clause) and re-joins in the background (replacing a re-join still retrying). */
    const restart = (why: string) =>
      Effect.zipRight(
        Effect.logInfo(`coordinator: ${why}; re-joining`),
        Effect.suspend(() => {
          const current = takeover
          takeover = takeoverSignal()
          current.abort(why)
          return Effect.asVoid(FiberHandle.run(rejoining, rejoin(why)))
        })
      )
    /** Restarts on each notice of a kind that `why` says concerns this process. */
    const restartOn = <A, I>(notice: RpcNotice<string, A, I>, why: (value: A) => string | undefined) =>
      Effect.flatMap(client.notices(notice), (notices) =>
        notices.pipe(
          Stream.runForEach((value) => {
            const reason = why(value)
            return reason === undefined ? Effect.void : restart(reason)
          }),
          Effect.forkScoped
        ))
    yield* restartOn(CoordinatorTakeoverNotice, ({ epoch }) => `the coordinator failed over (epoch ${epoch})`)
    // Dropped while running (a stop or a blocked loop outlasted the stale bound) with the reply
    // reader still attached: nothing but this notice says so.
    yield* restartOn(MemberDroppedNotice, (drop) =>
      drop.slot === self.slot && drop.occurrence === self.occurrence ? `this process was dropped from the membership (${drop.reason})` : undefined)

    return {
      self,
      members: (group = GROUP_ALL) =>
        client.call(ListMembersMethod, { group }).pipe(Effect.mapError(passThrough(["UnknownGroup"]))),
      createGroup: (name, slots) =>
        client.call(CreateGroupMethod, { name, members: slots }).pipe(
          Effect.tap(() => Effect.sync(() => created.set(name, slots))),
          Effect.asVoid,
          Effect.mapError((e) => unavailable(e.message))
        ),
      joinGroup: (name) =>
        client.call(JoinGroupMethod, { name, slot: self.slot, occurrence: self.occurrence }).pipe(
          Effect.tap(() => Effect.sync(() => joined.add(name))),
          Effect.asVoid,
          Effect.mapError((e) => unavailable(e.message))
        ),
      barrier: (name, barrierOptions) => enterBarrier({ rings, client, self, writable, broadcast, takeover: () => takeover.signal }, name, barrierOptions),
      createTopic: (spec) =>
        client.call(CreateTopicMethod, spec).pipe(
          Effect.mapError(passThrough(["TopicExists", "TopicTableFull", "ReplicationUnavailable", "InvalidTopicSpec"]))
        )
    } satisfies CoordinatorShape
  })

export const layer = (options: ClientOptions = {}) => Layer.scoped(Coordinator, makeClient(options))
