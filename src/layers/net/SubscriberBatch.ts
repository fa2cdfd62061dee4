/**
 * The batch a subscriber hands out (`SubscriberBatch`): a view of one stored batch payload —
 * in the region, the in-memory log, or a socket's receive buffer — from the first message the
 * subscription delivers. One object per subscription, re-aimed for every batch (`aim`); its
 * framing and every record's parts are checked before it is handed out, so walking it needs
 * no further bounds checks.
 */
import type { MessageHeader, SubscriberBatch, SubscriberMessage } from "../../services/net/Subscriber.js"
import { baseTimestamp, checkBatchPayload, MessageRecord } from "./BatchPayload.js"

class MessageView extends MessageRecord implements SubscriberMessage {
  offset = 0

  constructor(readonly topic: string) {
    super()
  }

  copy(): SubscriberMessage {
    return ownedMessage(this)
  }
}

/** A message that owns its bytes. */
const ownedMessage = (m: SubscriberMessage): SubscriberMessage => {
  const payload = m.payload.slice()
  const owned: SubscriberMessage = {
    topic: m.topic,
    offset: m.offset,
    timestamp: m.timestamp,
    flags: m.flags,
    key: m.key?.slice(),
    headers: m.headers?.map((h): MessageHeader => ({ name: h.name, value: h.value.slice() })),
    payload,
    bytes: payload,
    valueOffset: 0,
    valueLength: payload.length,
    copy: () => owned
  }
  return owned
}

export class BatchView implements SubscriberBatch {
  offset = 0
  count = 0
  clientId = 0
  sessionEpoch = 0
  bytes = 0
  /** The whole stored payload (messages before `offset` included), its message count and first offset. */
  private payload: Uint8Array = new Uint8Array(0)
  private view: DataView = new DataView(new ArrayBuffer(0))
  private messageCount = 0
  private firstOffset = 0
  /** The batch's base timestamp (its first record carries it). */
  private base = 0
  /** Byte position of the first delivered message in `payload`. */
  private first = 0
  private readonly message: MessageView

  constructor(readonly topic: string) {
    this.message = new MessageView(topic)
  }

  /**
   * Points the view at a stored batch whose first message has offset `firstOffset`, delivering
   * from offset `from` on; returns why the payload is malformed, or undefined.
   */
  aim(
    payload: Uint8Array,
    messageCount: number,
    firstOffset: number,
    from: number,
    clientId: number,
    sessionEpoch: number
  ): string | undefined {
    const malformed = checkBatchPayload(payload, messageCount)
    if (malformed !== undefined) return malformed
    this.payload = payload
    this.view = new DataView(payload.buffer, payload.byteOffset, payload.length)
    this.messageCount = messageCount
    this.firstOffset = firstOffset
    this.base = baseTimestamp(this.view)
    const skip = Math.min(messageCount, Math.max(0, from - firstOffset))
    this.offset = firstOffset + skip
    this.count = messageCount - skip
    this.clientId = clientId
    this.sessionEpoch = sessionEpoch
    let at = 0
    for (let i = 0; i < skip; i++) at += 8 + ((this.view.getUint32(at, true) + 7) & ~7)
    this.first = at
    this.bytes = payload.length - at
    return undefined
  }

  forEach(onMessage: (message: SubscriberMessage) => void): void {
    const { view, payload, message, base } = this
    let at = this.first
    for (let i = 0; i < this.count; i++) {
      message.offset = this.offset + i
      const bytes = message.load(payload, view, at, base)
      onMessage(message)
      at += bytes
    }
  }

  *[Symbol.iterator](): Iterator<SubscriberMessage> {
    const { view, payload, message, base } = this
    let at = this.first
    for (let i = 0; i < this.count; i++) {
      message.offset = this.offset + i
      const bytes = message.load(payload, view, at, base)
      yield message
      at += bytes
    }
  }

  get length(): number {
    return this.count
  }

  map<T>(f: (message: SubscriberMessage, index: number) => T): Array<T> {
    const results = new Array<T>(this.count)
    let i = 0
    this.forEach((message) => {
      results[i] = f(message, i)
      i++
    })
    return results
  }

  toArray(): Array<SubscriberMessage> {
    return this.map((message) => message.copy())
  }

  /** The whole stored payload is copied: the messages skipped hold the base timestamp. */
  copy(): SubscriberBatch {
    const owned = new BatchView(this.topic)
    owned.aim(this.payload.slice(), this.messageCount, this.firstOffset, this.offset, this.clientId, this.sessionEpoch)
    return owned
  }
}
