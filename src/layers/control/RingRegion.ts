/**
 * The ring engine over region bytes: its lines, its writer and reader cores, inspection,
 * reaping, progress watches, and the Rings service over rings placed in a region — the live
 * layer places them in the process's region (Rings.ts), the fake each in a private in-process
 * one (RingsMemory.ts).
 *
 * 64-bit positions are published as an f64 plus its low 32 bits written last with
 * `Atomics.store` (the commit word). A reader loads the low word first, then the f64, and
 * rebuilds the value the low word released: f64 - ((low(f64) - low) mod 2^32). The f64 can
 * only be newer, and never by 2^32 bytes, so no store is ever seen torn or early.
 *
 * A reader's counters are the exception (`readCounter`): the reader swaps the commit word first,
 * from the value it last published, then stores the f64. The low word is the truth; the f64 is
 * within 2^31 of it either way, so the value is rebuilt by the signed difference. Each commit
 * word shares an aligned 64-bit word with one that names the reader (`delivered`'s with the
 * state word, `processed`'s with the occurrence), and the swap is of that whole word: a reader
 * whose slot was reaped and taken by another never writes that one's counters, even where the
 * successor's counter stands at the very value it last published (a quiet ring).
 */
import { Effect, Metric } from "effect"
import { ringOccupancy, ringReadersReaped, sampleOnScrape } from "../../Metrics.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import {
  InvalidRingAddress,
  NoFreeReaderSlot,
  ReaderReaped,
  type RingAddress,
  RingClosed,
  RingCorrupt,
  RingFull,
  type RingInspector,
  RingWriterBusy,
  RingWriterDead,
  type ReaderProgress,
  type ReaderSlotState,
  ringFootprint,
  type RingsShape
} from "../../services/control/Rings.js"
import { alignedDelayMs } from "../region/Cadence.js"
import { isPidAlive, isProcessAlive, ownStartTag } from "../region/ProcessInfo.js"
import { highHalf, lowHalf, pairWord, wordsOver } from "../region/Words64.js"
import { SUPERBLOCK_BYTES } from "../region/Superblock.js"
import { makeReader, makeWriter, MutableFrameBatch, type ReaderCore, type WriterCore } from "./RingEndpoints.js"
import {
  FRAME_HEADER_BYTES,
  frameCheck,
  frameSpan,
  isPosition,
  LINE_BYTES,
  LIVENESS_SLICE_MS,
  PADDING_LENGTH,
  placementBytes,
  READER_LIVENESS_MS,
  validateFraction
} from "./RingFrames.js"

const FREE = 0
/**
 * A slot being claimed: ATTACHING in the state word's low two bits, the claimer's pid above
 * them (`claimOf`). The claim and the claimer's identity are one atomic step, so a claimer
 * killed before it wrote its line (pid, occurrence) leaves a claim whose owner can still be
 * tested, and the slot is reaped (`reapSlot`) rather than lost. Other states are bare values.
 */
const ATTACHING = 1
const claimOf = (pid: number) => (pid * 4 + ATTACHING) >>> 0
const isClaim = (state: number) => (state & 3) === ATTACHING
const claimerOf = (state: number) => state >>> 2
/**
 * An attached slot: ATTACHED in the state word's low two bits, the reader's occurrence (low 30
 * bits) above them (`attachedOf`), so the word names its owner: a reader's own check is one load,
 * and its detach (a compare-and-swap from that word) never frees a successor's slot.
 */
const ATTACHED = 2
const attachedOf = (occurrence: number) => ((occurrence & 0x3fffffff) * 4 + ATTACHED) >>> 0
const isAttached = (state: number) => (state & 3) === ATTACHED
/**
 * A reader's waiting word: its occurrence (low 31 bits) above the flag, set and cleared by
 * compare-and-swap from its own value, so a reaped reader never sets or clears a successor's.
 */
const waitingOf = (occurrence: number, waiting: boolean) => ((occurrence & 0x7fffffff) * 2 + (waiting ? 1 : 0)) >>> 0
/** A reader slot taken by a process that watches the readers' progress (see `progressWatch`). */
const OBSERVING = 3

/** Byte offsets in the control line (written by the writer only). */
const Control = {
  headLow: 0, // u32 commit word: low 32 bits of the leading sequence
  closed: 4, // u32
  head: 8, // f64 leading sequence
  occurrence: 16, // u32
  bell: 24, // u32 writer's doorbell line
  waiting: 28, // u32: 1 while the writer waits for space
  id: 32, // u32
  readerSlots: 36, // u32
  dataBytes: 40, // f64
  pid: 48, // i32 the writer's; with `start`, one 64-bit word, claimed by one compare-and-swap
  start: 52 // u32 the writer's start tag (`startTag`, 0 where unknown): with the pid, it names the process
} as const


/**
 * Byte offsets in a reader's progress line (written by that reader; a reaper only swaps `state`).
 * `state` and `deliveredLow` form one 64-bit word, and so do `processedLow` and `occurrence`.
 */
