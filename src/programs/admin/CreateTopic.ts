/** `cxlog create-topic`: joins the cluster and asks the coordinator to create a topic. */
import { Console, Effect, Layer } from "effect"
import {
  attachRegion,
  controlTransport,
  coordinatorClient,
  processSlot,
  type RegionAccess
} from "../../layers/Roles.js"
import { Coordinator } from "../../services/control/Coordinator.js"
import type { TopicSpec } from "../../services/log/Topics.js"

export const createTopic = (region: RegionAccess, specs: ReadonlyArray<TopicSpec>) =>
  Effect.gen(function*() {
    const coordinator = yield* Coordinator
    for (const spec of specs) {
      const info = yield* coordinator.createTopic(spec)
      yield* Console.log(
        `created topic ${info.name} (id ${info.id}, order ${info.order}, ack ${info.ackLevel}, rf ${info.replicationFactor}${
          info.memory === undefined ? "" : `, memory ${info.memory / 2 ** 20} MiB`
        })`
      )
    }
  }).pipe(
    Effect.provide(
      coordinatorClient().pipe(
        Layer.provideMerge(controlTransport),
        Layer.provideMerge(processSlot("client")),
        Layer.provideMerge(attachRegion(region))
      )
    )
  )
