/**
 * A supervised child's side of a draining shutdown (docs/ipc.md, "Supervised processes"). For the
 * rest of a scope, a stop — the scope closing by interruption, which is how NodeRuntime.runMain
 * ends a program on SIGTERM — first arrives at the processing fence of the drain group with the
 * channels' streams, while the consumers given go on taking; then each consumer takes and handles
 * what its subscription still holds; only then does the scope go on closing. So the publishers and
 * subscriptions opened before the call are still open through the fence (a scope closes what it
 * acquired last first), and what the program was doing besides its consumers (publishing) ended
 * with its interruption, before the arrival: the fence drains everything it had published.
 *
 * ```ts
 * const subscription = yield* prices.subscribe
 * const publisher = yield* prices.publisher
 * yield* drainOnStop({ channels: [prices], consumers: [drainConsumer(subscription, handle)] })
 * ```
 */
import { type ConfigError, Deferred, Effect, Either, Exit, Fiber, Option, type Scope } from "effect"
import { Coordinator, type CoordinatorUnavailable } from "../../services/control/Coordinator.js"
import type { ChannelMessage, ChannelSubscription } from "../../services/ipc/Channels.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import { channelStream, type FencedChannel } from "./ChannelFence.js"
import { enterShutdownFence } from "./ShutdownFence.js"
import { supervisorDefaults } from "./Supervisor.js"

/** The most values a consumer takes at once. */
const CONSUMER_BATCH = 256

/** A consumer a stop drains: it takes through the fence, then what its subscription still holds. */
export interface DrainConsumer<R> {
  /** Takes and handles values until `finish` is done and nothing is left to take. */
  readonly run: (finish: Deferred.Deferred<void>) => Effect.Effect<void, never, R>
}

/**
 * Runs `handle` on every value `subscription` takes, one after another. A frame that does not
 * decode is logged and passed over; a broken subscription (its slot reaped) ends the consumer, logged.
 */
export const drainConsumer = <A, R = never>(
  subscription: ChannelSubscription<A>,
  handle: (message: ChannelMessage<A>) => Effect.Effect<void, never, R>
): DrainConsumer<R> => ({
  run: (finish) =>
    Effect.gen(function*() {
      for (;;) {
        // Waiting takes nothing, so the race's loser loses no value.
        const finishing = yield* Effect.raceFirst(
          Effect.as(subscription.available(Number.POSITIVE_INFINITY), false),
          Effect.as(Deferred.await(finish), true)
        )
        // What it takes is handled: no interruption between the buffer and `handle`.
        const taken = yield* Effect.either(Effect.uninterruptible(subscription.takeUpTo(CONSUMER_BATCH, 0)))
        if (Either.isRight(taken)) {
          for (const message of taken.right) yield* handle(message)
          continue
        }
        const error = taken.left
        if (error._tag === "ChannelBroken") return yield* Effect.logWarning(`[drain] consumer ended: ${error.message}`)
        if (error._tag === "InvalidChannelFrame") yield* Effect.logWarning(`[drain] passed over: ${error.message}`)
        else if (finishing) return // nothing left to take
      }
    })
})

export interface DrainOptions<R> {
  /** The channels whose rings this process writes that the fence drains (by the group's subscribers). */
  readonly channels: ReadonlyArray<FencedChannel>
  /** Consumers that take through the fence, then what is left (forked now, for the scope). */
  readonly consumers?: ReadonlyArray<DrainConsumer<R>>
  /** The group to fence over; CXLOG_SUPERVISOR_DRAIN_GROUP by default, which a draining supervisor sets. */
  readonly group?: string
}

/**
 * For the rest of the scope: a stop fences over the drain group first (module comment). Joins the
 * group now. Without a group, a stop fences nothing; the consumers run and finish all the same.
 * Every wait is bounded: the fence by CXLOG_SUPERVISOR_DRAIN_TIMEOUT_MS (the supervisor's, in a
 * child's environment), the consumers' finish by CXLOG_SUPERVISOR_STOP_TIMEOUT_MS (then they are
 * interrupted: a supervisor SIGKILLs past that bound anyway).
 */
export const drainOnStop = <R = never>(
  options: DrainOptions<R>
): Effect.Effect<
  void,
  ConfigError.ConfigError | CoordinatorUnavailable | HeadUnavailable,
  Coordinator | Scope.Scope | R
> =>
  Effect.gen(function*() {
    const { drainGroup, drainTimeoutMs, stopTimeoutMs } = yield* supervisorDefaults
    const group = options.group ?? drainGroup
    const coordinator = yield* Coordinator
    if (group !== undefined) yield* coordinator.joinGroup(group)
    const streams = options.channels.map(channelStream)
    const finish = yield* Deferred.make<void>()
    // Forked before the finalizer below is added, so they are interrupted only after it ran.
    const consumers = yield* Effect.forEach(options.consumers ?? [], (c) => Effect.forkScoped(c.run(finish)))
    const fence = (drained: string) =>
      Effect.either(enterShutdownFence(coordinator, drained, drainTimeoutMs, streams)).pipe(
        Effect.flatMap(Either.match({
          onLeft: (e) => Effect.logWarning(`[drain] group=${drained} fence not completed: ${e.message}`),
          onRight: (r) => Effect.logDebug(`[drain] group=${drained} fence released (round ${r.round})`)
        }))
      )
    yield* Effect.addFinalizer((exit) =>
      Effect.gen(function*() {
        if (group !== undefined && Exit.isInterrupted(exit)) yield* fence(group)
        yield* Deferred.succeed(finish, undefined)
        const finished = yield* Fiber.awaitAll(consumers).pipe(
          Effect.interruptible,
          Effect.timeoutOption(stopTimeoutMs)
        )
        if (Option.isNone(finished)) {
          yield* Effect.logWarning(`[drain] consumers not finished within ${stopTimeoutMs} ms: interrupted`)
          yield* Fiber.interruptAll(consumers)
        }
      })
    )
  })
