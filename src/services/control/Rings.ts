/**
 * Rings: single-writer, many-reader frame rings in a range of the region — the control
 * plane's transport.
 *
 * A ring is a control line (the writer's: leading sequence, occurrence, pid, closed flag,
 * doorbell), one progress line per reader slot (`delivered`, `processed`, occurrence, pid,
 * state, heartbeat, doorbell) and a data area of variable-size, 8-byte aligned frames with a
 * padding frame at the wrap point. Sequences are absolute byte positions in the writer's
 * space, so a reader's progress compares directly with the writer's leading sequence.
 *
 * A process that waits for readers' progress (the coordinator draining a barrier) can be
 * rung when a reader passes a target instead of polling: while it waits, it holds the ring's
 * last reader slot as an observer line (when that slot is free and not the only free one).
 */
import { Context, Data, type Effect, type Scope, type Stream } from "effect"

/** Where a ring lives; the caller (a region layout) places it. */
export interface RingAddress {
  /** The ring's id; with the writer occurrence it names the ring's sequence space. */
  readonly id: number
  /** Region offset of the ring, 64-byte aligned. */
  readonly offset: number
  /** Bytes of the data area: a multiple of 8, at least 64, below 2^31. */
  readonly dataBytes: number
  /** How many readers can attach at once. */
  readonly readerSlots: number
}

/** Bytes a ring occupies in the region (64-byte aligned): the control line, one line per reader slot, the data area. */
export const ringFootprint = (dataBytes: number, readerSlots: number): number =>
  64 * (1 + readerSlots) + Math.ceil(dataBytes / 64) * 64

export interface WriterOptions {
  /** Largest frame, as a fraction of `dataBytes` in (0, 1/2] (default 1/4); larger is `FrameTooLarge`. */
  readonly maxFrameFraction?: number
  /** How long `reserve`/`write` wait for space before `RingFull` (default 10 s). */
  readonly timeoutMs?: number
  /**
   * Take the ring over even from a writer whose process still runs (a head that was fenced:
   * the caller holds the lease that says so). The old writer then writes nothing more: each
   * reserve, commit and close checks that the ring's occurrence is still its own.
   */
  readonly takeOver?: boolean
  /**
   * While waiting for room, free the slot of the reader that holds the writer back once its
   * heartbeat is this old (a stopped process: a running reader beats every READER_LIVENESS_MS
   * while it waits), so one stopped reader does not stall every other. For rings whose readers
   * recover from a lost stretch (a service's callers: `ServiceRepliesLost`), never a channel's,
   * whose readers are its backpressure. Default: a live reader is never freed.
   */
  readonly freeStalledReaderAfterMs?: number
}

export interface ReaderOptions {
  /** Attach to this slot (it must be free) instead of the first free one. */
  readonly slot?: number
  /**
   * While this reader waits for frames, its process may spin up to this long before parking
   * (adaptively; see `DoorbellShape.watch`): for frames that come back within a round trip.
   */
  readonly spinMicros?: number
}

