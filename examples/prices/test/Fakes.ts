/**
 * The prices app's processes in this one process, over cxlog's in-memory fakes: Channels and a
 * memory Coordinator over the same in-memory rings (so a shutdown's fence drains the channel),
 * and Services. Each member has a coordinator client of its own, as each process is a member of
 * its own.
 */
import {
  Channels,
  ChannelsMemoryLayers,
  Coordinator,
  CoordinatorMemoryLayers,
  makeLogMemoryStore,
  RegionLayout,
  Rings,
  RingsMemoryLayers,
  Services,
  ServicesMemoryLayers,
  TopicsMemoryLayers
} from "cxlog"
import { ConfigProvider, Context, Effect, Layer, type Scope } from "effect"

type MemberServices = Channels | Services | Coordinator

export const makeFakes = Effect.gen(function*() {
  const config = RegionLayout.defaultRegionConfig
  const layout = yield* RegionLayout.resolve(config, RegionLayout.regionBytes(config))
  const rings = yield* RingsMemoryLayers.makeMemory
  const hub = yield* CoordinatorMemoryLayers.makeMemoryHub(
    layout,
    yield* TopicsMemoryLayers.makeMemory(makeLogMemoryStore(config.log))
  ).pipe(Effect.provideService(Rings, rings))
  const channels = yield* ChannelsMemoryLayers.makeMemory(rings)
  const services = Context.get(yield* Layer.build(ServicesMemoryLayers.layerMemory()), Services)

  /** `program` as one member: with a coordinator client of its own for the scope. */
  const asMember = <A, E, R>(program: Effect.Effect<A, E, R | MemberServices>) =>
    Effect.gen(function*() {
      const coordinator = yield* CoordinatorMemoryLayers.makeMemoryClient(hub, "worker")
      return yield* program.pipe(
        Effect.provideService(Coordinator, coordinator),
        Effect.provideService(Channels, channels),
        Effect.provideService(Services, services)
      )
    })

  /**
   * `program` as a member process runs it under a draining supervisor of `drainGroup` (its
   * CXLOG_SUPERVISOR_DRAIN_GROUP; none: a supervisor that does not drain): in a fiber of its own,
   * its scope closed as the fiber ends. Interrupting the fiber is its stop, as NodeRuntime.runMain
   * interrupts a program on SIGTERM.
   */
  const runMember = <A, E>(program: Effect.Effect<A, E, MemberServices | Scope.Scope>, drainGroup?: string) =>
    Effect.forkScoped(
      Effect.scoped(asMember(program)).pipe(
        Effect.withConfigProvider(
          ConfigProvider.fromMap(
            new Map(drainGroup === undefined ? [] : [["CXLOG_SUPERVISOR_DRAIN_GROUP", drainGroup]])
          )
        )
      )
    )
  return { asMember, runMember }
})