const Reader = {
  state: 0, // u32 free / attaching (with the claimer's pid, `claimOf`) / attached (with the occurrence, `attachedOf`)
  deliveredLow: 4, // u32 commit word of `delivered`
  pid: 8, // i32
  bell: 12, // u32 reader's doorbell line
  processedLow: 16, // u32 commit word of `processed`
  occurrence: 20, // u32
  delivered: 24, // f64
  processed: 32, // f64
  heartbeat: 40, // f64 ms since the epoch
  waiting: 48, // u32 `waitingOf`: low bit set while the reader waits for frames
  start: 52 // u32 the reader's start tag (`startTag`, 0 where unknown), set before it is attached: with the pid, it names the process
} as const

/**
 * Byte offsets in an observer's line: the ring's last reader slot while a process watches the
 * readers' progress. Written by that observer only; readers read `state`, `bell` and the
 * target. Its identity sits where a reader's does. Its target's commit word is where a reader's
 * `deliveredLow` is, which only that reader's swap paired with the state word writes (failing
 * while the state says observing), and the f64 in bytes no reader field uses: a reader reaped
 * just after a swap, whose late f64 store lands on this line, misses both.
 */
const Observer = {
  state: 0, // u32 OBSERVING while watched
  targetLow: 4, // u32 commit word: low 32 bits of the target
  pid: 8, // i32
  bell: 12, // u32 observer's doorbell line
  occurrence: 20, // u32 (where a reader's is)
  start: 52, // u32 start tag (where a reader's is)
  target: 56 // f64: readers ring `bell` when their delivered or processed crosses it
} as const

/** Word indexes of one ring's lines in a region. */
export interface Lines {
  readonly address: RingAddress
  readonly control: number
  readonly data: number
  readonly line: (slot: number) => number
  /** Offset just past the ring. */
  readonly end: number
}

/** The lines of the ring at `address`, placed at region offset `at` (its own offset, unless the ring lives in a region of its own). */
export const lines = (address: RingAddress, at = address.offset): Lines => ({
  address,
  control: at,
  data: at + LINE_BYTES * (1 + address.readerSlots),
  line: (slot) => at + LINE_BYTES * (1 + slot),
  end: at + ringFootprint(address.dataBytes, address.readerSlots)
})

const read64 = (region: CxlMemoryShape, lowByte: number, fullByte: number): number => {
  const low = Atomics.load(region.u32, lowByte / 4)
  const full = region.f64[fullByte / 8]!
  return full - (((full >>> 0) - low) >>> 0)
}

/** A reader counter: the commit word is the truth, the f64 within 2^31 of it, older or newer (see the module comment). */
const readCounter = (region: CxlMemoryShape, lowByte: number, fullByte: number): number => {
  const low = Atomics.load(region.u32, lowByte / 4)
  const full = region.f64[fullByte / 8]!
  return full + ((low - (full >>> 0)) | 0)
}

const write64 = (region: CxlMemoryShape, lowByte: number, fullByte: number, value: number): void => {
  region.f64[fullByte / 8] = value
  Atomics.store(region.u32, lowByte / 4, value >>> 0)
}

const readHead = (region: CxlMemoryShape, l: Lines) => read64(region, l.control + Control.headLow, l.control + Control.head)

/** A doorbell offset read from the region: a line past the superblock, outside this ring. */
const validBell = (region: CxlMemoryShape, l: Lines, bell: number) =>
  bell % LINE_BYTES === 0 && bell >= SUPERBLOCK_BYTES && region.inBounds(bell, LINE_BYTES) && (bell < l.control || bell >= l.end)

const slotStates: ReadonlyArray<ReaderSlotState> = ["free", "attaching", "attached", "observing"]
const stateName = (state: number): ReaderSlotState =>
  isClaim(state) ? "attaching" : isAttached(state) ? "attached" : slotStates[state] ?? "corrupt"

export const inspector = (region: CxlMemoryShape, l: Lines): RingInspector => {
  const { u32, i32, f64 } = region
  const reader = (slot: number): ReaderProgress => {
    if (!Number.isInteger(slot) || slot < 0 || slot >= l.address.readerSlots) {
      throw new RangeError(`ring ${l.address.id} has no reader slot ${slot}`)
    }
    const line = l.line(slot)
    const state = Atomics.load(u32, (line + Reader.state) / 4)
    return {
      slot,
      state: stateName(state),
      occurrence: Atomics.load(u32, (line + Reader.occurrence) / 4),
      pid: isClaim(state) ? claimerOf(state) : Atomics.load(i32, (line + Reader.pid) / 4),
      delivered: readCounter(region, line + Reader.deliveredLow, line + Reader.delivered),
      processed: readCounter(region, line + Reader.processedLow, line + Reader.processed),
      heartbeatMs: f64[(line + Reader.heartbeat) / 8]!
    }
  }
  return {
    address: l.address,
    writer: () => ({
      sequence: readHead(region, l),
      occurrence: Atomics.load(u32, (l.control + Control.occurrence) / 4),
      pid: Atomics.load(i32, (l.control + Control.pid) / 4),
      closed: Atomics.load(u32, (l.control + Control.closed) / 4) !== 0
    }),
    reader,
    readers: () => Array.from({ length: l.address.readerSlots }, (_, slot) => reader(slot))
  }
}

