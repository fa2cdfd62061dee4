/**
 * LogReader: the one reading algorithm (`logReaderOver`: where a subscription starts, the
 * cursor delivering batches and messages in contiguous total order, bounds, durable cursors)
 * over a `ReadSource`, and the live layer, whose source is the region's GOI and Blogs, read in
 * place (zero-copy views of the mapped region: RegionReadTopic.ts). The fake's source is the
 * in-process store (LogReaderMemory.ts); both hold durable cursors as DurableCursor.ts does.
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
import { type ConfigError, Effect, Layer, Metric, type Scope } from "effect"
import { holdSeries, READER_LAG, readerBatches, readerLag, readerMessages, sampleOnScrape } from "../../Metrics.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import {
  type LogBatchView,
  type LogCursor,
  type LogMessageView,
  LogOutOfRange,
  LogReader,
  type LogReaderShape
} from "../../services/log/LogReader.js"
import { LogCorrupt, TopicDeleted, TopicNotFound } from "../../services/log/Topics.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { alignedDelayMs } from "../region/Cadence.js"
import { type HeadWatch, headWatch } from "./HeadWatch.js"
import type { LogArea } from "./Layout.js"
import { listen, type ListenerAwait } from "./Participants.js"
import { boundsOf, locate, locateTime } from "./ReadPositions.js"
import type { ReadSource, ReadTopic } from "./ReadSource.js"
import { BatchView, MessageView, visitMessages } from "./ReadViews.js"
import { regionReader, RegionReadTopic } from "./RegionReadTopic.js"
import { perTopic, topicResolver } from "./Topics.js"

const settle = (
  outcome: number | LogOutOfRange | LogCorrupt | TopicDeleted
): Effect.Effect<number, LogOutOfRange | LogCorrupt | TopicDeleted> =>
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
  const batchesRead = Metric.tagged(readerBatches, "topic", name)
  const messagesRead = Metric.tagged(readerMessages, "topic", name)
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
  ): number | LogOutOfRange | LogCorrupt | TopicDeleted => {
    // Before any of its offsets are used: a deleted topic's may name another's bytes soon.
    if (t.deleted()) return new TopicDeleted({ name })
    // A trim dropped what this cursor would read next.
    if (position < t.firstOffset()) return outOfRange()
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
    if (batches > 0) {
      move?.(next)
      batchesRead.unsafeUpdate(batches, [])
      messagesRead.unsafeUpdate(messages, [])
    }
    return onBatch !== undefined ? batches : messages
  }

  // A deletion ends the wait too: the next read says so.
  const more = () => t.deleted() || t.committed() > next
  const waitingFor = () => `topic ${name}: batch ${next} of the total order (committed ${t.committed()})`
  return {
    topic: t.info,
    position: () => position,
    nextBatch: () => next,
    poll: (onMessage, maxBatches = Infinity) => Effect.suspend(() => settle(read(undefined, onMessage, maxBatches))),
    pollBatches: (onBatch, maxBatches = Infinity) => Effect.suspend(() => settle(read(onBatch, undefined, maxBatches))),
    awaitMore: (timeoutMs) => source.await(more, timeoutMs, waitingFor),
    retained: (g) => !t.deleted() && t.retained(g),
    holds: (g, offset) => !t.deleted() && t.retained(g) && offset >= t.firstOffset()
  }
}

/** The LogReader service over a source: every subscription, wherever its bytes live, runs this code. */
export const logReaderOver = (source: ReadSource): LogReaderShape => ({
  subscribe: (topic, options = {}) =>
    Effect.gen(function*() {
      const t = yield* source.topic(topic)
      // The cursor's scope keeps the topic's memory: what it handed out stays readable until it closes.
      yield* Effect.catchTag(t.pin, "TopicDeleted", () => Effect.fail(new TopicNotFound({ name: topic })))
      const start = options.fromTime === undefined ? locate(t, options.from) : locateTime(t, options.fromTime)
      if (start === "out-of-range") {
        const { earliest, end } = boundsOf(t)
        return yield* new LogOutOfRange({
          topic,
          requested: typeof options.from === "number" ? options.from : earliest,
          earliest,
          end
        })
      }
      const move = options.durable === true ? yield* t.hold(start.next) : undefined
      const cursor = makeCursor(source, t, start, move)
      const lag = Metric.tagged(readerLag, "topic", topic)
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          // Served while a cursor on the topic is open here: a broker's subscriber gone, its last lag would stay.
          const release = holdSeries(READER_LAG, "topic", topic)
          const stop = sampleOnScrape(() => lag.unsafeUpdate(t.total() - cursor.position(), []))
          return () => {
            stop()
            release()
          }
        }),
        (stop) => Effect.sync(stop)
      )
      return cursor
    }),
  bounds: (topic) => Effect.map(source.topic(topic), boundsOf)
})

// ---- the region ---------------------------------------------------------------------

export interface LogReaderOptions {
  /** How long the head may be unavailable before a waiting cursor fails (default `CXLOG_HEAD_LOST_MS`). */
  readonly headLostMs?: number
}

/** Waits in slices so the head is looked at every `checkEveryMs` (on the cadence's grid); a commit still wakes at once. */
const awaitWatchingHead = (
  listening: ListenerAwait,
  head: HeadWatch,
  condition: () => boolean,
  timeoutMs: number,
  waitingFor: () => string
): Effect.Effect<boolean, HeadUnavailable> => {
  const deadline = performance.now() + timeoutMs
  const slice: Effect.Effect<boolean, HeadUnavailable> = Effect.suspend(() => {
    const left = deadline - performance.now()
    const sliceMs = alignedDelayMs(head.checkEveryMs)
    return Effect.flatMap(listening(condition, Math.max(0, Math.min(left, sliceMs))), (woken) => {
      if (woken) return Effect.succeed(true)
      const lost = head.check(waitingFor)
      if (lost !== undefined) return Effect.fail(lost)
      return left <= sliceMs ? Effect.succeed(false) : slice
    })
  })
  return slice
}

export const make = (
  area: LogArea,
  options: LogReaderOptions = {}
): Effect.Effect<LogReaderShape, ConfigError.ConfigError, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const head = yield* headWatch(region, options.headLostMs)
    const listening = yield* listen(region, area, doorbell)
    const reader = regionReader(region, area, doorbell)
    const resolve = topicResolver(region, area)
    const topicOf = perTopic((info) => new RegionReadTopic(reader, info))
    return logReaderOver({
      topic: (name) => Effect.map(resolve(name), topicOf),
      await: (condition, timeoutMs, waitingFor) => awaitWatchingHead(listening, head, condition, timeoutMs, waitingFor)
    })
  })

export const layer = (
  area: LogArea,
  options: LogReaderOptions = {}
): Layer.Layer<LogReader, ConfigError.ConfigError, CxlMemory | Doorbell> => Layer.scoped(LogReader, make(area, options))
