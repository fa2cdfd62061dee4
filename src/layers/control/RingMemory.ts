/**
 * The in-memory fake of a ring: frames in an in-process queue, with the region ring's
 * semantics — the same sequences (byte positions, padding at the wrap), backpressure on the
 * slowest reader's `processed`, both counters, attach at the head. No addon, no processes.
 */
import { Effect } from "effect"
import {
  NoFreeReaderSlot,
  ReaderReaped,
  type RingAddress,
  RingClosed,
  RingFull,
  type RingInspector,
  RingWriterBusy,
  type ReaderProgress
} from "../../services/control/Rings.js"
import { MutableFrameBatch, type ReaderCore, type WriterCore } from "./RingEndpoints.js"
import { frameSpan, pidAlive, placementBytes } from "./RingFrames.js"

interface Slot {
  state: "free" | "attached"
  occurrence: number
  pid: number
  delivered: number
  processed: number
  heartbeatMs: number
}

interface QueuedFrame {
  readonly position: number
  readonly bytes: Uint8Array
}

export interface MemoryRing {
  readonly address: RingAddress
  head: number
  occurrence: number
  writerPid: number
  writerOpen: boolean
  closed: boolean
  /** Committed frames some attached reader has not processed yet. */
  frames: Array<QueuedFrame>
  /** How many frames were dropped from the front of `frames` so far. */
  dropped: number
  readonly slots: Array<Slot>
  /** Waiters re-check their condition after every change. */
  readonly waiters: Set<() => void>
}

export const memoryRing = (address: RingAddress): MemoryRing => ({
  address,
  head: 0,
  occurrence: 0,
  writerPid: 0,
  writerOpen: false,
  closed: false,
  frames: [],
  dropped: 0,
  slots: Array.from({ length: address.readerSlots }, () => ({
    state: "free",
    occurrence: 0,
    pid: 0,
    delivered: 0,
    processed: 0,
    heartbeatMs: 0
  })),
  waiters: new Set()
})

const changed = (ring: MemoryRing) => {
  for (const waiter of [...ring.waiters]) waiter()
}

const awaitCondition = (ring: MemoryRing, condition: () => boolean, timeoutMs: number) =>
  Effect.suspend(() =>
    condition() ? Effect.succeed(true) : Effect.async<boolean>((resume) => {
      const cleanup = () => {
        ring.waiters.delete(waiter)
        clearTimeout(timer)
      }
      const waiter = () => {
        if (!condition()) return
        cleanup()
        resume(Effect.succeed(true))
      }
      const timer = setTimeout(() => {
        cleanup()
        resume(Effect.succeed(false))
      }, Math.min(Math.max(timeoutMs, 0), 2 ** 31 - 1))
      ring.waiters.add(waiter)
      return Effect.sync(cleanup)
    })
  )

/** Resolves once `reached()` holds (re-checked after every change to the ring), false after `timeoutMs`. */
export const awaitMemoryProgress = (ring: MemoryRing, reached: () => boolean, timeoutMs: number) => awaitCondition(ring, reached, timeoutMs)

/** Lowest `processed` over attached readers (the head when there are none) and whose it is. */
const slowest = (ring: MemoryRing, head: number) => {
  let lowest = head
  let slot = -1
  ring.slots.forEach((s, i) => {
    if (s.state === "attached" && s.processed < lowest) {
      lowest = s.processed
      slot = i
    }
  })
  return { lowest, slot }
}

/** Drops frames every attached reader has processed. */
const trim = (ring: MemoryRing) => {
  const { lowest } = slowest(ring, ring.head)
  let k = 0
  while (k < ring.frames.length && ring.frames[k]!.position + frameSpan(ring.frames[k]!.bytes.length) <= lowest) k++
  if (k > 0) {
    ring.frames.splice(0, k)
    ring.dropped += k
  }
}

export const memoryInspector = (ring: MemoryRing): RingInspector => {
  const reader = (slot: number): ReaderProgress => {
    const s = ring.slots[slot]
    if (s === undefined) throw new RangeError(`ring ${ring.address.id} has no reader slot ${slot}`)
    return {
      slot,
      state: s.state,
      occurrence: s.occurrence,
      pid: s.pid,
      delivered: s.delivered,
      processed: s.processed,
      heartbeatMs: s.heartbeatMs
    }
  }
  return {
    address: ring.address,
    writer: () => ({ sequence: ring.head, occurrence: ring.occurrence, pid: ring.writerPid, closed: ring.closed }),
    reader,
    readers: () => ring.slots.map((_, slot) => reader(slot))
  }
}

export const reapMemorySlot = (ring: MemoryRing, slot: number, onlyIfDead: boolean): boolean => {
  const s = ring.slots[slot]
  if (s === undefined || s.state === "free" || (onlyIfDead && pidAlive(s.pid))) return false
  s.state = "free"
  trim(ring)
  changed(ring)
  return true
}