/**
 * Frees `slot` (only if its process is gone when `onlyIfDead`: the claimer's, for a slot being
 * claimed; only if the reader of `occurrence` holds it, when given), then rings the writer if it
 * waits for space and the reader so a live one notices. True if a slot was freed.
 */
export const reapSlot = (
  region: CxlMemoryShape,
  doorbell: DoorbellShape,
  l: Lines,
  slot: number,
  onlyIfDead: boolean,
  occurrence?: number
): boolean => {
  const { u32, i32 } = region
  const line = l.line(slot)
  const state = Atomics.load(u32, (line + Reader.state) / 4)
  if (state === FREE) return false
  if (occurrence !== undefined && state !== attachedOf(occurrence)) return false
  if (onlyIfDead) {
    // A claim names its claimer's pid only; an attached reader or an observer, its pid and start tag.
    const alive = isClaim(state)
      ? isPidAlive(claimerOf(state))
      : isAttached(state) || state === OBSERVING
      ? isProcessAlive(Atomics.load(i32, (line + Reader.pid) / 4), Atomics.load(u32, (line + Reader.start) / 4))
      : true
    if (alive) return false
  }
  if (Atomics.compareExchange(u32, (line + Reader.state) / 4, state, FREE) !== state) return false
  for (const bell of [u32[(l.control + Control.bell) / 4]!, u32[(line + Reader.bell) / 4]!]) {
    if (validBell(region, l, bell)) doorbell.ring(bell)
  }
  return true
}

export const reapDeadSlots = (region: CxlMemoryShape, doorbell: DoorbellShape, l: Lines): Array<number> => {
  const reaped: Array<number> = []
  for (let slot = 0; slot < l.address.readerSlots; slot++) {
    if (reapSlot(region, doorbell, l, slot, true)) reaped.push(slot)
  }
  return reaped
}

