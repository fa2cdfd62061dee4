/**
 * A ring's writer over region bytes (the `WriterCore` RingEndpoints builds the public writer
 * on): claiming the control line, reserving and committing frames, the limit the slowest
 * reader sets, waking readers, waiting for room, closing.
 */
import { Effect, Metric } from "effect"
import { holdSeries, RING_OCCUPANCY, ringOccupancy, sampleOnScrape } from "../../Metrics.js"
import { RingCorrupt, RingFull, RingWriterBusy } from "../../services/control/Rings.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { isProcessAlive, ownStartTag } from "../region/ProcessInfo.js"
import type { WriterCore } from "./RingEndpoints.js"
import {
  frameCheck,
  frameSpan,
  isPosition,
  LIVENESS_SLICE_MS,
  PADDING_LENGTH,
  placementBytes,
  RING_FRAME_HEADER_BYTES
} from "./RingFrames.js"
import type { ControlLineView, Lines, ReaderLineView } from "./RingLines.js"
import { ringLineViews, validBell } from "./RingLines.js"
import { reapDeadSlots, reapSlot } from "./RingReap.js"
import { isAttached, nextOccurrence } from "./RingSlotStates.js"

/** One open writer: where its ring lies, and how far it has reserved, committed and may write. */
interface WriterState {
  readonly region: CxlMemoryShape
  readonly doorbell: DoorbellShape
  readonly lines: Lines
  readonly control: ControlLineView
  readonly reader: ReaderLineView
  /** Each reader slot's progress line. */
  readonly readerLines: ReadonlyArray<number>
  readonly occurrence: number
  readonly maxFrameBytes: number
  readonly onReaped: (slots: number) => Effect.Effect<void>
  /** `WriterOptions.freeStalledReaderAfterMs`. */
  readonly freeStalledReaderAfterMs: number | undefined
  /** End of the frames reserved so far. */
  reserved: number
  /** End of the frames committed (the leading sequence). */
  committed: number
  /** The data-area index of `reserved`. */
  index: number
  /** How far the writer may write: the lowest attached reader's `processed` plus the ring size. */
  limit: number
  /** The reader that set `limit` (-1: none). */
  slowestSlot: number
  closed: boolean
}

/** Opens the ring for writing; the caller has validated the address and bounds. */
export const openWriter = (
  region: CxlMemoryShape,
  doorbell: DoorbellShape,
  l: Lines,
  maxFrameBytes: number,
  onReaped: (slots: number) => Effect.Effect<void>,
  options: { readonly takeOver: boolean; readonly freeStalledReaderAfterMs: number | undefined }
): Effect.Effect<WriterCore, RingWriterBusy | RingCorrupt> =>
  Effect.suspend((): Effect.Effect<WriterCore, RingWriterBusy | RingCorrupt> => {
    const { control, reader } = ringLineViews(region)
    const at = l.control
    const { id } = l.address
    // The writer is a pid and a start tag, claimed together: a pid reused by a later process holds nothing.
    const previous = control.writer(at)
    if (
      !options.takeOver && previous.pid !== 0 && !control.closed(at) && isProcessAlive(previous.pid, previous.start)
    ) {
      return Effect.fail(new RingWriterBusy({ ring: id, pid: previous.pid }))
    }
    const head = control.head(at)
    if (!isPosition(head)) {
      return Effect.fail(new RingCorrupt({ ring: id, position: head, reason: "leading sequence is not a position" }))
    }
    if (!control.swapWriter(at, previous, process.pid, ownStartTag())) {
      return Effect.fail(new RingWriterBusy({ ring: id, pid: control.pid(at) }))
    }
    const occurrence = nextOccurrence(control.occurrence(at))
    control.setShape(at, l.address)
    control.setBell(at, doorbell.offset)
    control.storeWaiting(at, 0)
    // Open before the new occurrence shows: a reader that reads the occurrence and then the close
    // flag (`scan`) sees a close only beside the occurrence of the writer that closed, never beside
    // this one's (it would wait for a writer after this one while this one's frames go unread).
    control.storeClosed(at, 0)
    control.storeOccurrence(at, occurrence)
    region.publish(at, LINE_BYTES)

    const w: WriterState = {
      region,
      doorbell,
      lines: l,
      control,
      reader,
      readerLines: Array.from({ length: l.address.readerSlots }, (_, s) => l.line(s)),
      occurrence,
      maxFrameBytes,
      onReaped,
      freeStalledReaderAfterMs: options.freeStalledReaderAfterMs,
      reserved: head,
      committed: head,
      index: head % l.address.dataBytes,
      limit: head,
      slowestSlot: -1,
      closed: false
    }
    // Read at scrape time: a reader that stalls shows as a filling ring even while nothing is written.
    const occupancy = Metric.tagged(ringOccupancy, "ring", String(id))
    // Served while a writer of the ring is open here: closed, its last occupancy would stay as if current.
    const releaseSeries = holdSeries(RING_OCCUPANCY, "ring", String(id))
    const stopSamples = sampleOnScrape(() => {
      // A writer whose region was unmapped before it was closed stops sampling with the mapping.
      if (unmapped(w)) return stopSampling()
      refreshLimit(w)
      occupancy.unsafeUpdate(w.committed - (w.limit - l.address.dataBytes), [])
    })
    const stopSampling = () => {
      stopSamples()
      releaseSeries()
    }
    // Readers parked on a closed or dead predecessor (`awaitWriter`) go on with this writer.
    wakeReaders(w)
    return Effect.succeed(writerCore(w, stopSampling))
  })

