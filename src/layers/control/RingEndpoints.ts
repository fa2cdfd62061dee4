/**
 * The public writer and reader, built over a small synchronous core that each ring layer
 * implements (region-backed or in-memory). Everything per frame stays inside the core's
 * plain loops; Effect wraps per batch and per wait.
 */
import { Chunk, Effect, Metric, Option, Stream } from "effect"
import { ringBackpressureWaits, ringCorruptions } from "../../Metrics.js"
import {
  type Frame,
  type FrameBatch,
  FrameTooLarge,
  ReaderReaped,
  type RingAddress,
  RingClosed,
  RingFull,
  type RingReader,
  type RingReadError,
  type RingWriteError,
  type RingWriter
} from "../../services/control/Rings.js"
import { alignedDelayMs } from "../region/Cadence.js"
import { frameSpan, MAX_BATCH_FRAMES, READER_LIVENESS_MS } from "./RingFrames.js"

export interface WriterCore {
  readonly address: RingAddress
  readonly occurrence: number
  readonly maxFrameBytes: number
  readonly bytes: Uint8Array
  readonly tryReserve: (length: number) => number
  /** Copies `payloads[from..]` into frames while they fit (uncommitted); the index of the first not written. */
  readonly tryWriteFrames: (payloads: ReadonlyArray<Uint8Array>, from: number) => number
  readonly commit: (wake?: ReadonlyArray<number>) => number
  readonly wake: (slots?: ReadonlyArray<number>) => void
  readonly sequence: () => number
  readonly closed: () => boolean
  /** Waits until a frame of `length` fits or `timeoutMs` passes, reaping dead readers that hold it back. */
  readonly awaitRoom: (length: number, timeoutMs: number) => Effect.Effect<void>
  readonly fullError: (length: number, waitedMs: number) => RingFull
  /** Commits, marks the ring closed and wakes its readers. Idempotent. */
  readonly close: () => void
}

export const makeWriter = (core: WriterCore, timeoutMs: number): RingWriter => {
  const { address } = core
  /** Why a frame of `length` can never be written, if so. */
  const never = (length: number): FrameTooLarge | RingClosed | undefined =>
    !(Number.isInteger(length) && length >= 0 && length <= core.maxFrameBytes)
      ? new FrameTooLarge({ ring: address.id, length, maxFrameBytes: core.maxFrameBytes })
      : core.closed()
      ? new RingClosed({ ring: address.id, sequence: core.sequence() })
      : undefined

  /** Commits pending frames, then waits up to `waitMs` for `length` to fit (counted as back-pressure); fails when it never can. */
  const awaitRoom = (length: number, waitMs: number) =>
    Effect.suspend(() => {
      const impossible = never(length)
      if (impossible !== undefined) return Effect.fail(impossible)
      core.commit()
      return Effect.zipRight(Metric.increment(ringBackpressureWaits), core.awaitRoom(length, Math.max(0, waitMs)))
    })

  /** `awaitRoom` within the writer's own bound, counted from `started`. */
  const waitForRoom = (length: number, started: number) =>
    Effect.suspend(() => {
      const waited = performance.now() - started
      return waited >= timeoutMs && never(length) === undefined
        ? Effect.fail<RingWriteError>(core.fullError(length, Math.round(waited)))
        : awaitRoom(length, timeoutMs - waited)
    })

  const reserve = (length: number) =>
    Effect.suspend(() => {
      const at = core.tryReserve(length)
      if (at >= 0) return Effect.succeed(at)
      return Effect.gen(function*() {
        const started = performance.now()
        for (;;) {
          yield* waitForRoom(length, started)
          const retried = core.tryReserve(length)
          if (retried >= 0) return retried
        }
      })
    })

  // Reserve, fill and commit run in one synchronous step, so another fiber's commit never
  // publishes a frame this one has reserved but not filled yet. The frames that fit are
  // written in a plain loop; only a frame that finds no room makes an effect (its wait).
  const writeFrom = (payloads: ReadonlyArray<Uint8Array>, from: number): Effect.Effect<number, RingWriteError> => {
    const next = core.tryWriteFrames(payloads, from)
    if (next === payloads.length) return Effect.succeed(core.commit())
    return Effect.zipRight(
      // The wait committed the frames before this one: a RingFull says how many, for the caller to send the rest again.
      Effect.mapError(
        writeWhenRoom(payloads[next]!, performance.now()),
        (e) => (e._tag === "RingFull" ? new RingFull({ ...e, written: next }) : e)
      ),
      Effect.suspend(() => writeFrom(payloads, next + 1))
    )
  }

  /** Waits for room for `payload` (committing what is reserved first), then writes it in. */
  const writeWhenRoom = (payload: Uint8Array, started: number): Effect.Effect<void, RingWriteError> =>
    Effect.flatMap(waitForRoom(payload.length, started), () => {
      const at = core.tryReserve(payload.length)
      if (at < 0) return writeWhenRoom(payload, started)
      core.bytes.set(payload, at)
      return Effect.void
    })

  /**
   * A frame too large for the ring fails the call before anything is reserved: the frames before
   * it, left reserved but uncommitted, would go out with the writer's next commit, a later call's,
   * after this one had failed.
   */
  const writeAll = (payloads: Iterable<Uint8Array>) =>
    Effect.suspend(() => {
      const all = Array.isArray(payloads) ? payloads : Array.from(payloads)
      for (const payload of all) {
        if (payload.length > core.maxFrameBytes) {
          return Effect.fail(
            new FrameTooLarge({ ring: address.id, length: payload.length, maxFrameBytes: core.maxFrameBytes })
          )
        }
      }
      return writeFrom(all, 0)
    })

  return {
    address,
    occurrence: core.occurrence,
    maxFrameBytes: core.maxFrameBytes,
    bytes: core.bytes,
    tryReserve: core.tryReserve,
    reserve,
    commit: core.commit,
    wake: core.wake,
    awaitRoom,
    write: (payload) =>
      Effect.suspend(() => {
        const at = core.tryReserve(payload.length)
        if (at < 0) return writeAll([payload])
        core.bytes.set(payload, at)
        return Effect.succeed(core.commit())
      }),
    writeAll,
    tryWriteAll: (payloads) => {
      const written = core.tryWriteFrames(payloads, 0)
      if (written > 0) core.commit()
      return written
    },
    sequence: core.sequence,
    close: Effect.sync(core.close)
  }
}

