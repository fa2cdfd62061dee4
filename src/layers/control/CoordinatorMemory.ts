/**
 * The in-process fake of the coordinator: one hub per "cluster", each participant a client of
 * it. The live barrier engine and membership run over the same ring probe (over whichever
 * Rings the hub is given, typically the in-memory fake), without RPC or a process table.
 */
import { Effect, FiberRef, Layer, type Scope } from "effect"
import { callerDeadline } from "../../services/control/CallerDeadline.js"
import {
  Coordinator,
  type CoordinatorShape,
  CoordinatorUnavailable,
  GROUP_ALL,
  type Member
} from "../../services/control/Coordinator.js"
import { type RingInspector, Rings, type RingsShape } from "../../services/control/Rings.js"
import type { TopicsShape } from "../../services/log/Topics.js"
import type { Layout } from "../../services/RegionLayout.js"
import { isProcessAlive } from "../region/ProcessInfo.js"
import { type BarrierEngine, make as makeEngine } from "./BarrierEngine.js"
import { type StreamProbe, withStreamRings } from "./BarrierStreamRings.js"
import { arrival, checkBarrier, fenceTargets, participantRings, ringProbe } from "./BarrierStreams.js"
import { type ObjectChanges, objectChanges, type ObjectDirectory } from "./CoordinatorObjects.js"
import type { ServerOptions } from "./CoordinatorServer.js"
import { makeMembership, type Membership } from "./Membership.js"

export interface MemoryHub {
  readonly membership: Membership
  /** The log's own topics (the fake's, or a region's): never through a broker. */
  readonly topics: TopicsShape<never>
  /** Named objects other than topics: through the directory writer the hub was given, else refused. */
  readonly objects: ObjectChanges
  readonly engine: BarrierEngine
  /** The rings participants write, for their drain targets. */
  readonly inspectors: ReadonlyArray<RingInspector>
  readonly rings: RingsShape
  /** Puts an arrival's targets on stream rings (channels) under the engine's probe's ids. */
  readonly admit: StreamProbe["admit"]
  nextSlot: number
  nextWatermark: number
}

export const makeMemoryHub = (
  layout: Layout,
  topics: TopicsShape<never>,
  options: Pick<ServerOptions, "onParticipantDeath" | "debugBarriers"> & { readonly directory?: ObjectDirectory } = {}
): Effect.Effect<MemoryHub, never, Rings | Scope.Scope> =>
  Effect.gen(function*() {
    const rings = yield* Rings
    const membership = makeMembership()
    const streams = withStreamRings(rings, yield* ringProbe(rings, layout))
    const hub: MemoryHub = {
      rings,
      admit: streams.admit,
      membership,
      topics,
      objects: objectChanges(options.directory),
      inspectors: yield* participantRings(rings, layout),
      nextSlot: 0,
      nextWatermark: 0,
      engine: yield* makeEngine({
        probe: streams.probe,
        groupMembers: membership.groupMembers,
        isProcessAlive,
        release: () => ++hub.nextWatermark,
        onParticipantDeath: options.onParticipantDeath ?? "drop",
        debug: options.debugBarriers ?? false
      })
    }
    return hub
  })

/**
 * A change made at once, unless the caller it is made for has given up already (its deadline,
 * CallerDeadline.ts, passed): then not made, as the live coordinator never runs a request read
 * past its caller's deadline.
 */
const withinCallerDeadline = <A, E>(change: Effect.Effect<A, E>): Effect.Effect<A, E | CoordinatorUnavailable> =>
  Effect.flatMap(
    FiberRef.get(callerDeadline),
    (deadlineMs): Effect.Effect<A, E | CoordinatorUnavailable> =>
      Date.now() < deadlineMs ? change : Effect.fail(
        new CoordinatorUnavailable({
          reason: `the caller's deadline passed ${
            Date.now() - deadlineMs
          } ms before the change was asked: not made, safe to ask again`
        })
      )
  )

export const makeMemoryClient = (
  hub: MemoryHub,
  role: Member["role"]
): Effect.Effect<CoordinatorShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const self: Member = { slot: hub.nextSlot++, pid: process.pid, occurrence: 1, role }
    yield* Effect.acquireRelease(
      Effect.sync(() => hub.membership.members.set(self.slot, self)),
      () =>
        Effect.suspend(
          () => (hub.membership.remove(self.slot) ? hub.engine.memberGone(self.slot, "left") : Effect.void)
        )
    )
    return {
      self,
      members: (group = GROUP_ALL) => hub.membership.list(group),
      createGroup: (name, slots) => Effect.sync(() => hub.membership.createGroup(name, slots)),
      joinGroup: (name) => Effect.sync(() => hub.membership.joinGroup(name, self.slot)),
      barrier: (name, options) =>
        checkBarrier(name, options).pipe(
          Effect.zipRight(fenceTargets(hub.rings, hub.inspectors, options)),
          Effect.flatMap((targets) => hub.admit(arrival(self, name, options, targets))),
          Effect.flatMap(hub.engine.arrive)
        ),
      createTopic: (spec) => withinCallerDeadline(hub.topics.create(spec)),
      deleteTopic: (name) => withinCallerDeadline(hub.topics.delete(name)),
      trimTopic: (name, target) => withinCallerDeadline(hub.topics.trim(name, target)),
      purgeTopic: (name) => withinCallerDeadline(hub.topics.purge(name)),
      createObject: (spec) => withinCallerDeadline(hub.objects.create(spec)),
      removeObject: (target) => withinCallerDeadline(hub.objects.remove(target))
    }
  })

export const layerMemory = (hub: MemoryHub, role: Member["role"]): Layer.Layer<Coordinator> =>
  Layer.scoped(Coordinator, makeMemoryClient(hub, role))
