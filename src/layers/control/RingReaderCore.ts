/**
 * A ring's reader over region bytes (the `ReaderCore` RingEndpoints builds the public reader
 * on): attaching to a slot, scanning committed frames, publishing progress (ringing the writer
 * and an observer), waiting for frames or for a writer, noticing a dead writer, detaching.
 */
import { Effect } from "effect"
import {
  NoFreeReaderSlot,
  ReaderReaped,
  RingClosed,
  RingCorrupt,
  type RingReadError,
  RingWriterDead
} from "../../services/control/Rings.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { alignedDelayMs } from "../region/Cadence.js"
import { isProcessAlive, ownStartTag } from "../region/ProcessInfo.js"
import { MutableFrameBatch, type ReaderCore } from "./RingEndpoints.js"
import {
  frameCheck,
  frameSpan,
  isPosition,
  PADDING_LENGTH,
  READER_LIVENESS_MS,
  RING_FRAME_HEADER_BYTES
} from "./RingFrames.js"
import {
  type ControlLineView,
  type Lines,
  type ObserverLineView,
  type ReaderLineView,
  ringLineViews,
  validBell
} from "./RingLines.js"
import { reapSlot } from "./RingReap.js"
import { attachedOf, claimOf, FREE, nextOccurrence, OBSERVING, waitingOf } from "./RingSlotStates.js"

/** A reader's core and how it leaves its slot. */
export type ReaderEndpoint = ReaderCore & { readonly detach: () => void }

/** One attached reader: its slot and line, the words that name it, how far it has read. */
interface ReaderState {
  readonly region: CxlMemoryShape
  readonly doorbell: DoorbellShape
  readonly lines: Lines
  readonly control: ControlLineView
  readonly reader: ReaderLineView
  readonly observer: ObserverLineView
  readonly slot: number
  /** This reader's progress line. */
  readonly line: number
  readonly occurrence: number
  /** The state word while the slot is this reader's. */
  readonly attached: number
  /** The waiting word, not waiting and waiting. */
  readonly idle: number
  readonly waiting: number
  /** Whether an observer may hold the ring's last slot (not this reader's). */
  readonly watchable: boolean
  /** The ring's last slot's line, where an observer's would be. */
  readonly observerLine: number
  readonly batch: MutableFrameBatch
  delivered: number
  processed: number
  /** The writer (occurrence, pid) a liveness check found dead; the next scan reports it. */
  deadWriterOccurrence: number
  deadWriterPid: number
  /** The writer occurrence the last scan found closed or dead (`awaitWriter` waits for another). */
  endedWriter: number
  /** The spin its waits for frames may ask of the process's doorbell (µs; 0: the process's own). */
  readonly spinMicros: number
}

/**
 * Attaches a reader to a free slot (or `wanted`), starting at the leading sequence. A slot
 * still attached by a process that is gone is reclaimed (a dead reader never detaches, and
 * its process may have been the only one to use that slot, e.g. a head's reply slot):
 * free slots are taken first, a dead one only when none is free.
 */