/** A reader's reusable batch: the core fills it, `take` hands it out. */
export class MutableFrameBatch implements FrameBatch {
  count = 0
  end = 0
  readonly offsets: Float64Array
  readonly lengths: Uint32Array
  readonly sequences: Float64Array
  constructor(public bytes: Uint8Array, dataBytes: number) {
    const capacity = Math.min(Math.floor(dataBytes / 8), MAX_BATCH_FRAMES)
    this.offsets = new Float64Array(capacity)
    this.lengths = new Uint32Array(capacity)
    this.sequences = new Float64Array(capacity)
  }
  get capacity(): number {
    return this.offsets.length
  }
  frame(i: number): Uint8Array {
    return this.bytes.subarray(this.offsets[i]!, this.offsets[i]! + this.lengths[i]!)
  }
}

export interface ReaderCore {
  readonly address: RingAddress
  readonly slot: number
  readonly occurrence: number
  readonly batch: MutableFrameBatch
  /**
   * Fills `batch` with committed frames from `delivered()` on. With none, returns why there
   * will be none (closed, writer dead, corrupt, reaped) or undefined to wait. Frames before a
   * corrupt one are returned first; the next scan reports the corruption.
   */
  readonly scan: () => RingReadError | undefined
  /** Waits until frames may have arrived or the ring changed, at most `timeoutMs`; checks the writer's liveness on the way. */
  readonly awaitFrames: (timeoutMs: number) => Effect.Effect<void>
  /**
   * Calls `onReady` from the doorbell's wake callback (no fiber) whenever frames may have
   * arrived or the ring changed, and after a liveness period without (once the writer's
   * liveness was checked), until the returned function is called; see `DoorbellShape.watch`.
   */
  readonly watchFrames: (onReady: () => void) => () => void
  /** Waits until a writer other than the one that closed or died opens the ring, or the slot is reaped (false after `timeoutMs`). */
  readonly awaitWriter: (timeoutMs: number) => Effect.Effect<boolean>
  readonly delivered: () => number
  readonly processed: () => number
  /**
   * Whether the slot is still this reader's: once reaped (its process did not run for too long)
   * the writer may have overwritten the batch's frames, so none more is handed on.
   */
  readonly attached: () => boolean
  /** Publishes `delivered`; then whether the slot is still this reader's (`attached`), the last check before frames up to `position` are handed on. */
  readonly publishDelivered: (position: number) => boolean
  readonly publishProcessed: (position: number) => void
}