/** Opens the ring for writing; the caller has validated the address and bounds. */
export const openWriter = (
  region: CxlMemoryShape,
  doorbell: DoorbellShape,
  l: Lines,
  maxFrameBytes: number,
  onReaped: (slots: number) => Effect.Effect<void>,
  takeOver = false
): Effect.Effect<WriterCore, RingWriterBusy | RingCorrupt> =>
  Effect.suspend((): Effect.Effect<WriterCore, RingWriterBusy | RingCorrupt> => {
    const { u32, i32, f64, bytes } = region
    const { address, control, data } = l
    const { dataBytes, readerSlots, id } = address
    const words = wordsOver(u32)
    const holderIndex = (control + Control.pid) / 8
    const closedWord = (control + Control.closed) / 4
    const waitingWord = (control + Control.waiting) / 4
    // The writer is a pid and a start tag, claimed together: a pid reused by a later process holds nothing.
    const previous = Atomics.load(words, holderIndex)
    const previousPid = lowHalf(previous) | 0
    if (!takeOver && previousPid !== 0 && Atomics.load(u32, closedWord) === 0 && isProcessAlive(previousPid, highHalf(previous))) {
      return Effect.fail(new RingWriterBusy({ ring: id, pid: previousPid }))
    }
    const head = readHead(region, l)
    if (!isPosition(head)) return Effect.fail(new RingCorrupt({ ring: id, position: head, reason: "leading sequence is not a position" }))
    if (Atomics.compareExchange(words, holderIndex, previous, pairWord(process.pid, ownStartTag())) !== previous) {
      return Effect.fail(new RingWriterBusy({ ring: id, pid: Atomics.load(i32, (control + Control.pid) / 4) }))
    }
    const occurrence = ((u32[(control + Control.occurrence) / 4]! + 1) >>> 0) || 1
    u32[(control + Control.id) / 4] = id
    u32[(control + Control.readerSlots) / 4] = readerSlots
    f64[(control + Control.dataBytes) / 8] = dataBytes
    u32[(control + Control.bell) / 4] = doorbell.offset
    Atomics.store(u32, waitingWord, 0)
    Atomics.store(u32, (control + Control.occurrence) / 4, occurrence)
    Atomics.store(u32, closedWord, 0)

    region.publish(control, LINE_BYTES)
    const stateWords = Array.from({ length: readerSlots }, (_, s) => (l.line(s) + Reader.state) / 4)
    const waitingWords = Array.from({ length: readerSlots }, (_, s) => (l.line(s) + Reader.waiting) / 4)
    const bellWords = Array.from({ length: readerSlots }, (_, s) => (l.line(s) + Reader.bell) / 4)
    const processedLows = Array.from({ length: readerSlots }, (_, s) => l.line(s) + Reader.processedLow)
    const processedFulls = Array.from({ length: readerSlots }, (_, s) => l.line(s) + Reader.processed)

    /** Reserved end, committed end, the data-area index of `reserved`, and how far we may write. */
    let reserved = head
    let committed = head
    let index = head % dataBytes
    let limit = head
    let slowestSlot = -1
    let closed = false

    // The limit is the lowest `processed` of the attached readers (or the committed head when
    // there are none) plus the ring size. Reader lines are read again only when a frame does
    // not fit under it, so a reader attaching later starts at a head at least that high.
    const refreshLimit = () => {
      let lowest = committed
      slowestSlot = -1
      for (let s = 0; s < readerSlots; s++) {
        if (!isAttached(Atomics.load(u32, stateWords[s]!))) continue
        const processed = readCounter(region, processedLows[s]!, processedFulls[s]!)
        if (processed < lowest) {
          lowest = processed
          slowestSlot = s
        }
      }
      limit = lowest + dataBytes
    }

    const fits = (span: number) => reserved + placementBytes(index, span, dataBytes) <= limit

    // Read at scrape time: a reader that stalls shows as a filling ring even while nothing is written.
    const occupancy = Metric.tagged(ringOccupancy, "ring", String(id))
    const stopSampling = sampleOnScrape(() => {
      refreshLimit()
      occupancy.unsafeUpdate(committed - (limit - dataBytes), [])
    })

    // A writer whose ring was taken over (`takeOver`) becomes closed without writing a byte.
    const occurrenceWord = (control + Control.occurrence) / 4
    const superseded = (): boolean => {
      if (Atomics.load(u32, occurrenceWord) === occurrence) return false
      closed = true
      return true
    }

    const tryReserve = (length: number): number => {
      if (closed || superseded() || !(length >= 0 && length <= maxFrameBytes)) return -1
      const span = frameSpan(length)
      if (!fits(span)) {
        refreshLimit()
        if (!fits(span)) return -1
      }
      if (index + span > dataBytes) {
        const word = (data + index) / 4
        u32[word] = PADDING_LENGTH
        u32[word + 1] = frameCheck(reserved)
        reserved += dataBytes - index
        index = 0
      }
      const word = (data + index) / 4
      u32[word] = length
      u32[word + 1] = frameCheck(reserved)
      const at = data + index + FRAME_HEADER_BYTES
      reserved += span
      index += span
      if (index === dataBytes) index = 0
      return at
    }

    const publishData = (from: number, to: number) => {
      const start = from % dataBytes
      const length = to - from
      if (start + length <= dataBytes) region.publish(data + start, length)
      else {
        region.publish(data + start, dataBytes - start)
        region.publish(data, length - (dataBytes - start))
      }
    }

    const ringSlot = (s: number) => {
      if ((Atomics.load(u32, waitingWords[s]!) & 1) === 0 || !isAttached(Atomics.load(u32, stateWords[s]!))) return
      const bell = u32[bellWords[s]!]!
      if (validBell(region, l, bell)) doorbell.ring(bell)
    }

    /** Rings waiting readers: all, or only `only`'s slots and whoever is over half a ring behind. */
    const wakeReaders = (only?: ReadonlyArray<number>) => {
      // No reader can be half a ring behind while the lowest `processed` last read (it only
      // grows; a reader attaches at the head) is within half a ring: then only `only` is looked at.
      // A stale lowest is read again first (one pass, as the loop below would make).
      if (only !== undefined) {
        if (committed - (limit - dataBytes) > dataBytes / 2) refreshLimit()
        if (committed - (limit - dataBytes) <= dataBytes / 2) {
          for (const s of only) if (s >= 0 && s < readerSlots) ringSlot(s)
          return
        }
      }
      for (let s = 0; s < readerSlots; s++) {
        if (only !== undefined && !only.includes(s) && committed - readCounter(region, processedLows[s]!, processedFulls[s]!) <= dataBytes / 2) {
          continue
        }
        ringSlot(s)
      }
    }

    const commit = (wake?: ReadonlyArray<number>): number => {
      if (reserved === committed || superseded()) return committed
      if (region.coherence === "non-coherent") publishData(committed, reserved)
      write64(region, control + Control.headLow, control + Control.head, reserved)
      region.publish(control, LINE_BYTES)
      committed = reserved
      wakeReaders(wake)
      return committed
    }

    const awaitRoom = (length: number, timeoutMs: number) =>
      Effect.gen(function*() {
        const span = frameSpan(length)
        const deadline = performance.now() + timeoutMs
        Atomics.store(u32, waitingWord, 1)
        for (;;) {
          const left = deadline - performance.now()
          const roomy = yield* doorbell.await(() => {
            refreshLimit()
            return fits(span)
          }, Math.min(left, LIVENESS_SLICE_MS))
          if (roomy || left <= LIVENESS_SLICE_MS) return
          // Dead readers only: a live reader, however slow or stopped, is backpressure (its frames
          // are never overwritten under it). A stopped member's reply-ring slot is the coordinator's
          // to free (it drops the member first); the writer's wait stays bounded by `timeoutMs`.
          const reaped = reapDeadSlots(region, doorbell, l)
          if (reaped.length > 0) yield* onReaped(reaped.length)
        }
      }).pipe(Effect.ensuring(Effect.sync(() => Atomics.store(u32, waitingWord, 0))))

    // Readers parked on a closed or dead predecessor (`awaitWriter`) go on with this writer.
    wakeReaders()

    const core: WriterCore = {
      address,
      occurrence,
      maxFrameBytes,
      bytes,
      tryReserve,
      commit,
      wake: wakeReaders,
      sequence: () => committed,
      closed: () => closed,
      awaitRoom,
      fullError: (length, waitedMs) => {
        refreshLimit()
        return new RingFull({
          ring: id,
          needed: placementBytes(index, frameSpan(length), dataBytes),
          free: Math.max(0, limit - reserved),
          waitedMs,
          slowestSlot
        })
      },
      close: () => {
        if (closed || superseded()) return
        commit()
        closed = true
        stopSampling()
        Atomics.store(u32, closedWord, 1)
        region.publish(control, LINE_BYTES)
        wakeReaders()
      }
    }
    return Effect.succeed(core)
  })

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
  wanted: number | undefined
): Effect.Effect<ReaderCore & { readonly detach: () => void }, NoFreeReaderSlot | RingCorrupt> =>
  Effect.suspend((): Effect.Effect<ReaderCore & { readonly detach: () => void }, NoFreeReaderSlot | RingCorrupt> => {
    const { u32, i32, f64 } = region
    const words = wordsOver(u32)
    const { address, control, data } = l
    const { dataBytes, readerSlots, id } = address
    const candidates = wanted === undefined ? Array.from({ length: readerSlots }, (_, s) => s) : [wanted]
    const claim = claimOf(process.pid)
    const take = (s: number) =>
      s >= 0 && s < readerSlots && Atomics.compareExchange(u32, (l.line(s) + Reader.state) / 4, FREE, claim) === FREE
    const reclaim = (s: number) => s >= 0 && s < readerSlots && reapSlot(region, doorbell, l, s, true) && take(s)
    const slot = candidates.find(take) ?? candidates.find(reclaim)
    if (slot === undefined) {
      return Effect.fail(new NoFreeReaderSlot(wanted === undefined ? { ring: id, readerSlots } : { ring: id, readerSlots, slot: wanted }))
    }
    const line = l.line(slot)
    const stateWord = (line + Reader.state) / 4
    const occurrenceWord = (line + Reader.occurrence) / 4
    const waitingWord = (line + Reader.waiting) / 4
    const headLowWord = (control + Control.headLow) / 4
    const closedWord = (control + Control.closed) / 4
    const writerWaitingWord = (control + Control.waiting) / 4
    const occurrence = ((u32[occurrenceWord]! + 1) >>> 0) || 1
    const attached = attachedOf(occurrence)
    const idle = waitingOf(occurrence, false)
    const waiting = waitingOf(occurrence, true)
    i32[(line + Reader.pid) / 4] = process.pid
    u32[(line + Reader.start) / 4] = ownStartTag()
    u32[(line + Reader.bell) / 4] = doorbell.offset
    f64[(line + Reader.heartbeat) / 8] = Date.now()
    Atomics.store(u32, waitingWord, idle)
    Atomics.store(u32, occurrenceWord, occurrence)

    let delivered = 0
    let processed = 0
    const setBoth = (position: number) => {
      delivered = position
      processed = position
      write64(region, line + Reader.deliveredLow, line + Reader.delivered, position)
      write64(region, line + Reader.processedLow, line + Reader.processed, position)
      region.publish(line, LINE_BYTES)
    }
    // Publish a provisional position, become visible to the writer, then start at the head
    // read after that: any writer that missed us had committed at most that head.
    const provisional = readHead(region, l)
    if (isPosition(provisional)) setBoth(provisional)
    if (Atomics.compareExchange(u32, stateWord, claim, attached) !== claim) {
      return Effect.fail(new NoFreeReaderSlot({ ring: id, readerSlots, slot }))
    }
    const start = readHead(region, l)
    if (!isPosition(start) || !isPosition(provisional)) {
      Atomics.compareExchange(u32, stateWord, attached, FREE)
      return Effect.fail(new RingCorrupt({ ring: id, position: start, reason: "leading sequence is not a position" }))
    }
    setBoth(start)

    const batch = new MutableFrameBatch(region.bytes, dataBytes)
    let deadWriterOccurrence = 0
    let deadWriterPid = 0
    /** The writer occurrence the last scan found closed or dead (`awaitWriter` waits for another). */
    let endedWriter = 0

    /** Whether the slot is still this reader's (the state word names its occurrence). */
    const mine = () => Atomics.load(u32, stateWord) === attached
    // Every store to the line after attaching is conditional on the slot being this reader's:
    // once reaped it may be another's (waiting word and counters by compare-and-swap from this
    // reader's own value; the heartbeat, a plain f64, after a check: a stop in between could
    // at worst make a successor look fresh).
    const setWaiting = (on: boolean) => {
      Atomics.compareExchange(u32, waitingWord, on ? idle : waiting, on ? waiting : idle)
    }
    const heartbeat = () => {
      if (mine()) f64[(line + Reader.heartbeat) / 8] = Date.now()
    }
    const ringWriter = () => {
      if (Atomics.load(u32, writerWaitingWord) === 0) return
      const bell = u32[(control + Control.bell) / 4]!
      if (validBell(region, l, bell)) doorbell.ring(bell)
    }

    // After publishing progress (so an observer that set its target first sees it, or we see
    // the target): ring the observer, if any, when this step crossed its target.
    const observerLine = l.line(readerSlots - 1)
    const watchable = slot !== readerSlots - 1
    const ringObserver = (before: number, after: number) => {
      if (!watchable) return
      region.invalidate(observerLine, LINE_BYTES)
      if (Atomics.load(u32, (observerLine + Observer.state) / 4) !== OBSERVING) return
      const target = read64(region, observerLine + Observer.targetLow, observerLine + Observer.target)
      if (!(before < target && target <= after)) return
      const bell = u32[(observerLine + Observer.bell) / 4]!
      if (validBell(region, l, bell)) doorbell.ring(bell)
    }

    /**
     * Moves one of this reader's counters from `from` (its last published value) to `to`: one
     * 64-bit compare-and-swap of its commit word together with the word beside it, which must
     * still name this reader, then the f64. So nothing is written once the slot was reaped,
     * whoever took it since and wherever that one's counters stand. False if not written.
     */
    const swapPair = (pairByte: number, expected: bigint, next: bigint, fullByte: number, to: number) => {
      if (Atomics.compareExchange(words, (line + pairByte) / 8, expected, next) !== expected) return false
      f64[(line + fullByte) / 8] = to
      region.publish(line, LINE_BYTES)
      return true
    }
    /** `delivered`'s commit word is the high half beside the state word (this reader's while it reads `attached`). */
    const publishDeliveredCounter = (from: number, to: number) =>
      swapPair(Reader.state, pairWord(attached, from), pairWord(attached, to), Reader.delivered, to)
    /** `processed`'s commit word is the low half beside the occurrence. */
    const publishProcessedCounter = (from: number, to: number) =>
      swapPair(Reader.processedLow, pairWord(from, occurrence), pairWord(to, occurrence), Reader.processed, to)

    const reaped = () => new ReaderReaped({ ring: id, slot, occurrence })
    /** A reap in the middle of a scan lets the writer overwrite what it reads: that is the reap, not corruption. */
    const corrupt = (position: number, reason: string) => (mine() ? new RingCorrupt({ ring: id, position, reason }) : reaped())

    const scan = () => {
      batch.count = 0
      batch.end = delivered
      if (!mine()) return reaped()
      region.invalidate(control, LINE_BYTES)
      const closedNow = Atomics.load(u32, closedWord) !== 0
      const writerOccurrence = Atomics.load(u32, (control + Control.occurrence) / 4)
      const head = readHead(region, l)
      let position = delivered
      if (!(Number.isSafeInteger(head) && head >= position && head - position <= dataBytes)) {
        return corrupt(position, `leading sequence ${head} is not within ${dataBytes} bytes after the reader`)
      }
      heartbeat()
      if (head === position) {
        if (closedNow) {
          endedWriter = writerOccurrence
          return new RingClosed({ ring: id, sequence: head })
        }
        if (deadWriterOccurrence !== 0 && deadWriterOccurrence === writerOccurrence) {
          endedWriter = writerOccurrence
          return new RingWriterDead({ ring: id, pid: deadWriterPid, sequence: head })
        }
        return undefined
      }
      if (region.coherence === "non-coherent") region.invalidate(data, dataBytes)
      const { offsets, lengths, sequences } = batch
      const capacity = batch.capacity
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
        if (length > dataBytes - index - FRAME_HEADER_BYTES) {
          problem = `frame length ${length} runs past the data area`
          break
        }
        const span = frameSpan(length)
        if (position + span > head) {
          problem = `frame length ${length} runs past the leading sequence`
          break
        }
        offsets[count] = data + index + FRAME_HEADER_BYTES
        lengths[count] = length
        sequences[count] = position
        count++
        position += span
        index += span
        if (index === dataBytes) index = 0
      }
      if (count === 0 && problem !== undefined) return corrupt(position, problem)
      batch.count = count
      batch.end = count > 0 ? sequences[count - 1]! + frameSpan(lengths[count - 1]!) : position
      return undefined
    }

    // Built once: a wait per batch allocates nothing but the doorbell's waiter.
    const framesArrived = () =>
      Atomics.load(u32, headLowWord) !== (delivered >>> 0) ||
      Atomics.load(u32, closedWord) !== 0 ||
      !mine()
    /** A wait for frames ran out: heartbeat, and note a writer whose process died (the next scan reports it). */
    const livenessCheck = () => {
      heartbeat()
      const holder = Atomics.load(words, (control + Control.pid) / 8)
      const pid = lowHalf(holder) | 0
      if (pid !== 0 && Atomics.load(u32, closedWord) === 0 && !isProcessAlive(pid, highHalf(holder))) {
        deadWriterPid = pid
        deadWriterOccurrence = Atomics.load(u32, (control + Control.occurrence) / 4)
      }
    }
    const afterFramesWait = (woken: boolean) => {
      setWaiting(false)
      if (!woken) livenessCheck()
    }
    const stopWaiting = Effect.sync(() => setWaiting(false))
    const awaitFrames = (timeoutMs: number) =>
      Effect.suspend(() => {
        setWaiting(true)
        return doorbell.await(framesArrived, timeoutMs)
      }).pipe(Effect.map(afterFramesWait), Effect.onInterrupt(() => stopWaiting))

    const livenessPeriod = () => alignedDelayMs(READER_LIVENESS_MS)
    // Waiting stays published while the watch stands, so every commit rings this reader.
    const watchFrames = (onReady: () => void) => {
      setWaiting(true)
      const stop = doorbell.watch(framesArrived, (woken) => {
        if (!woken) livenessCheck()
        onReady()
      }, livenessPeriod)
      return () => {
        stop()
        setWaiting(false)
      }
    }

    const writerOccurrenceWord = (control + Control.occurrence) / 4
    const awaitWriter = (timeoutMs: number) =>
      Effect.suspend(() => {
        setWaiting(true)
        return doorbell.await(
          () => (Atomics.load(u32, writerOccurrenceWord) !== endedWriter && Atomics.load(u32, closedWord) === 0) || !mine(),
          timeoutMs
        )
      }).pipe(Effect.ensuring(Effect.sync(() => setWaiting(false))))

    return Effect.succeed({
      address,
      slot,
      occurrence,
      batch,
      scan,
      awaitFrames,
      watchFrames,
      awaitWriter,
      delivered: () => delivered,
      processed: () => processed,
      attached: mine,
      publishDelivered: (position: number) => {
        if (position !== delivered) {
          const before = delivered
          delivered = position
          if (publishDeliveredCounter(before, position)) ringObserver(before, position)
        }
        // Checked last: the frames up to `position` are handed on only if not reaped by now.
        return mine()
      },
      publishProcessed: (position: number) => {
        if (position === processed) return
        const before = processed
        processed = position
        if (!publishProcessedCounter(before, position)) return
        ringWriter()
        ringObserver(before, position)
      },
      detach: () => {
        setWaiting(false)
        if (Atomics.compareExchange(u32, stateWord, attached, FREE) === attached) ringWriter()
      }
    })
  })

