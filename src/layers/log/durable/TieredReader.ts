/**
 * Offsets the hot tier recycled, served from the disk: `tieredReader` wraps a process's
 * LogReader so that a subscription to a replication factor 2 topic from an offset the region no
 * longer holds reads the topic's stream on disk (DiskStream.ts) and, once it reaches an offset
 * the region holds, carries on there — the same batch and message views, each batch once, in
 * order, no gap and no duplicate at the switch. A cursor that falls behind the region later
 * goes back to the disk the same way, unless a callback already saw the batch that went (then
 * it fails as before: what it saw may be torn). Disk batches are copies, so `retained` holds
 * for them. `bounds` and "earliest" count what the disk holds; an offset older than the disk
 * keeps is `LogOutOfRange` naming the oldest offset held (on disk), and a gap in the stream (the
 * region recycled messages before the head's tier ran) is `LogOutOfRange` naming the offset
 * after it: never skipped silently. Records are checked against their checksums as they are read.
 *
 * Who reads the disk: the process serving the subscription (a broker for remote subscribers, a
 * local reader), given the head's data directory (`--data-dir`, CXLOG_DATA_DIR, the head's
 * flag). It opens the head's files read-only on the same host; the head is asked nothing.
 * Durable cursors (the head's own writer) and named consumers (`regionOnly`: their hold is in the
 * region) are not tiered.
 */
import { type ConfigError, Effect, Layer, type Scope } from "effect"
import { type LogCursor, LogReader, type LogReaderShape } from "../../../services/log/LogReader.js"
import { DURABLE_SETTINGS } from "../../../services/log/LogSettings.js"
import { type LogCorrupt, type TopicInfo, TopicNotFound, Topics, withinRegion } from "../../../services/log/Topics.js"
import { settingConfig } from "../../../Settings.js"
import { diskEarliest, nodeStreamFiles, type StreamFiles } from "./DiskStream.js"
import { readTiered } from "./TieredCursorRead.js"
import {
  closeDisk,
  closeHot,
  DISK_BATCHES,
  fetch,
  type From,
  lost,
  newCursorState,
  regionHolds,
  type TieredCursorState,
  type TieredSettings,
  toDisk,
  toHot
} from "./TieredCursorState.js"

export interface TieredOptions {
  /** The head's data directory. */
  readonly directory: string
  /** Default: node:fs, read-only. */
  readonly files?: StreamFiles
  /** How long a cursor waiting for the disk sleeps between looks (ms; default 10). */
  readonly pollMs?: number
  /** How long opening at an offset waits for the head to write it (recycled, not yet on disk; ms; default 5000). */
  readonly openWaitMs?: number
}

export const tieredReader = (
  hot: LogReaderShape,
  lookup: (topic: string) => Effect.Effect<TopicInfo, TopicNotFound>,
  options: TieredOptions
): LogReaderShape => {
  const files = options.files ?? nodeStreamFiles
  const pollMs = options.pollMs ?? 10
  const openWaitMs = options.openWaitMs ?? 5_000
  const earliestOnDisk = (topic: string) =>
    Effect.promise(() => diskEarliest(files, options.directory, topic).catch(() => undefined))

  const bounds: LogReaderShape["bounds"] = (topic) =>
    Effect.gen(function*() {
      const held = yield* hot.bounds(topic)
      if ((yield* lookup(topic)).replicationFactor < 2) return held
      const disk = yield* earliestOnDisk(topic)
      return disk !== undefined && disk < held.earliest ? { earliest: disk, end: held.end } : held
    })

  const subscribe: LogReaderShape["subscribe"] = (topic, subscribeOptions = {}) =>
    Effect.gen(function*() {
      const info = yield* lookup(topic)
      if (
        subscribeOptions.durable === true || subscribeOptions.regionOnly === true || info.replicationFactor < 2
      ) return yield* hot.subscribe(topic, subscribeOptions)
      const from = subscribeOptions.from ?? "earliest"
      const cursor = yield* tieredCursor(
        hot,
        info,
        { files, directory: options.directory, pollMs, openWaitMs },
        yield* Effect.scope,
        lookup
      )
      const held = yield* hot.bounds(topic)
      const disk = from === "earliest" ? yield* earliestOnDisk(topic) : undefined
      // A copy on disk that cannot be read is the cursor's first poll's failure (subscribing promises only out-of-range).
      yield* cursor.open(disk !== undefined && disk < held.earliest ? disk : from).pipe(
        Effect.catchTag("LogCorrupt", (e) => Effect.sync(() => cursor.fail(e))),
        // Deleted as it was subscribed to: there is no such topic (any more).
        Effect.catchTag("TopicDeleted", (e) => Effect.fail(new TopicNotFound({ name: e.name })))
      )
      return cursor.cursor
    })

  return { subscribe, bounds }
}

