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
import { Config, Effect, Exit, ExecutionStrategy, Layer, Option, Scope } from "effect"
import { type LogBatchView, type LogCursor, type LogMessageView, LogOutOfRange, LogReader, type LogReaderShape, type SubscribeOptions } from "../../services/log/LogReader.js"
import { LogCorrupt, type TopicInfo, type TopicNotFound, Topics } from "../../services/log/Topics.js"
import { type DiskBatch, type DiskProblem, diskEarliest, DiskStream, nodeStreamFiles, type StreamFiles } from "./DiskStream.js"
import { BatchView, MessageView, visitMessages } from "./LogReader.js"
import { crc32c } from "../net/Crc32c.js"

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

type From = NonNullable<SubscribeOptions["from"]>

/** Records read from disk per look. */
const DISK_BATCHES = 64

export const tieredReader = (
  hot: LogReaderShape,
  lookup: (topic: string) => Effect.Effect<TopicInfo, TopicNotFound>,
  options: TieredOptions
): LogReaderShape => {
  const files = options.files ?? nodeStreamFiles
  const pollMs = options.pollMs ?? 10
  const openWaitMs = options.openWaitMs ?? 5_000
  const earliestOnDisk = (topic: string) => Effect.promise(() => diskEarliest(files, options.directory, topic).catch(() => undefined))

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
      if (subscribeOptions.durable === true || subscribeOptions.regionOnly === true || info.replicationFactor < 2) return yield* hot.subscribe(topic, subscribeOptions)
      const from = subscribeOptions.from ?? "earliest"
      const cursor = yield* tieredCursor(hot, info, { files, directory: options.directory, pollMs, openWaitMs }, yield* Effect.scope)
      const held = yield* hot.bounds(topic)
      const disk = from === "earliest" ? yield* earliestOnDisk(topic) : undefined
      // A copy on disk that cannot be read is the cursor's first poll's failure (subscribing promises only out-of-range).
      yield* cursor.open(disk !== undefined && disk < held.earliest ? disk : from).pipe(Effect.catchTag("LogCorrupt", (e) => Effect.sync(() => cursor.fail(e))))
      return cursor.cursor
    })

  return { subscribe, bounds }
}

