/**
 * LogReader: the one reading algorithm (`logReaderOver`: where a subscription starts, the
 * cursor delivering batches and messages in contiguous total order, bounds, durable cursors)
 * over a `ReadSource`, and the live layer, whose source is the region's GOI and Blogs, read in
 * place (zero-copy views of the mapped region). The fake's source is the in-process store
 * (LogReaderMemory.ts).
 *
 * A batch is read seqlock-style: its GOI entry's sequence word must name the expected
 * global seq before and after the fields are read, and the broker's Blog tail must not have
 * passed the payload, checked before the callbacks and again after them. Anything else is
 * `LogOutOfRange` (the reader fell behind the retained window; what the callbacks saw of
 * that batch must be discarded), never silently skipped or torn data.
 *
 * A live cursor waiting for the next batch watches the head between doorbell waits: once the
 * head has been unavailable past `CXLOG_HEAD_LOST_MS` the wait fails with `HeadUnavailable`
 * (nothing would ever be ordered); with the head alive it simply keeps waiting.
 */
import { type ConfigError, Effect, Layer, type Scope } from "effect"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import type { HeadUnavailable } from "../../services/control/HeadWatch.js"
import {
  type LogBatchView,
  type LogCursor,
  type LogMessageView,
  LogOutOfRange,
  LogReader,
  type LogReaderShape,
  type SubscribeOptions,
  SubscriberTableFull
} from "../../services/log/LogReader.js"
import { LogCorrupt, type TopicInfo, type TopicNotFound } from "../../services/log/Topics.js"
import { HEAD_CHECK_MS, headWatch } from "../control/HeadWatch.js"
import { goiEntryOffset, type LogArea } from "./Layout.js"
import { claimLine, listen, newOccurrence, releaseLine, ringRoomWaiters, sequencerBell } from "./Participants.js"
import { SubscriberLine } from "./Records.js"
import { BrokerLineView, GoiEntryView, OrderLineView } from "./RecordViews.js"
import { perTopic, topicResolver } from "./Topics.js"

/** The batch a cursor is delivering; one per cursor, refilled for every batch. */
export class BatchView implements LogBatchView {
  globalSeq = 0
  totalOrder = 0
  messageCount = 0
  clientId = 0
  sessionEpoch = 0
  batchSeq = 0
  brokerId = 0
  crc32c = 0
  bytes: Uint8Array = new Uint8Array(0)
  offset = 0
  length = 0
  startIndex = 0
  /** A u32 view of the same buffer as `bytes` (both from byte 0). */
  words: Uint32Array = new Uint32Array(0)
  /** Where the payload sits in its broker's Blog: checked again after the callbacks. */
  blogPosition = 0
  /** The stored batch it was loaded from (the fake): checked again after the callbacks. */
  source: unknown = undefined
}

class MessageView implements LogMessageView {
  totalOrder = 0
  index = 0
  flags = 0
  offset = 0
  length = 0
  constructor(readonly batch: BatchView, public bytes: Uint8Array) {}
  get payload(): Uint8Array {
    return this.bytes.subarray(this.offset, this.offset + this.length)
  }
}

/**
 * Walks the messages of a batch payload, calling `onMessage` from `startIndex` on; returns
 * false if a length field runs past the payload or the records do not end at its end.
 */
const visitMessages = (batch: BatchView, message: MessageView, onMessage: (m: LogMessageView) => void): boolean => {
  const end = batch.offset + batch.length
  const words = batch.words
  let at = batch.offset
  message.bytes = batch.bytes
  for (let i = 0; i < batch.messageCount; i++) {
    if (at + 8 > end) return false
    const length = words[at / 4]
    if (length > end - at - 8) return false
    if (i >= batch.startIndex) {
      message.index = i
      message.totalOrder = batch.totalOrder + i
      message.flags = words[at / 4 + 1]
      message.offset = at + 8
      message.length = length
      onMessage(message)
    }
    at += 8 + ((length + 7) & ~7)
  }
  return at === end
}