export interface RingWriter {
  readonly address: RingAddress
  /** This writer's occurrence: bumped every time a writer opens the ring. */
  readonly occurrence: number
  /** Largest payload a frame may carry. */
  readonly maxFrameBytes: number
  /** Where reserved payloads are filled: `tryReserve` and `reserve` return offsets into it. */
  readonly bytes: Uint8Array
  /**
   * Reserves a frame of `length` payload bytes without waiting: returns the offset of its
   * payload in `bytes`, or -1 when the ring has no room now (or the frame is too large or the
   * writer closed — `reserve` tells which). Fill it, then `commit`.
   */
  readonly tryReserve: (length: number) => number
  /** Like `tryReserve`, but commits pending frames and waits for room; `RingFull` after the timeout. */
  readonly reserve: (length: number) => Effect.Effect<number, RingWriteError>
  /**
   * Publishes every reserved frame at once, wakes readers parked on the ring, and returns the
   * leading sequence. With `wake`, only those reader slots are woken (plus any reader more
   * than half a ring behind, so none holds the writer back for long): for frames only some
   * readers need now, as a cross-process wake-up costs the waker a system call. The others
   * see the frames at their next wake-up, at the latest when their doorbell's park times out.
   */
  readonly commit: (wake?: ReadonlyArray<number>) => number
  /** Rings the parked readers (all, or only `slots`) without committing: for frames a `commit(wake)` left others to find later. */
  readonly wake: (slots?: ReadonlyArray<number>) => void
  /**
   * Commits pending frames and waits until a frame of `length` would fit, reserving nothing:
   * for a caller that must decide, once there is room, whether to write at all (an RPC call
   * whose bound passed sends nothing). Returns at once when it fits now, else after the room
   * came or `timeoutMs` passed (the caller's `tryReserve` tells which).
   */
  readonly awaitRoom: (length: number, timeoutMs: number) => Effect.Effect<void, FrameTooLarge | RingClosed>
  /** Reserves, copies and commits one frame; returns the leading sequence. */
  readonly write: (payload: Uint8Array) => Effect.Effect<number, RingWriteError>
  /** Writes many frames, committing as space runs out and once at the end; returns the leading sequence. */
  readonly writeAll: (payloads: Iterable<Uint8Array>) => Effect.Effect<number, RingWriteError>
  /**
   * Writes and commits, without waiting, the frames of `payloads` that fit now, in order: how
   * many (0 when the first does not fit, is too large, or the writer is closed). For hot paths
   * that must not pay an effect per call: `writeAll` of the rest waits for room or says why.
   */
  readonly tryWriteAll: (payloads: ReadonlyArray<Uint8Array>) => number
  /** The leading sequence: the position after the last committed frame. */
  readonly sequence: () => number
  /** Commits pending frames and marks the ring closed: readers end after the last frame. Also runs when the scope closes. */
  readonly close: Effect.Effect<void>
}

/**
 * Frames a `take` returned: payload `i` is `bytes[offsets[i] .. offsets[i] + lengths[i])`,
 * read in place (zero-copy for the region-backed layer). Entries past `count` are stale.
 * The batch and its views are valid until the next `take`.
 */
export interface FrameBatch {
  readonly count: number
  /** Position after the last frame: what `delivered` became. */
  readonly end: number
  readonly bytes: Uint8Array
  readonly offsets: Float64Array
  readonly lengths: Uint32Array
  /** Each frame's sequence: the position of its first byte. */
  readonly sequences: Float64Array
  /** A view of frame `i`'s payload. */
  readonly frame: (i: number) => Uint8Array
}

/** A frame as the `stream` emits it: a copy, safe to keep. */
export interface Frame {
  readonly sequence: number
  readonly bytes: Uint8Array
}

export interface RingReader {
  readonly address: RingAddress
  readonly slot: number
  /** This reader's occurrence in its slot: bumped at every attach. */
  readonly occurrence: number
  /**
   * Every frame available now (waiting until there is one, or `timeoutMs` → an empty batch).
   * Marks the previous batch processed, then advances `delivered` to the new batch's end.
   * Fails with `RingClosed`/`RingWriterDead` once every committed frame was delivered.
   */
  readonly take: (timeoutMs?: number) => Effect.Effect<FrameBatch, RingReadError>
  /** Marks every delivered frame processed (frees its space for the writer). */
  readonly complete: Effect.Effect<void>
  /**
   * Runs `handler` on every frame in order, zero-copy (the view is valid while the handler
   * runs): `delivered` passes a frame just before its handler runs, `processed` just after it
   * completes. Returns when the writer closes the ring.
   */
  readonly consume: <E, R>(
    handler: (frame: Uint8Array, sequence: number) => Effect.Effect<void, E, R>
  ) => Effect.Effect<void, E | Exclude<RingReadError, RingClosed>, R>
  /**
   * `consume` with a synchronous handler, called from the doorbell's wake callback itself: no
   * fiber is resumed and no effect run per batch (the RPC reply path). Same `delivered` and
   * `processed` steps; returns when the writer closes the ring; a handler that throws ends it
   * as a defect. The handler must not block. A handler that cannot finish a frame at once
   * returns the effect that finishes it: that effect runs in the reading fiber, the frame counts
   * as processed when it completes, and no later frame reaches the handler before (the RPC
   * server's handlers that suspend).
   */
  readonly consumeSync: (
    handler: (frame: Uint8Array, sequence: number) => void | Effect.Effect<void>
  ) => Effect.Effect<void, Exclude<RingReadError, RingClosed>>
  /**
   * `consumeSync` a batch at a time: `handler` gets every frame committed when the ring's
   * wake-up came (as many as a batch holds), read in place and valid only while it runs, in one
   * call from the doorbell's wake callback. `delivered` passes the whole batch just before the
   * call, `processed` just after it returns: two counter stores per batch, none per frame, and no
   * view made per frame (`batch.offsets[i]`, `batch.lengths[i]` into `batch.bytes`). The
   * handler must not block; one that throws ends the read as a defect. Returns when the writer
   * closes the ring.
   */
  readonly consumeFrames: (
    handler: (batch: FrameBatch) => void
  ) => Effect.Effect<void, Exclude<RingReadError, RingClosed>>
  /**
   * The frames as a stream of copies, one chunk per batch; ends when the writer closes. A
   * chunk counts as delivered when emitted and processed when the stream is pulled again.
   */
  readonly stream: Stream.Stream<Frame, Exclude<RingReadError, RingClosed>>
  /** This reader's own counters. */
  readonly progress: () => { readonly delivered: number; readonly processed: number }
  /**
   * After `take` or `consume` ended with `RingClosed` or `RingWriterDead`: waits until another
   * writer opens the ring (opening rings waiting readers) or this slot is reaped; false after
   * `timeoutMs`.
   */
  readonly awaitWriter: (timeoutMs: number) => Effect.Effect<boolean>
}

