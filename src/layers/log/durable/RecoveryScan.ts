/**
 * Recovery's first pass (Recovery.ts): every record's header of the stream, in order, checked
 * against the recorded order — each batch follows the one before at the next global seq and
 * offset (or after a gap of whole batches), and each session's batches come as the sequencer
 * would have ordered them (order 5: in batch-seq order; elsewhere each once, within the ahead
 * window) — and tallied into sessions. The last records after the last gap are kept as the hot
 * tier's candidates.
 */
import type { RecordPosition } from "../../../services/log/Segments.js"
import { headerProblem } from "../AppendAlgorithm.js"
import { AHEAD_WINDOW } from "../Records.js"
import { decodeOrderHeader, frozenDurableOf, type OrderHeader } from "./DurableOrder.js"
import type { RecoveredBatch } from "./RecoveryTargets.js"

/** A session seen in the stream. */
export interface SessionTally {
  readonly clientId: number
  readonly sessionEpoch: number
  /** Its batches 0..next-1 are all in the stream (or were, before a part the stream lacks). */
  next: number
  /** Batch seqs past a gap (orders other than 5 order them ahead of `next`). */
  ahead: Set<number> | undefined
  /** One past its highest batch seq. */
  end: number
  /**
   * Set at its first batch past a part of the log that never reached the disk (a gap, or the
   * stream's start when it was begun on a log already recycled), or by a record that carries
   * the frontier its writer froze (OrderRecord.frozenDurable: the part before the gap may since
   * have been deleted by retention): batches 0..durableUntil-1 are the ones known to have been
   * on disk, so level 2 stays there for good.
   */
  durableUntil: number | undefined
  messages: number
  /** The record it was last seen in. */
  seen: number
}

/** A record of the stream's tail, as its header says: a candidate for the hot tier. */
export interface TailRecord extends Omit<RecoveredBatch, "blogPosition"> {
  readonly index: number
  readonly position: RecordPosition
}

/** The header pass's state. */
export interface OrderScan {
  readonly inSequence: boolean
  readonly maxBatchBytes: number
  /** The stream's first record (retention may have deleted the ones before it). */
  readonly firstRecord: number
  /** Batches the hot tier can hold (PBR and GOI capacity). */
  readonly room: number
  /** The last records read (at most 2 x room), all after the last gap: the hot tier holds a run without holes. */
  tail: Array<TailRecord>
  readonly byClient: Map<number, Map<number, SessionTally>>
  /** The global seq and offset the next record must have; undefined before the first. */
  nextSeq: number | undefined
  messages: number
  /** The first record after a part the stream lacks: a session not seen since may have had batches there. */
  lostBefore: number
  /** Whether that part never reached the disk (a gap, or a stream begun late) rather than was deleted by retention. */
  lostUnpersisted: boolean
  /** The offset the stream's first record begins at: readers of older ones get LogOutOfRange. */
  firstOffset: number
  readonly gaps: Array<string>
  /** The first record that broke the order: where to check the records for damage from, and why. */
  bad: { readonly index: number; readonly from: RecordPosition; readonly reason: string } | undefined
  /** The previous record's position. */
  previous: RecordPosition | undefined
}

export const newOrderScan = (
  options: {
    readonly inSequence: boolean
    readonly maxBatchBytes: number
    readonly firstRecord: number
    readonly room: number
  }
): OrderScan => ({
  ...options,
  tail: [],
  byClient: new Map(),
  nextSeq: undefined,
  messages: 0,
  lostBefore: -1,
  lostUnpersisted: false,
  firstOffset: 0,
  gaps: [],
  bad: undefined,
  previous: undefined
})

/** `scanHeaders`' callback: takes record `index`'s header (`bytes`, of a record of `length` bytes); false (and `scan.bad`) when it breaks the order. */
export const takeHeader = (
  scan: OrderScan,
  index: number,
  bytes: Uint8Array,
  length: number,
  position: RecordPosition
): false | undefined => {
  const batch = decodeOrderHeader(bytes, length)
  if (batch === undefined) return stop(scan, index, position, `record ${index} is not a batch record`)
  const conflict = batchConflict(scan, index, batch) ?? sessionConflict(scan, index, batch, bytes)
  if (conflict !== undefined) return stop(scan, index, position, conflict)
  scan.tail.push({ index, position, ...batch })
  if (scan.tail.length >= 2 * scan.room) scan.tail = scan.tail.slice(scan.tail.length - scan.room)
  scan.nextSeq = batch.globalSeq + 1
  scan.messages = batch.totalOrder + batch.messageCount
  scan.previous = position
  return undefined
}

/** Ends the pass at record `index`, which breaks the order; the records from the one before it are then checked for damage. */
const stop = (scan: OrderScan, index: number, position: RecordPosition, reason: string): false => {
  scan.bad = { index, from: scan.previous ?? position, reason }
  return false
}

