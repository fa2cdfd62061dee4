/**
 * The reply ring's only writer, on the server's side: replies, deferred replies and notices all
 * funnel here, and `wakeList` decides whose reader each commit wakes.
 */
import { Deferred, Effect, Either, Queue } from "effect"
import { rpcDroppedReplies } from "../../Metrics.js"
import type { RingWriteError, RingWriter } from "../../services/control/Rings.js"
import { frameBytes, Kind, type OutFrame, outFrame, writeFrameAt } from "./RpcFrames.js"
import type { ReplyMemo } from "./RpcReplyMemo.js"

export interface Outbound {
  readonly frame: Uint8Array
  /** The reader slot to wake for it; -1 wakes every reader. */
  readonly wake: number
  readonly committed?: Deferred.Deferred<number, RingWriteError>
}

/**
 * Who the reply ring's commits wake. A reply wakes its client's reader slot. A notice wakes
 * every reader, one macrotask later and only those no reply woke meanwhile: a barrier release
 * is a notice followed at once by one reply per participant, each committed as it is written,
 * and a wake costs the head a system call per parked process (tens of µs on a VM) — each
 * participant is woken once, by its reply, not once by the notice and again by its reply.
 */
export const wakeList = (writer: RingWriter) => {
  const slots: Array<number> = []
  /** A notice was added since the last commit. */
  let notice = false
  /** A committed notice has not woken everyone yet: the slots woken since. */
  let wokenSinceNotice: Set<number> | undefined
  /** The macrotask that wakes a notice's other readers, while one is due. */
  let pending: NodeJS.Immediate | undefined
  const wakeTheRest = () => {
    pending = undefined
    if (wokenSinceNotice === undefined) return
    const rest: Array<number> = []
    for (let slot = 0; slot < writer.address.readerSlots; slot++) if (!wokenSinceNotice.has(slot)) rest.push(slot)
    wokenSinceNotice = undefined
    writer.wake(rest)
  }
  return {
    /** Adds reader `slot` to the next commit's wake-ups; -1 for a notice (every reader, soon). */
    add: (slot: number) => {
      if (slot < 0) notice = true
      else if (!slots.includes(slot)) slots.push(slot)
    },
    /** Commits, waking the slots added since the last commit; a notice's other readers are woken a macrotask later. */
    commit: (): number => {
      const sequence = writer.commit(slots)
      if (notice) {
        // Only wakes from this commit on have seen this notice.
        if (wokenSinceNotice === undefined) pending = setImmediate(wakeTheRest)
        wokenSinceNotice = new Set(slots)
      } else if (wokenSinceNotice !== undefined) {
        for (const slot of slots) wokenSinceNotice.add(slot)
      }
      notice = false
      slots.length = 0
      return sequence
    },
    /** With the writer's scope: a due wake must not reach a ring whose region is unmapped by then. */
    cancel: () => {
      if (pending !== undefined) clearImmediate(pending)
      pending = undefined
      wokenSinceNotice = undefined
    }
  }
}

/**
 * The reply ring's only writer: replies, deferred replies and notices all funnel here. While
 * nothing is queued, a reply that fits goes straight into the ring and is committed at once
 * (`sendReply`): its client is woken before the server reads its next request, not after the
 * whole burst. Anything else waits in `outbound` for the writer fiber (`writeQueued`).
 */
export interface ReplyChannel {
  readonly writer: RingWriter
  readonly outbound: Queue.Queue<Outbound>
  readonly toWake: ReturnType<typeof wakeList>
  /** Frames in `outbound` or being written by the writer fiber. */
  queued: number
  /** True while the writer fiber fills a batch (then `queued` > 0, so nothing is written directly). */
  sending: boolean
  /** Where replies are kept for requests sent again. */
  readonly memo: ReplyMemo
}

/** Copies `frame` in uncommitted if it fits now. */
const tryWrite = (writer: RingWriter, frame: Uint8Array): boolean => {
  const at = writer.tryReserve(frame.length)
  if (at >= 0) writer.bytes.set(frame, at)
  return at >= 0
}

