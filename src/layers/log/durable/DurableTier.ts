/**
 * The head's durable tier: every topic with replication factor 2 — those the head created and
 * those created later (it looks at the topic table every second, and at once for a create,
 * which waits for it: DiskCopies.awaitWriting) — is persisted by
 * `persistTopic` into the data directory, under the topic's disk retention (its spec's
 * `diskRetention`, applied at every segment roll and every 10 s). Each topic generation's writers
 * run in a scope of their own that DiskCopies can close: a deletion stops them before it removes
 * the topic's streams (DiskCopies.ts). A topic whose writer stops
 * (a full disk, an I/O error) is logged and its ACK 2 sessions are refused; the other topics carry
 * on, and the tier starts that writer again after a backoff (1 s doubling to 30 s), so freed space
 * brings ACK 2 back without a head restart.
 * Retention never stops a writer: a segment it cannot delete is counted, logged and tried again.
 * One whose stream another live process holds (a head stalled past its lease when this one
 * took over) is tried again until that process lets it go.
 */
import { Data, Effect, ExecutionStrategy, Exit, Schedule, Scope } from "effect"
import { DiskCopies } from "../../../services/log/DiskCopies.js"
import { type SegmentLog, type SegmentLogOptions, Segments } from "../../../services/log/Segments.js"
import { type TopicInfo, Topics, type TopicSpec } from "../../../services/log/Topics.js"
import { CxlMemory } from "../../../services/region/CxlMemory.js"
import { DirectoryWriter } from "../../../services/region/Directory.js"
import { Doorbell } from "../../../services/region/Doorbell.js"
import type { LogArea } from "../Layout.js"
import { copyKey } from "./DiskCopies.js"
import { type DurableMarks, persistTopic, regionMarks } from "./DurableOrder.js"
import { persistTopicState } from "./DurableTopicState.js"
import { recoverTopic } from "./Recovery.js"
import { regionRecoveryTarget } from "./RecoveryTargets.js"

/** A topic with replication factor 2 and a head without a data directory: its ACK 2 could never be given. */
export class DataDirRequired extends Data.TaggedError("DataDirRequired")<{ readonly topics: ReadonlyArray<string> }> {
  override get message() {
    return `topic(s) ${
      this.topics.join(", ")
    } keep a copy on disk (replication factor 2): start the head with --data-dir DIR (CXLOG_DATA_DIR)`
  }
}

/** Refuses RF 2 topics when there is no data directory. */
export const requireDataDir = (topics: ReadonlyArray<TopicSpec>, dataDir: string | undefined) => {
  const durable = topics.filter((t) => t.replicationFactor >= 2).map((t) => t.name)
  return durable.length > 0 && dataDir === undefined
    ? Effect.fail(new DataDirRequired({ topics: durable }))
    : Effect.void
}

/**
 * A head without a data directory on a region whose topics keep a copy on disk (one attached,
 * or a standby that took over, started without `--data-dir`): nothing writes their copies, so
 * each is marked stopped — their ACK 2 is refused at once (`durability-unavailable`) and `cxlog
 * topics` says so — rather than left to time out. A head with their data directory writes them again.
 */
export const markCopiesUnwritten = (area: LogArea, topics: ReadonlyArray<TopicInfo>) =>
  Effect.gen(function*() {
    const durable = topics.filter((t) => t.replicationFactor >= 2)
    if (durable.length === 0) return
    const marks = regionMarks(yield* CxlMemory, area, yield* Doorbell)
    for (const topic of durable) marks.failed(topic, "stopped")
    yield* Effect.logWarning(
      `head: topic(s) ${
        durable.map((t) => t.name).join(", ")
      } keep a copy on disk, and this head has no data directory: their ACK 2 publishes are refused (durability-unavailable) until a head with their data directory runs (--data-dir DIR, CXLOG_DATA_DIR)`
    )
  })

/** Streams being written, for the head's reports (fsyncs and the bytes they covered). */
export interface DurableStats {
  readonly streams: Map<string, SegmentLog>
  /** Topics whose writer holds retention already. */
  readonly subscribed: Set<string>
}

export const durableStats = (stats: DurableStats) => {
  let fsyncs = 0
  let bytes = 0
  for (const log of stats.streams.values()) {
    fsyncs += log.syncs()
    bytes += log.syncedBytes()
  }
  return { fsyncs, bytes }
}

