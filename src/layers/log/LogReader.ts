/**
 * LogReader layers: `layer` reads the region's GOI and Blogs in place (zero-copy views of
 * the mapped region); `layerMemory` reads the in-process store.
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
import { LogCorrupt, type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import { HEAD_CHECK_MS, headWatch } from "../control/HeadWatch.js"
import type { LogArea } from "./Layout.js"
import { type MemoryBatch, type MemoryLogStore, type MemoryTopic, reclaimMemory } from "./MemoryStore.js"
import { claimLine, listen, newOccurrence, releaseLine, ringRoomWaiters } from "./Participants.js"
import { BrokerLine, GoiEntry, goiSeqHi, goiSeqLo, LeaseLine, OrderLine, SubscriberLine } from "./Records.js"
import { Offsets } from "../region/Superblock.js"
import { topicResolver } from "./Topics.js"

class BatchView implements LogBatchView {
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
  /** Where the payload sits in its broker's Blog (live) or the stored batch (fake): checked again after the callbacks. */
  blogPosition = 0
  source: MemoryBatch | undefined = undefined
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
    const length = words[at / 4]!
    if (length > end - at - 8) return false
    if (i >= batch.startIndex) {
      message.index = i
      message.totalOrder = batch.totalOrder + i
      message.flags = words[at / 4 + 1]!
      message.offset = at + 8
      message.length = length
      onMessage(message)
    }
    at += 8 + ((length + 7) & ~7)
  }
  return at === end
}

interface CursorCore {
  readonly topic: TopicInfo
  /** Reads batch `g` into `view`; "gone" if it left the retained window, "corrupt" if its fields fail their checks. */
  readonly load: (g: number, view: BatchView) => "ok" | "gone" | "corrupt"
  /** Whether batch `g`, loaded into `view`, is still intact (after the callbacks). */
  readonly stillThere: (g: number, view: BatchView) => boolean
  readonly committed: () => number
  readonly bounds: () => { earliest: number; end: number }
  readonly advanced: (next: number) => void
  readonly awaitMore: (next: () => number, timeoutMs: number) => Effect.Effect<boolean, HeadUnavailable>
}

const makeCursor = (core: CursorCore, start: { next: number; position: number; skip: number }): LogCursor => {
  const batch = new BatchView()
  const message = new MessageView(batch, batch.bytes)
  let next = start.next
  let position = start.position
  let skip = start.skip
  const outOfRange = () => {
    const { earliest, end } = core.bounds()
    return new LogOutOfRange({ topic: core.topic.name, requested: position, earliest, end })
  }
  const read = (onBatch: ((b: LogBatchView) => void) | undefined, onMessage: ((m: LogMessageView) => void) | undefined, maxBatches: number) =>
    Effect.suspend((): Effect.Effect<number, LogOutOfRange | LogCorrupt> => {
      const committed = core.committed()
      let batches = 0
      let messages = 0
      while (next < committed && batches < maxBatches) {
        const loaded = core.load(next, batch)
        if (loaded === "gone") return Effect.fail(outOfRange())
        if (loaded === "corrupt") return Effect.fail(new LogCorrupt({ reason: `topic ${core.topic.name}: GOI entry ${next} is invalid` }))
        batch.startIndex = skip
        if (onBatch !== undefined) onBatch(batch)
        const wellFormed = onMessage === undefined || visitMessages(batch, message, onMessage)
        if (!core.stillThere(next, batch)) return Effect.fail(outOfRange())
        if (!wellFormed) return Effect.fail(new LogCorrupt({ reason: `topic ${core.topic.name}: batch ${next} has malformed messages` }))
        messages += batch.messageCount - skip
        skip = 0
        position = batch.totalOrder + batch.messageCount
        next++
        batches++
      }
      if (batches > 0) core.advanced(next)
      return Effect.succeed(onBatch !== undefined ? batches : messages)
    })
  return {
    topic: core.topic,
    position: () => position,
    nextBatch: () => next,
    poll: (onMessage, maxBatches = Infinity) => read(undefined, onMessage, maxBatches),
    pollBatches: (onBatch, maxBatches = Infinity) => read(onBatch, undefined, maxBatches),
    awaitMore: (timeoutMs) => core.awaitMore(() => next, timeoutMs)
  }
}