export const openReader = (
  region: CxlMemoryShape,
  doorbell: DoorbellShape,
  l: Lines,
  wanted: number | undefined,
  spinMicros: number
): Effect.Effect<ReaderEndpoint, NoFreeReaderSlot | RingCorrupt> =>
  Effect.suspend((): Effect.Effect<ReaderEndpoint, NoFreeReaderSlot | RingCorrupt> => {
    const views = ringLineViews(region)
    const { control, reader } = views
    const { readerSlots, id } = l.address
    const candidates = wanted === undefined ? Array.from({ length: readerSlots }, (_, s) => s) : [wanted]
    const claim = claimOf(process.pid)
    const take = (s: number) => s >= 0 && s < readerSlots && reader.swapState(l.line(s), FREE, claim)
    const reclaim = (s: number) => s >= 0 && s < readerSlots && reapSlot(region, doorbell, l, s, true) && take(s)
    const slot = candidates.find(take) ?? candidates.find(reclaim)
    if (slot === undefined) {
      return Effect.fail(
        new NoFreeReaderSlot(wanted === undefined ? { ring: id, readerSlots } : { ring: id, readerSlots, slot: wanted })
      )
    }
    const line = l.line(slot)
    const occurrence = nextOccurrence(reader.occurrence(line))
    const r: ReaderState = {
      region,
      doorbell,
      lines: l,
      ...views,
      slot,
      line,
      occurrence,
      attached: attachedOf(occurrence),
      idle: waitingOf(occurrence, false),
      waiting: waitingOf(occurrence, true),
      watchable: slot !== readerSlots - 1,
      observerLine: l.line(readerSlots - 1),
      batch: new MutableFrameBatch(region.bytes, l.address.dataBytes),
      delivered: 0,
      processed: 0,
      deadWriterOccurrence: 0,
      deadWriterPid: 0,
      endedWriter: 0,
      spinMicros
    }
    reader.setPid(line, process.pid)
    reader.setStart(line, ownStartTag())
    reader.setBell(line, doorbell.offset)
    reader.setHeartbeatMs(line, Date.now())
    reader.storeWaiting(line, r.idle)
    reader.storeOccurrence(line, occurrence)

    // Publish a provisional position, become visible to the writer, then start at the head
    // read after that: any writer that missed us had committed at most that head.
    const provisional = control.head(l.control)
    if (isPosition(provisional)) startAt(r, provisional)
    if (!reader.swapState(line, claim, r.attached)) {
      return Effect.fail(new NoFreeReaderSlot({ ring: id, readerSlots, slot }))
    }
    const start = control.head(l.control)
    if (!isPosition(start) || !isPosition(provisional)) {
      reader.swapState(line, r.attached, FREE)
      return Effect.fail(new RingCorrupt({ ring: id, position: start, reason: "leading sequence is not a position" }))
    }
    startAt(r, start)
    return Effect.succeed(readerEndpoint(r))
  })

const readerEndpoint = (r: ReaderState): ReaderEndpoint => {
  // Built once: a wait per batch allocates nothing but the doorbell's waiter.
  const arrived = () => framesArrived(r)
  const afterFramesWait = (woken: boolean) => {
    setWaiting(r, false)
    if (!woken) livenessCheck(r)
  }
  const stopWaiting = Effect.sync(() => setWaiting(r, false))
  const writerReturned = () => writerOpened(r)
  return {
    address: r.lines.address,
    slot: r.slot,
    occurrence: r.occurrence,
    batch: r.batch,
    scan: () => scan(r),
    awaitFrames: (timeoutMs) =>
      Effect.suspend(() => {
        setWaiting(r, true)
        return r.doorbell.await(arrived, timeoutMs)
      }).pipe(Effect.map(afterFramesWait), Effect.onInterrupt(() => stopWaiting)),
    watchFrames: (onReady) => watchFrames(r, arrived, onReady),
    awaitWriter: (timeoutMs) =>
      Effect.suspend(() => {
        setWaiting(r, true)
        return r.doorbell.await(writerReturned, timeoutMs)
      }).pipe(Effect.ensuring(stopWaiting)),
    delivered: () => r.delivered,
    processed: () => r.processed,
    attached: () => mine(r),
    publishDelivered: (position) => publishDelivered(r, position),
    publishProcessed: (position) => publishProcessed(r, position),
    detach: () => {
      setWaiting(r, false)
      if (r.reader.swapState(r.line, r.attached, FREE)) ringWriter(r)
    }
  }
}

/** Both counters at `position`, before the slot is attached. */
const startAt = (r: ReaderState, position: number): void => {
  r.delivered = position
  r.processed = position
  r.reader.setCounters(r.line, position)
  r.region.publish(r.line, LINE_BYTES)
}

/** Whether the slot is still this reader's (the state word names its occurrence). */
const mine = (r: ReaderState): boolean => r.reader.state(r.line) === r.attached

