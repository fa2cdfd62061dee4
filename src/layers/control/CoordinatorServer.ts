/**
 * The coordinator, in the head: it serves every process slot's request ring, answers on the
 * broadcast ring (one writer), keeps membership and groups, detects deaths (pid gone or
 * heartbeat stale), reaps dead readers, and runs the barrier engine.
 */
import { Config, Deferred, Effect, Layer, Option, type Scope } from "effect"
import { COORDINATOR_SETTINGS } from "../../services/control/ControlSettings.js"
import {
  type BarrierArrive,
  type BarrierError,
  type BarrierReleased,
  BarrierReleaseNotSent
} from "../../services/control/Coordinator.js"
import { CoordinatorServer, type CoordinatorServerShape } from "../../services/control/CoordinatorServer.js"
import { type RingInspector, Rings, type RingsShape } from "../../services/control/Rings.js"
import { handle, Rpc, type RpcHandler, type RpcRequest, type RpcServer } from "../../services/control/Rpc.js"
import { Sequencer } from "../../services/log/Sequencer.js"
import { Topics, type TopicsShape, withinRegion } from "../../services/log/Topics.js"
import { CxlMemory, type CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { DirectoryWriter } from "../../services/region/Directory.js"
import { type Layout, RegionLayout } from "../../services/RegionLayout.js"
import { settingsConfig } from "../../Settings.js"
import { everyTick } from "../region/Cadence.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import { isPidAlive, isProcessAlive } from "../region/ProcessInfo.js"
import { isOwnerAlive, isSlotLive, readSlot } from "../region/ProcessSlot.js"
import { type BarrierEngine, make as makeEngine } from "./BarrierEngine.js"
import { type StreamProbe, withStreamRings } from "./BarrierStreamRings.js"
import { controlRings, ringProbe } from "./BarrierStreams.js"
import { type ObjectChanges, objectChanges } from "./CoordinatorObjects.js"
import {
  BarrierArriveMethod,
  BarrierReleaseNotice,
  CHANGE_METHODS,
  CoordinatorTakeoverNotice,
  CreateGroupMethod,
  CreateObjectMethod,
  CreateTopicMethod,
  DeleteTopicMethod,
  JoinGroupMethod,
  JoinMethod,
  LeaveMethod,
  ListMembersMethod,
  MemberDroppedNotice,
  PurgeTopicMethod,
  RemoveObjectMethod,
  TrimTopicMethod
} from "./CoordinatorProtocol.js"
import { type LapseGuard, makeLapseGuard } from "./LapseGuard.js"
import { makeMembership, type Membership } from "./Membership.js"
import { READER_LIVENESS_MS } from "./RingFrames.js"

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

/** The coordinator's state, for the handlers and the liveness check. */
interface ServerState {
  readonly region: CxlMemoryShape
  readonly layout: Layout
  readonly rings: RingsShape
  readonly membership: Membership
  readonly engine: BarrierEngine
  /** Puts an arrival's targets on stream rings (channels) under the engine's probe's ids. */
  readonly admit: StreamProbe["admit"]
  readonly staleMs: number
  /** Where the liveness check forks what must not hold it up. */
  readonly scope: Scope.Scope
  /** The reply (broadcast) ring's lines. */
  readonly replies: RingInspector
  /**
   * Members dropped for a stale heartbeat whose process still runs, until they are told
   * (`MemberDroppedNotice`, tried each tick while the reply ring has no room), are members
   * again, or their process is gone.
   */
  readonly untold: Map<number, { readonly occurrence: number; readonly reason: string }>
}

/**
 * The engine releases through the RPC server's reply ring, and the server serves the engine:
 * the server is handed over once it exists (a release waits for it until then; after, a
 * release notifies straight away, with no wait that would suspend its handler).
 */
interface Broadcast {
  server: RpcServer | undefined
  readonly ready: Deferred.Deferred<RpcServer>
}

/**
 * Hands a release to the broadcast ring: committed at once when the reply ring's writer can (the
 * release then runs as plain code in the last arrival's handler). A ring that stays full past the
 * writer's bound fails that round, typed, for its participants; the coordinator goes on.
 */
const releaseThrough = (broadcast: Broadcast, layout: Layout) => (barrier: string, round: number) =>
  broadcast.server?.notifyNow(BarrierReleaseNotice, { barrier, round }) ??
    (broadcast.server === undefined ? Deferred.await(broadcast.ready) : Effect.succeed(broadcast.server)).pipe(
      Effect.flatMap((server) => server.notify(BarrierReleaseNotice, { barrier, round })),
      Effect.mapError((e) =>
        new BarrierReleaseNotSent({ barrier, round, ring: layout.broadcastRing.id, reason: e.message })
      )
    )

/**
 * Frees reader `slot` of the reply ring while process `pid` still holds it: a process that is
 * stopped but alive (SIGSTOP, a frozen VM) never reads again, and its slot would fill the ring
 * and stall every reply. Resumed, its reader fails with `ReaderReaped` (see RpcClient.ts).
 * Only a reader whose own line is stale too: a running reader writes its line's heartbeat as
 * it attaches, reads, and every READER_LIVENESS_MS while it waits (the bound must exceed
 * that). A process continued after its drop attaches again before its process-table
 * heartbeat is fresh, and that new reader must not be freed on the strength of the old one.
 */
const freeReplySlot = (s: ServerState, slot: number, pid: number) =>
  Effect.gen(function*() {
    const readerStaleMs = Math.max(s.staleMs, 1.5 * READER_LIVENESS_MS)
    const reader = s.replies.reader(slot)
    if (reader.state !== "attached" || reader.pid !== pid || Date.now() - reader.heartbeatMs <= readerStaleMs) return
    // Only the reader judged stale: one that attached since (the process continued) keeps the slot.
    if (yield* s.rings.reap(s.layout.broadcastRing, slot, reader.occurrence).pipe(Effect.orDie)) {
      yield* Effect.logWarning(`coordinator: freed reply-ring reader slot ${slot} of pid ${pid}, alive but not running`)
    }
  })

/** `fromTick`: found by the liveness check, which must not wait on a release (it frees a stopped member's reply slot next). */
const drop = (s: ServerState, slot: number, reason: string, fromTick = false) =>
  Effect.gen(function*() {
    if (!s.membership.remove(slot)) return
    yield* Effect.logInfo(`coordinator: slot ${slot} left the membership: ${reason}`)
    for (const address of controlRings(s.layout)) yield* s.rings.reapDead(address).pipe(Effect.orDie)
    // Forked from the tick: a release that waits for room on the reply ring must not hold up
    // the liveness check (which then could not drop the reader that holds the ring back).
    yield* fromTick
      ? Effect.asVoid(Effect.forkIn(s.engine.memberGone(slot, reason), s.scope))
      : s.engine.memberGone(slot, reason)
  })

/**
 * A takeover starts from the process table: every live member of the old coordinator (heads
 * excepted: the head's own client joins, a standby that lost the race is leaving).
 */
const adoptLiveMembers = (s: ServerState): void => {
  const now = Date.now()
  for (let slot = 0; slot < s.layout.config.control.maxProcesses; slot++) {
    const info = readSlot(s.region, s.layout.processTable, slot)
    if (info.role !== "head" && isSlotLive(info, now, s.staleMs)) {
      s.membership.members.set(slot, { slot, pid: info.pid, occurrence: info.occurrence, role: info.role })
    }
  }
}

/**
 * The coordinator's side of `BarrierArrive`: the reply is deferred (the server goes on
 * reading requests) and answered by the engine when it releases or fails the round — no fiber
 * waits per arrival.
 */
const deferArrival = (
  engine: BarrierEngine,
  arrive: BarrierArrive,
  request: RpcRequest<BarrierReleased, BarrierError>
) => {
  const reply = request.defer()
  const rest = engine.enter(arrive, reply.unsafeComplete)
  // An exit while nothing is left to run: the server goes on with no effect run for this request.
  return rest === undefined ? Effect.succeed(reply) : Effect.as(rest, reply)
}

/** An arrival naming stream rings (channels) has them inspected first; any other enters as it is. */
const arrivalOf = (s: ServerState, arrive: BarrierArrive, request: RpcRequest<BarrierReleased, BarrierError>) =>
  arrive.drainTargets.some((t) => t.stream !== undefined)
    ? Effect.flatMap(s.admit(arrive), (admitted) => deferArrival(s.engine, admitted, request))
    : deferArrival(s.engine, arrive, request)

const handlers = (s: ServerState, topics: TopicsShape, objects: ObjectChanges) => {
  const { members } = s.membership
  return [
    handle(JoinMethod, (join) =>
      Effect.gen(function*() {
        const info = readSlot(s.region, s.layout.processTable, join.slot)
        if (info.pid !== join.pid || info.occurrence !== join.occurrence) {
          yield* Effect.logWarning(
            `coordinator: join of slot ${join.slot} does not match the process table (pid ${info.pid}, occurrence ${info.occurrence})`
          )
        }
        const previous = members.get(join.slot)
        if (previous !== undefined && previous.occurrence !== join.occurrence) {
          yield* drop(s, join.slot, "replaced by a new occurrence")
        }
        members.set(join.slot, join)
        return [...members.values()]
      })),
    handle(
      LeaveMethod,
      (leave) =>
        Effect.as(
          members.get(leave.slot)?.occurrence === leave.occurrence ? drop(s, leave.slot, "left") : Effect.void,
          null
        )
    ),
    handle(ListMembersMethod, ({ group }) => s.membership.list(group)),
    handle(CreateGroupMethod, ({ name, members: slots }) =>
      Effect.sync(() => {
        s.membership.createGroup(name, slots)
        return null
      })),
    handle(JoinGroupMethod, ({ name, slot }) =>
      Effect.sync(() => {
        s.membership.joinGroup(name, slot)
        return null
      })),
    handle(BarrierArriveMethod, (arrive, request) => arrivalOf(s, arrive, request)),
    handle(CreateTopicMethod, (spec) => withinRegion(topics.create(spec))),
    handle(DeleteTopicMethod, ({ name }) => Effect.as(withinRegion(topics.delete(name)), null)),
    handle(TrimTopicMethod, ({ name, target }) => withinRegion(topics.trim(name, target))),
    handle(PurgeTopicMethod, ({ name }) => withinRegion(topics.purge(name))),
    handle(CreateObjectMethod, objects.create),
    handle(RemoveObjectMethod, (target) => Effect.as(objects.remove(target), null))
  ]
}

/** Object changes through this head's directory writer (a coordinator without one, as in tests, refuses them). */
const serverObjects = (region: CxlMemoryShape, layout: Layout) =>
  Effect.map(Effect.serviceOption(DirectoryWriter), (writer) => {
    const table = new DirectoryTable(region, layout.directory)
    return objectChanges(
      Option.isNone(writer)
        ? undefined
        : { region, writer: writer.value, lookup: (kind, name) => table.lookup(kind, name) }
    )
  })

/**
 * A handler that runs only while this head holds the lease (a fenced head's handlers die; their
 * replies are fenced by the ring); a change, only if `lapses` does not refuse it (LapseGuard.ts).
 */
const fence = <R>(h: RpcHandler<R>, fenced: () => boolean, lapses: LapseGuard | undefined): RpcHandler<R> => {
  const guarded = lapses !== undefined && CHANGE_METHODS.has(h.method.tag)
  return {
    method: h.method,
    // Checked as the request is served, without wrapping: a handler's exit (most requests) stays an exit the server answers at once.
    run: (payload, request) => {
      if (fenced()) return Effect.dieMessage("this head was fenced: a newer head holds the lease")
      const refused = guarded
        ? lapses.refusal(
          request.client,
          request.sequence,
          () => `${request.method} (request ${request.requestId} of process slot ${request.client})`
        )
        : undefined
      return refused === undefined ? h.run(payload, request) : Effect.fail(refused)
    }
  }
}

/** Tells the untold dropped members (see `ServerState.untold`). */
const tellDropped = (s: ServerState, server: RpcServer): void => {
  for (const [slot, dropped] of s.untold) {
    const info = readSlot(s.region, s.layout.processTable, slot)
    const gone = info.occurrence !== dropped.occurrence || !isOwnerAlive(info)
    const back = s.membership.members.get(slot)?.occurrence === dropped.occurrence
    if (
      gone || back ||
      server.notifyNow(MemberDroppedNotice, { slot, occurrence: dropped.occurrence, reason: dropped.reason }, slot) !==
        undefined
    ) {
      s.untold.delete(slot)
    }
  }
}

/** The liveness check: drops members whose slot was reclaimed, whose pid is gone or whose heartbeat is stale, and frees stale readers' reply slots. */
const checkMembers = (s: ServerState, server: RpcServer) =>
  Effect.gen(function*() {
    const { layout, region } = s
    const now = Date.now()
    for (const member of [...s.membership.members.values()]) {
      const info = readSlot(region, layout.processTable, member.slot)
      if (info.occurrence !== member.occurrence) {
        yield* drop(s, member.slot, `slot reclaimed (occurrence ${info.occurrence})`, true)
      } else if (!isOwnerAlive(info)) {
        yield* drop(s, member.slot, `pid ${member.pid} is gone`, true)
      } else if (!isSlotLive(info, now, s.staleMs)) {
        const reason = `heartbeat stale for ${now - info.heartbeatMs} ms`
        yield* drop(s, member.slot, reason, true)
        s.untold.set(member.slot, { occurrence: member.occurrence, reason })
      }
    }
    tellDropped(s, server)
    // Stale processes that are no members hold reply-ring reader slots: a member just dropped
    // above, one dropped before its reader's own line went stale, an old head stopped while
    // this one took over.
    for (let slot = 0; slot < layout.config.control.maxProcesses; slot++) {
      if (s.membership.members.has(slot)) {
        continue
      }
      const info = readSlot(region, layout.processTable, slot)
      if (info.pid !== 0 && info.pid !== process.pid && now - info.heartbeatMs > s.staleMs && isPidAlive(info.pid)) {
        yield* freeReplySlot(s, slot, info.pid)
      }
    }
  })

export const makeServer = (options: ServerOptions = {}) =>
  Effect.gen(function*() {
    const layout = yield* RegionLayout
    const rings = yield* Rings
    // In a head, the sequencer's lease is the coordinator's too: its epoch says whether this is
    // a takeover, and a head that lost it (fenced) must write nothing.
    const lease = yield* Effect.serviceOption(Sequencer)
    const epoch = Option.match(lease, { onNone: () => 0, onSome: (l) => l.epoch })
    const fenced = Option.match(lease, { onNone: () => () => false, onSome: (l) => () => !l.holdsLease() })
    const membership = makeMembership()
    const broadcast: Broadcast = { server: undefined, ready: yield* Deferred.make<RpcServer>() }
    const streams = withStreamRings(rings, yield* ringProbe(rings, layout))
    const s: ServerState = {
      region: yield* CxlMemory,
      layout,
      rings,
      membership,
      admit: streams.admit,
      engine: yield* makeEngine({
        probe: streams.probe,
        groupMembers: membership.groupMembers,
        isProcessAlive,
        release: releaseThrough(broadcast, layout),
        onParticipantDeath: options.onParticipantDeath ?? "drop",
        debug: options.debugBarriers ?? false
      }),
      staleMs: options.heartbeatStaleMs ?? 2_000,
      scope: yield* Effect.scope,
      replies: yield* rings.inspect(layout.broadcastRing).pipe(Effect.orDie),
      untold: new Map()
    }
    if (epoch > 1) adoptLiveMembers(s)
    const requestRings = Array.from(
      { length: layout.config.control.maxProcesses },
      (_, slot) => ({ client: slot, ring: layout.requestRing(slot) })
    )
    const lapses = Option.isNone(lease) ? undefined : yield* Effect.acquireRelease(
      Effect.map(
        Effect.forEach(requestRings, ({ ring }) => rings.inspect(ring).pipe(Effect.orDie)),
        (inspectors) => makeLapseGuard(s.region.name, lease.value, inspectors)
      ),
      (guard) => Effect.sync(guard.close)
    )

    const server = yield* (yield* Rpc).serve(
      {
        requests: requestRings,
        replies: layout.broadcastRing,
        // Holding the lease, the broadcast ring is ours even if a fenced head still runs.
        takeOver: Option.isSome(lease)
      },
      handlers(s, yield* Topics, yield* serverObjects(s.region, layout)).map((h) => fence(h, fenced, lapses))
    )
    broadcast.server = server
    yield* Deferred.succeed(broadcast.ready, server)
    // Forked, so the liveness check starts at once (and frees the slot of an old head stopped
    // with the ring full); bounded (RingFull when no room comes): a member that misses it finds
    // out by its calls failing.
    if (epoch > 1) {
      yield* server.notify(CoordinatorTakeoverNotice, { epoch }).pipe(
        Effect.catchAll((e) => Effect.logError(`coordinator: the takeover notice was not sent: ${e.message}`)),
        Effect.forkScoped
      )
    }

    const idleCheckMs = options.checkEveryMs ?? DEFAULT_CHECK_EVERY_MS
    const waitingCheckMs = Math.min(idleCheckMs, options.checkWhileWaitingMs ?? DEFAULT_CHECK_WHILE_WAITING_MS)
    yield* everyTick(() => (s.engine.openRounds() > 0 ? waitingCheckMs : idleCheckMs), checkMembers(s, server)).pipe(
      Effect.forkScoped
    )

    const coordinator: CoordinatorServerShape = {
      members: () => [...membership.members.values()],
      openBarriers: s.engine.openRounds
    }
    return coordinator
  })

export const layerServer = (options: ServerOptions = {}) => Layer.scoped(CoordinatorServer, makeServer(options))

/** The coordinator's options from its variables (services/control/ControlSettings.ts). */
export const serverOptionsConfig: Config.Config<ServerOptions> = settingsConfig(COORDINATOR_SETTINGS.settings)

export const layerServerConfig = Layer.unwrapEffect(Effect.map(serverOptionsConfig, layerServer))
