/**
 * A GROUP_DELIVERY frame (GroupProtocol.ts): one message a member the connection joined was
 * handed. Its payload is a u32 (little-endian) length of a JSON head — offset, timestamp,
 * delivery count, key and headers (their bytes in base64) — then the head, then the value as is.
 */
import { Either, Schema } from "effect"
import type { Delivery } from "../../services/groups/ConsumerGroups.js"
import type { MessageHeader } from "../../services/net/Subscriber.js"
import { describeDecodeFailure } from "../net/Control.js"
import { encodeFrame, FrameType } from "../net/Frame.js"
import { DeliveryHead } from "./GroupProtocol.js"

const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")
const bytesOf = (text: string) => new Uint8Array(Buffer.from(text, "base64"))

/** Delivery `id` of member `member`. */
export const deliveryFrame = (member: number, id: number, delivery: Delivery): Buffer => {
  const head = Buffer.from(JSON.stringify(
    Schema.encodeSync(DeliveryHead)({
      offset: delivery.offset,
      timestamp: delivery.timestamp,
      deliveryCount: delivery.deliveryCount,
      ...(delivery.key === undefined ? {} : { key: base64(delivery.key) }),
      ...(delivery.headers === undefined
        ? {}
        : { headers: delivery.headers.map((h) => ({ name: h.name, value: base64(h.value) })) })
    })
  ))
  const payload = Buffer.allocUnsafe(4 + head.length + delivery.value.length)
  payload.writeUInt32LE(head.length, 0)
  head.copy(payload, 4)
  payload.set(delivery.value, 4 + head.length)
  return encodeFrame(
    { type: FrameType.GROUP_DELIVERY, clientId: member, sessionEpoch: 0, seq: id, messageCount: 1 },
    payload
  )
}

/** What a GROUP_DELIVERY carries of its message (the value copied out of the frame). */
export interface DeliveredMessage {
  readonly offset: number
  readonly timestamp: number
  readonly deliveryCount: number
  readonly key: Uint8Array | undefined
  readonly headers: ReadonlyArray<MessageHeader> | undefined
  readonly value: Uint8Array
}

const decoder = new TextDecoder("utf-8", { fatal: true })

/** A GROUP_DELIVERY's payload read back, or why it cannot be. */
export const readDelivery = (payload: Uint8Array): DeliveredMessage | string => {
  if (payload.length < 4) return "a GROUP_DELIVERY shorter than its head's length"
  const headBytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).readUInt32LE(0)
  if (4 + headBytes > payload.length) return `a GROUP_DELIVERY head of ${headBytes} bytes past its payload`
  let json: unknown
  try {
    json = JSON.parse(decoder.decode(payload.subarray(4, 4 + headBytes)))
  } catch (error) {
    return `a GROUP_DELIVERY head that is not JSON: ${(error as Error).message}`
  }
  const head = Schema.decodeUnknownEither(DeliveryHead)(json)
  if (Either.isLeft(head)) return `a GROUP_DELIVERY head: ${describeDecodeFailure(DeliveryHead, head.left)}`
  const { headers, key, ...place } = head.right
  return {
    ...place,
    key: key === undefined ? undefined : bytesOf(key),
    headers: headers?.map((h) => ({ name: h.name, value: bytesOf(h.value) })),
    value: payload.slice(4 + headBytes)
  }
}