/**
 * Starts `topic`'s writers (its data, and its spec and consumers' commits) in a scope of their
 * own, registered with DiskCopies before either runs, so a deletion that stops them stops them
 * all (and calls `stopped`); resolves to that scope (undefined: DiskCopies refused, the topic's copy
 * being or having been removed).
 */
const startCopy = (
  topic: TopicInfo,
  marks: DurableMarks,
  stats: DurableStats,
  parent: Scope.Scope,
  stopped: () => void,
  diskFailed: () => void
) =>
  Effect.gen(function*() {
    const copies = yield* DiskCopies
    const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
    const stop = Effect.zipRight(Scope.close(scope, Exit.void), Effect.sync(stopped))
    if (!(yield* copies.persisting(topic, stop))) {
      return yield* Effect.as(Scope.close(scope, Exit.void), undefined)
    }
    yield* persistTopic(topic, marks, {
      segments: segmentOptionsOf(topic),
      onOpen: (log) => stats.streams.set(topic.name, log),
      onSubscribed: () => {
        stats.subscribed.add(topic.name)
        Effect.runSync(copies.writing(topic))
      }
    }).pipe(
      retryWhileLocked(topic.name),
      Effect.catchAll((e) => {
        // A full or failing disk may be cured (space freed, a device back): the tier starts the writer again later.
        const disk = e._tag === "DiskFull" || e._tag === "SegmentIoError"
        if (disk) diskFailed()
        return Effect.logError(
          `durable tier: topic ${topic.name} is no longer persisted (its ACK 2 stops${
            disk ? "; its writer is started again with a backoff, up to 30 s" : ""
          }): ${e.message}`
        )
      }),
      Effect.forkIn(scope)
    )
    // Its spec and named consumers' committed offsets, for recovery (DurableTopicState.ts).
    yield* persistTopicState(topic).pipe(
      retryWhileLocked(topic.name),
      Effect.catchAll((e) => {
        // As for the data: the copy's writers start again after the backoff, else commits would stay unpersisted
        // while the data writer runs on, and a recovery would rewind the consumers to the last snapshot.
        const disk = e._tag === "DiskFull" || e._tag === "SegmentIoError"
        if (disk) diskFailed()
        return Effect.logError(
          `durable tier: topic ${topic.name}: its consumers' committed offsets are no longer persisted${
            disk ? " until its writers are started again, with a backoff, up to 30 s" : ""
          }: ${e.message}`
        )
      }),
      Effect.forkIn(scope)
    )
    return scope
  })

/** A topic generation the tier persists: its writers' scope (undefined: not running, stopped by a deletion or refused). */
interface StartedCopy {
  readonly topic: TopicInfo
  scope: Scope.CloseableScope | undefined
  /** Its writer stopped on the disk (full, an I/O error): started again from this time on (Date.now ms). */
  retryAt: number | undefined
  /** Its disk failures so far: the backoff's exponent. */
  failures: number
}

/** The backoff before a writer stopped by the disk starts again: 1 s, doubling, at most 30 s. */
const retryDelayMs = (failures: number) => Math.min(30_000, 1_000 * 2 ** Math.min(5, failures - 1))

/**
 * Runs until interrupted over the region's log `area`; needs the region's LogReader, Segments
 * over the data directory, and the head's DiskCopies (through which a deletion stops a topic's
 * writers and removes its streams). A topic gone from the directory has its writers stopped here.
 */
