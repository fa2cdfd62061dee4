/** `cxlog create-topic` and `cxlog topics delete`: join the cluster and ask the head's coordinator to change its topics. */
import { Console, Effect, Layer } from "effect"
import {
  attachRegion,
  controlTransport,
  coordinatorClient,
  processSlot,
  type RegionAccess
} from "../../layers/Roles.js"
import { Coordinator } from "../../services/control/Coordinator.js"
import type { TopicSpec, TrimTarget } from "../../services/log/Topics.js"
import { showSize } from "../../Settings.js"

/** Runs `change` as a client of the region's coordinator (joined for the change, gone after it). */
const asClient = <A, E>(region: RegionAccess, change: Effect.Effect<A, E, Coordinator>) =>
  change.pipe(
    Effect.provide(
      coordinatorClient().pipe(
        Layer.provideMerge(controlTransport),
        Layer.provideMerge(processSlot("client")),
        Layer.provideMerge(attachRegion(region))
      )
    )
  )

export const createTopic = (region: RegionAccess, specs: ReadonlyArray<TopicSpec>) =>
  asClient(
    region,
    Effect.gen(function*() {
      const coordinator = yield* Coordinator
      for (const spec of specs) {
        const info = yield* coordinator.createTopic(spec)
        yield* Console.log(
          `created topic ${info.name} (id ${info.id}, order ${info.order}, ack ${info.ackLevel}, rf ${info.replicationFactor}` +
            (info.memory === undefined ? "" : `, memory ${showSize(info.memory)}`) +
            (info.writers === undefined ? "" : ` for ${info.writers} writer${info.writers === 1 ? "" : "s"}`) +
            (info.maxMessageBytes === undefined ? "" : `, messages up to ${showSize(info.maxMessageBytes)}`) +
            ")"
        )
      }
    })
  )

export const deleteTopic = (region: RegionAccess, name: string) =>
  asClient(
    region,
    Effect.gen(function*() {
      const coordinator = yield* Coordinator
      yield* coordinator.deleteTopic(name)
      yield* Console.log(
        `deleted topic ${name} (its memory is freed once no process still holds it, within about a second)`
      )
    })
  )

/** `cxlog topics trim NAME` (`target`) and `cxlog topics purge NAME` (no target): the head drops the oldest messages. */
export const trimTopic = (region: RegionAccess, name: string, target: TrimTarget | undefined) =>
  asClient(
    region,
    Effect.gen(function*() {
      const coordinator = yield* Coordinator
      const { earliest, end } = target === undefined
        ? yield* coordinator.purgeTopic(name)
        : yield* coordinator.trimTopic(name, target)
      yield* Console.log(
        `${target === undefined ? "purged" : "trimmed"} topic ${name}: it holds ${
          earliest === end ? "no message" : `offsets ${earliest}..${end - 1}`
        }; the next message is offset ${end}`
      )
    })
  )
