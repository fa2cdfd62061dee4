/**
 * The views a cursor reads a batch and its messages through (one of each per cursor, refilled for
 * every batch), and the walk over a batch payload's message records.
 */
import type { LogBatchView, LogMessageView } from "../../services/log/LogReader.js"

/** The batch a cursor is delivering; one per cursor, refilled for every batch. */
export class BatchView implements LogBatchView {
  globalSeq = 0
  totalOrder = 0
  messageCount = 0
  clientId = 0
  sessionEpoch = 0
  batchSeq = 0
  brokerId = 0
  crc32c = 0
  bytes: Uint8Array = new Uint8Array(0)
  offset = 0
  length = 0
  startIndex = 0
  /** A u32 view of the same buffer as `bytes` (both from byte 0). */
  words: Uint32Array = new Uint32Array(0)
  /** Where the payload sits in its broker's Blog: checked again after the callbacks. */
  blogPosition = 0
  /** The stored batch it was loaded from (the fake): checked again after the callbacks. */
  source: unknown = undefined

  /** Sets the header fields of a batch held whole (the fake's stored batches, the disk's); where its bytes are is the caller's. */
  describe(
    globalSeq: number,
    totalOrder: number,
    messageCount: number,
    clientId: number,
    sessionEpoch: number,
    batchSeq: number,
    brokerId: number,
    crc32c: number
  ): void {
    this.globalSeq = globalSeq
    this.totalOrder = totalOrder
    this.messageCount = messageCount
    this.clientId = clientId
    this.sessionEpoch = sessionEpoch
    this.batchSeq = batchSeq
    this.brokerId = brokerId
    this.crc32c = crc32c
  }
}

export class MessageView implements LogMessageView {
  totalOrder = 0
  index = 0
  flags = 0
  offset = 0
  length = 0
  constructor(readonly batch: BatchView, public bytes: Uint8Array) {}
  get payload(): Uint8Array {
    return this.bytes.subarray(this.offset, this.offset + this.length)
  }
}

/**
 * Walks the messages of a batch payload, calling `onMessage` from `startIndex` on; returns
 * false if a length field runs past the payload or the records do not end at its end.
 */
export const visitMessages = (
  batch: BatchView,
  message: MessageView,
  onMessage: (m: LogMessageView) => void
): boolean => {
  const end = batch.offset + batch.length
  const words = batch.words
  let at = batch.offset
  message.bytes = batch.bytes
  for (let i = 0; i < batch.messageCount; i++) {
    if (at + 8 > end) return false
    const length = words[at / 4]
    if (length > end - at - 8) return false
    if (i >= batch.startIndex) {
      message.index = i
      message.totalOrder = batch.totalOrder + i
      message.flags = words[at / 4 + 1]
      message.offset = at + 8
      message.length = length
      onMessage(message)
    }
    at += 8 + ((length + 7) & ~7)
  }
  return at === end
}