/** One topic's total order as a reader sees it, wherever its bytes live. */
export interface ReadTopic {
  readonly info: TopicInfo
  /** Batches 0..committed-1 are in the total order. */
  readonly committed: () => number
  /** The message offset after the last committed batch. */
  readonly total: () => number
  /** The oldest global seq the topic may still hold, with `committed` batches ordered. */
  readonly oldest: (committed: number) => number
  /** Whether batch `g` and its payload are still held. */
  readonly retained: (g: number) => boolean
  /** The message offset of batch `g`'s first message, or undefined if it left the window. */
  readonly totalOrderOf: (g: number) => number | undefined
  /** Reads batch `g` into `view`; "gone" if it left the retained window, "corrupt" if its fields fail their checks. */
  readonly load: (g: number, view: BatchView) => "ok" | "gone" | "corrupt"
  /** Whether batch `g`, loaded into `view`, is still intact (after the callbacks). */
  readonly stillThere: (g: number, view: BatchView) => boolean
  /** Registers a durable cursor at batch `next` until the scope closes; returns how to move it on. */
  readonly hold: (next: number) => Effect.Effect<(next: number) => void, SubscriberTableFull, Scope.Scope>
}

export interface ReadSource {
  readonly topic: (name: string) => Effect.Effect<ReadTopic, TopicNotFound>
  /** True as soon as `condition()` holds, false after `timeoutMs`; `waitingFor` names what for, should the wait fail. */
  readonly await: (condition: () => boolean, timeoutMs: number, waitingFor: () => string) => Effect.Effect<boolean, HeadUnavailable>
}

/** The first batch still held (`committed` if none). */
const firstRetained = (t: ReadTopic, committed: number): number => {
  for (let g = t.oldest(committed); g < committed; g++) if (t.retained(g)) return g
  return committed
}

/** Message offsets: the earliest retained and the end. */
const boundsOf = (t: ReadTopic) => {
  const committed = t.committed()
  const first = firstRetained(t, committed)
  const total = t.total()
  return { earliest: first < committed ? t.totalOrderOf(first) ?? total : total, end: total }
}

/** Finds where a subscription starts: the batch holding message offset `from` (binary search over the retained window). */
const locate = (t: ReadTopic, from: SubscribeOptions["from"]): { next: number; position: number; skip: number } | "out-of-range" => {
  const committed = t.committed()
  const first = firstRetained(t, committed)
  const total = t.total()
  if (from === "latest") return { next: committed, position: total, skip: 0 }
  const firstOrder = first < committed ? t.totalOrderOf(first) : total
  if (firstOrder === undefined) return "out-of-range"
  if (from === undefined || from === "earliest") return { next: first, position: firstOrder, skip: 0 }
  if (!Number.isSafeInteger(from) || from < firstOrder || from > total) return "out-of-range"
  if (from === total) return { next: committed, position: total, skip: 0 }
  let lo = first
  let hi = committed - 1
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    const order = t.totalOrderOf(mid)
    if (order === undefined) return "out-of-range"
    if (order <= from) lo = mid
    else hi = mid - 1
  }
  const order = t.totalOrderOf(lo)
  return order === undefined ? "out-of-range" : { next: lo, position: from, skip: from - order }
}

const settle = (outcome: number | LogOutOfRange | LogCorrupt): Effect.Effect<number, LogOutOfRange | LogCorrupt> =>
  typeof outcome === "number" ? Effect.succeed(outcome) : Effect.fail(outcome)