// Every store to the line after attaching is conditional on the slot being this reader's:
// once reaped it may be another's (waiting word and counters by compare-and-swap from this
// reader's own value; the heartbeat, a plain f64, after a check: a stop in between could
// at worst make a successor look fresh).
const setWaiting = (r: ReaderState, on: boolean): void => {
  r.reader.swapWaiting(r.line, on ? r.idle : r.waiting, on ? r.waiting : r.idle)
}

const heartbeat = (r: ReaderState): void => {
  if (mine(r)) r.reader.setHeartbeatMs(r.line, Date.now())
}

/** Rings the writer if it waits for space. */
const ringWriter = (r: ReaderState): void => {
  const { control, lines: l } = r
  if (control.waiting(l.control) === 0) return
  const bell = control.bell(l.control)
  if (validBell(r.region, l, bell)) r.doorbell.ring(bell)
}

// After publishing progress (so an observer that set its target first sees it, or we see
// the target): ring the observer, if any, when this step crossed its target.
const ringObserver = (r: ReaderState, before: number, after: number): void => {
  if (!r.watchable) return
  const { observer, observerLine: line } = r
  r.region.invalidate(line, LINE_BYTES)
  if (observer.state(line) !== OBSERVING) return
  const target = observer.target(line)
  if (!(before < target && target <= after)) return
  const bell = observer.bell(line)
  if (validBell(r.region, r.lines, bell)) r.doorbell.ring(bell)
}

// A counter moves by one 64-bit compare-and-swap of its commit word together with the word
// beside it, which must still name this reader (`ReaderLineView.swapDelivered`): nothing is
// written once the slot was reaped, whoever took it since and wherever that one's counters stand.
const publishDelivered = (r: ReaderState, position: number): boolean => {
  if (position !== r.delivered) {
    const before = r.delivered
    r.delivered = position
    if (r.reader.swapDelivered(r.line, r.attached, before, position)) {
      r.region.publish(r.line, LINE_BYTES)
      ringObserver(r, before, position)
    }
  }
  // Checked last: the frames up to `position` are handed on only if not reaped by now.
  return mine(r)
}

const publishProcessed = (r: ReaderState, position: number): void => {
  if (position === r.processed) return
  const before = r.processed
  r.processed = position
  if (!r.reader.swapProcessed(r.line, r.occurrence, before, position)) return
  r.region.publish(r.line, LINE_BYTES)
  ringWriter(r)
  ringObserver(r, before, position)
}

const reaped = (r: ReaderState) =>
  new ReaderReaped({ ring: r.lines.address.id, slot: r.slot, occurrence: r.occurrence })

/** A reap in the middle of a scan lets the writer overwrite what it reads: that is the reap, not corruption. */
const corrupt = (r: ReaderState, position: number, reason: string) =>
  mine(r) ? new RingCorrupt({ ring: r.lines.address.id, position, reason }) : reaped(r)

/**
 * Fills the batch with committed frames from `delivered` on; with none, returns why there will
 * be none (closed, writer dead, corrupt, reaped) or undefined to wait.
 */
const scan = (r: ReaderState): RingReadError | undefined => {
  const { batch, control, region, lines: l } = r
  const { id, dataBytes } = l.address
  batch.count = 0
  batch.end = r.delivered
  if (!mine(r)) return reaped(r)
  region.invalidate(l.control, LINE_BYTES)
  // The occurrence first: a writer opening clears the close flag before it stores its own, so a
  // close read after it is that occurrence's (or the ring was not closed by then).
  const writerOccurrence = control.occurrence(l.control)
  const closedNow = control.closed(l.control)
  const head = control.head(l.control)
  const position = r.delivered
  if (!(Number.isSafeInteger(head) && head >= position && head - position <= dataBytes)) {
    return corrupt(r, position, `leading sequence ${head} is not within ${dataBytes} bytes after the reader`)
  }
  heartbeat(r)
  if (head === position) {
    if (closedNow) {
      r.endedWriter = writerOccurrence
      return new RingClosed({ ring: id, sequence: head })
    }
    if (r.deadWriterOccurrence !== 0 && r.deadWriterOccurrence === writerOccurrence) {
      r.endedWriter = writerOccurrence
      return new RingWriterDead({ ring: id, pid: r.deadWriterPid, sequence: head })
    }
    return undefined
  }
  if (region.coherence === "non-coherent") region.invalidate(l.data, dataBytes)
  return collectFrames(r, position, head)
}

