/**
 * The end-to-end audit used by `cxlog run`, `cxlog bench` and the cluster tests. Each
 * message carries (publisher, seq) in its first 8 bytes; the reader checks that every
 * (publisher, seq) arrives exactly once, in batches whose crc32c matches, and — in order mode
 * 5, the only one that promises it — in per-publisher order (modes 0, 2 and 4 order a
 * session's batches as brokers carry them: their messages out of publish order are counted
 * but fail nothing). A missing message is *lost* only if the reader read to the end of the ordered log
 * (as of after every publisher finished) without it; a reader that stopped before that end
 * (timeout, head gone) reports it as *not delivered*.
 */
import { type OrderMode, orderPolicy } from "../../services/log/OrderModes.js"

export const AUDIT_HEADER_BYTES = 8

/** Stamps `payload` as message `seq` of `publisher`. */
export const stamp = (payload: Uint8Array, publisher: number, seq: number): void => {
  payload[0] = publisher & 0xff
  payload[1] = (publisher >>> 8) & 0xff
  payload[2] = (publisher >>> 16) & 0xff
  payload[3] = publisher >>> 24
  payload[4] = seq & 0xff
  payload[5] = (seq >>> 8) & 0xff
  payload[6] = (seq >>> 16) & 0xff
  payload[7] = seq >>> 24
}

const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0

export interface AuditResult {
  readonly expected: number
  /** Messages the reader observed, duplicates and malformed ones included. */
  readonly received: number
  /** Missing although the reader read to the end of the ordered log. */
  readonly lost: number
  /** Missing when the reader stopped before the end of the ordered log. */
  readonly notDelivered: number
  readonly duplicated: number
  /** Messages out of publish order; a failure only where the order mode promises that order. */
  readonly outOfOrder: number
  /** Whether the topic's order mode promises publish order (mode 5), so `outOfOrder` counts against `passed`. */
  readonly publishOrder: boolean
  readonly crcMismatches: number
  readonly malformed: number
  /** True when every message arrived once, intact, and in publish order where that is promised. */
  readonly passed: boolean
}

/** The audit's figures after `received`, as every summary prints them. */
export const auditFigures = (result: AuditResult): string =>
  `lost ${result.lost}, not delivered ${result.notDelivered}, duplicated ${result.duplicated}, ${
    result.publishOrder
      ? `out of order ${result.outOfOrder}`
      : `out of publish order ${result.outOfOrder} (not promised in this order mode)`
  }, crc mismatches ${result.crcMismatches}`

/** Whether a topic of order mode `order` promises each publisher's messages in publish order. */
const promisesPublishOrder = (order: OrderMode): boolean => orderPolicy(order).sessionInSequence

/** Tracks messages of `publishers` publishers, `perPublisher` messages each, in a topic of order mode `order`. */
export const makeAudit = (publishers: number, perPublisher: number, order: OrderMode) => {
  const publishOrder = promisesPublishOrder(order)
  const seen = new Uint8Array(publishers * perPublisher)
  const next = new Float64Array(publishers)
  let received = 0
  let distinct = 0
  let duplicated = 0
  let outOfOrder = 0
  let crcMismatches = 0
  let malformed = 0
  return {
    /** One message's payload at bytes[offset, offset + length). */
    message: (bytes: Uint8Array, offset: number, length: number): void => {
      received++
      if (length < AUDIT_HEADER_BYTES) {
        malformed++
        return
      }
      const publisher = u32(bytes, offset)
      const seq = u32(bytes, offset + 4)
      if (publisher >= publishers || seq >= perPublisher) {
        malformed++
        return
      }
      const index = publisher * perPublisher + seq
      if (seen[index] !== 0) {
        duplicated++
        return
      }
      seen[index] = 1
      distinct++
      if (seq !== next[publisher]) outOfOrder++
      next[publisher] = seq + 1
    },
    batchCrc: (ok: boolean): void => {
      if (!ok) crcMismatches++
    },
    complete: () => distinct === publishers * perPublisher,
    distinct: () => distinct,
    received: () => received,
    /** `readToEnd`: whether the reader reached the end of the ordered log (see the module comment). */
    result: (readToEnd: boolean): AuditResult => {
      const expected = publishers * perPublisher
      const missing = expected - distinct
      return {
        expected,
        received,
        lost: readToEnd ? missing : 0,
        notDelivered: readToEnd ? 0 : missing,
        duplicated,
        outOfOrder,
        publishOrder,
        crcMismatches,
        malformed,
        passed: missing === 0 && duplicated === 0 && (!publishOrder || outOfOrder === 0) && crcMismatches === 0 &&
          malformed === 0
      }
    }
  }
}