/** Waits (at most `timeoutMs`) until the cursor has more to read, or news (a problem, the region holding its position). */
const awaitMore = (s: TieredCursorState, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (s.hotCursor !== undefined) return yield* s.hotCursor.awaitMore(Math.max(0, deadline - Date.now()))
      if (s.prefetched.length > 0 || s.problem !== undefined || s.failure !== undefined) return true
      // The topic deleted: the next poll says so.
      if (yield* Effect.orElseSucceed(regionHolds(s), () => true)) return true
      yield* fetch(s, DISK_BATCHES)
      if (s.prefetched.length > 0 || s.problem !== undefined || lost(s)) return true
      const left = deadline - Date.now()
      if (left <= 0) return false
      yield* Effect.sleep(Math.min(s.pollMs, left))
    }
  })

/** Opens at `from`: the region when it holds it, else the disk (replication factor 2 topics). */
const open = (s: TieredCursorState, from: From) =>
  Effect.gen(function*() {
    const refused = yield* toHot(s, from)
    if (refused === undefined) return
    if (typeof from !== "number" || refused.requested >= refused.earliest) return yield* refused
    yield* toDisk(s, from)
  })

/**
 * A subscription's cursor over `info`'s topic (TieredCursorState.ts), closed with the scope:
 * `open` places it, `fail` makes every poll fail.
 */
const tieredCursor = (
  hot: LogReaderShape,
  info: TopicInfo,
  settings: TieredSettings,
  scope: Scope.Scope,
  lookup: (topic: string) => Effect.Effect<TopicInfo, TopicNotFound>
) =>
  Effect.gen(function*() {
    const s = newCursorState(hot, info, settings, scope, lookup)
    yield* Effect.addFinalizer(() => Effect.zipRight(closeHot(s), closeDisk(s)))
    const cursor: LogCursor = {
      topic: info,
      position: () => (s.hotCursor !== undefined ? s.hotCursor.position() : s.position),
      nextBatch: () => (s.hotCursor !== undefined ? s.hotCursor.nextBatch() : s.next),
      poll: (onMessage, maxBatches = Infinity) => readTiered(s, undefined, onMessage, maxBatches),
      pollBatches: (onBatch, maxBatches = Infinity) => readTiered(s, onBatch, undefined, maxBatches),
      awaitMore: (timeoutMs) => awaitMore(s, timeoutMs),
      retained: (g) => (g >= s.diskLo && g < s.diskHi) || (s.hotCursor?.retained(g) ?? false),
      // Such a topic is never trimmed (TopicNotTrimmable): what its disk holds, it holds whole batches of.
      holds: (g, offset) => (g >= s.diskLo && g < s.diskHi) || (s.hotCursor?.holds(g, offset) ?? false)
    }
    return {
      cursor,
      open: (from: From) => open(s, from),
      fail: (e: LogCorrupt) => {
        s.failure = e
      }
    }
  })

/** The process's LogReader, tiered over the head's data directory (needs the region's LogReader and Topics). */
export const layer = (options: TieredOptions): Layer.Layer<LogReader, never, LogReader | Topics> =>
  Layer.effect(
    LogReader,
    Effect.gen(function*() {
      const hot = yield* LogReader
      const topics = yield* Topics
      return tieredReader(hot, (name) => withinRegion(topics.lookup(name)), options)
    })
  )

/**
 * `layer` over CXLOG_DATA_DIR when it is set (a local reader on the head's host); else the LogReader
 * as it is. One set but blank fails naming it: read as unset, the reader would fail later, on the
 * first offset the region recycled, with no word of the directory it was given.
 */
export const layerConfig: Layer.Layer<LogReader, ConfigError.ConfigError, LogReader | Topics> = Layer.unwrapEffect(
  Effect.map(
    settingConfig(DURABLE_SETTINGS.settings.dataDir),
    (dir) => dir !== undefined ? layer({ directory: dir }) : Layer.effect(LogReader, LogReader)
  )
)
