/**
 * The batch a subscriber hands out (`SubscriberBatch`): a view of one stored batch payload —
 * in the region, the in-memory log, or a socket's receive buffer — from the first message the
 * subscription delivers. One object per subscription, re-aimed for every batch (`aim`); its
 * framing is checked before it is handed out, so walking it needs no further bounds checks.
 */
import type { SubscriberBatch, SubscriberMessage } from "../../services/net/Subscriber.js"
import { checkBatchPayload, MESSAGE_HEADER_BYTES, messageRecordBytes } from "./BatchPayload.js"

class MessageView implements SubscriberMessage {
  offset = 0
  flags = 0
  payload: Uint8Array = new Uint8Array(0)
}

export class BatchView implements SubscriberBatch {
  offset = 0
  count = 0
  clientId = 0
  sessionEpoch = 0
  bytes = 0
  /** The whole stored payload (messages before `offset` included) and its message count. */
  private payload: Uint8Array = new Uint8Array(0)
  private view: DataView = new DataView(new ArrayBuffer(0))
  private skip = 0
  /** Byte position of the first delivered message in `payload`. */
  private first = 0
  private readonly message = new MessageView()

  constructor(readonly topic: string) {}

  /**
   * Points the view at a stored batch whose first message has offset `firstOffset`, delivering
   * from offset `from` on; returns why the payload is malformed, or undefined.
   */
  aim(payload: Uint8Array, messageCount: number, firstOffset: number, from: number, clientId: number, sessionEpoch: number): string | undefined {
    const malformed = checkBatchPayload(payload, messageCount)
    if (malformed !== undefined) return malformed
    this.payload = payload
    this.view = new DataView(payload.buffer, payload.byteOffset, payload.length)
    this.skip = Math.min(messageCount, Math.max(0, from - firstOffset))
    this.offset = firstOffset + this.skip
    this.count = messageCount - this.skip
    this.clientId = clientId
    this.sessionEpoch = sessionEpoch
    let at = 0
    for (let i = 0; i < this.skip; i++) at += messageRecordBytes(this.view.getUint32(at, true))
    this.first = at
    this.bytes = payload.length - at
    return undefined
  }

  forEach(onMessage: (message: SubscriberMessage) => void): void {
    const { view, payload, message } = this
    let at = this.first
    for (let i = 0; i < this.count; i++) {
      const length = view.getUint32(at, true)
      message.offset = this.offset + i
      message.flags = view.getUint32(at + 4, true)
      message.payload = payload.subarray(at + MESSAGE_HEADER_BYTES, at + MESSAGE_HEADER_BYTES + length)
      onMessage(message)
      at += messageRecordBytes(length)
    }
  }

  *[Symbol.iterator](): Iterator<SubscriberMessage> {
    const { view, payload, message } = this
    let at = this.first
    for (let i = 0; i < this.count; i++) {
      const length = view.getUint32(at, true)
      message.offset = this.offset + i
      message.flags = view.getUint32(at + 4, true)
      message.payload = payload.subarray(at + MESSAGE_HEADER_BYTES, at + MESSAGE_HEADER_BYTES + length)
      yield message
      at += messageRecordBytes(length)
    }
  }

  copy(): SubscriberBatch {
    const owned = new BatchView(this.topic)
    const bytes = this.payload.slice(this.first)
    owned.aim(bytes, this.count, this.offset, this.offset, this.clientId, this.sessionEpoch)
    return owned
  }
}
