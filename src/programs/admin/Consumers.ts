/**
 * `cxlog consumers`: a topic's named consumers as the region holds them — committed offset,
 * lag behind the topic's end, the active member's pid, and whether it holds retention or was
 * cut off — `--remove NAME` (ConsumerNotFound for a name it does not have), and
 * `reset NAME --to earliest|latest|OFFSET|TIME`.
 */
import { Console, Data, Effect, Layer } from "effect"
import { attachRegion, processSlot, reader, type RegionAccess } from "../../layers/Roles.js"
import { type ConsumerInfo, Consumers } from "../../services/log/Consumers.js"
import { LogOutOfRange, LogReader, type SubscribeOptions } from "../../services/log/LogReader.js"

/** Where a reset places a consumer: the oldest message held, the end, an offset, or the first message stamped at or after a time. */
export type ResetTarget = "earliest" | "latest" | { readonly offset: number } | { readonly time: number }

export interface ConsumersOptions {
  readonly region: RegionAccess
  readonly topic: string
  readonly remove?: string
  readonly reset?: { readonly name: string; readonly to: ResetTarget }
  readonly json: boolean
}

/** `--remove NAME` of a consumer the topic does not have (a mistyped name): a failure a script sees, as a region or topic not found is. */
export class ConsumerNotFound extends Data.TaggedError("ConsumerNotFound")<{
  readonly topic: string
  readonly name: string
}> {
  override get message() {
    return `topic ${this.topic} has no consumer ${this.name} (cxlog consumers --topic ${this.topic} lists its consumers)`
  }
}

const startOf = (to: ResetTarget): SubscribeOptions =>
  typeof to === "string"
    ? { from: to, regionOnly: true }
    : "offset" in to
    ? { from: to.offset, regionOnly: true }
    : { fromTime: to.time, regionOnly: true }

/**
 * Moves consumer `name` of `topic` to `to` — back within what the region holds, or forward —
 * creating it there if it does not exist. It joins as the consumer's member for the moment of
 * the move, so a live member refuses it (ConsumerBusy); a cut-off consumer holds retention again
 * from its new offset. A target outside the held window is LogOutOfRange naming it.
 */
export const resetConsumer = (topic: string, name: string, to: ResetTarget) =>
  Effect.scoped(Effect.gen(function*() {
    const log = yield* LogReader
    const consumers = yield* Consumers
    const target = yield* log.subscribe(topic, startOf(to))
    const previous = (yield* consumers.list(topic)).find((c) => c.name === name)?.committed
    const lease = yield* consumers.join(topic, name, { offset: target.position(), globalSeq: target.nextBatch() })
    if (!lease.created) {
      if (lease.cutOff()) lease.resume()
      lease.commit(target.position(), target.nextBatch())
    }
    // The consumer holds retention from its new offset on now; a batch reclaimed before the hold took is reported, not skipped.
    const { earliest, end } = yield* log.bounds(topic)
    if (target.position() < earliest) {
      return yield* new LogOutOfRange({ topic, requested: target.position(), earliest, end })
    }
    return { previous, committed: target.position(), created: lease.created }
  }))

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
    if (options.reset !== undefined) {
      const { name, to } = options.reset
      const moved = yield* resetConsumer(options.topic, name, to)
      yield* Console.log(
        options.json
          ? JSON.stringify({ topic: options.topic, name, ...moved })
          : moved.created
          ? `created consumer ${name} of topic ${options.topic} at offset ${moved.committed}`
          : `consumer ${name} of topic ${options.topic}: committed offset ${moved.previous} → ${moved.committed}`
      )
      return
    }
    if (options.remove !== undefined) {
      if (!(yield* consumers.remove(options.topic, options.remove))) {
        return yield* new ConsumerNotFound({ topic: options.topic, name: options.remove })
      }
      yield* Console.log(`deleted consumer ${options.remove} of topic ${options.topic}`)
      return
    }
    const list = yield* consumers.list(options.topic)
    yield* Console.log(options.json ? JSON.stringify(list) : table(options.topic, list))
  }).pipe(
    Effect.provide(
      reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion(options.region)))
    )
  )
