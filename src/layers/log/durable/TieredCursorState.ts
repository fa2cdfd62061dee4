/**
 * A tiered subscription's cursor's state (TieredReader.ts wires the cursor; its reads are
 * TieredCursorRead.ts): which tier it is on — the disk until the region holds its position, then
 * the region, and back to the disk if it falls behind the region before a callback saw the batch
 * that went — where it is, and the moves between the tiers.
 */
import { Effect, ExecutionStrategy, Exit, Scope } from "effect"
import {
  type LogCursor,
  LogOutOfRange,
  type LogReaderShape,
  type SubscribeOptions
} from "../../../services/log/LogReader.js"
import { LogCorrupt, TopicDeleted, type TopicInfo, type TopicNotFound } from "../../../services/log/Topics.js"
import { BatchView, MessageView } from "../ReadViews.js"
import { type DiskBatch, diskEarliest, type DiskProblem, DiskStream, type StreamFiles } from "./DiskStream.js"

export type From = NonNullable<SubscribeOptions["from"]>

/** Records read from disk per look. */
export const DISK_BATCHES = 64

export interface TieredSettings {
  readonly files: StreamFiles
  /** The head's data directory. */
  readonly directory: string
  /** How long a cursor waiting for the disk sleeps between looks (ms). */
  readonly pollMs: number
  /** How long a position neither on disk nor in the region is waited for (ms). */
  readonly openWaitMs: number
}

export interface TieredCursorState extends TieredSettings {
  readonly hot: LogReaderShape
  readonly info: TopicInfo
  readonly topic: string
  /** The subscription's scope: each region cursor is opened in a scope forked from it. */
  readonly scope: Scope.Scope
  /** The region's bounds of the topic. */
  readonly heldBounds: Effect.Effect<{ readonly earliest: number; readonly end: number }, TopicDeleted>
  /** Whether the topic was deleted (its name free, or another topic's): read from disk, its polls fail with `TopicDeleted`. */
  readonly deleted: Effect.Effect<boolean>
  /** On the region: its cursor and that cursor's scope. */
  hotCursor: LogCursor | undefined
  hotScope: Scope.CloseableScope | undefined
  /** On the disk: the stream being read. */
  disk: DiskStream | undefined
  /** Read from disk, not delivered yet; and what stopped the last read, reported once they are. */
  prefetched: Array<DiskBatch>
  problem: DiskProblem | undefined
  /** On the disk: the next offset and global seq to deliver. */
  position: number
  next: number
  /** Global seqs delivered from disk in the current disk phase (copies: always intact). */
  diskLo: number
  diskHi: number
  /** After a switch from disk to the region: the global seq its first batch must have. */
  joinAt: number | undefined
  /** The views disk batches are handed out in. */
  readonly batch: BatchView
  readonly message: MessageView
  /** The region's earliest offset when last looked at: it only grows, so below it there is no need to look again. */
  regionEarliest: number
  /** Since when the position is neither on disk nor in the region (the region recycled it; the head's write should follow). */
  missingSince: number | undefined
  /** Why the copy on disk could not be opened: every poll fails with it. */
  failure: LogCorrupt | undefined
}

export const newCursorState = (
  hot: LogReaderShape,
  info: TopicInfo,
  settings: TieredSettings,
  scope: Scope.Scope,
  /** The topic looked up afresh (its generation tells a topic made again under the name). */
  lookup: (topic: string) => Effect.Effect<TopicInfo, TopicNotFound>
): TieredCursorState => {
  const batch = new BatchView()
  return {
    ...settings,
    hot,
    info,
    topic: info.name,
    scope,
    // A topic gone from the region was deleted: its copy on disk goes with it.
    heldBounds: hot.bounds(info.name).pipe(Effect.catchAll(() => Effect.fail(new TopicDeleted({ name: info.name })))),
    deleted: Effect.suspend(() =>
      Effect.match(lookup(info.name), {
        onFailure: () => true,
        onSuccess: (now) => now.generation !== info.generation
      })
    ),
    hotCursor: undefined,
    hotScope: undefined,
    disk: undefined,
    prefetched: [],
    problem: undefined,
    position: 0,
    next: 0,
    diskLo: 0,
    diskHi: 0,
    joinAt: undefined,
    batch,
    message: new MessageView(batch, batch.bytes),
    regionEarliest: 0,
    missingSince: undefined,
    failure: undefined
  }
}

export const closeDisk = (s: TieredCursorState) =>
  Effect.promise(async () => {
    const d = s.disk
    s.disk = undefined
    s.prefetched = []
    s.problem = undefined
    await d?.close()
  })

export const closeHot = (s: TieredCursorState) =>
  Effect.suspend(() => {
    const scope = s.hotScope
    s.hotScope = undefined
    s.hotCursor = undefined
    return scope === undefined ? Effect.void : Scope.close(scope, Exit.void)
  })