/**
 * Reserves room for `frame` within the writer's bound and copies it in uncommitted; fails
 * (`RingFull` naming the slowest reader slot) when none came: a reader that stopped but did not
 * die must not stall every reply for ever (the coordinator or the wait for room frees its slot).
 */
const writeFrame = (writer: RingWriter, frame: Uint8Array) =>
  Effect.map(writer.reserve(frame.length), (at) => {
    writer.bytes.set(frame, at)
  })

/**
 * The writer fiber: writes queued frames in batches, one commit per batch, then tells notices
 * where they were committed. A frame that finds no room within the bound is dropped (its caller
 * gets `RpcTimeout`; a notice's sender gets the error), counted and logged; the rest of its
 * batch is then written only where it fits at once, so a full ring costs one bound per batch.
 */
export const writeQueued = (channel: ReplyChannel) =>
  Effect.forever(Effect.gen(function*() {
    const items = yield* Queue.takeBetween(channel.outbound, 1, 4096)
    channel.sending = true
    let full: RingWriteError | undefined
    const dropped = new Map<Outbound, RingWriteError>()
    for (const item of items) {
      // Tried at once first: a frame that fits costs no effect of its own.
      const written = tryWrite(channel.writer, item.frame)
        ? Either.void
        : full !== undefined
        ? Either.left(full)
        : yield* Effect.either(writeFrame(channel.writer, item.frame))
      if (Either.isRight(written)) channel.toWake.add(item.wake)
      else {
        if (written.left._tag === "RingFull") full = written.left
        dropped.set(item, written.left)
      }
    }
    channel.sending = false
    const sequence = channel.toWake.commit()
    channel.queued -= items.length
    if (dropped.size > 0) {
      rpcDroppedReplies.unsafeUpdate(dropped.size, [])
      yield* Effect.logError(
        `rpc: reply ring: dropped ${dropped.size} of ${items.length} queued replies and notices: ${
          [...dropped.values()][0]!.message
        }`
      )
    }
    for (const item of items) {
      if (item.committed === undefined) continue
      const error = dropped.get(item)
      yield* (error === undefined ? Deferred.succeed(item.committed, sequence) : Deferred.fail(item.committed, error))
    }
  }))

/**
 * Sends the reply to `to`'s request now, waking its reader slot (-1: every reader): into the ring
 * at once while nothing is queued, else queued for the writer fiber.
 */
export const sendReply = (
  channel: ReplyChannel,
  frame: OutFrame,
  to: { readonly client: number; readonly replySlot: number }
): void => {
  const wake = to.replySlot
  channel.memo.replied(to.client, frame)
  if (channel.queued === 0) {
    const at = channel.writer.tryReserve(frame.length)
    if (at >= 0) {
      writeFrameAt(channel.writer.bytes, at, frame)
      channel.toWake.add(wake)
      channel.toWake.commit()
      return
    }
  }
  channel.queued++
  Queue.unsafeOffer(channel.outbound, { frame: frameBytes(frame), wake })
}

/** Writes and commits a notice now if nothing is queued before it and it fits: the leading sequence after it, else undefined. */
export const noticeNow = (channel: ReplyChannel, frame: OutFrame): number | undefined => {
  if (channel.queued !== 0) return undefined
  const at = channel.writer.tryReserve(frame.length)
  if (at < 0) return undefined
  writeFrameAt(channel.writer.bytes, at, frame)
  channel.toWake.add(-1)
  return channel.toWake.commit()
}

/**
 * Sends a notice to `client` (written at once while nothing is queued, else through the writer
 * fiber); resolves to the reply ring's leading sequence once it is committed.
 */
export const sendNotice = (channel: ReplyChannel, client: number, tag: string, json: string) =>
  Effect.suspend(() => {
    const frame = outFrame(Kind.notice, client, 0, tag, json)
    const sequence = noticeNow(channel, frame)
    if (sequence !== undefined) return Effect.succeed(sequence)
    return Effect.gen(function*() {
      const committed = yield* Deferred.make<number, RingWriteError>()
      channel.queued++
      yield* Queue.offer(channel.outbound, { frame: frameBytes(frame), wake: -1, committed })
      return yield* Deferred.await(committed)
    })
  })
