/**
 * The segment engine, over any `SegmentFiles` (the live disk or the fake): a stream's recovery
 * when it opens, its group-commit writer, reads, and retention. This file opens a stream and
 * wires the parts over its state (SegmentStream.ts): SegmentRecoveryScan (opening), SegmentAppend
 * (appends and waits), SegmentWriter (the writer fiber), SegmentReads, SegmentRetention.
 *
 * Files: `DIR/STREAM/<first record, 20 digits>.seg`, and beside a closed one its header index
 * `.idx` when the stream keeps them (`indexBytes`). Appends copy the record into a pending
 * chunk and return at once; one writer fiber per stream takes everything pending, writes it
 * with one call per segment touched and one fdatasync at the end, and only then moves the
 * durable frontier (group commit: the more appends arrive while a sync runs, the more the next
 * one covers). A segment is synced before the next one gets any byte, so only the last segment
 * can hold a torn tail after a crash.
 */
import { Effect } from "effect"
import {
  InvalidStreamName,
  type SegmentLog,
  type SegmentLogOptions,
  type SegmentsShape,
  StreamLocked
} from "../../../services/log/Segments.js"
import { append, awaitDurable, tryAppend } from "./SegmentAppend.js"
import type { SegmentFiles } from "./SegmentFiles.js"
import { io, ioRead } from "./SegmentIo.js"
import { REMOVED_NAME, removedName, STREAM_NAME } from "./SegmentNames.js"
import { readRecords, scanHeaders } from "./SegmentReads.js"
import { recoverSegments } from "./SegmentRecoveryScan.js"
import { retain } from "./SegmentRetention.js"
import { closeCurrent, newStreamState, resumeAfterRecovery, type StreamState } from "./SegmentStream.js"
import { forkWriter } from "./SegmentWriter.js"

/** The segment engine over `files`, rooted at `directory`. */
export const segmentsOver = (files: SegmentFiles, directory: string): SegmentsShape => {
  const open = (stream: string, options: SegmentLogOptions = {}) =>
    Effect.gen(function*() {
      if (!STREAM_NAME.test(stream)) return yield* new InvalidStreamName({ stream })
      const s = newStreamState(files, directory, stream, options)
      yield* io(directory, s.dir, "mkdir", () => files.mkdir(s.dir))
      const locked = yield* io(directory, s.dir, "lock", () => files.lock(s.dir))
      if (typeof locked === "number") return yield* new StreamLocked({ stream, directory, pid: locked })
      // Finalizers run in reverse: the writer drains, then the open segment closes, then the lock is released.
      yield* Effect.addFinalizer(() => Effect.promise(() => locked().catch(() => undefined)))
      yield* Effect.addFinalizer(() => closeCurrent(s))
      const recovery = yield* recoverSegments(s, options.verifyClosedSegments !== false)
      resumeAfterRecovery(s)
      yield* forkWriter(s)
      return segmentLogOf(s, recovery)
    })

  const streams = () =>
    Effect.map(
      ioRead(directory, "readdir", () => files.list(directory)),
      (names) => names.filter((n) => STREAM_NAME.test(n)).sort()
    )

  const remove = (stream: string) =>
    Effect.gen(function*() {
      if (!STREAM_NAME.test(stream)) return false
      const names = yield* ioRead(directory, "readdir", () => files.list(directory))
      if (!names.includes(stream)) return false
      const removed = `${directory}/${removedName(stream)}`
      yield* ioRead(`${directory}/${stream}`, "rename", () => files.rename(`${directory}/${stream}`, removed))
      yield* ioRead(directory, "fsync", () => files.syncDirectory(directory))
      // Its files go after the call: a long stream's take a while, and nothing finds them any more (a crash leaves them to `sweepRemoved`).
      yield* ioRead(removed, "remove", () => files.removeTree(removed)).pipe(
        Effect.catchAll((e) => Effect.logWarning(`segments: ${e.message}; the next sweep deletes what is left`)),
        Effect.forkDaemon
      )
      return true
    })

  const sweepRemoved = () =>
    Effect.gen(function*() {
      const names = yield* ioRead(directory, "readdir", () => files.list(directory))
      const left = names.filter((n) => REMOVED_NAME.test(n))
      for (const name of left) {
        yield* ioRead(`${directory}/${name}`, "remove", () => files.removeTree(`${directory}/${name}`))
      }
      return left.length
    })

  return {
    directory,
    open: open as SegmentsShape["open"],
    streams,
    remove,
    sweepRemoved
  }
}

/** The stream's `SegmentLog`: the parts over its state. */
const segmentLogOf = (s: StreamState, recovery: SegmentLog["recovery"]): SegmentLog => ({
  stream: s.stream,
  recovery,
  first: () => s.segments[0]!.base,
  appended: () => s.appended,
  durable: () => s.durable,
  pendingBytes: () => s.pendingBytes,
  syncs: () => s.syncs,
  syncedBytes: () => s.syncedBytes,
  failure: () => s.failure,
  tryAppend: (record) => tryAppend(s, record),
  append: (record, timeoutMs) => append(s, record, timeoutMs),
  onDurable: (listener) => {
    s.listeners.add(listener)
    return () => s.listeners.delete(listener)
  },
  awaitDurable: (count, timeoutMs) => awaitDurable(s, count, timeoutMs),
  read: (from, onRecord, start) => readRecords(s, from, onRecord, start),
  scanHeaders: (from, headerBytes, onHeader) => scanHeaders(s, from, headerBytes, onHeader),
  retain: () => retain(s)
})