const writerCore = (w: WriterState, stopSampling: () => void): WriterCore => ({
  address: w.lines.address,
  occurrence: w.occurrence,
  maxFrameBytes: w.maxFrameBytes,
  bytes: w.region.bytes,
  tryReserve: (length) => tryReserve(w, length),
  tryWriteFrames: (payloads, from) => tryWriteFrames(w, payloads, from),
  commit: (wake) => commit(w, wake),
  wake: (only) => wakeReaders(w, only),
  sequence: () => w.committed,
  closed: () => w.closed,
  awaitRoom: (length, timeoutMs) => awaitRoom(w, length, timeoutMs),
  fullError: (length, waitedMs) => fullError(w, length, waitedMs),
  close: () => {
    // A region unmapped first has no ring left to mark closed: the writer only stops sampling.
    if (unmapped(w) || close(w)) stopSampling()
  }
})

// The limit is the lowest `processed` of the attached readers (or the committed head when
// there are none) plus the ring size. Reader lines are read again only when a frame does
// not fit under it, so a reader attaching later starts at a head at least that high.
const refreshLimit = (w: WriterState): void => {
  const { reader, readerLines } = w
  let lowest = w.committed
  w.slowestSlot = -1
  for (let s = 0; s < readerLines.length; s++) {
    const line = readerLines[s]!
    if (!isAttached(reader.state(line))) continue
    const processed = reader.processed(line)
    if (processed < lowest) {
      lowest = processed
      w.slowestSlot = s
    }
  }
  w.limit = lowest + w.lines.address.dataBytes
}

const fits = (w: WriterState, span: number): boolean =>
  w.reserved + placementBytes(w.index, span, w.lines.address.dataBytes) <= w.limit

/** A writer whose ring was taken over (`takeOver`) becomes closed without writing a byte. */
const superseded = (w: WriterState): boolean => {
  if (w.control.occurrence(w.lines.control) === w.occurrence) return false
  w.closed = true
  return true
}

/** The payload offset of a frame of `length` reserved now, or -1 (no room, too large, closed). */
const tryReserve = (w: WriterState, length: number): number =>
  w.closed || superseded(w) || !(length >= 0 && length <= w.maxFrameBytes) ? -1 : reserveFrame(w, length)

/**
 * Copies `payloads[from..]` into frames while they fit; the index of the first one not written
 * (no room, too large, or the writer closed). The writer is looked at once for the run, not per
 * frame, and the commit after it publishes nothing for a writer superseded meanwhile. Rings are
 * taken over only as a fenced head's reply rings, written a frame at a time through `tryReserve`,
 * which looks every time.
 */
const tryWriteFrames = (w: WriterState, payloads: ReadonlyArray<Uint8Array>, from: number): number => {
  if (w.closed || superseded(w)) return from
  const bytes = w.region.bytes
  let i = from
  for (; i < payloads.length; i++) {
    const payload = payloads[i]!
    if (payload.length > w.maxFrameBytes) break
    const at = reserveFrame(w, payload.length)
    if (at < 0) break
    bytes.set(payload, at)
  }
  return i
}

/** Reserves a frame of `length` (within the writer's bound, the writer open): its payload offset, or -1 when it does not fit now. */
const reserveFrame = (w: WriterState, length: number): number => {
  const span = frameSpan(length)
  if (!fits(w, span)) {
    refreshLimit(w)
    if (!fits(w, span)) return -1
  }
  const { u32 } = w.region
  const { data } = w.lines
  const { dataBytes } = w.lines.address
  if (w.index + span > dataBytes) {
    const word = (data + w.index) / 4
    u32[word] = PADDING_LENGTH
    u32[word + 1] = frameCheck(w.reserved)
    w.reserved += dataBytes - w.index
    w.index = 0
  }
  const word = (data + w.index) / 4
  u32[word] = length
  u32[word + 1] = frameCheck(w.reserved)
  const at = data + w.index + RING_FRAME_HEADER_BYTES
  w.reserved += span
  w.index += span
  if (w.index === dataBytes) w.index = 0
  return at
}

/** Flushes the data area's bytes from sequence `from` to `to` (a non-coherent region). */
const publishData = (w: WriterState, from: number, to: number): void => {
  const { region } = w
  const { data } = w.lines
  const { dataBytes } = w.lines.address
  const start = from % dataBytes
  const length = to - from
  if (start + length <= dataBytes) region.publish(data + start, length)
  else {
    region.publish(data + start, dataBytes - start)
    region.publish(data, length - (dataBytes - start))
  }
}