/** Takes the frames from `position` to `head` into the batch (as many as it holds). */
const collectFrames = (r: ReaderState, from: number, head: number): RingCorrupt | ReaderReaped | undefined => {
  const { batch } = r
  const { data } = r.lines
  const { dataBytes } = r.lines.address
  const u32 = r.region.u32
  const { offsets, lengths, sequences } = batch
  const capacity = batch.capacity
  let position = from
  let index = position % dataBytes
  let count = 0
  let problem: string | undefined
  while (position < head && count < capacity) {
    const word = (data + index) / 4
    const length = u32[word]!
    if (u32[word + 1] !== frameCheck(position)) {
      problem = "frame header does not belong to this position"
      break
    }
    if (length === PADDING_LENGTH) {
      if (index === 0 || position + dataBytes - index > head) {
        problem = "padding frame out of place"
        break
      }
      position += dataBytes - index
      index = 0
      continue
    }
    if (length > dataBytes - index - RING_FRAME_HEADER_BYTES) {
      problem = `frame length ${length} runs past the data area`
      break
    }
    const span = frameSpan(length)
    if (position + span > head) {
      problem = `frame length ${length} runs past the leading sequence`
      break
    }
    offsets[count] = data + index + RING_FRAME_HEADER_BYTES
    lengths[count] = length
    sequences[count] = position
    count++
    position += span
    index += span
    if (index === dataBytes) index = 0
  }
  if (count === 0 && problem !== undefined) return corrupt(r, position, problem)
  batch.count = count
  batch.end = count > 0 ? sequences[count - 1]! + frameSpan(lengths[count - 1]!) : position
  return undefined
}

const framesArrived = (r: ReaderState): boolean =>
  r.control.headLow(r.lines.control) !== (r.delivered >>> 0) || r.control.closed(r.lines.control) || !mine(r)

/** A wait for frames ran out: heartbeat, and note a writer whose process died (the next scan reports it). */
const livenessCheck = (r: ReaderState): void => {
  heartbeat(r)
  const { control, lines: l } = r
  // The occurrence before the writer and after its liveness is known, the same both times: a writer
  // that opened meanwhile (a process taking the ring over from a dead one) is never taken for the
  // dead one, which would make the reader wait for a writer after it while its frames go unread.
  const occurrence = control.occurrence(l.control)
  const writer = control.writer(l.control)
  if (
    writer.pid !== 0 && !control.closed(l.control) && !isProcessAlive(writer.pid, writer.start) &&
    control.occurrence(l.control) === occurrence
  ) {
    r.deadWriterPid = writer.pid
    r.deadWriterOccurrence = occurrence
  }
}

// Waiting stays published while the watch stands, so every commit rings this reader.
const watchFrames = (r: ReaderState, arrived: () => boolean, onReady: () => void): () => void => {
  setWaiting(r, true)
  const stop = r.doorbell.watch(
    arrived,
    (woken) => {
      if (!woken) livenessCheck(r)
      onReady()
    },
    livenessPeriod,
    r.spinMicros
  )
  return () => {
    stop()
    setWaiting(r, false)
  }
}

const livenessPeriod = () => alignedDelayMs(READER_LIVENESS_MS)

/**
 * Whether a writer other than the one that closed or died has opened the ring, or the slot is no
 * longer this reader's. A later writer that is closed already counts: it may have written and
 * closed between two looks, and its frames are read before its close is seen. So do frames
 * committed past this reader, whoever the ring names: the ended writer's frames were all read
 * before the end was reported, so only a writer that is there commits them, and they are read
 * rather than left until the wait's bound.
 */
const writerOpened = (r: ReaderState): boolean =>
  r.control.occurrence(r.lines.control) !== r.endedWriter || !mine(r) ||
  r.control.headLow(r.lines.control) !== (r.delivered >>> 0)