const reaped = (core: ReaderCore) =>
  new ReaderReaped({ ring: core.address.id, slot: core.slot, occurrence: core.occurrence })

/** Frames after `delivered` (none after `timeoutMs`), without publishing anything. */
const fetchBatch = (core: ReaderCore, timeoutMs: number) =>
  Effect.gen(function*() {
    const { batch } = core
    const started = performance.now()
    for (;;) {
      const ended = core.scan()
      if (batch.count > 0) return batch
      if (ended !== undefined) {
        if (ended._tag === "RingCorrupt") yield* Metric.increment(ringCorruptions)
        return yield* Effect.fail(ended)
      }
      const left = timeoutMs - (performance.now() - started)
      if (left <= 0) return batch
      yield* core.awaitFrames(Math.min(left, alignedDelayMs(READER_LIVENESS_MS)))
    }
  })

// A reaped reader's frames may be overwritten at any point after the reap: each is handed on
// only after a check that follows everything else done before handing it on.
const take = (core: ReaderCore, timeoutMs: number) =>
  Effect.suspend(() => {
    core.publishProcessed(core.delivered())
    return Effect.flatMap(fetchBatch(core, timeoutMs), (taken) =>
      core.publishDelivered(taken.end) ? Effect.succeed(taken) : Effect.fail(reaped(core)))
  })

const consume = <E, R>(
  core: ReaderCore,
  handler: (frame: Uint8Array, sequence: number) => Effect.Effect<void, E, R>
) =>
  Effect.gen(function*() {
    for (;;) {
      core.publishProcessed(core.delivered())
      const taken = yield* fetchBatch(core, Infinity).pipe(
        Effect.catchTag("RingClosed", () => Effect.succeed(undefined))
      )
      if (taken === undefined) return
      const count = taken.count
      for (let i = 0; i < count; i++) {
        const sequence = taken.sequences[i]!
        const end = sequence + frameSpan(taken.lengths[i]!)
        // Reaped: the next scan reports it.
        if (!core.publishDelivered(end)) break
        yield* handler(taken.frame(i), sequence)
        core.publishProcessed(end)
      }
    }
  })

/**
 * `consume` with a synchronous handler run from the doorbell's wake callback: a batch of
 * frames reaches the handler with no fiber resumed and no effect interpreted. Returns when the
 * ring closes; fails like `consume`, or dies with what the handler threw. A handler that
 * returns an effect pauses the read: the effect runs in this fiber, then the frame counts as
 * processed and reading resumes after it.
 */
const consumeSync = (
  core: ReaderCore,
  handler: (frame: Uint8Array, sequence: number) => void | Effect.Effect<void>
): Effect.Effect<void, Exclude<RingReadError, RingClosed>> => consumeSyncFrom(core, handler, core.batch.count)

/** How a drain ends its read: the effect the reading fiber resumes with. */
type EndRead = (outcome: Effect.Effect<void, Exclude<RingReadError, RingClosed>>) => void

/**
 * Runs a drain from the doorbell's wake callback until it ends the read: `drainOf` makes it, given
 * its `end` and whether the read is over (ended, or the fiber interrupted); it is also run once
 * after the watch is registered, which reads the frames committed before the watch stood.
 */
const watchedRead = (
  core: ReaderCore,
  drainOf: (end: EndRead, over: () => boolean) => () => void
): Effect.Effect<void, Exclude<RingReadError, RingClosed>> =>
  Effect.async<void, Exclude<RingReadError, RingClosed>>((resume) => {
    let stop: (() => void) | undefined
    let done = false
    const drain = drainOf((outcome) => {
      done = true
      stop?.()
      resume(outcome)
    }, () => done)
    stop = core.watchFrames(drain)
    drain()
    return Effect.sync(() => {
      done = true
      stop?.()
    })
  })

/**
 * `consumeSync` going on with the batch already scanned from frame `first` (its count when there
 * is none): after a handler's effect, the frames after its one are handed on without scanning
 * the ring again (a scan takes every frame committed, which may be thousands).
 */