/** Finds where a subscription starts: the batch holding message offset `from` (binary search over the retained window). */
const locate = (
  from: SubscribeOptions["from"],
  window: { readonly first: number; readonly committed: number; readonly total: number },
  totalOrderOf: (g: number) => number | undefined
): { next: number; position: number; skip: number } | "out-of-range" => {
  const { first, committed, total } = window
  if (from === "latest") return { next: committed, position: total, skip: 0 }
  const firstOrder = first < committed ? totalOrderOf(first) : total
  if (firstOrder === undefined) return "out-of-range"
  if (from === undefined || from === "earliest") return { next: first, position: firstOrder, skip: 0 }
  if (!Number.isSafeInteger(from) || from < firstOrder || from > total) return "out-of-range"
  if (from === total) return { next: committed, position: total, skip: 0 }
  let lo = first
  let hi = committed - 1
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    const order = totalOrderOf(mid)
    if (order === undefined) return "out-of-range"
    if (order <= from) lo = mid
    else hi = mid - 1
  }
  const order = totalOrderOf(lo)
  return order === undefined ? "out-of-range" : { next: lo, position: from, skip: from - order }
}

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
    const { f64, u32, i32 } = region
    const { goiSlots, blogBytes } = config
    const resolve = topicResolver(region, area)

    const committedOf = (t: number) => {
      const line = area.orderLine(t)
      region.invalidate(line, 64)
      Atomics.load(i32, (line + OrderLine.progress) / 4)
      return f64[(line + OrderLine.committed) / 8]!
    }
    const totalOf = (t: number) => f64[(area.orderLine(t) + OrderLine.totalOrder) / 8]!

    const entryValid = (e: number, g: number) =>
      Atomics.load(i32, (e + GoiEntry.seqLo) / 4) === goiSeqLo(g) && i32[(e + GoiEntry.seqHi) / 4] === goiSeqHi(g)

    const blogRetained = (t: number, broker: number, position: number) => {
      const line = area.brokerLine(t, broker)
      region.invalidate(line, 64)
      Atomics.load(i32, (line + BrokerLine.reclaimVersion) / 4)
      return f64[(line + BrokerLine.blogTail) / 8]! <= position
    }

    const load = (t: number, g: number, view: BatchView): "ok" | "gone" | "corrupt" => {
      const e = area.goi(t) + (g % goiSlots) * 64
      region.invalidate(e, 64)
      if (!entryValid(e, g)) return "gone"
      const broker = u32[(e + GoiEntry.brokerId) / 4]!
      const length = u32[(e + GoiEntry.payloadBytes) / 4]!
      const count = u32[(e + GoiEntry.messageCount) / 4]!
      const position = f64[(e + GoiEntry.blogPosition) / 8]!
      view.globalSeq = g
      view.totalOrder = f64[(e + GoiEntry.totalOrder) / 8]!
      view.messageCount = count
      view.clientId = u32[(e + GoiEntry.clientId) / 4]!
      view.sessionEpoch = u32[(e + GoiEntry.sessionEpoch) / 4]!
      view.batchSeq = f64[(e + GoiEntry.batchSeq) / 8]!
      view.brokerId = broker
      view.crc32c = u32[(e + GoiEntry.crc32c) / 4]!
      view.length = length
      if (!entryValid(e, g)) return "gone"
      const sane = broker < config.maxBrokers && count >= 1 && length % 8 === 0 && length >= 8 * count && length <= config.maxBatchBytes &&
        Number.isSafeInteger(position) && position >= 0 && (position % blogBytes) + length <= blogBytes
      if (!sane) return "corrupt"
      view.offset = area.blog(t, broker) + (position % blogBytes)
      view.bytes = region.bytes
      view.words = u32
      view.blogPosition = position
      if (!blogRetained(t, broker, position)) return "gone"
      region.invalidate(view.offset, length)
      return "ok"
    }

    const firstRetained = (t: number, committed: number) => {
      for (let g = Math.max(0, committed - goiSlots); g < committed; g++) {
        const e = area.goi(t) + (g % goiSlots) * 64
        if (!entryValid(e, g)) continue
        if (blogRetained(t, u32[(e + GoiEntry.brokerId) / 4]! % config.maxBrokers, f64[(e + GoiEntry.blogPosition) / 8]!)) return g
      }
      return committed
    }
    const totalOrderAt = (t: number) => (g: number) => {
      const e = area.goi(t) + (g % goiSlots) * 64
      const order = f64[(e + GoiEntry.totalOrder) / 8]!
      return entryValid(e, g) ? order : undefined
    }
    const boundsOf = (t: number) => {
      const committed = committedOf(t)
      const first = firstRetained(t, committed)
      return { earliest: first < committed ? totalOrderAt(t)(first) ?? totalOf(t) : totalOf(t), end: totalOf(t) }
    }

    const ringSequencer = () => {
      const bell = Atomics.load(i32, (Offsets.sequencerLease + LeaseLine.doorbell) / 4)
      if (bell > 0 && bell % 64 === 0 && region.inBounds(bell, 64)) doorbell.ring(bell)
    }

    /** Retention of topic `t` moved (a durable cursor advanced or left): wake whoever waits for room, and only them. */
    const retentionMoved = (t: number) => {
      ringRoomWaiters(region, area, doorbell)
      const line = area.orderLine(t)
      region.invalidate(line, 64)
      if (Atomics.load(i32, (line + OrderLine.stalled) / 4) !== 0) ringSequencer()
    }

    const register = (t: number, cursor: number, topicName: string) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          const occurrence = newOccurrence()
          for (let s = 0; s < config.subscriberSlots; s++) {
            const line = area.subscriber(t, s)
            if (claimLine(region, line, occurrence, doorbell.offset) !== 0) continue
            f64[(line + SubscriberLine.cursor) / 8] = cursor
            region.publish(line, 64)
            Atomics.store(i32, (line + SubscriberLine.durable) / 4, 1)
            return Effect.succeed({ line, occurrence })
          }
          return Effect.fail(new SubscriberTableFull({ topic: topicName, slots: config.subscriberSlots }))
        }),
        ({ line, occurrence }) =>
          Effect.sync(() => {
            Atomics.store(i32, (line + SubscriberLine.durable) / 4, 0)
            releaseLine(region, line, occurrence)
            retentionMoved(t)
          })
      )

    const subscribe = (topicName: string, options: SubscribeOptions = {}) =>
      Effect.gen(function*() {
        const topic = yield* resolve(topicName)
        const t = topic.id
        const committed = committedOf(t)
        const start = locate(options.from, { first: firstRetained(t, committed), committed, total: totalOf(t) }, totalOrderAt(t))
        if (start === "out-of-range") {
          const { earliest, end } = boundsOf(t)
          return yield* new LogOutOfRange({ topic: topicName, requested: typeof options.from === "number" ? options.from : earliest, earliest, end })
        }
        const durable = options.durable === true ? yield* register(t, start.next, topicName) : undefined
        const core: CursorCore = {
          topic,
          load: (g, view) => load(t, g, view),
          stillThere: (g, view) => {
            const e = area.goi(t) + (g % goiSlots) * 64
            return entryValid(e, g) && blogRetained(t, view.brokerId, view.blogPosition)
          },
          committed: () => committedOf(t),
          bounds: () => boundsOf(t),
          advanced: (next) => {
            if (durable === undefined) return
            f64[(durable.line + SubscriberLine.cursor) / 8] = next
            region.publish(durable.line, 64)
            // A sequentially consistent store after the cursor (a full fence) before reading who waits; see ringRoomWaiters.
            Atomics.store(i32, (durable.line + SubscriberLine.durable) / 4, 1)
            retentionMoved(t)
          },
          awaitMore: (next, timeoutMs) => {
            const more = () => committedOf(t) > next()
            const waitingFor = () => `topic ${topicName}: batch ${next()} of the total order (committed ${committedOf(t)})`
            const deadline = performance.now() + timeoutMs
            // Waits in slices so the head is looked at every HEAD_CHECK_MS; a commit still wakes at once.
            const slice: Effect.Effect<boolean, HeadUnavailable> = Effect.suspend(() => {
              const left = deadline - performance.now()
              return Effect.flatMap(doorbell.await(more, Math.max(0, Math.min(left, HEAD_CHECK_MS))), (woken) => {
                if (woken) return Effect.succeed(true)
                const lost = head.check(waitingFor)
                if (lost !== undefined) return Effect.fail(lost)
                return left <= HEAD_CHECK_MS ? Effect.succeed(false) : slice
              })
            })
            return slice
          }
        }
        return makeCursor(core, start)
      })

    return {
      subscribe,
      bounds: (topicName) => Effect.map(resolve(topicName), (topic) => boundsOf(topic.id))
    }
  })