/** Targets this process watches on one ring; see `progressWatch`. */
export interface ProgressWatch {
  /**
   * Watches `target`: readers that cross it ring this process. False when no observer line
   * could be had (the ring's last reader slot is a reader's, or the only free one), so the
   * caller has to poll.
   */
  readonly add: (target: number) => boolean
  /** Stops watching one `add`ed target; the last one frees the observer line. */
  readonly remove: (target: number) => void
}

/**
 * The observer side of progress wake-ups: while it watches targets, this process holds the
 * ring's last reader slot as an observer line (never the last free slot, so attaching readers
 * still find one) holding its doorbell and the lowest target, which readers ring on crossing.
 * A line left by a dead observer is taken over. The target is set before the caller checks the
 * readers' progress and readers publish progress before they read it, so one of the two sees
 * the other.
 */
export const progressWatch = (region: CxlMemoryShape, doorbell: DoorbellShape, l: Lines): ProgressWatch => {
  const { u32, i32 } = region
  const { readerSlots } = l.address
  const line = l.line(readerSlots - 1)
  const stateWord = (line + Observer.state) / 4
  const occurrenceWord = (line + Observer.occurrence) / 4
  const targets: Array<number> = []
  let occurrence = 0

  const owned = () =>
    occurrence !== 0 && Atomics.load(u32, stateWord) === OBSERVING && Atomics.load(u32, occurrenceWord) === occurrence

  const anotherSlotFree = () => {
    for (let s = 0; s < readerSlots - 1; s++) {
      if (Atomics.load(u32, (l.line(s) + Reader.state) / 4) === FREE) return true
    }
    return false
  }

  const claim = (): boolean => {
    if (readerSlots < 2) return false
    const state = Atomics.load(u32, stateWord)
    const abandoned = (state === OBSERVING && !isProcessAlive(Atomics.load(i32, (line + Observer.pid) / 4), Atomics.load(u32, (line + Observer.start) / 4))) ||
      (isClaim(state) && !isPidAlive(claimerOf(state)))
    if (!((state === FREE && anotherSlotFree()) || abandoned)) return false
    if (Atomics.compareExchange(u32, stateWord, state, claimOf(process.pid)) !== state) return false
    occurrence = ((u32[occurrenceWord]! + 1) >>> 0) || 1
    i32[(line + Observer.pid) / 4] = process.pid
    u32[(line + Observer.start) / 4] = ownStartTag()
    u32[(line + Observer.bell) / 4] = doorbell.offset
    Atomics.store(u32, occurrenceWord, occurrence)
    write64(region, line + Observer.targetLow, line + Observer.target, Infinity)
    Atomics.store(u32, stateWord, OBSERVING)
    region.publish(line, LINE_BYTES)
    return true
  }

  const publishTarget = () => {
    let lowest = Infinity
    for (const target of targets) lowest = Math.min(lowest, target)
    write64(region, line + Observer.targetLow, line + Observer.target, lowest)
    region.publish(line, LINE_BYTES)
  }

  return {
    add: (target) => {
      targets.push(target)
      if (!owned() && !claim()) {
        occurrence = 0
        return false
      }
      publishTarget()
      return true
    },
    remove: (target) => {
      const at = targets.indexOf(target)
      if (at >= 0) targets.splice(at, 1)
      if (!owned()) return
      if (targets.length > 0) {
        publishTarget()
        // A waiter whose target is now the lowest may have been passed without a ring.
        doorbell.poke()
        return
      }
      if (Atomics.compareExchange(u32, stateWord, OBSERVING, FREE) === OBSERVING) region.publish(line, LINE_BYTES)
      occurrence = 0
    }
  }
}