export const durableTier = (area: LogArea, stats: DurableStats) =>
  Effect.gen(function*() {
    const topics = yield* Topics
    const copies = yield* DiskCopies
    const marks = regionMarks(yield* CxlMemory, area, yield* Doorbell)
    const parent = yield* Effect.scope
    // What a crash left of removals (Segments.remove renames a stream out of the names first).
    const swept = yield* Effect.orElseSucceed((yield* Segments).sweepRemoved(), () => 0)
    if (swept > 0) yield* Effect.logInfo(`durable tier: deleted ${swept} stream(s) a removal left unfinished`)
    /** The copies started, by topic generation. */
    const started = new Map<string, StartedCopy>()
    let rounds = 0
    for (;;) {
      const live = (yield* topics.list).filter((t) => t.replicationFactor >= 2)
      const liveKeys = new Set(live.map(copyKey))
      for (const [key, { scope, topic }] of started) {
        if (liveKeys.has(key)) continue
        started.delete(key)
        if (scope !== undefined) yield* Scope.close(scope, Exit.void)
        yield* copies.gone(topic)
        if (!live.some((t) => t.name === topic.name)) {
          stats.streams.delete(topic.name)
          stats.subscribed.delete(topic.name)
        }
      }
      for (const topic of live) {
        const key = copyKey(topic)
        const known = started.get(key)
        if (known?.retryAt !== undefined && known.scope !== undefined && Date.now() >= known.retryAt) {
          // Stopped by the disk: its writers go (the state writer with it) and start again below.
          const scope = known.scope
          known.scope = undefined
          known.retryAt = undefined
          yield* Scope.close(scope, Exit.void)
        }
        if (known !== undefined && known.scope !== undefined) continue
        // Not running (stopped by a deletion, or refused: its copy being removed): DiskCopies says
        // whether it may start again (a removal that failed), each round until the topic is gone.
        const copy: StartedCopy = known ?? { topic, scope: undefined, retryAt: undefined, failures: 0 }
        started.set(key, copy)
        copy.scope = yield* startCopy(topic, marks, stats, parent, () => {
          copy.scope = undefined
        }, () => {
          copy.failures++
          copy.retryAt = Date.now() + retryDelayMs(copy.failures)
        })
      }
      // Retention runs at every segment roll; a topic that stopped growing has its segments aged out here.
      if (++rounds % RETAIN_EVERY_ROUNDS === 0) {
        for (const log of stats.streams.values()) {
          // A segment not deleted is counted and logged (rate-limited) by the stream, and tried again here or at its
          // next roll; a failed directory fsync stops the stream's writer, which logs it.
          yield* Effect.ignore(log.retain())
        }
      }
      // A create of a topic with a copy wakes it early: the create returns once its writer holds retention.
      yield* copies.pause(1_000)
    }
  })

/** Pauses between attempts to take a stream a live process holds: from 200 ms, doubling, at most 5 s. */
const lockedRetry = Schedule.union(Schedule.exponential("200 millis"), Schedule.spaced("5 seconds"))

/**
 * Runs a topic's writer again whenever it stops on `StreamLocked`: a head stalled past its lease
 * (GC, SIGSTOP) when the standby took over holds its streams until it exits, and this head takes
 * them then. Meanwhile the writer's failure mark stands, so the topic's ACK 2 sessions are refused
 * (`durability-unavailable`), never acknowledged.
 */
export const retryWhileLocked =
  (topic: string) =>
  <A, E extends { readonly _tag: string; readonly message: string }, R>(
    persist: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      // Said once per wait, not at every attempt (one every 5 s per stream while it lasts).
      let said = false
      return persist.pipe(
        Effect.tapError((e) => {
          if (e._tag !== "StreamLocked" || said) return Effect.void
          said = true
          return Effect.logWarning(`durable tier: topic ${topic}: ${e.message}; trying again until it is free`)
        }),
        Effect.retry({ schedule: lockedRetry, while: (e) => e._tag === "StreamLocked" })
      )
    })

/** How a topic's stream is opened: its spec's disk retention. */
export const segmentOptionsOf = (
  topic: TopicInfo
): SegmentLogOptions => (topic.diskRetention === undefined ? {} : { retention: topic.diskRetention })

/** Rounds (of one second) between the durable tier's own retention passes. */
const RETAIN_EVERY_ROUNDS = 10

/**
 * `cxlog head --recover DIR`: every RF 2 topic of the new region (its log `area`) is loaded
 * from its stream (broker slot 0 held meanwhile) before the head reports ready and before its
 * sequencer runs.
 */
export const recoverAll = (area: LogArea) =>
  Effect.gen(function*() {
    const topics = yield* Topics
    const region = yield* CxlMemory
    const writer = yield* DirectoryWriter
    for (const topic of yield* topics.list) {
      if (topic.replicationFactor < 2) continue
      yield* Effect.scoped(
        Effect.flatMap(regionRecoveryTarget(region, area, topic, writer), (target) => recoverTopic(topic, target))
      )
    }
  })

/** Waits (at most `timeoutMs`) until the writer of every named topic holds retention, so nothing published after is recycled unpersisted. */
export const awaitSubscribed = (stats: DurableStats, topics: ReadonlyArray<string>, timeoutMs: number) =>
  Effect.gen(function*() {
    const started = Date.now()
    while (!topics.every((t) => stats.subscribed.has(t))) {
      if (Date.now() - started > timeoutMs) {
        return yield* Effect.logWarning(
          `durable tier: not every topic's writer started within ${timeoutMs} ms (${
            topics.filter((t) => !stats.subscribed.has(t)).join(", ")
          })`
        )
      }
      yield* Effect.sleep(5)
    }
  })