const consumeSyncFrom = (
  core: ReaderCore,
  handler: (frame: Uint8Array, sequence: number) => void | Effect.Effect<void>,
  first: number
): Effect.Effect<void, Exclude<RingReadError, RingClosed>> =>
  Effect.suspend(() => {
    const { batch } = core
    // Resumed after a handler's effect: its frame is processed now.
    core.publishProcessed(core.delivered())
    return watchedRead(core, (end, over) => {
      let from = first
      return () => {
        while (!over()) {
          let ended: RingReadError | undefined
          if (from >= batch.count) {
            core.publishProcessed(core.delivered())
            ended = core.scan()
            from = 0
          }
          const count = batch.count
          if (count === 0) {
            if (ended === undefined) return
            if (ended._tag === "RingCorrupt") ringCorruptions.unsafeUpdate(1, [])
            return end(ended._tag === "RingClosed" ? Effect.void : Effect.fail(ended))
          }
          for (let i = from; i < count; i++) {
            const sequence = batch.sequences[i]!
            const frameEnd = sequence + frameSpan(batch.lengths[i]!)
            // Reaped: the next scan reports it (`ReaderReaped`).
            if (!core.publishDelivered(frameEnd)) {
              from = count
              break
            }
            let rest: void | Effect.Effect<void>
            try {
              rest = handler(batch.frame(i), sequence)
            } catch (defect) {
              return end(Effect.die(defect))
            }
            // The frames after this one are handed on once its effect is done.
            if (rest !== undefined) {
              return end(Effect.zipRight(rest, Effect.suspend(() => consumeSyncFrom(core, handler, i + 1))))
            }
            core.publishProcessed(frameEnd)
          }
          from = count
        }
      }
    })
  })

const consumeFrames = (
  core: ReaderCore,
  handler: (batch: FrameBatch) => void
): Effect.Effect<void, Exclude<RingReadError, RingClosed>> =>
  watchedRead(core, (end, over) => {
    const { batch } = core
    return () => {
      while (!over()) {
        // The batch handed on last is processed: its handler returned.
        core.publishProcessed(core.delivered())
        const ended = core.scan()
        if (batch.count === 0) {
          if (ended === undefined) return
          if (ended._tag === "RingCorrupt") ringCorruptions.unsafeUpdate(1, [])
          return end(ended._tag === "RingClosed" ? Effect.void : Effect.fail(ended))
        }
        // Reaped: the next scan reports it (`ReaderReaped`).
        if (!core.publishDelivered(batch.end)) continue
        try {
          handler(batch)
        } catch (defect) {
          return end(Effect.die(defect))
        }
      }
    }
  })

/** Copies of the batch's frames; checked after copying (seqlock-style): a reap before the last copy may have overwritten any of them. */
const copies = (core: ReaderCore, taken: FrameBatch): Effect.Effect<Chunk.Chunk<Frame>, ReaderReaped> => {
  const frames = new Array<Frame>(taken.count)
  for (let i = 0; i < taken.count; i++) frames[i] = { sequence: taken.sequences[i]!, bytes: taken.frame(i).slice() }
  return core.attached() ? Effect.succeed(Chunk.unsafeFromArray(frames)) : Effect.fail(reaped(core))
}

export const makeReader = (core: ReaderCore): RingReader => ({
  address: core.address,
  slot: core.slot,
  occurrence: core.occurrence,
  take: (timeoutMs = Infinity) => take(core, timeoutMs),
  complete: Effect.sync(() => core.publishProcessed(core.delivered())),
  consume: (handler) => consume(core, handler),
  consumeSync: (handler) => consumeSync(core, handler),
  consumeFrames: (handler) => consumeFrames(core, handler),
  stream: Stream.repeatEffectChunkOption(
    take(core, Infinity).pipe(
      Effect.flatMap((taken) => copies(core, taken)),
      Effect.mapError((error) => (error._tag === "RingClosed" ? Option.none() : Option.some(error)))
    )
  ) as Stream.Stream<Frame, Exclude<RingReadError, RingClosed>>,
  progress: () => ({ delivered: core.delivered(), processed: core.processed() }),
  awaitWriter: core.awaitWriter
})
