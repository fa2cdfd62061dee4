/**
 * Where a message's timestamp lies in a batch payload (docs/protocol.md, "Messages"): the first
 * record's body begins with the batch's base timestamp (an f64, ms since the epoch; flag bit 0),
 * and bits 8–31 of every record's flags word are its message's ms after that base. The log walks
 * records by their framing alone; this is the one more thing it reads of them, to find a
 * position by time. The net layer's payload format (BatchPayload.ts) takes these from here.
 */

/** Flag bit 0 of a record: its body starts with the batch's base timestamp (the first record's, only). */
export const BASE_TIME_FLAG = 1
/** Where in a record's flags word the ms after the batch's base begin. */
export const TIME_SHIFT = 8
/** Bytes of a record's header (u32 length, u32 flags), after which its body begins. */
export const RECORD_HEADER_BYTES = 8

/**
 * The timestamp of each message of a batch payload `bytes[offset, offset + length)`, from index
 * `from` on, until `visit` returns true; the index it stopped at, or -1 (none did, or the payload
 * has no base timestamp: a batch older than timestamps, or corrupt).
 */
export const findMessageTime = (
  bytes: Uint8Array,
  offset: number,
  length: number,
  messageCount: number,
  visit: (timestampMs: number) => boolean
): number => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const end = offset + length
  if (offset + RECORD_HEADER_BYTES + 8 > end) return -1
  if ((view.getUint32(offset + 4, true) & BASE_TIME_FLAG) === 0) return -1
  const base = view.getFloat64(offset + RECORD_HEADER_BYTES, true)
  let at = offset
  for (let i = 0; i < messageCount && at + RECORD_HEADER_BYTES <= end; i++) {
    const bodyBytes = view.getUint32(at, true)
    if (visit(base + (view.getUint32(at + 4, true) >>> TIME_SHIFT))) return i
    at += RECORD_HEADER_BYTES + ((bodyBytes + 7) & ~7)
  }
  return -1
}
