/**
 * The Supervisor layer: each instance of a spec runs in a loop of its own — spawn, await its exit,
 * ask its policy, wait its backoff, spawn again — until it is given up or the supervisor stops.
 * With Discovery in context, each child is adopted there, so its crash event carries its exit
 * signal and its listing its name. A shutdown (or the layer's scope closing) signals every child
 * together and waits for them, bounded; the loops end without restarting anyone. A draining
 * supervisor (`layerDraining`) enters its drain group's processing fence between the SIGTERM and
 * that wait: its children that opted in (`drainOnStop`) arrive at it on their SIGTERM. A
 * supervisor that dies without a shutdown (SIGKILL) has its children stopped by its OrphanGuard.
 */
import { type ConfigError, Deferred, Effect, Fiber, FiberSet, Layer, Option, PubSub, Stream } from "effect"
import type { Coordinator, CoordinatorUnavailable } from "../../services/control/Coordinator.js"
import { Discovery } from "../../services/ipc/Discovery.js"
import {
  type ChildSpec,
  type ChildStatus,
  type ShutdownDrain,
  type ShutdownResult,
  Supervisor,
  SupervisorEvent,
  type SupervisorShape,
  SupervisorSpecInvalid,
  SupervisorStopped
} from "../../services/ipc/Supervisor.js"
import { SUPERVISOR_SETTINGS } from "../../services/ipc/SupervisorSettings.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import { settingsConfig } from "../../Settings.js"
import { makeOrphanGuard } from "./OrphanGuard.js"
import { isFailure, RestartHistory, wantsRestart } from "./RestartPolicy.js"
import { makeShutdownFence, type ShutdownFence } from "./ShutdownFence.js"
import { type RunningChild, signalGroup, spawnChild } from "./SupervisedChild.js"

export const supervisorDefaults = settingsConfig(SUPERVISOR_SETTINGS.settings)

/** After SIGKILL, how long a shutdown waits for the kernel to report the exits. */
const KILLED_EXIT_WAIT_MS = 5_000

interface Instance {
  readonly child: string
  readonly spec: string
  running: RunningChild | undefined
  restarts: number
  state: ChildStatus["state"]
}