/** `observing`: the slot holds a progress watcher's line (see `RingsShape.awaitProgress`), not a reader. */
export type ReaderSlotState = "free" | "attaching" | "attached" | "observing" | "corrupt"

/** A reader slot's progress line as it is in the region now. */
export interface ReaderProgress {
  readonly slot: number
  readonly state: ReaderSlotState
  readonly occurrence: number
  readonly pid: number
  /** The reader's start tag (0 where unknown, or while the slot is being claimed): with the pid, it names the process. */
  readonly start: number
  /** Position after the last frame its consumer's handler was invoked with (writer's sequence space). */
  readonly delivered: number
  /** Position after the last handler run that completed. */
  readonly processed: number
  readonly heartbeatMs: number
}

/** The ring's control line as it is in the region now. */
export interface WriterProgress {
  /** The leading sequence: position after the last committed frame. */
  readonly sequence: number
  /** 0 while no writer ever opened the ring. */
  readonly occurrence: number
  readonly pid: number
  /** The writer's start tag (0 where unknown): with the pid, it names the process, so a reused pid is not it. */
  readonly start: number
  readonly closed: boolean
}

/** Read-only, synchronous views of a ring's lines (cheap enough for a doorbell condition). */
export interface RingInspector {
  readonly address: RingAddress
  readonly writer: () => WriterProgress
  readonly reader: (slot: number) => ReaderProgress
  readonly readers: () => ReadonlyArray<ReaderProgress>
}

export interface RingsShape {
  /** Opens the ring for writing (one writer at a time); it continues from the leading sequence. */
  readonly writer: (
    address: RingAddress,
    options?: WriterOptions
  ) => Effect.Effect<RingWriter, InvalidRingAddress | RingWriterBusy | RingCorrupt, Scope.Scope>
  /** Attaches a reader to a free slot, starting at the current leading sequence; detaches with the scope. */
  readonly reader: (
    address: RingAddress,
    options?: ReaderOptions
  ) => Effect.Effect<RingReader, InvalidRingAddress | NoFreeReaderSlot | RingCorrupt, Scope.Scope>
  readonly inspect: (address: RingAddress) => Effect.Effect<RingInspector, InvalidRingAddress>
  /**
   * Resolves `true` as soon as `reached()` holds, `false` after `timeoutMs`. Meanwhile a
   * reader of the ring whose `delivered` or `processed` crosses `target` wakes this process,
   * so `reached` (cheap, side-effect free, typically "every reader I wait for passed
   * `target`") is re-checked at once; when the ring has no observer line to spare it is
   * re-checked every millisecond instead.
   */
  readonly awaitProgress: (
    address: RingAddress,
    target: number,
    reached: () => boolean,
    timeoutMs: number
  ) => Effect.Effect<boolean, InvalidRingAddress>
  /**
   * Frees a reader slot so it no longer holds the writer back; its reader then fails with
   * `ReaderReaped`. With `occurrence`, only while that reader still holds the slot (the one the
   * caller judged: a reader attached since is left alone). True if a slot was freed.
   */
  readonly reap: (address: RingAddress, slot: number, occurrence?: number) => Effect.Effect<boolean, InvalidRingAddress>
  /** Reaps every slot whose process is gone (`process.kill(pid, 0)`); returns the slots reaped. */
  readonly reapDead: (address: RingAddress) => Effect.Effect<ReadonlyArray<number>, InvalidRingAddress>
}

