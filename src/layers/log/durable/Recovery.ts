/**
 * Recovery: rebuilds a topic's log in an empty region from its stream in the data directory
 * (`cxlog head --recover DIR`), as a bulk load. Every record's header is read (not its payload
 * nor its checksum: closed segments' header indexes, or small reads) and checked against the
 * recorded order: each batch follows the one before at the next global seq and offset (or after
 * a gap of whole batches), and (order 5) each session's batches come in batch-seq order with
 * none twice; the stream may begin late (retention deleted its start). Then the batches the hot
 * tier can hold — the stream's tail, bounded by broker slot 0's PBR and Blog and by the GOI — are
 * read whole, each against its checksum, and written straight into slot 0's Blog, its PBR slots
 * (committed and finished) and the GOI at their recorded places; the rest is checked by whoever
 * reads it from disk; the sessions seen last (up to half the table) go back into the session
 * table under their recorded epochs with their frontiers (so a resend across the crash is a
 * duplicate, and no new session draws a recovered epoch); then the cursors, counters and the topic's frontier are
 * published once. The sequencer picks the topic up from the region when it first sees it, as
 * after any restart, so it must not have ordered the topic before (the head recovers before its
 * sequencer runs).
 */
import { Effect } from "effect"
import { orderPolicy } from "../../../services/log/OrderModes.js"
import { type SegmentLog, Segments } from "../../../services/log/Segments.js"
import type { TopicInfo } from "../../../services/log/Topics.js"
import { alignLine } from "../Records.js"
import type { SessionTable } from "../SessionTable.js"
import { decodeOrderRecord, OrderRecord, streamOf } from "./DurableOrder.js"
import { newOrderScan, type OrderScan, type SessionTally, type TailRecord, takeHeader } from "./RecoveryScan.js"
import { type RecoveredBatch, RecoveryFailed, type RecoveryTarget } from "./RecoveryTargets.js"

export interface RecoveryResult {
  readonly batches: number
  readonly messages: number
  /** Sessions registered again (the ones seen last, up to `recoveredSessions`). */
  readonly sessions: number
  /** Sessions seen earlier in the stream, counted as ended: a publisher naming one is told unknown-session. */
  readonly sessionsLeftOut: number
  /** Bytes of a torn tail cut when the stream was opened. */
  readonly cutBytes: number
  /** Batches the hot tier holds after it (the stream's tail; the earlier ones are on disk only). */
  readonly held: number
}

/**
 * How many of the stream's sessions recovery registers again in a table of `capacity`: half, so
 * as many new sessions can register at once after the crash (1024 slots: 448 of each).
 */
export const recoveredSessions = (capacity: number): number => Math.max(1, capacity >> 1)

/**
 * Rebuilds the topic's log in `target` (empty) from its stream. Two reads: every record's header
 * (not its checksum), checked against the recorded order and tallied into sessions; then the
 * records the hot tier will hold, whole and checked against their checksums, into the Blog. The
 * rest stays on disk, where a reader's read checks it (docs/durability.md, Recovery).
 */
export const recoverTopic = (topic: TopicInfo, target: RecoveryTarget) =>
  Effect.gen(function*() {
    const segments = yield* Segments
    const fail = (reason: string) => new RecoveryFailed({ topic: topic.name, reason })
    // Opening checks the last segment whole (the only one that can end torn: it is cut there); the closed ones are not read.
    const log = yield* segments.open(streamOf(topic.name), { verifyClosedSegments: false })
    const { shape, blog, sessions } = target
    const firstRecord = log.first()
    if (log.durable() === firstRecord && firstRecord > 0) {
      return yield* fail(
        `its stream holds no record (retention deleted records 0..${firstRecord - 1}, the only ones with their offsets)`
      )
    }
    // Only the last `room` batches can be in the hot tier (PBR and GOI capacity).
    const room = Math.min(shape.pbrSlots, shape.goiSlots)
    const scan = newOrderScan({
      inSequence: orderPolicy(topic.order).sessionInSequence,
      maxBatchBytes: shape.maxBatchBytes,
      firstRecord,
      room
    })
    const problem = yield* scanOrder(log, scan)
    if (problem !== undefined) return yield* fail(problem)
    for (const gap of scan.gaps) {
      yield* Effect.logWarning(
        `recovery: topic ${topic.name}: the stream lacks ${gap}: they never reached the disk; readers of them get LogOutOfRange`
      )
    }
    const candidates = scan.tail.slice(Math.max(0, scan.tail.length - room))
    const { held, blogHead } = placeTail(candidates, blog.length)
    const unloaded = yield* loadHeld(log, candidates[candidates.length - held.length], held, blog, blog.length)
    if (unloaded !== undefined) return yield* fail(unloaded)
    const restored = restoreSessions(sessions, scan.byClient)
    if (typeof restored === "string") return yield* fail(restored)
    const batches = scan.nextSeq ?? 0
    target.commit({ batches, messages: scan.messages, blogHead, held })

    const result: RecoveryResult = {
      batches,
      messages: scan.messages,
      sessions: restored.registered,
      sessionsLeftOut: restored.leftOut,
      cutBytes: log.recovery.cutBytes,
      held: held.length
    }
    yield* Effect.logInfo(
      `recovery: topic ${topic.name}: ${result.batches} batches (${result.messages} messages) of ${result.sessions} sessions loaded in the recorded order, ` +
        `the last ${result.held} held in the hot tier` +
        (scan.firstOffset > 0 ? `; offsets before ${scan.firstOffset} are no longer on disk` : "") +
        (result.sessionsLeftOut > 0
          ? `; ${result.sessionsLeftOut} sessions seen earlier count as ended (the table keeps room for new ones)`
          : "") +
        (result.cutBytes > 0 ? `; a torn tail of ${result.cutBytes} bytes was cut` : "")
    )
    return result
  }).pipe(Effect.scoped)