/** A cursor over `t` from `start`; `move` (durable cursors) publishes how far it has read. */
const makeCursor = (
  source: ReadSource,
  t: ReadTopic,
  start: { next: number; position: number; skip: number },
  move: ((next: number) => void) | undefined
): LogCursor => {
  const batch = new BatchView()
  const message = new MessageView(batch, batch.bytes)
  const name = t.info.name
  let next = start.next
  let position = start.position
  let skip = start.skip
  const outOfRange = () => {
    const { earliest, end } = boundsOf(t)
    return new LogOutOfRange({ topic: name, requested: position, earliest, end })
  }

  /**
   * read: delivers the committed batches from `next` on (up to `maxBatches`), each checked
   * intact after its callbacks; returns how many batches (`onBatch`) or messages, or why it stopped.
   */
  const read = (
    onBatch: ((b: LogBatchView) => void) | undefined,
    onMessage: ((m: LogMessageView) => void) | undefined,
    maxBatches: number
  ): number | LogOutOfRange | LogCorrupt => {
    const committed = t.committed()
    let batches = 0
    let messages = 0
    while (next < committed && batches < maxBatches) {
      const loaded = t.load(next, batch)
      if (loaded === "gone") return outOfRange()
      if (loaded === "corrupt") return new LogCorrupt({ reason: `topic ${name}: GOI entry ${next} is invalid` })
      batch.startIndex = skip
      if (onBatch !== undefined) onBatch(batch)
      const wellFormed = onMessage === undefined || visitMessages(batch, message, onMessage)
      if (!t.stillThere(next, batch)) return outOfRange()
      if (!wellFormed) return new LogCorrupt({ reason: `topic ${name}: batch ${next} has malformed messages` })
      messages += batch.messageCount - skip
      skip = 0
      position = batch.totalOrder + batch.messageCount
      next++
      batches++
    }
    if (batches > 0) move?.(next)
    return onBatch !== undefined ? batches : messages
  }

  const more = () => t.committed() > next
  const waitingFor = () => `topic ${name}: batch ${next} of the total order (committed ${t.committed()})`
  return {
    topic: t.info,
    position: () => position,
    nextBatch: () => next,
    poll: (onMessage, maxBatches = Infinity) => Effect.suspend(() => settle(read(undefined, onMessage, maxBatches))),
    pollBatches: (onBatch, maxBatches = Infinity) => Effect.suspend(() => settle(read(onBatch, undefined, maxBatches))),
    awaitMore: (timeoutMs) => source.await(more, timeoutMs, waitingFor)
  }
}

/** The LogReader service over a source: every subscription, wherever its bytes live, runs this code. */
export const logReaderOver = (source: ReadSource): LogReaderShape => ({
  subscribe: (topic, options = {}) =>
    Effect.gen(function*() {
      const t = yield* source.topic(topic)
      const start = locate(t, options.from)
      if (start === "out-of-range") {
        const { earliest, end } = boundsOf(t)
        return yield* new LogOutOfRange({ topic, requested: typeof options.from === "number" ? options.from : earliest, earliest, end })
      }
      const move = options.durable === true ? yield* t.hold(start.next) : undefined
      return makeCursor(source, t, start, move)
    }),
  bounds: (topic) => Effect.map(source.topic(topic), boundsOf)
})

// ---- the region ---------------------------------------------------------------------

export interface LogReaderOptions {
  /** How long the head may be unavailable before a waiting cursor fails (default `CXLOG_HEAD_LOST_MS`). */
  readonly headLostMs?: number
}

