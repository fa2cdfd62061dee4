/**
 * A stream's writer fiber (group commit): it takes everything appends left pending, writes it
 * with one call per segment touched, and covers it with one fdatasync, pipelined (writes go on
 * while a sync runs; the next sync covers them); only when a sync returns does the durable
 * frontier move. A roll syncs and closes the full segment before the next one gets any byte, so
 * only the last segment can hold a torn tail after a crash. A failed write or sync stops it.
 */
import { Deferred, Effect, Exit, Fiber, FiberId } from "effect"
import { join } from "node:path"
import { SegmentIoError } from "../../../services/log/Segments.js"
import { writeIndex } from "./SegmentIndex.js"
import { errorOf, io } from "./SegmentIo.js"
import { segmentFileName } from "./SegmentNames.js"
import { retain } from "./SegmentRetention.js"
import {
  announce,
  CHUNK_BYTES,
  FREE_CHUNKS,
  openSegment,
  type Pending,
  type StreamState,
  wakeWriter
} from "./SegmentStream.js"

/** How long closing a stream waits for its writer to write and sync what is pending. */
const CLOSE_DRAIN_MS = 30_000

/** A segment synced into a file its directory no longer holds (the data directory removed or moved): durable for no one. */
const goneFailure = (path: string) =>
  new SegmentIoError({
    path,
    operation: "fdatasync",
    code: "ENOENT",
    reason:
      "the segment file is no longer in the data directory (removed or moved while it was written): what was written since is not on disk there"
  })

/**
 * Starts the fdatasync covering everything written so far; when it returns, the frontier
 * moves there and the writer is woken. Writes go on meanwhile (group commit, pipelined: the
 * next sync covers them).
 */
const startSync = (s: StreamState) => {
  const open = openSegment(s)
  const covers = s.written
  const coversBytes = open.bytes
  const bytes = s.unsynced
  s.unsynced = 0
  const file = s.current!
  s.syncing = file.datasync().then(() => file.stillNamed()).then(
    (named) => {
      // Every sync before this one returned without error (a failed one stops the writer before the next starts).
      s.syncing = undefined
      if (!named) {
        // Moving the frontier would acknowledge records that no restart or recovery can find.
        s.failure ??= goneFailure(open.path)
        wakeWriter(s)
        return
      }
      s.pendingBytes -= bytes
      open.records = covers - open.base
      s.durableBytes = coversBytes
      s.durable = covers
      s.syncs++
      s.syncedBytes += bytes
      announce(s)
      wakeWriter(s)
    },
    (e) => {
      s.syncing = undefined
      s.failure ??= errorOf(s.directory, open.path, "fdatasync", e)
      wakeWriter(s)
    }
  )
}

const awaitSync = (s: StreamState) => Effect.promise(() => s.syncing ?? Promise.resolve())

/** Writes what was taken (one write per segment touched); a roll waits for the sync in flight, then syncs, closes and begins the next segment. */
const writeItems = (s: StreamState, items: ReadonlyArray<Pending>) =>
  Effect.gen(function*() {
    let records = s.written
    let batch: Array<Uint8Array> = []
    const flush = Effect.suspend(() => {
      if (batch.length === 0) return Effect.void
      const open = openSegment(s)
      const buffers = batch
      batch = []
      let n = 0
      for (const b of buffers) n += b.length
      return Effect.map(io(s.directory, open.path, "write", () => s.current!.write(buffers, open.bytes)), () => {
        open.bytes += n
        open.modifiedAt = s.files.now()
        s.unsynced += n
        s.written = records
      })
    })
    for (const item of items) {
      if (item.kind === "bytes") {
        batch.push(item.chunk.subarray(item.start, item.end))
        records = item.recordsAfter
        continue
      }
      yield* flush
      yield* roll(s, item, records)
    }
    yield* flush
  })