export class Rings extends Context.Tag("cxlog/Rings")<Rings, RingsShape>() {}

export class InvalidRingAddress
  extends Data.TaggedError("InvalidRingAddress")<{ readonly ring: number; readonly reason: string }>
{
  override get message() {
    return `ring ${this.ring}: ${this.reason}`
  }
}

export class RingWriterBusy
  extends Data.TaggedError("RingWriterBusy")<{ readonly ring: number; readonly pid: number }>
{
  override get message() {
    return `ring ${this.ring} already has a live writer (pid ${this.pid})`
  }
}

export class NoFreeReaderSlot extends Data.TaggedError("NoFreeReaderSlot")<
  { readonly ring: number; readonly readerSlots: number; readonly slot?: number }
> {
  override get message() {
    return this.slot === undefined
      ? `ring ${this.ring}: all ${this.readerSlots} reader slots are taken`
      : `ring ${this.ring}: reader slot ${this.slot} is taken`
  }
}

export class FrameTooLarge extends Data.TaggedError("FrameTooLarge")<
  { readonly ring: number; readonly length: number; readonly maxFrameBytes: number }
> {
  override get message() {
    return `ring ${this.ring}: a ${this.length}-byte frame exceeds the ${this.maxFrameBytes}-byte limit`
  }
}

export class RingFull extends Data.TaggedError("RingFull")<{
  readonly ring: number
  readonly needed: number
  readonly free: number
  readonly waitedMs: number
  /** The slot whose `processed` holds the writer back, -1 if none. */
  readonly slowestSlot: number
  /** Of a `writeAll`: how many of its payloads were committed before this one found no room (the rest were not written). */
  readonly written?: number
}> {
  override get message() {
    return `ring ${this.ring}: no room for ${this.needed} bytes after ${this.waitedMs} ms (${this.free} free; slowest reader slot ${this.slowestSlot})`
  }
}

export class RingClosed extends Data.TaggedError("RingClosed")<{ readonly ring: number; readonly sequence: number }> {
  override get message() {
    return `ring ${this.ring} is closed at sequence ${this.sequence}`
  }
}

export class RingWriterDead
  extends Data.TaggedError("RingWriterDead")<{ readonly ring: number; readonly pid: number; readonly sequence: number }>
{
  override get message() {
    return `ring ${this.ring}: writer pid ${this.pid} died; every frame up to sequence ${this.sequence} was delivered`
  }
}

export class RingCorrupt
  extends Data.TaggedError("RingCorrupt")<{ readonly ring: number; readonly position: number; readonly reason: string }>
{
  override get message() {
    return `ring ${this.ring} is corrupt at position ${this.position}: ${this.reason}`
  }
}

/** A ring found corrupt by a reader that read on past it (a server's request ring), and where it read on. */
export interface RingBreak {
  readonly error: RingCorrupt
  /**
   * Where reading resumed: the frames from `error.position` up to it were never read. Undefined
   * when no reader could attach again (the ring's own words are damaged): nothing more is read from it.
   */
  readonly resumedAt: number | undefined
}

export class ReaderReaped extends Data.TaggedError("ReaderReaped")<
  { readonly ring: number; readonly slot: number; readonly occurrence: number }
> {
  override get message() {
    return `ring ${this.ring}: reader slot ${this.slot} (occurrence ${this.occurrence}) was reaped`
  }
}

export type RingWriteError = FrameTooLarge | RingFull | RingClosed
export type RingReadError = RingClosed | RingWriterDead | RingCorrupt | ReaderReaped