/** A supervisor whose shutdown enters `fence`, if given, before it waits for its children. */
const makeWith = (fence: ShutdownFence | undefined) =>
  Effect.gen(function*() {
    const defaults = yield* supervisorDefaults
    // Acquired before the shutdown's finalizer is added: released after it, once every child is gone.
    const orphans = yield* makeOrphanGuard(defaults.stopTimeoutMs)
    const discovery = yield* Effect.serviceOption(Discovery)
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<SupervisorEvent>(), PubSub.shutdown)
    const loops = yield* FiberSet.make()
    const instances = new Map<string, Instance>()
    let stopping = false
    const emit = (event: SupervisorEvent) => PubSub.publish(hub, event)

    const runInstance = (spec: ChildSpec, instance: Instance) =>
      Effect.gen(function*() {
        const history = new RestartHistory({
          backoffMs: spec.backoffMs ?? defaults.backoffMs,
          maxBackoffMs: spec.maxBackoffMs ?? defaults.maxBackoffMs,
          restartLimit: spec.restartLimit ?? defaults.restartLimit,
          restartWindowMs: spec.restartWindowMs ?? defaults.restartWindowMs
        })
        const policy = spec.restart ?? "on-failure"
        while (!stopping) {
          const startedMs = Date.now()
          const running = yield* spawnChild(spec, instance.child, instance.restarts, fence?.childEnv ?? {})
          instance.running = running
          instance.state = "running"
          // A program that could not be started has no pid (-1): nothing to guard, adopt or signal.
          const spawned = running.pid > 0
          if (spawned) orphans.add(running.pid)
          if (spawned && Option.isSome(discovery)) yield* discovery.value.adopt(running.pid, instance.child)
          // One that was not started is told only exited, with why: no started line with a pid of -1.
          if (spawned) {
            yield* emit(
              SupervisorEvent.ChildStarted({ child: instance.child, pid: running.pid, restarts: instance.restarts })
            )
          }
          const exit = yield* Deferred.await(running.exited)
          instance.running = undefined
          // What it started goes with it: a child's leftovers would outlive its supervision.
          if (spawned) {
            signalGroup(running.pid, "SIGKILL")
            orphans.remove(running.pid)
          }
          if (spawned && Option.isSome(discovery)) yield* discovery.value.exited(running.pid, exit)
          const startError = running.startError()
          yield* emit(
            SupervisorEvent.ChildExited({
              child: instance.child,
              pid: running.pid,
              exit,
              failed: isFailure(exit),
              ...(startError === undefined ? {} : { reason: `not started: ${startError}` })
            })
          )
          if (stopping) break
          if (!wantsRestart(policy, exit)) {
            instance.state = "exited"
            return
          }
          const now = Date.now()
          const decision = history.next(now, now - startedMs)
          if (decision._tag === "GiveUp") {
            instance.state = "gave-up"
            const windowMs = spec.restartWindowMs ?? defaults.restartWindowMs
            yield* emit(SupervisorEvent.ChildGaveUp({ child: instance.child, restarts: decision.restarts, windowMs }))
            return
          }
          instance.state = "restarting"
          instance.restarts++
          yield* emit(
            SupervisorEvent.ChildRestarting({
              child: instance.child,
              restarts: instance.restarts,
              delayMs: decision.delayMs
            })
          )
          yield* Effect.sleep(decision.delayMs)
        }
        instance.state = "stopped"
      })

    const start = (spec: ChildSpec) =>
      Effect.gen(function*() {
        if (stopping) return yield* new SupervisorStopped({ name: spec.name })
        if ((spec.script === undefined) === (spec.command === undefined)) {
          return yield* new SupervisorSpecInvalid({ name: spec.name, reason: "give one of script and command" })
        }
        const names = Array.from({ length: spec.count ?? 1 }, (_, i) => `${spec.name}#${i}`)
        if (names.some((n) => instances.has(n))) {
          return yield* new SupervisorSpecInvalid({ name: spec.name, reason: "a child of this name runs already" })
        }
        for (const child of names) {
          const instance: Instance = { child, spec: spec.name, running: undefined, restarts: 0, state: "running" }
          instances.set(child, instance)
          yield* FiberSet.run(loops, runInstance(spec, instance))
        }
        return names
      })

    const awaitAll = (children: ReadonlyArray<RunningChild>, timeoutMs: number) =>
      Effect.forEach(children, (c) => Deferred.await(c.exited), { discard: true, concurrency: "unbounded" }).pipe(
        Effect.timeoutOption(timeoutMs)
      )

    /** The fence, entered with the children told to stop: what it came to, emitted. */
    const drain = (fence: ShutdownFence, names: ReadonlyMap<number, string>) =>
      Effect.gen(function*() {
        const report = yield* fence.enter((pid) => names.get(pid))
        yield* emit(SupervisorEvent.ShutdownDrained({ group: fence.group, ...report }))
        return report.completed ? "completed" as const : "failed" as const
      })

    const stopAll = Effect.gen(function*() {
      stopping = true
      const names = new Map<number, string>()
      for (const i of instances.values()) if (i.running !== undefined) names.set(i.running.pid, i.child)
      const running = [...instances.values()].flatMap((i) => (i.running === undefined ? [] : [i.running]))
      yield* emit(SupervisorEvent.ShutdownStarted({ children: running.length }))
      // SIGCONT after it: a stopped child (SIGSTOP, Ctrl-Z) acts on its SIGTERM only once it runs, so
      // it stops as the others do (arriving at the fence) instead of waiting out the bound to its SIGKILL.
      for (const child of running) {
        child.signal("SIGTERM")
        child.signal("SIGCONT")
      }
      const drained: ShutdownDrain = fence === undefined ? "none" : yield* drain(fence, names)
      yield* awaitAll(running, defaults.stopTimeoutMs)
      const stubborn = running.filter((c) => !c.hasExited() && c.signal("SIGKILL"))
      yield* awaitAll(stubborn, KILLED_EXIT_WAIT_MS)
      // The loops saw `stopping` on their child's exit; those waiting out a backoff end here.
      yield* FiberSet.clear(loops)
      for (const instance of instances.values()) instance.state = "stopped"
      const result: ShutdownResult = { stopped: running.length, killed: stubborn.length, drain: drained }
      yield* emit(SupervisorEvent.ShutdownDone(result))
      return result
    })
    // Run once, in a fiber of its own: a caller interrupted midway (a test's timeout) leaves it running to its end for
    // the next caller (the finalizer) to await; interruptible, so its bounded waits can end (a finalizer's would not).
    const stopper = yield* Effect.cached(Effect.forkDaemon(Effect.interruptible(stopAll)))
    const shutdown = Effect.flatMap(stopper, Fiber.join)
    yield* Effect.addFinalizer(() => shutdown)

    return {
      start,
      children: Effect.sync(() =>
        [...instances.values()].map((i) => ({
          child: i.child,
          spec: i.spec,
          pid: i.running?.pid,
          restarts: i.restarts,
          state: i.state
        }))
      ),
      events: Stream.fromPubSub(hub).pipe(Stream.takeUntil((e) => e._tag === "ShutdownDone")),
      shutdown
    } satisfies SupervisorShape
  })

export const make = makeWith(undefined)

/** A supervisor whose shutdown drains: it joins `group` now, and its children get the group in their environment. */
export const makeDraining = (group: string) =>
  Effect.flatMap(supervisorDefaults, (d) => makeShutdownFence(group, d.drainTimeoutMs)).pipe(Effect.flatMap(makeWith))

/** A supervisor for the scope: closing it stops every child (as `shutdown` does). */
export const layer: Layer.Layer<Supervisor, ConfigError.ConfigError> = Layer.scoped(Supervisor, make)

/**
 * A supervisor whose shutdown runs a processing fence over `group` (its own and its children's,
 * for this fence only: not `all` or `brokers`, which every member is in) between the SIGTERM and
 * the wait: this process must be a member of the region (a `Coordinator`).
 */
export const layerDraining = (
  group: string
): Layer.Layer<Supervisor, ConfigError.ConfigError | CoordinatorUnavailable | HeadUnavailable, Coordinator> =>
  Layer.scoped(Supervisor, makeDraining(group))