/** Closes the open segment, which holds records up to `records`, and begins the next at `item.base`. */
const roll = (s: StreamState, item: Extract<Pending, { kind: "roll" }>, records: number) =>
  Effect.gen(function*() {
    const { directory, dir, files } = s
    yield* awaitSync(s)
    if (s.failure !== undefined) return yield* Effect.fail(s.failure)
    const closed = openSegment(s)
    yield* io(directory, closed.path, "fdatasync", () => s.current!.datasync())
    if (!(yield* io(directory, closed.path, "fstat", () => s.current!.stillNamed()))) {
      return yield* goneFailure(closed.path)
    }
    closed.records = records - closed.base
    yield* io(directory, closed.path, "close", () => s.current!.close())
    s.current = undefined
    if (item.index !== undefined) yield* writeIndex(files, dir, closed.base, item.index)
    const path = join(dir, segmentFileName(item.base))
    s.current = yield* io(directory, path, "create", () => files.create(path))
    yield* io(directory, dir, "fsync", () => files.syncDirectory(dir))
    s.segments.push({ base: item.base, path, bytes: 0, records: 0, modifiedAt: files.now(), verified: true })
    s.syncs++
    s.syncedBytes += s.unsynced
    s.pendingBytes -= s.unsynced
    s.unsynced = 0
    s.durable = item.base
    s.durableBytes = 0
    announce(s)
    // A segment not deleted was counted and logged; the writer goes on (a failed fsync stops it).
    yield* retain(s).pipe(Effect.catchIf((e) => e.operation === "unlink", () => Effect.succeed(0)))
  })

/** Chunks written whole go back to be filled again (not the one being filled, nor one pending appends still use). */
const recycleChunks = (s: StreamState, items: ReadonlyArray<Pending>) => {
  for (const item of items) {
    const c = item.kind === "bytes" ? item.chunk : undefined
    if (
      c === undefined || c === s.chunk || c.length !== CHUNK_BYTES || s.freeChunks.length >= FREE_CHUNKS ||
      s.freeChunks.includes(c)
    ) continue
    if (!s.pending.some((p) => p.kind === "bytes" && p.chunk === c)) s.freeChunks.push(c)
  }
}

/** The writer's loop: until the stream closes (having written and synced what is pending) or a write or sync fails. */
const runWriter = (s: StreamState) =>
  Effect.gen(function*() {
    for (;;) {
      if (s.failure === undefined && s.pending.length > 0) {
        const items = s.pending
        s.pending = []
        const result = yield* Effect.either(writeItems(s, items))
        if (result._tag === "Left") s.failure ??= result.left
        recycleChunks(s, items)
      }
      if (s.failure === undefined && s.syncing === undefined && s.unsynced > 0) startSync(s)
      if (s.failure !== undefined) {
        yield* awaitSync(s)
        // Leave no partial record behind the durable bytes (recovery would cut it anyway).
        const open = openSegment(s)
        const current = s.current
        if (current !== undefined) yield* Effect.promise(() => current.truncate(s.durableBytes).catch(() => undefined))
        open.bytes = s.durableBytes
        yield* Effect.logError(`segments: stream ${s.stream} stopped: ${s.failure.message}`)
        announce(s)
        return
      }
      if (s.pending.length > 0) continue
      if (s.closing && s.syncing === undefined) return
      yield* Deferred.await(s.wake)
      s.wake = Deferred.unsafeMake<void>(FiberId.none)
    }
  })

/** Forks the stream's writer; when the scope closes it drains what is pending (at most CLOSE_DRAIN_MS) and stops. */
export const forkWriter = (s: StreamState) =>
  Effect.gen(function*() {
    const writerFiber = yield* Effect.forkDaemon(
      runWriter(s).pipe(
        Effect.catchAllDefect((defect) =>
          Effect.sync(() => {
            s.failure = new SegmentIoError({
              path: s.dir,
              operation: "write",
              code: "EFAULT",
              reason: `the writer failed: ${String(defect)}`
            })
            announce(s)
          })
        )
      )
    )
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        s.closing = true
        Deferred.unsafeDone(s.wake, Exit.void)
        const drained = yield* Fiber.await(writerFiber).pipe(Effect.timeoutOption(CLOSE_DRAIN_MS))
        if (drained._tag === "None") yield* Fiber.interrupt(writerFiber)
      })
    )
  })
