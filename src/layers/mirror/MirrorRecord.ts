/**
 * One cxlog message as JetStream headers and back (docs/mirror.md, "The mapping"): the value is
 * the stream message's data; offset, timestamp, key and headers travel as `Cxlog-*` headers
 * (NATS headers are text lines, so bytes that are not plain text go as base64).
 */
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node"
import { MirrorHeaders } from "../../services/mirror/Mirror.js"
import type { SubscriberMessage } from "../../services/net/Subscriber.js"

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** Bytes as text a NATS header line can carry unchanged: UTF-8, no control characters, no surrounding spaces; else undefined. */
const headerText = (bytes: Uint8Array): string | undefined => {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return undefined
  }
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(text) || text.trim() !== text ? undefined : text
}

/** JSON text: the same shape `cxlog subscribe --format json` prints (a value, or valueBase64 when it is not UTF-8). */
const jsonValue = (bytes: Uint8Array): { value: string } | { valueBase64: string } => {
  try {
    return { value: utf8.decode(bytes) }
  } catch {
    return { valueBase64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64") }
  }
}

/** The headers that carry `message` (its offset given: a message object does not own it past its batch). */
export const mirrorHeaders = (message: SubscriberMessage): MsgHdrs => {
  const h = natsHeaders()
  h.set(MirrorHeaders.offset, `${message.offset}`)
  h.set(MirrorHeaders.timestamp, `${message.timestamp}`)
  const key = message.key
  if (key !== undefined) {
    const text = headerText(key)
    if (text === undefined) {
      h.set(MirrorHeaders.keyBase64, Buffer.from(key.buffer, key.byteOffset, key.length).toString("base64"))
    } else h.set(MirrorHeaders.key, text)
  }
  const headers = message.headers
  if (headers !== undefined) {
    h.set(MirrorHeaders.headers, JSON.stringify(headers.map((x) => ({ name: x.name, ...jsonValue(x.value) }))))
  }
  return h
}

/** A mirrored message as a reader of the stream sees it (`readMirrored`). */
export interface MirroredMessage {
  readonly sequence: number
  readonly msgId: string
  readonly offset: number
  readonly timestamp: number
  readonly key: Uint8Array | undefined
  readonly headers: ReadonlyArray<{ readonly name: string; readonly value: Uint8Array }> | undefined
  readonly payload: Uint8Array
}

/** Decodes a stream message's `Cxlog-*` headers (what a reader at another site does; the bench's and tests' audits). */
export const readMirrored = (
  message: { readonly seq: number; readonly data: Uint8Array; readonly headers?: MsgHdrs | undefined }
): MirroredMessage => {
  const h = message.headers
  // Present, even empty (an empty key is a key), or absent: `get` alone says "" for both.
  const get = (name: string) => (h !== undefined && h.has(name) ? h.get(name) : undefined)
  const keyText = get(MirrorHeaders.key)
  const keyBase64 = get(MirrorHeaders.keyBase64)
  const headersJson = get(MirrorHeaders.headers)
  return {
    sequence: message.seq,
    msgId: get(MirrorHeaders.msgId) ?? "",
    offset: Number(get(MirrorHeaders.offset) ?? Number.NaN),
    timestamp: Number(get(MirrorHeaders.timestamp) ?? Number.NaN),
    key: keyText !== undefined
      ? new TextEncoder().encode(keyText)
      : keyBase64 !== undefined
      ? new Uint8Array(Buffer.from(keyBase64, "base64"))
      : undefined,
    headers: headersJson === undefined ?
      undefined :
      (JSON.parse(headersJson) as Array<{ name: string; value?: string; valueBase64?: string }>).map((x) => ({
        name: x.name,
        value: x.value !== undefined
          ? new TextEncoder().encode(x.value)
          : new Uint8Array(Buffer.from(x.valueBase64 ?? "", "base64"))
      })),
    payload: message.data
  }
}