export const openMemoryWriter = (ring: MemoryRing, maxFrameBytes: number): Effect.Effect<WriterCore, RingWriterBusy> =>
  Effect.suspend(() => {
    if (ring.writerOpen && !ring.closed) return Effect.fail(new RingWriterBusy({ ring: ring.address.id, pid: ring.writerPid }))
    const { address } = ring
    const { dataBytes } = address
    ring.writerOpen = true
    ring.writerPid = process.pid
    ring.occurrence++
    ring.closed = false
    const staging = new Uint8Array(dataBytes)
    const pending: Array<{ position: number; at: number; length: number }> = []
    let used = 0
    let reserved = ring.head
    let committed = ring.head
    let limit = ring.head
    let closed = false

    const refreshLimit = () => {
      limit = slowest(ring, committed).lowest + dataBytes
    }
    const needed = (length: number) => placementBytes(reserved % dataBytes, frameSpan(length), dataBytes)

    const tryReserve = (length: number): number => {
      if (closed || !(length >= 0 && length <= maxFrameBytes)) return -1
      if (reserved + needed(length) > limit) {
        refreshLimit()
        if (reserved + needed(length) > limit) return -1
      }
      const index = reserved % dataBytes
      if (index + frameSpan(length) > dataBytes) reserved += dataBytes - index
      pending.push({ position: reserved, at: used, length })
      const at = used
      used += length
      reserved += frameSpan(length)
      return at
    }

    const commit = (): number => {
      if (reserved === committed) return committed
      for (const p of pending) ring.frames.push({ position: p.position, bytes: staging.slice(p.at, p.at + p.length) })
      pending.length = 0
      used = 0
      committed = reserved
      ring.head = reserved
      trim(ring)
      changed(ring)
      return committed
    }

    return Effect.succeed<WriterCore>({
      address,
      occurrence: ring.occurrence,
      maxFrameBytes,
      bytes: staging,
      tryReserve,
      commit,
      // Every commit here wakes every waiter already.
      wake: () => {},
      sequence: () => committed,
      closed: () => closed,
      awaitRoom: (length, timeoutMs) =>
        Effect.asVoid(awaitCondition(ring, () => {
          refreshLimit()
          return reserved + needed(length) <= limit
        }, timeoutMs)),
      fullError: (length, waitedMs) => {
        refreshLimit()
        return new RingFull({
          ring: address.id,
          needed: needed(length),
          free: Math.max(0, limit - reserved),
          waitedMs,
          slowestSlot: slowest(ring, committed).slot
        })
      },
      close: () => {
        if (closed) return
        commit()
        closed = true
        ring.closed = true
        ring.writerOpen = false
        changed(ring)
      }
    })
  })

export const openMemoryReader = (
  ring: MemoryRing,
  wanted: number | undefined
): Effect.Effect<ReaderCore & { readonly detach: () => void }, NoFreeReaderSlot> =>
  Effect.suspend(() => {
    const { address } = ring
    const { id, dataBytes, readerSlots } = address
    const slot = wanted === undefined ? ring.slots.findIndex((s) => s.state === "free") : wanted
    const s = ring.slots[slot]
    if (s === undefined || s.state !== "free") {
      return Effect.fail(new NoFreeReaderSlot(wanted === undefined ? { ring: id, readerSlots } : { ring: id, readerSlots, slot: wanted }))
    }
    s.state = "attached"
    s.occurrence++
    s.pid = process.pid
    s.delivered = ring.head
    s.processed = ring.head
    s.heartbeatMs = Date.now()
    const occurrence = s.occurrence
    let delivered = ring.head
    let processed = ring.head
    const batch = new MutableFrameBatch(new Uint8Array(dataBytes), dataBytes)
    /** Absolute index (dropped frames included) of the first frame not yet delivered. */
    let cursor = ring.dropped + ring.frames.length

    const mine = () => s.state === "attached" && s.occurrence === occurrence

    const scan = () => {
      batch.count = 0
      batch.end = delivered
      if (!mine()) return new ReaderReaped({ ring: id, slot, occurrence })
      s.heartbeatMs = Date.now()
      const frames = ring.frames
      let k = Math.max(cursor - ring.dropped, 0)
      while (k < frames.length && frames[k]!.position < delivered) k++
      cursor = ring.dropped + k
      const { bytes, offsets, lengths, sequences } = batch
      let used = 0
      let count = 0
      while (k < frames.length && count < batch.capacity) {
        const frame = frames[k++]!
        bytes.set(frame.bytes, used)
        offsets[count] = used
        lengths[count] = frame.bytes.length
        sequences[count] = frame.position
        used += frame.bytes.length
        count++
      }
      if (count === 0) return ring.closed ? new RingClosed({ ring: id, sequence: ring.head }) : undefined
      batch.count = count
      batch.end = sequences[count - 1]! + frameSpan(lengths[count - 1]!)
      return undefined
    }

    return Effect.succeed({
      address,
      slot,
      occurrence,
      batch,
      scan,
      awaitFrames: (timeoutMs: number) =>
        Effect.asVoid(awaitCondition(ring, () => ring.head !== delivered || ring.closed || !mine(), timeoutMs)),
      delivered: () => delivered,
      processed: () => processed,
      publishDelivered: (position: number) => {
        delivered = position
        if (!mine()) return
        s.delivered = position
        if (ring.waiters.size > 0) changed(ring)
      },
      publishProcessed: (position: number) => {
        if (position === processed) return
        processed = position
        if (!mine()) return
        s.processed = position
        trim(ring)
        changed(ring)
      },
      detach: () => {
        if (!mine()) return
        s.state = "free"
        trim(ring)
        changed(ring)
      }
    })
  })