/** Whether the batch can be the log's next one: the stream's first, the one after the last, or one after a gap of whole batches. */
const batchConflict = (scan: OrderScan, index: number, batch: OrderHeader): string | undefined => {
  const problem = headerProblem(batch, scan.maxBatchBytes)
  if (problem !== undefined) return `record ${index} cannot be a batch of the log: ${problem}`
  const { globalSeq, totalOrder } = batch
  const { nextSeq, messages } = scan
  if (nextSeq === undefined) {
    scan.firstOffset = totalOrder
    // The stream begins later than the log did (retention deleted its start, or it was begun on a log already recycled).
    if (globalSeq !== 0 || totalOrder !== 0) {
      scan.lostBefore = index
      // Retention deletes only what was on disk; a stream whose first record is still there began late.
      scan.lostUnpersisted = scan.firstRecord === 0
    }
    if (
      !Number.isSafeInteger(globalSeq) || !Number.isSafeInteger(totalOrder) || globalSeq < 0 || totalOrder < globalSeq
    ) {
      return `record ${index} was recorded as batch ${globalSeq} at offset ${totalOrder}, which no log holds`
    }
  } else if (globalSeq !== nextSeq || totalOrder !== messages) {
    // A gap: batches the writer never got (the region recycled them before it read them) — whole batches, each of one message or more.
    if (
      !(Number.isSafeInteger(globalSeq) && globalSeq > nextSeq && Number.isSafeInteger(totalOrder) &&
        totalOrder - messages >= globalSeq - nextSeq)
    ) {
      return `record ${index} was recorded as batch ${globalSeq} at offset ${totalOrder}, but the records before it end at batch ${nextSeq}, offset ${messages}: ` +
        `neither the next batch nor one after a gap of whole batches`
    }
    scan.gaps.push(`batches ${nextSeq}..${globalSeq - 1} (offsets ${messages}..${totalOrder - 1})`)
    scan.lostBefore = index
    scan.lostUnpersisted = true
    scan.tail = []
  }
  return undefined
}

/** The batch's session, tallied (created at its first batch). */
const sessionOf = (scan: OrderScan, batch: OrderHeader): SessionTally => {
  let bySession = scan.byClient.get(batch.clientId)
  if (bySession === undefined) scan.byClient.set(batch.clientId, bySession = new Map())
  let session = bySession.get(batch.sessionEpoch)
  if (session === undefined) {
    bySession.set(
      batch.sessionEpoch,
      session = {
        clientId: batch.clientId,
        sessionEpoch: batch.sessionEpoch,
        next: 0,
        ahead: undefined,
        end: 0,
        durableUntil: undefined,
        messages: 0,
        seen: -1
      }
    )
  }
  return session
}

/** Whether the sequencer could have ordered the batch in its session (then it is tallied there). */
const sessionConflict = (scan: OrderScan, index: number, batch: OrderHeader, bytes: Uint8Array): string | undefined => {
  const session = sessionOf(scan, batch)
  const seq = batch.batchSeq
  // A session not seen since a part the stream lacks may have had its batches before this one there.
  if (session.seen < scan.lostBefore && seq > session.next) {
    if (scan.lostUnpersisted && session.durableUntil === undefined) session.durableUntil = session.next
    session.next = seq
    if (session.ahead !== undefined) { for (const s of session.ahead) if (s < seq) session.ahead.delete(s) }
  }
  const frozen = frozenDurableOf(bytes)
  if (frozen !== undefined) session.durableUntil = Math.min(session.durableUntil ?? frozen, frozen)
  const inSequence = scan.inSequence
  // What the sequencer would have ordered: in order 5 the session's next batch only, elsewhere any batch not ordered yet.
  if (inSequence ? seq !== session.next : seq < session.next || session.ahead?.has(seq) === true) {
    return `record ${index} is batch ${seq} of session ${batch.clientId}/${batch.sessionEpoch}, which conflicts with the recorded order ` +
      `(batches 0..${session.next - 1} before it${inSequence ? `; order 5 takes ${session.next} next` : ", each once"})`
  }
  if (!inSequence && seq - session.next > AHEAD_WINDOW) {
    return `record ${index} is batch ${seq} of session ${batch.clientId}/${batch.sessionEpoch}, more than ${AHEAD_WINDOW} above its frontier ${session.next}: ` +
      `the sequencer orders none so far out`
  }
  if (seq === session.next) {
    session.next++
    while (session.ahead?.delete(session.next) === true) session.next++
  } else {
    ;(session.ahead ??= new Set()).add(seq)
  }
  session.end = Math.max(session.end, seq + 1)
  session.messages += batch.messageCount
  session.seen = index
  return undefined
}
