/**
 * `cxlog consumers`: a topic's named consumers as the region holds them — committed offset,
 * lag behind the topic's end, the active member's pid, and whether it holds retention or was
 * cut off — and `--remove NAME`.
 */
import { Console, Effect, Layer } from "effect"
import { attachRegion, processSlot, reader, type RegionAccess } from "../../layers/Roles.js"
import { type ConsumerInfo, Consumers } from "../../services/log/Consumers.js"

export interface ConsumersOptions {
  readonly region: RegionAccess
  readonly topic: string
  readonly remove?: string
  readonly json: boolean
}

const table = (topic: string, consumers: ReadonlyArray<ConsumerInfo>): string => {
  if (consumers.length === 0) return `topic ${topic}: no named consumers`
  const rows = consumers.map((
    c
  ) => [
    c.name,
    String(c.committed),
    String(c.lag),
    c.member === 0 ? "none" : `pid ${c.member}`,
    c.cutOff ? "cut off" : "holding"
  ])
  const header = ["consumer", "committed", "lag", "member", "retention"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  return [`topic ${topic} (end ${consumers[0]!.end})`, line(header), ...rows.map(line)].join("\n")
}

export const consumersReport = (options: ConsumersOptions) =>
  Effect.gen(function*() {
    const consumers = yield* Consumers
    if (options.remove !== undefined) {
      const removed = yield* consumers.remove(options.topic, options.remove)
      yield* Console.log(
        removed
          ? `deleted consumer ${options.remove} of topic ${options.topic}`
          : `topic ${options.topic} has no consumer ${options.remove}`
      )
      return
    }
    const list = yield* consumers.list(options.topic)
    yield* Console.log(options.json ? JSON.stringify(list) : table(options.topic, list))
  }).pipe(
    Effect.provide(
      reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion(options.region)))
    )
  )