/** A ring placed in some region's bytes, with the doorbell of the process that uses it. */
export interface PlacedRing {
  readonly region: CxlMemoryShape
  readonly doorbell: DoorbellShape
  readonly lines: Lines
}

const DEFAULT_MAX_FRAME_FRACTION = 0.25
const DEFAULT_WRITE_TIMEOUT_MS = 10_000
/** How often `awaitProgress` re-checks when the ring has no observer line to spare. */
const PROGRESS_POLL_MS = 1

const countReaped = (slots: number) => Metric.incrementBy(ringReadersReaped, slots)

const validateSlot = (address: RingAddress, slot: number) =>
  Number.isInteger(slot) && slot >= 0 && slot < address.readerSlots
    ? Effect.void
    : Effect.fail(new InvalidRingAddress({ ring: address.id, reason: `no reader slot ${slot}` }))

/**
 * Waits until `reached()` holds: rung by readers crossing `target` while this process holds the
 * ring's observer line, else re-checking every PROGRESS_POLL_MS.
 */
const awaitProgressOf = (
  { doorbell, lines: l, region }: PlacedRing,
  watches: Map<number, ProgressWatch>,
  target: number,
  reached: () => boolean,
  timeoutMs: number
): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    if (reached()) return Effect.succeed(true)
    let watch = watches.get(l.address.offset)
    if (watch === undefined) {
      watch = progressWatch(region, doorbell, l)
      watches.set(l.address.offset, watch)
    }
    const rung = watch.add(target)
    const deadline = performance.now() + timeoutMs
    const poll: Effect.Effect<boolean> = Effect.suspend(() => {
      const left = deadline - performance.now()
      return doorbell.await(reached, Math.min(left, PROGRESS_POLL_MS)).pipe(
        Effect.flatMap((ok) => (ok || left <= PROGRESS_POLL_MS ? Effect.succeed(ok) : poll))
      )
    })
    return (rung ? doorbell.await(reached, timeoutMs) : poll).pipe(Effect.ensuring(Effect.sync(() => watch.remove(target))))
  })