/** Rings slot `s`'s reader if it is attached and waits for frames. */
const ringSlot = (w: WriterState, s: number): void => {
  const { reader } = w
  const line = w.readerLines[s]!
  if ((reader.waiting(line) & 1) === 0 || !isAttached(reader.state(line))) return
  const bell = reader.bell(line)
  if (validBell(w.region, w.lines, bell)) w.doorbell.ring(bell)
}

/** Rings waiting readers: all, or only `only`'s slots and whoever is over half a ring behind. */
const wakeReaders = (w: WriterState, only?: ReadonlyArray<number>): void => {
  const { dataBytes, readerSlots } = w.lines.address
  // No reader can be half a ring behind while the lowest `processed` last read (it only
  // grows; a reader attaches at the head) is within half a ring: then only `only` is looked at.
  // A stale lowest is read again first (one pass, as the loop below would make).
  if (only !== undefined) {
    if (w.committed - (w.limit - dataBytes) > dataBytes / 2) refreshLimit(w)
    if (w.committed - (w.limit - dataBytes) <= dataBytes / 2) {
      for (const s of only) if (s >= 0 && s < readerSlots) ringSlot(w, s)
      return
    }
  }
  for (let s = 0; s < readerSlots; s++) {
    if (
      only !== undefined && !only.includes(s) && w.committed - w.reader.processed(w.readerLines[s]!) <= dataBytes / 2
    ) {
      continue
    }
    ringSlot(w, s)
  }
}

/** Publishes every reserved frame and wakes readers (see `RingWriter.commit`); returns the leading sequence. */
const commit = (w: WriterState, wake?: ReadonlyArray<number>): number => {
  if (w.reserved === w.committed || superseded(w)) return w.committed
  if (w.region.coherence === "non-coherent") publishData(w, w.committed, w.reserved)
  w.control.publishHead(w.lines.control, w.reserved)
  w.region.publish(w.lines.control, LINE_BYTES)
  w.committed = w.reserved
  wakeReaders(w, wake)
  return w.committed
}

/** Frees the slot of the reader holding the writer back if it has not run for `freeStalledReaderAfterMs`; true if freed. */
const freeStalledReader = (w: WriterState): boolean => {
  if (w.freeStalledReaderAfterMs === undefined) return false
  refreshLimit(w)
  const slot = w.slowestSlot
  if (slot < 0) return false
  const line = w.readerLines[slot]!
  if (Date.now() - w.reader.heartbeatMs(line) <= w.freeStalledReaderAfterMs) return false
  // Only the reader judged stalled: one that attached since keeps the slot.
  return reapSlot(w.region, w.doorbell, w.lines, slot, false, w.reader.occurrence(line))
}

const awaitRoom = (w: WriterState, length: number, timeoutMs: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    const span = frameSpan(length)
    const deadline = performance.now() + timeoutMs
    w.control.storeWaiting(w.lines.control, 1)
    for (;;) {
      const left = deadline - performance.now()
      const roomy = yield* w.doorbell.await(() => {
        refreshLimit(w)
        return fits(w, span)
      }, Math.min(left, LIVENESS_SLICE_MS))
      if (roomy || left <= LIVENESS_SLICE_MS) return
      // Dead readers, and a stalled one where the ring's readers recover (`freeStalledReaderAfterMs`):
      // otherwise a live reader, however slow or stopped, is backpressure (its frames are never
      // overwritten under it). A stopped member's reply-ring slot is the coordinator's to free
      // (it drops the member first); the writer's wait stays bounded by `timeoutMs`.
      const reaped = reapDeadSlots(w.region, w.doorbell, w.lines).length + (freeStalledReader(w) ? 1 : 0)
      if (reaped > 0) yield* w.onReaped(reaped)
    }
  }).pipe(Effect.ensuring(Effect.sync(() => w.control.storeWaiting(w.lines.control, 0))))

const fullError = (w: WriterState, length: number, waitedMs: number): RingFull => {
  refreshLimit(w)
  return new RingFull({
    ring: w.lines.address.id,
    needed: placementBytes(w.index, frameSpan(length), w.lines.address.dataBytes),
    free: Math.max(0, w.limit - w.reserved),
    waitedMs,
    slowestSlot: w.slowestSlot
  })
}

/** Whether the writer's region was unmapped under it (its owner closed the region first): a detached buffer has no bytes. */
const unmapped = (w: WriterState): boolean => w.region.buffer.byteLength === 0

/** Commits, marks the ring closed and wakes its readers; false if it was closed (or taken over) already. */
const close = (w: WriterState): boolean => {
  if (w.closed || superseded(w)) return false
  commit(w)
  w.closed = true
  w.control.storeClosed(w.lines.control, 1)
  w.region.publish(w.lines.control, LINE_BYTES)
  wakeReaders(w)
  return true
}