/** A subscription's cursor: on the disk until the region holds its position, then on the region (and back if it falls behind). */
const tieredCursor = (
  hot: LogReaderShape,
  info: TopicInfo,
  { directory, files, openWaitMs, pollMs }: { readonly files: StreamFiles; readonly directory: string; readonly pollMs: number; readonly openWaitMs: number },
  scope: Scope.Scope
) =>
  Effect.gen(function*() {
    const topic = info.name
    let hotCursor: LogCursor | undefined
    let hotScope: Scope.CloseableScope | undefined
    let disk: DiskStream | undefined
    /** Read from disk, not delivered yet; and what stopped the last read, reported once they are. */
    let prefetched: Array<DiskBatch> = []
    let problem: DiskProblem | undefined
    let position = 0
    let next = 0
    /** Global seqs delivered from disk in the current disk phase (copies: always intact). */
    let diskLo = 0
    let diskHi = 0
    /** After a switch from disk to the region: the global seq its first batch must have. */
    let joinAt: number | undefined
    const batch = new BatchView()
    const message = new MessageView(batch, batch.bytes)

    const closeDisk = Effect.promise(async () => {
      const d = disk
      disk = undefined
      prefetched = []
      problem = undefined
      await d?.close()
    })
    const closeHot = Effect.suspend(() => {
      const s = hotScope
      hotScope = undefined
      hotCursor = undefined
      return s === undefined ? Effect.void : Scope.close(s, Exit.void)
    })
    yield* Effect.addFinalizer(() => Effect.zipRight(closeHot, closeDisk))

    const heldBounds = hot.bounds(topic).pipe(Effect.orDie)

    /** Moves onto the region at `from`; returns the region's refusal when it does not hold it (any more). */
    const toHot = (from: From) =>
      Effect.gen(function*() {
        const child = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const opened = yield* Effect.either(hot.subscribe(topic, { from }).pipe(Scope.extend(child), Effect.catchTag("TopicNotFound", Effect.die)))
        if (opened._tag === "Left") {
          yield* Scope.close(child, Exit.void)
          if (opened.left._tag === "SubscriberTableFull") return yield* Effect.die(opened.left)
          return opened.left
        }
        yield* closeHot
        yield* closeDisk
        hotCursor = opened.right
        hotScope = child
        return undefined
      })

    /** `requested` is not held; `earliest` (default the region's) is where reading can resume after it (the oldest of the two). */
    const outOfRange = (requested: number, earliest?: number) =>
      Effect.flatMap(heldBounds, (held) => Effect.fail(new LogOutOfRange({ topic, requested, earliest: Math.min(earliest ?? held.earliest, held.earliest), end: held.end })))

    const problemError = (p: DiskProblem) =>
      p.kind === "gone"
        ? Effect.flatMap(Effect.promise(() => diskEarliest(files, directory, topic).catch(() => undefined)), (earliest) => outOfRange(position, earliest))
        : Effect.fail(new LogCorrupt({ reason: `topic ${topic}: its copy on disk, ${p.file}${p.kind === "corrupt" ? ` at byte ${p.offset}` : ""}: ${p.reason}` }))

    /** Reads what the disk has next (records ending at or before `position` skipped). */
    const fetch = (max: number) =>
      Effect.promise(async () => {
        if (disk === undefined || problem !== undefined) return
        const read = await disk.next(max, position)
        prefetched.push(...read.batches)
        if (read.problem !== undefined) problem = read.problem
      })

    /** Moves onto the disk at `offset`, waiting (at most `openWaitMs`) for the head to write it; fails when the disk does not hold it. */
    const toDisk = (offset: number) =>
      Effect.gen(function*() {
        yield* closeHot
        yield* closeDisk
        const d = new DiskStream(files, directory, topic)
        const sought = yield* Effect.tryPromise({
          try: () => d.seek(offset),
          catch: (e) => new LogCorrupt({ reason: `topic ${topic}: reading its copy on disk in ${directory}: ${e instanceof Error ? e.message : String(e)}` })
        })
        if (sought.kind === "before") return yield* outOfRange(offset, sought.earliest)
        if (sought.kind === "empty") return yield* outOfRange(offset)
        disk = d
        position = offset
        joinAt = undefined
        const deadline = Date.now() + openWaitMs
        // The batch holding `offset` tells where the cursor is (`nextBatch`); the region recycled it, so it is on disk or about to be.
        for (;;) {
          yield* fetch(DISK_BATCHES)
          if (prefetched.length > 0) break
          if (problem !== undefined) return yield* problemError(problem)
          // Neither on disk nor in the region: a hole the head's writer left; reading resumes where the region begins.
          if (Date.now() >= deadline) return yield* outOfRange(offset)
          yield* Effect.sleep(pollMs)
        }
        const first = prefetched[0]!
        if (first.totalOrder > offset) return yield* outOfRange(offset, first.totalOrder)
        next = first.globalSeq
        diskLo = next
        diskHi = next
      })

    /** The region's earliest offset when last looked at: it only grows, so below it there is no need to look again. */
    let regionEarliest = 0
    /** Whether the region holds the cursor's position now. */
    const regionHolds = Effect.suspend(() =>
      position < regionEarliest ? Effect.succeed(false) : Effect.map(heldBounds, (held) => {
        regionEarliest = held.earliest
        return held.earliest <= position && position <= held.end
      })
    )

    /** Since when the position is neither on disk nor in the region (the region recycled it; the head's write should follow). */
    let missingSince: number | undefined
    /**
     * Whether that has lasted past `openWaitMs`: then the head's writer did not persist it (it stopped,
     * and the region recycled what it had not read), and the reader is told, not left waiting.
     */
    const lost = () => {
      if (prefetched.length > 0 || position >= regionEarliest) {
        missingSince = undefined
        return false
      }
      missingSince ??= Date.now()
      return Date.now() - missingSince > openWaitMs
    }

    /** Why the copy on disk could not be opened: every poll fails with it. */
    let failure: LogCorrupt | undefined

    const read = (onBatch: ((b: LogBatchView) => void) | undefined, onMessage: ((m: LogMessageView) => void) | undefined, max: number) =>
      Effect.gen(function*() {
        if (failure !== undefined) return yield* failure
        // Caught up: carry on from the region (cheaper; zero copies) once it holds the position.
        if (hotCursor === undefined && (yield* regionHolds) && (yield* toHot(position)) === undefined) joinAt = next
        if (hotCursor !== undefined) {
          const cursor = hotCursor
          /** The last batch a callback was given: if the region recycled that one, the callback saw what may be torn. */
          let shown = -1
          /** Set when the region's first batch after the disk's last is not where the disk said the next one is. */
          let mismatch: { readonly globalSeq: number; readonly offset: number; readonly startIndex: number } | undefined
          /** Whether `b` may be shown: the first batch after a switch from disk must be batch `joinAt`, starting at its first message. */
          const fits = (b: LogBatchView) => {
            if (mismatch !== undefined) return false
            if (joinAt === undefined) return true
            if (b.globalSeq !== joinAt || b.startIndex !== 0) {
              mismatch = { globalSeq: b.globalSeq, offset: b.totalOrder + b.startIndex, startIndex: b.startIndex }
              return false
            }
            joinAt = undefined
            return true
          }
          const polled = yield* Effect.either(
            onBatch !== undefined
              ? cursor.pollBatches((b) => {
                if (!fits(b)) return
                shown = b.globalSeq
                onBatch(b)
              }, max)
              : cursor.poll((m) => {
                if (!fits(m.batch)) return
                shown = m.batch.globalSeq
                onMessage!(m)
              }, max)
          )
          if (mismatch !== undefined) {
            // One log numbers and cuts its batches alike on disk and in the region: this copy is another log's.
            const b = mismatch
            return yield* new LogCorrupt({
              reason: `topic ${topic}: the copy on disk in ${directory} does not match the region at offset ${b.offset} ` +
                `(batch ${next} next on disk; the region has batch ${b.globalSeq} there, from its message ${b.startIndex}): is it this head's data directory?`
            })
          }
          if (polled._tag === "Right") return polled.right
          const e = polled.left
          if (e._tag !== "LogOutOfRange" || shown === cursor.nextBatch() || e.requested >= e.earliest) return yield* e
          // Fell behind the region before it was shown the batch: the disk has it.
          position = cursor.position()
          yield* toDisk(position)
        }
        if (prefetched.length === 0) yield* fetch(Math.max(1, Math.min(max, DISK_BATCHES)))
        let batches = 0
        let messages = 0
        while (batches < max && prefetched.length > 0) {
          const b = prefetched[0]!
          if (b.totalOrder > position) return yield* outOfRange(position, b.totalOrder)
          if (b.payload.length % 8 !== 0) return yield* new LogCorrupt({ reason: `topic ${topic}: batch ${b.globalSeq} on disk has ${b.payload.length} payload bytes, not whole messages` })
          // The record's own checksum held; the publisher's covers the payload as it was received.
          if (crc32c(b.payload, 0, b.payload.length) !== b.crc32c) {
            return yield* new LogCorrupt({ reason: `topic ${topic}: batch ${b.globalSeq} (offset ${b.totalOrder}) on disk fails its publisher's crc32c` })
          }
          batch.globalSeq = b.globalSeq
          batch.totalOrder = b.totalOrder
          batch.messageCount = b.messageCount
          batch.clientId = b.clientId
          batch.sessionEpoch = b.sessionEpoch
          batch.batchSeq = b.batchSeq
          batch.brokerId = b.brokerId
          batch.crc32c = b.crc32c
          batch.bytes = b.payload
          batch.words = new Uint32Array(b.payload.buffer, b.payload.byteOffset, b.payload.length / 4)
          batch.offset = 0
          batch.length = b.payload.length
          batch.startIndex = position - b.totalOrder
          if (onBatch !== undefined) onBatch(batch)
          if (onMessage !== undefined && !visitMessages(batch, message, onMessage)) {
            return yield* new LogCorrupt({ reason: `topic ${topic}: batch ${b.globalSeq} on disk has malformed messages` })
          }
          prefetched.shift()
          messages += b.messageCount - batch.startIndex
          position = b.totalOrder + b.messageCount
          next = b.globalSeq + 1
          diskHi = next
          batches++
        }
        if (batches === 0 && problem !== undefined) return yield* problemError(problem)
        if (batches > 0) missingSince = undefined
        else if (lost()) return yield* outOfRange(position)
        return onBatch !== undefined ? batches : messages
      })

    const awaitMore = (timeoutMs: number) =>
      Effect.gen(function*() {
        const deadline = Date.now() + timeoutMs
        for (;;) {
          if (hotCursor !== undefined) return yield* hotCursor.awaitMore(Math.max(0, deadline - Date.now()))
          if (prefetched.length > 0 || problem !== undefined || failure !== undefined) return true
          if (yield* regionHolds) return true
          yield* fetch(DISK_BATCHES)
          if (prefetched.length > 0 || problem !== undefined || lost()) return true
          const left = deadline - Date.now()
          if (left <= 0) return false
          yield* Effect.sleep(Math.min(pollMs, left))
        }
      })

    const cursor: LogCursor = {
      topic: info,
      position: () => (hotCursor !== undefined ? hotCursor.position() : position),
      nextBatch: () => (hotCursor !== undefined ? hotCursor.nextBatch() : next),
      poll: (onMessage, maxBatches = Infinity) => read(undefined, onMessage, maxBatches),
      pollBatches: (onBatch, maxBatches = Infinity) => read(onBatch, undefined, maxBatches),
      awaitMore,
      retained: (g) => (g >= diskLo && g < diskHi) || (hotCursor?.retained(g) ?? false)
    }

    /** Opens at `from`: the region when it holds it, else the disk (replication factor 2 topics). */
    const open = (from: From) =>
      Effect.gen(function*() {
        const refused = yield* toHot(from)
        if (refused === undefined) return
        if (typeof from !== "number" || refused.requested >= refused.earliest) return yield* refused
        yield* toDisk(from)
      })

    return {
      cursor,
      open,
      fail: (e: LogCorrupt) => {
        failure = e
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
      return tieredReader(hot, topics.lookup, options)
    })
  )

/** `layer` over CXLOG_DATA_DIR when it is set (a local reader on the head's host); else the LogReader as it is. */
export const layerConfig: Layer.Layer<LogReader, never, LogReader | Topics> = Layer.unwrapEffect(
  Effect.map(
    Config.option(Config.string("CXLOG_DATA_DIR")).pipe(Effect.orElseSucceed(() => Option.none<string>())),
    (dir) => Option.isSome(dir) && dir.value !== "" ? layer({ directory: dir.value }) : Layer.effect(LogReader, LogReader)
  )
)