/**
 * The Rings service over rings that `place` validates and puts in region bytes: the live layer
 * places every ring in the process's region, the fake each in a private region of its own.
 */
export const ringsOver = (place: (address: RingAddress) => Effect.Effect<PlacedRing, InvalidRingAddress>): RingsShape => {
  /** This process's progress watches, by ring offset. */
  const watches = new Map<number, ProgressWatch>()
  return {
    writer: (address, options) =>
      Effect.gen(function*() {
        const { region, doorbell, lines: l } = yield* place(address)
        const maxFrameBytes = yield* validateFraction(address, options?.maxFrameFraction ?? DEFAULT_MAX_FRAME_FRACTION)
        const core = yield* Effect.acquireRelease(
          openWriter(region, doorbell, l, maxFrameBytes, countReaped, options?.takeOver === true),
          (core) => Effect.sync(core.close)
        )
        return makeWriter(core, options?.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS)
      }),
    reader: (address, options) =>
      Effect.gen(function*() {
        const { region, doorbell, lines: l } = yield* place(address)
        const core = yield* Effect.acquireRelease(openReader(region, doorbell, l, options?.slot), (core) => Effect.sync(core.detach))
        return makeReader(core)
      }),
    inspect: (address) => Effect.map(place(address), (placed) => inspector(placed.region, placed.lines)),
    awaitProgress: (address, target, reached, timeoutMs) =>
      Effect.flatMap(place(address), (placed) => awaitProgressOf(placed, watches, target, reached, timeoutMs)),
    reap: (address, slot, occurrence) =>
      Effect.gen(function*() {
        const { region, doorbell, lines: l } = yield* place(address)
        yield* validateSlot(address, slot)
        const reaped = reapSlot(region, doorbell, l, slot, false, occurrence)
        if (reaped) yield* countReaped(1)
        return reaped
      }),
    reapDead: (address) =>
      Effect.gen(function*() {
        const { region, doorbell, lines: l } = yield* place(address)
        const reaped = reapDeadSlots(region, doorbell, l)
        yield* countReaped(reaped.length)
        return reaped
      })
  }
}