/** Moves onto the region at `from`; returns the region's refusal when it does not hold it (any more). */
export const toHot = (s: TieredCursorState, from: From) =>
  Effect.gen(function*() {
    const child = yield* Scope.fork(s.scope, ExecutionStrategy.sequential)
    const opened = yield* Effect.either(s.hot.subscribe(s.topic, { from }).pipe(Scope.extend(child)))
    if (opened._tag === "Left") {
      yield* Scope.close(child, Exit.void)
      if (opened.left._tag === "SubscriberTableFull") return yield* Effect.die(opened.left)
      // Deleted while it was read from disk: the name is free, or another topic's.
      if (opened.left._tag === "TopicNotFound") return yield* new TopicDeleted({ name: s.topic })
      return opened.left
    }
    if (opened.right.topic.generation !== s.info.generation) {
      yield* Scope.close(child, Exit.void)
      return yield* new TopicDeleted({ name: s.topic })
    }
    yield* closeHot(s)
    yield* closeDisk(s)
    s.hotCursor = opened.right
    s.hotScope = child
    return undefined
  })

/** `requested` is not held; `earliest` (default the region's) is where reading can resume after it (the oldest of the two). */
export const outOfRange = (s: TieredCursorState, requested: number, earliest?: number) =>
  Effect.flatMap(
    s.heldBounds,
    (held) =>
      Effect.fail(
        new LogOutOfRange({
          topic: s.topic,
          requested,
          earliest: Math.min(earliest ?? held.earliest, held.earliest),
          end: held.end
        })
      )
  )

/** What stopped the disk's last read, as the poll's failure. */
export const problemError = (s: TieredCursorState, p: DiskProblem) =>
  p.kind === "gone"
    ? Effect.flatMap(
      Effect.promise(() => diskEarliest(s.files, s.directory, s.topic).catch(() => undefined)),
      (earliest) => outOfRange(s, s.position, earliest)
    )
    : Effect.fail(
      new LogCorrupt({
        reason: `topic ${s.topic}: its copy on disk, ${p.file}${
          p.kind === "corrupt" ? ` at byte ${p.offset}` : ""
        }: ${p.reason}`
      })
    )

/** Reads what the disk has next (records ending at or before `position` skipped). */
export const fetch = (s: TieredCursorState, max: number) =>
  Effect.promise(async () => {
    if (s.disk === undefined || s.problem !== undefined) return
    const read = await s.disk.next(max, s.position)
    s.prefetched.push(...read.batches)
    if (read.problem !== undefined) s.problem = read.problem
  })

/** Moves onto the disk at `offset`, waiting (at most `openWaitMs`) for the head to write it; fails when the disk does not hold it. */
export const toDisk = (s: TieredCursorState, offset: number) =>
  Effect.gen(function*() {
    const { directory, files, topic } = s
    yield* closeHot(s)
    yield* closeDisk(s)
    const d = new DiskStream(files, directory, topic)
    const sought = yield* Effect.tryPromise({
      try: () => d.seek(offset),
      catch: (e) =>
        new LogCorrupt({
          reason: `topic ${topic}: reading its copy on disk in ${directory}: ${
            e instanceof Error ? e.message : String(e)
          }`
        })
    })
    if (sought.kind === "before") return yield* outOfRange(s, offset, sought.earliest)
    if (sought.kind === "empty") return yield* outOfRange(s, offset)
    s.disk = d
    s.position = offset
    s.joinAt = undefined
    const deadline = Date.now() + s.openWaitMs
    // The batch holding `offset` tells where the cursor is (`nextBatch`); the region recycled it, so it is on disk or about to be.
    for (;;) {
      yield* fetch(s, DISK_BATCHES)
      if (s.prefetched.length > 0) break
      if (s.problem !== undefined) return yield* problemError(s, s.problem)
      // Neither on disk nor in the region: a hole the head's writer left; reading resumes where the region begins.
      if (Date.now() >= deadline) return yield* outOfRange(s, offset)
      yield* Effect.sleep(s.pollMs)
    }
    const first = s.prefetched[0]!
    if (first.totalOrder > offset) return yield* outOfRange(s, offset, first.totalOrder)
    s.next = first.globalSeq
    s.diskLo = s.next
    s.diskHi = s.next
  })

/** Whether the region holds the cursor's position now. */
export const regionHolds = (s: TieredCursorState) =>
  Effect.suspend(() =>
    s.position < s.regionEarliest ? Effect.succeed(false) : Effect.map(s.heldBounds, (held) => {
      s.regionEarliest = held.earliest
      return held.earliest <= s.position && s.position <= held.end
    })
  )

/**
 * Whether the position has been neither on disk nor in the region for longer than `openWaitMs`:
 * then the head's writer did not persist it (it stopped, and the region recycled what it had not
 * read), and the reader is told, not left waiting.
 */
export const lost = (s: TieredCursorState) => {
  if (s.prefetched.length > 0 || s.position >= s.regionEarliest) {
    s.missingSince = undefined
    return false
  }
  s.missingSince ??= Date.now()
  return Date.now() - s.missingSince > s.openWaitMs
}