export const make = (area: LogArea, options: LogReaderOptions = {}): Effect.Effect<LogReaderShape, ConfigError.ConfigError, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const head = yield* headWatch(region, options.headLostMs)
    yield* listen(region, area, doorbell)
    const { config } = area
    const { goiSlots, blogBytes } = config
    const resolve = topicResolver(region, area)
    const entries = new GoiEntryView(region)
    const orderLines = new OrderLineView(region)
    const brokerLines = new BrokerLineView(region)
    const sequencer = sequencerBell(region, doorbell)

    /** The topic's durable cursors: subscriber lines, claimed like participant lines, whose cursor holds retention. */
    const durableCursors = (t: number, topicName: string) => {
      /** Retention moved (a durable cursor advanced or left): wake whoever waits for room, and only them. */
      const retentionMoved = () => {
        ringRoomWaiters(region, area, doorbell)
        const line = area.orderLine(t)
        region.invalidate(line, 64)
        if (orderLines.stalled(line) !== 0) sequencer.ring()
      }
      return (cursor: number) =>
        Effect.acquireRelease(
          Effect.suspend(() => {
            const occurrence = newOccurrence()
            for (let s = 0; s < config.subscriberSlots; s++) {
              const line = area.subscriber(t, s)
              if (claimLine(region, line, occurrence, doorbell.offset) !== 0) continue
              region.f64[(line + SubscriberLine.cursor) / 8] = cursor
              region.publish(line, 64)
              Atomics.store(region.i32, (line + SubscriberLine.durable) / 4, 1)
              return Effect.succeed({ line, occurrence })
            }
            return Effect.fail(new SubscriberTableFull({ topic: topicName, slots: config.subscriberSlots }))
          }),
          ({ line, occurrence }) =>
            Effect.sync(() => {
              Atomics.store(region.i32, (line + SubscriberLine.durable) / 4, 0)
              releaseLine(region, line, occurrence)
              retentionMoved()
            })
        ).pipe(Effect.map(({ line }) => (next: number) => {
          region.f64[(line + SubscriberLine.cursor) / 8] = next
          region.publish(line, 64)
          // A sequentially consistent store after the cursor (a full fence) before reading who waits; see ringRoomWaiters.
          Atomics.store(region.i32, (line + SubscriberLine.durable) / 4, 1)
          retentionMoved()
        }))
    }

    const regionTopic = (info: TopicInfo): ReadTopic => {
      const t = info.id
      const orderLine = area.orderLine(t)
      const entryAt = (g: number) => goiEntryOffset(area, t, g)
      /** Whether broker `broker`'s Blog still holds `position` (its tail has not passed it). */
      const blogRetained = (broker: number, position: number) => {
        const line = area.brokerLine(t, broker)
        region.invalidate(line, 64)
        brokerLines.reclaimVersion(line)
        return brokerLines.blogTail(line) <= position
      }

      /** Reads GOI entry `g` into `view` seqlock-style and points it at the payload in its broker's Blog. */
      const loadEntry = (g: number, view: BatchView): "ok" | "gone" | "corrupt" => {
        const e = entryAt(g)
        region.invalidate(e, 64)
        if (!entries.holds(e, g)) return "gone"
        const broker = entries.brokerId(e)
        const length = entries.payloadBytes(e)
        const count = entries.messageCount(e)
        const position = entries.blogPosition(e)
        view.globalSeq = g
        view.totalOrder = entries.totalOrder(e)
        view.messageCount = count
        view.clientId = entries.clientId(e)
        view.sessionEpoch = entries.sessionEpoch(e)
        view.batchSeq = entries.batchSeq(e)
        view.brokerId = broker
        view.crc32c = entries.crc32c(e)
        view.length = length
        if (!entries.holds(e, g)) return "gone"
        const sane = broker < config.maxBrokers && count >= 1 && length % 8 === 0 && length >= 8 * count && length <= config.maxBatchBytes &&
          Number.isSafeInteger(position) && position >= 0 && (position % blogBytes) + length <= blogBytes
        if (!sane) return "corrupt"
        view.offset = area.blog(t, broker) + (position % blogBytes)
        view.bytes = region.bytes
        view.words = region.u32
        view.blogPosition = position
        if (!blogRetained(broker, position)) return "gone"
        region.invalidate(view.offset, length)
        return "ok"
      }

      return {
        info,
        committed: () => {
          region.invalidate(orderLine, 64)
          orderLines.progress(orderLine)
          return orderLines.committed(orderLine)
        },
        total: () => orderLines.totalOrder(orderLine),
        oldest: (committed) => Math.max(0, committed - goiSlots),
        retained: (g) => {
          const e = entryAt(g)
          return entries.holds(e, g) && blogRetained(entries.brokerId(e) % config.maxBrokers, entries.blogPosition(e))
        },
        totalOrderOf: (g) => {
          const e = entryAt(g)
          const order = entries.totalOrder(e)
          return entries.holds(e, g) ? order : undefined
        },
        load: loadEntry,
        stillThere: (g, view) => entries.holds(entryAt(g), g) && blogRetained(view.brokerId, view.blogPosition),
        hold: durableCursors(t, info.name)
      }
    }

    const topicOf = perTopic(regionTopic)
    return logReaderOver({
      topic: (name) => Effect.map(resolve(name), topicOf),
      // Waits in slices so the head is looked at every HEAD_CHECK_MS; a commit still wakes at once.
      await: (condition, timeoutMs, waitingFor) => {
        const deadline = performance.now() + timeoutMs
        const slice: Effect.Effect<boolean, HeadUnavailable> = Effect.suspend(() => {
          const left = deadline - performance.now()
          return Effect.flatMap(doorbell.await(condition, Math.max(0, Math.min(left, HEAD_CHECK_MS))), (woken) => {
            if (woken) return Effect.succeed(true)
            const lost = head.check(waitingFor)
            if (lost !== undefined) return Effect.fail(lost)
            return left <= HEAD_CHECK_MS ? Effect.succeed(false) : slice
          })
        })
        return slice
      }
    })
  })

export const layer = (area: LogArea, options: LogReaderOptions = {}): Layer.Layer<LogReader, ConfigError.ConfigError, CxlMemory | Doorbell> =>
  Layer.scoped(LogReader, make(area, options))