export const layer = (area: LogArea, options: LogReaderOptions = {}): Layer.Layer<LogReader, ConfigError.ConfigError, CxlMemory | Doorbell> =>
  Layer.scoped(LogReader, make(area, options))

// ---- in-memory ----------------------------------------------------------------------

export const makeMemory = (store: MemoryLogStore): LogReaderShape => {
  let nextCursorId = 1
  const topicOf = (name: string) => {
    const topic = store.topics.find((t) => t.info.name === name)
    return topic === undefined ? Effect.fail(new TopicNotFound({ name })) : Effect.succeed(topic)
  }
  const committedOf = (topic: MemoryTopic) => topic.goiBase + topic.goi.length
  const entry = (topic: MemoryTopic, g: number): MemoryBatch | undefined => {
    const batch = g >= topic.goiBase ? topic.goi[g - topic.goiBase] : undefined
    return batch !== undefined && !batch.reclaimed ? batch : undefined
  }
  const firstRetained = (topic: MemoryTopic) => {
    const committed = committedOf(topic)
    for (let g = topic.goiBase; g < committed; g++) if (entry(topic, g) !== undefined) return g
    return committed
  }
  const boundsOf = (topic: MemoryTopic) => {
    const first = firstRetained(topic)
    return { earliest: entry(topic, first)?.totalOrder ?? topic.totalOrder, end: topic.totalOrder }
  }
  const subscribe = (topicName: string, options: SubscribeOptions = {}) =>
    Effect.gen(function*() {
      const topic = yield* topicOf(topicName)
      const start = locate(options.from, { first: firstRetained(topic), committed: committedOf(topic), total: topic.totalOrder }, (g) =>
        entry(topic, g)?.totalOrder)
      if (start === "out-of-range") {
        const { earliest, end } = boundsOf(topic)
        return yield* new LogOutOfRange({ topic: topicName, requested: typeof options.from === "number" ? options.from : earliest, earliest, end })
      }
      const id = nextCursorId++
      if (options.durable === true) {
        if (topic.cursors.size >= store.config.subscriberSlots) {
          return yield* new SubscriberTableFull({ topic: topicName, slots: store.config.subscriberSlots })
        }
        yield* Effect.acquireRelease(Effect.sync(() => topic.cursors.set(id, start.next)), () =>
          Effect.sync(() => {
            topic.cursors.delete(id)
            store.signal.notify()
          }))
      }
      const core: CursorCore = {
        topic: topic.info,
        load: (g, view) => {
          const batch = entry(topic, g)
          if (batch === undefined) return "gone"
          view.globalSeq = g
          view.totalOrder = batch.totalOrder
          view.messageCount = batch.messageCount
          view.clientId = batch.clientId
          view.sessionEpoch = batch.sessionEpoch
          view.batchSeq = batch.batchSeq
          view.brokerId = batch.broker
          view.crc32c = batch.crc32c
          view.bytes = batch.payload
          view.words = new Uint32Array(batch.payload.buffer)
          view.offset = batch.payload.byteOffset
          view.length = batch.payload.length
          view.source = batch
          return "ok"
        },
        stillThere: (g, view) => entry(topic, g) === view.source,
        committed: () => committedOf(topic),
        bounds: () => boundsOf(topic),
        advanced: (next) => {
          if (!topic.cursors.has(id)) return
          topic.cursors.set(id, next)
          for (const broker of topic.brokers) reclaimMemory(topic, broker)
          store.signal.notify()
        },
        awaitMore: (next, timeoutMs) => store.signal.await(() => committedOf(topic) > next(), timeoutMs)
      }
      return makeCursor(core, start)
    })
  return { subscribe, bounds: (name) => Effect.map(topicOf(name), boundsOf) }
}

export const layerMemory = (store: MemoryLogStore): Layer.Layer<LogReader> => Layer.succeed(LogReader, makeMemory(store))