/** The header pass (RecoveryScan.ts) over the whole stream; resolves to why it fails the recovery, if it does. */
const scanOrder = (log: SegmentLog, scan: OrderScan) =>
  Effect.gen(function*() {
    const records = log.durable()
    const scanned = yield* log.scanHeaders(scan.firstRecord, OrderRecord.bytes, (index, bytes, length, position) =>
      takeHeader(scan, index, bytes, length, position))
    if (scan.bad !== undefined) {
      // A header that broke the order may be a damaged one (headers were read without their checksums): check the record
      // and the one before it, so damage is named as damage.
      const { index, from, reason } = scan.bad
      yield* log.read(index > scan.firstRecord ? index - 1 : index, (i) =>
        i < index, from)
      return reason
    }
    if (scanned !== records) {
      return `the stream holds ${records} records, but reading it stopped at ${scanned}`
    }
    return undefined
  })

/**
 * The hot tier's share of the last `room` batches (`candidates`): laid out as broker 0's appends
 * would lay them (each on a line, at the Blog's start rather than across its end), less those
 * later ones wrote over.
 */
const placeTail = (candidates: ReadonlyArray<TailRecord>, blogBytes: number) => {
  const placed: Array<RecoveredBatch> = []
  let blogHead = 0
  for (const r of candidates) {
    const bytes = alignLine(r.payloadBytes)
    const offset = blogHead % blogBytes
    const position = offset + bytes > blogBytes ? blogHead + blogBytes - offset : blogHead
    placed.push({
      globalSeq: r.globalSeq,
      totalOrder: r.totalOrder,
      clientId: r.clientId,
      sessionEpoch: r.sessionEpoch,
      batchSeq: r.batchSeq,
      messageCount: r.messageCount,
      payloadBytes: r.payloadBytes,
      crc32c: r.crc32c,
      blogPosition: position
    })
    blogHead = position + bytes
  }
  let firstHeld = 0
  while (firstHeld < placed.length && placed[firstHeld]!.blogPosition < blogHead - blogBytes) firstHeld++
  return { held: placed.slice(firstHeld), blogHead }
}

/**
 * Reads the held batches whole from record `from` on, each checked against its checksum (a
 * damaged one is SegmentCorrupt naming file and byte), into the Blog at their places; resolves
 * to why they could not be, if they could not.
 */
const loadHeld = (
  log: SegmentLog,
  from: TailRecord | undefined,
  held: ReadonlyArray<RecoveredBatch>,
  blog: Uint8Array,
  blogBytes: number
) =>
  Effect.gen(function*() {
    if (held.length === 0 || from === undefined) return undefined
    let k = 0
    let mismatch: string | undefined
    yield* log.read(from.index, (index, record) => {
      const batch = decodeOrderRecord(record)
      const expected = held[k]!
      if (
        batch === undefined || batch.globalSeq !== expected.globalSeq || batch.payload.length !== expected.payloadBytes
      ) {
        mismatch = `record ${index} reads back differently from its header`
        return false
      }
      blog.set(batch.payload, expected.blogPosition % blogBytes)
      return ++k < held.length
    }, from.position)
    if (mismatch !== undefined) return mismatch
    if (k !== held.length) return `reading the ${held.length} records the hot tier holds stopped after ${k}`
    return undefined
  })

/**
 * The table takes back the sessions seen last (those a publisher may be resending for), up to
 * half its capacity: the rest is for the registrations that follow the crash, as the recovered
 * ones are released only when they idle out. The older ones count as ended and their lines
 * reused, as a live sequencer leaves sessions: a publisher naming one is told unknown-session,
 * and a batch of one is refused, never ordered again. A new session never draws a recovered
 * epoch, nor the epoch of a session left out. Resolves to why it could not, if the table filled.
 */
const restoreSessions = (
  sessions: SessionTable,
  byClient: ReadonlyMap<number, ReadonlyMap<number, SessionTally>>
): { readonly registered: number; readonly leftOut: number } | string => {
  let maxEpoch = 0
  const seen: Array<SessionTally> = []
  for (const bySession of byClient.values()) {
    for (const s of bySession.values()) {
      seen.push(s)
      maxEpoch = Math.max(maxEpoch, s.sessionEpoch)
    }
  }
  const keep = recoveredSessions(sessions.capacity)
  const kept = seen.length <= keep ? seen : seen.sort((a, b) => b.seen - a.seen).slice(0, keep)
  const nowMs = Date.now()
  for (const s of kept) {
    const taken = sessions.registerAs(s.clientId, s.sessionEpoch, nowMs)
    if ("full" in taken) return `the session table is full (${taken.capacity} sessions)`
    // With the batches it had ordered above its frontier (orders 0/2/4): a resend of one is then a duplicate.
    sessions.publish(taken.slot, s.clientId, s.sessionEpoch, {
      next: s.next,
      orderedMessages: s.messages,
      duplicates: 0,
      held: 0,
      lastActivityMs: nowMs,
      fenced: false,
      ...(s.ahead === undefined ? {} : { ahead: s.ahead })
    })
    // They are on disk: a resend across the crash is acknowledged at level 2 as a duplicate. A session with
    // batches in a part that never reached the disk keeps level 2 below it (DurableOrder.persistTopic does the same).
    sessions.setDurable(s.clientId, s.sessionEpoch, s.durableUntil ?? s.end)
    if (s.durableUntil !== undefined) sessions.freezeDurable(s.clientId, s.sessionEpoch)
  }
  sessions.reserveEpochsThrough(maxEpoch)
  return { registered: kept.length, leftOut: seen.length - kept.length }
}
